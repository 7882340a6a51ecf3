package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/reservekit/reservekit/db"
)

// marshaled renders a Marshaler and decodes the JSON string it wrote.
func marshaled(t testing.TB, m graphql.Marshaler) string {
	t.Helper()
	var buf bytes.Buffer
	m.MarshalGQL(&buf)
	var s string
	if err := json.Unmarshal(buf.Bytes(), &s); err != nil {
		t.Fatalf("marshaled %q is not a JSON string: %v", buf.String(), err)
	}
	return s
}

// wantFieldFormat asserts that err is a domain invalid_field_format error.
func wantFieldFormat(t testing.TB, in any, err error) {
	t.Helper()
	var de *db.Error
	if !errors.As(err, &de) {
		t.Fatalf("%#v: error %v (%T) is not a *db.Error", in, err, err)
	}
	if de.Code != db.CodeInvalidFieldFormat || de.Message == "" {
		t.Fatalf("%#v: error code %q message %q", in, de.Code, de.Message)
	}
}

func TestLocalTime(t *testing.T) {
	t.Parallel()
	valid := map[string]int{
		"00:00": 0, "00:00:00": 0, "09:00": 540, "09:00:00": 540, "09:05": 545, "12:30:00": 750,
		"23:59": 1439, "23:59:00": 1439, "24:00": 1440, "24:00:00": 1440,
	}
	for in, want := range valid {
		got, err := UnmarshalLocalTime(in)
		if err != nil || got != want {
			t.Errorf("UnmarshalLocalTime(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	invalid := []any{
		"", "9", "09", "9:00", "9am", "09:00am", "25:00", "24:01", "24:00:01", "23:60", "99:99",
		"09:00:01", "09:00:60", "09:0", "09:000", "009:00", "09:00:00:00", "09:00:", ":09:00",
		"+9:00", "-0:00", "09:+1", " 9:00", "09 :00", "09:00 ", "０９:００", "09h00", "T09:00",
		540, int64(540), 9.0, nil, true, json.Number("540"),
	}
	for _, in := range invalid {
		got, err := UnmarshalLocalTime(in)
		if err == nil {
			t.Errorf("UnmarshalLocalTime(%#v) = %d, want an error", in, got)
			continue
		}
		wantFieldFormat(t, in, err)
	}
	for m, want := range map[int]string{0: "00:00", 5: "00:05", 540: "09:00", 545: "09:05", 750: "12:30", 1439: "23:59", 1440: "24:00"} {
		if got := marshaled(t, MarshalLocalTime(m)); got != want {
			t.Errorf("MarshalLocalTime(%d) = %q, want %q", m, got, want)
		}
	}
}

func TestDate(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"2026-12-07", "2024-02-29", "2000-01-01", "1999-12-31", "2100-06-30"} {
		got, err := UnmarshalDate(in)
		if err != nil || got != in {
			t.Errorf("UnmarshalDate(%q) = %q, %v", in, got, err)
		}
		if m := marshaled(t, MarshalDate(in)); m != in {
			t.Errorf("MarshalDate(%q) = %q", in, m)
		}
	}
	invalid := []any{
		"", "2026-02-29", "2100-02-29", "2026-13-01", "2026-00-10", "2026-04-31", "2026-01-00", "2026-1-05",
		"2026-01-5", "26-01-05", "2026/01/05", "20260105", "2026-01-05T00:00:00Z", "2026-01-05 ", " 2026-01-05",
		"tomorrow", "2026-01-05\n", "+2026-01-05",
		20260105, nil, time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), json.Number("2026"),
	}
	for _, in := range invalid {
		got, err := UnmarshalDate(in)
		if err == nil {
			t.Errorf("UnmarshalDate(%#v) = %q, want an error", in, got)
			continue
		}
		wantFieldFormat(t, in, err)
	}
}

