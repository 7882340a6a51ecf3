package graph

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/reservekit/reservekit/db"
)

// Page sizes of every connection.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

func pageSize(first *int) (int, error) {
	if first == nil {
		return DefaultPageSize, nil
	}
	if *first < 1 || *first > MaxPageSize {
		return 0, db.Errorf(db.CodeInvalidFieldFormat, "first", "first must be between 1 and %d", MaxPageSize)
	}
	return *first, nil
}

// Cursors are opaque to clients: base64 of a versioned keyset position.
func encodeCursor(s string) string { return base64.RawURLEncoding.EncodeToString([]byte("v1:" + s)) }

func decodeCursor(c string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	s, ok := strings.CutPrefix(string(raw), "v1:")
	if err != nil || !ok {
		return "", db.Errorf(db.CodeInvalidFieldFormat, "after", "after is not a cursor returned by this API")
	}
	return s, nil
}

func idCursor(id int64) string { return encodeCursor(strconv.FormatInt(id, 10)) }

// idPage reads first/after of a connection ordered by id.
func idPage(first *int, after *string) (db.Page, error) {
	n, err := pageSize(first)
	if err != nil {
		return db.Page{}, err
	}
	p := db.Page{First: n}
	if after != nil {
		s, err := decodeCursor(*after)
		if err != nil {
			return p, err
		}
		if p.AfterID, err = strconv.ParseInt(s, 10, 64); err != nil {
			return p, db.Errorf(db.CodeInvalidFieldFormat, "after", "after is not a cursor returned by this API")
		}
	}
	return p, nil
}

func bookingCursor(b *db.Booking) string {
	return encodeCursor(fmt.Sprintf("%s|%d|%d", b.Date, b.StartMinute, b.ID))
}

func decodeBookingCursor(after *string) (*db.BookingCursor, error) {
	if after == nil {
		return nil, nil
	}
	s, err := decodeCursor(*after)
	if err != nil {
		return nil, err
	}
	var c db.BookingCursor
	parts := strings.Split(s, "|")
	bad := db.Errorf(db.CodeInvalidFieldFormat, "after", "after is not a cursor returned by this API")
	if len(parts) != 3 {
		return nil, bad
	}
	c.Date = parts[0]
	if c.StartMinute, err = strconv.Atoi(parts[1]); err != nil {
		return nil, bad
	}
	if c.ID, err = strconv.ParseInt(parts[2], 10, 64); err != nil {
		return nil, bad
	}
	if _, err := db.ParseDate("after", c.Date); err != nil {
		return nil, bad
	}
	return &c, nil
}
