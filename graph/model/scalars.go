// Package model holds the GraphQL-only types: scalars, connections and the
// inputs gqlgen generates. Domain records are bound straight to db's models.
package model

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/reservekit/reservekit/db"
)

func quoted(s string) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(s)) })
}

// MarshalID writes a database id as a GraphQL ID string.
func MarshalID(id int64) graphql.Marshaler { return quoted(strconv.FormatInt(id, 10)) }

// UnmarshalID reads an ID given as a string or an integer.
func UnmarshalID(v any) (int64, error) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case json.Number:
		s = v.String()
	case int64:
		s = strconv.FormatInt(v, 10)
	case int:
		s = strconv.Itoa(v)
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, inputErrorf("ID must be a positive integer in a string, e.g. \"42\"")
	}
	return id, nil
}

// InputError is a scalar argument or input field that does not parse. The
// error presenter names the field from the error's path (e.g.
// timeSlots[1].startTime), which the scalar itself cannot know.
type InputError struct{ Err *db.Error }

func (e *InputError) Error() string { return e.Err.Message }

// Unwrap gives the coded error.
func (e *InputError) Unwrap() error { return e.Err }

func inputErrorf(format string, args ...any) error {
	return &InputError{Err: db.Errorf(db.CodeInvalidFieldFormat, "", format, args...)}
}

// MarshalDate writes a YYYY-MM-DD date.
func MarshalDate(d string) graphql.Marshaler { return quoted(d) }

// UnmarshalDate reads and checks a YYYY-MM-DD date.
func UnmarshalDate(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", inputErrorf("Date must be a string in YYYY-MM-DD form")
	}
	if _, err := time.Parse(db.DateLayout, s); err != nil {
		return "", inputErrorf("%q is not a date in YYYY-MM-DD form", s)
	}
	return s, nil
}

// MarshalLocalTime writes minutes since midnight as HH:MM.
func MarshalLocalTime(m int) graphql.Marshaler { return quoted(db.FormatMinute(m)) }

// UnmarshalLocalTime reads "HH:MM" or "HH:MM:SS" (seconds must be 00) into
// minutes since midnight. "24:00" is accepted as the end of the day.
func UnmarshalLocalTime(v any) (int, error) {
	s, ok := v.(string)
	bad := inputErrorf("%v is not a time of day in HH:MM form (e.g. \"09:00\")", v)
	if !ok {
		return 0, bad
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, bad
	}
	var nums [3]int
	for i, p := range parts {
		// Exactly two ASCII digits: strconv.Atoi alone would also take "+9"
		// and "-0".
		if len(p) != 2 || p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9' {
			return 0, bad
		}
		nums[i] = int(p[0]-'0')*10 + int(p[1]-'0')
	}
	h, m, sec := nums[0], nums[1], nums[2]
	if sec != 0 {
		return 0, inputErrorf("%q: times are whole minutes; seconds must be 00", s)
	}
	if m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, bad
	}
	return h*60 + m, nil
}

// MarshalDateTime writes an instant in RFC 3339, UTC.
func MarshalDateTime(t time.Time) graphql.Marshaler { return quoted(t.UTC().Format(time.RFC3339Nano)) }

// UnmarshalDateTime reads an RFC 3339 instant.
func UnmarshalDateTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, inputErrorf("DateTime must be an RFC 3339 string")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, inputErrorf("%q is not an RFC 3339 date-time", s)
	}
	return t, nil
}