func TestID(t *testing.T) {
	t.Parallel()
	valid := []struct {
		in   any
		want int64
	}{
		{"1", 1}, {"42", 42}, {"9223372036854775807", 9223372036854775807},
		{json.Number("42"), 42}, {int64(42), 42}, {42, 42},
	}
	for _, tc := range valid {
		got, err := UnmarshalID(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("UnmarshalID(%#v) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	invalid := []any{
		"", "0", "-1", "abc", "4.2", "1e3", "0x10", " 42", "42 ", "9223372036854775808",
		json.Number("4.2"), json.Number("-3"), int64(0), -5, 42.0, nil, true, []any{"1"},
	}
	for _, in := range invalid {
		got, err := UnmarshalID(in)
		if err == nil {
			t.Errorf("UnmarshalID(%#v) = %d, want an error", in, got)
			continue
		}
		wantFieldFormat(t, in, err)
	}
	for id, want := range map[int64]string{1: "1", 42: "42", 9223372036854775807: "9223372036854775807"} {
		if got := marshaled(t, MarshalID(id)); got != want {
			t.Errorf("MarshalID(%d) = %q, want %q", id, got, want)
		}
		if back, err := UnmarshalID(marshaled(t, MarshalID(id))); err != nil || back != id {
			t.Errorf("MarshalID(%d) does not round-trip: %d, %v", id, back, err)
		}
	}
}

func TestDateTime(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[time.Time]string{
		time.Date(2026, 12, 7, 15, 0, 0, 0, paris):                     "2026-12-07T14:00:00Z",
		time.Date(2026, 7, 6, 15, 0, 0, 0, paris):                      "2026-07-06T13:00:00Z",
		time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC):            "2026-01-02T03:04:05.123456Z",
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", -5*3600)): "2026-01-02T08:04:05Z",
	} {
		if got := marshaled(t, MarshalDateTime(in)); got != want {
			t.Errorf("MarshalDateTime(%v) = %q, want %q", in, got, want)
		}
		back, err := UnmarshalDateTime(want)
		if err != nil || !back.Equal(in) {
			t.Errorf("UnmarshalDateTime(%q) = %v, %v; want %v", want, back, err, in)
		}
	}
	if _, err := UnmarshalDateTime("2026-12-07 14:00"); err == nil {
		t.Error("UnmarshalDateTime accepted a non-RFC 3339 string")
	}
	if _, err := UnmarshalDateTime(12); err == nil {
		t.Error("UnmarshalDateTime accepted a number")
	}
}

func FuzzLocalTime(f *testing.F) {
	for _, s := range []string{"09:00", "09:00:00", "24:00", "00:00", "23:59:00", "9am", "25:00", "+9:00", "09:00:30", "", "12:3", "-0:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := UnmarshalLocalTime(s)
		if err != nil {
			wantFieldFormat(t, s, err)
			return
		}
		if m < 0 || m > 24*60 {
			t.Fatalf("UnmarshalLocalTime(%q) = %d, outside a day", s, m)
		}
		out := marshaled(t, MarshalLocalTime(m))
		// The output is the canonical form of the input: HH:MM, the input
		// itself or the input without ":00" seconds.
		if out != s && out+":00" != s {
			t.Fatalf("UnmarshalLocalTime(%q) = %d, which marshals as %q", s, m, out)
		}
		back, err := UnmarshalLocalTime(out)
		if err != nil || back != m {
			t.Fatalf("%q → %d → %q → %d, %v", s, m, out, back, err)
		}
	})
}

func FuzzDate(f *testing.F) {
	for _, s := range []string{"2026-12-07", "2024-02-29", "2026-02-29", "2026-1-05", "0000-01-01", "9999-12-31", "", "2026-12-07T00:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := UnmarshalDate(s)
		if err != nil {
			wantFieldFormat(t, s, err)
			return
		}
		if d != s || len(d) != len("2006-01-02") || strings.TrimSpace(d) != d {
			t.Fatalf("UnmarshalDate(%q) = %q", s, d)
		}
		out := marshaled(t, MarshalDate(d))
		if out != s {
			t.Fatalf("MarshalDate(%q) = %q", d, out)
		}
		parsed, err := time.Parse(db.DateLayout, out)
		if err != nil || parsed.Format(db.DateLayout) != s {
			t.Fatalf("%q does not round-trip through time: %v, %v", s, parsed, err)
		}
		if back, err := UnmarshalDate(out); err != nil || back != d {
			t.Fatalf("%q → %q → %q, %v", s, d, back, err)
		}
	})
}
