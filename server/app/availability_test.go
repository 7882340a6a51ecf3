package app_test

import (
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app/apptest"
)

// utcOf is the RFC 3339 UTC instant of a local date and time in tz,
// computed independently of the server.
func utcOf(t *testing.T, tz, date, hhmm string) string {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	v, err := time.ParseInLocation("2006-01-02 15:04", date+" "+hhmm, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC().Format(time.RFC3339)
}

func TestAvailabilityOccurrences(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		const tz = "Europe/Paris"
		s := mustCreateService(t, e, key, tz,
			slotIn(3, "09:00", "09:30", 2), slotIn(1, "14:00", "15:00", 1), slotIn(1, "09:00", "10:00", 3))
		mon9, mon14, wed9 := s.TimeSlots[0], s.TimeSlots[1], s.TimeSlots[2]
		if mon9.StartTime != "09:00" || mon14.StartTime != "14:00" || wed9.DayOfWeek != 3 {
			t.Fatalf("unexpected slot order %+v", s.TimeSlots)
		}
		from := nextDate(tz, time.Monday)
		to := addDays(from, 13) // two full weeks, Monday to Sunday

		type want struct {
			date        string
			slot        schedSlot
			start, end  string
			capacity    int
			booked, rem int
		}
		expect := func(bookedMon9, bookedMon14 int) []want {
			var out []want
			for week := 0; week < 2; week++ {
				mon, wed := addDays(from, 7*week), addDays(from, 7*week+2)
				b9, b14 := 0, 0
				if week == 0 {
					b9, b14 = bookedMon9, bookedMon14
				}
				out = append(out,
					want{mon, mon9, "09:00", "10:00", 3, b9, 3 - b9},
					want{mon, mon14, "14:00", "15:00", 1, b14, 1 - b14},
					want{wed, wed9, "09:00", "09:30", 2, 0, 2},
				)
			}
			return out
		}
		check := func(label string, got []schedOccurrence, wants []want) {
			t.Helper()
			if len(got) != len(wants) {
				t.Fatalf("%s: %d occurrences, want %d: %+v", label, len(got), len(wants), got)
			}
			for i, w := range wants {
				g := got[i]
				if g.Date != w.date || g.TimeSlot.ID != w.slot.ID || g.TimeSlot.StartTime != w.slot.StartTime ||
					g.TimeSlot.DayOfWeek != w.slot.DayOfWeek {
					t.Errorf("%s: occurrence %d is %s slot %s, want %s slot %s", label, i, g.Date, g.TimeSlot.ID, w.date, w.slot.ID)
				}
				if ws, we := utcOf(t, tz, w.date, w.start), utcOf(t, tz, w.date, w.end); g.StartsAt != ws || g.EndsAt != we {
					t.Errorf("%s: occurrence %d runs %s–%s, want %s–%s", label, i, g.StartsAt, g.EndsAt, ws, we)
				}
				if g.Capacity != w.capacity || g.Booked != w.booked || g.Remaining != w.rem {
					t.Errorf("%s: occurrence %d (%s %s) capacity/booked/remaining = %d/%d/%d, want %d/%d/%d",
						label, i, g.Date, w.start, g.Capacity, g.Booked, g.Remaining, w.capacity, w.booked, w.rem)
				}
			}
		}
		check("empty", availability(t, e, key, s.ID, from, to), expect(0, 0))

		// Bookings count, cancellations and deletions give seats back.
		b1 := mustBook(t, e, key, mon9.ID, from, "one@example.com")
		mustBook(t, e, key, mon9.ID, from, "two@example.com")
		b3 := mustBook(t, e, key, mon9.ID, from, "three@example.com")
		check("mon9 full", availability(t, e, key, s.ID, from, to), expect(3, 0))
		wantError(t, doCreateBooking(e, key, bookingInput(mon9.ID, from, "four@example.com")), db.CodeTimeSlotFull, "")
		mustCancel(t, e, key, b1.ID)
		check("one cancelled", availability(t, e, key, s.ID, from, to), expect(2, 0))
		var del struct{ DeleteBooking string }
		e.MustData(key, `mutation($id: ID!) { deleteBooking(id: $id) }`, map[string]any{"id": b3.ID}, &del)
		check("one deleted", availability(t, e, key, s.ID, from, to), expect(1, 0))
		mustBook(t, e, key, mon14.ID, from, "one@example.com")
		check("mon14 full", availability(t, e, key, s.ID, from, to), expect(1, 1))

		// A one-day range holds that day's occurrences only.
		got := availability(t, e, key, s.ID, from, from)
		if len(got) != 2 || got[0].TimeSlot.ID != mon9.ID || got[1].TimeSlot.ID != mon14.ID {
			t.Fatalf("one-day availability = %+v", got)
		}
		if got := availability(t, e, key, s.ID, addDays(from, 3), addDays(from, 6)); len(got) != 0 {
			t.Fatalf("thursday..sunday availability = %+v, want none", got)
		}

		// A service without slots has no availability.
		empty := mustCreateService(t, e, key, tz)
		if got := availability(t, e, key, empty.ID, from, to); len(got) != 0 {
			t.Fatalf("slotless service availability = %+v", got)
		}
	})
}

func TestAvailabilityDST(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		s := mustCreateService(t, e, key, schedNY, slotIn(1, "09:00", "10:30", 1))
		for _, tc := range []struct {
			month      time.Month
			start, end string
		}{
			{time.January, "T14:00:00Z", "T15:30:00Z"}, // EST, UTC-5
			{time.July, "T13:00:00Z", "T14:30:00Z"},    // EDT, UTC-4
		} {
			monday := nextDateIn(schedNY, time.Monday, tc.month)
			// The Monday and the six days after it: exactly one occurrence.
			got := availability(t, e, key, s.ID, monday, addDays(monday, 6))
			if len(got) != 1 {
				t.Fatalf("%s: %d occurrences in a week, want 1: %+v", tc.month, len(got), got)
			}
			if g := got[0]; g.Date != monday || g.StartsAt != monday+tc.start || g.EndsAt != monday+tc.end {
				t.Errorf("%s: occurrence %s %s–%s, want %s %s–%s", tc.month, g.Date, g.StartsAt, g.EndsAt,
					monday, monday+tc.start, monday+tc.end)
			}
		}
	})
}

func TestAvailabilityPastOccurrencesOmitted(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		const tz = "Asia/Tokyo"
		var slots []map[string]any
		for d := 0; d < 7; d++ {
			slots = append(slots, slotIn(d, "12:00", "13:00", 1))
		}
		s := mustCreateService(t, e, key, tz, slots...)
		today := localToday(tz).Format(db.DateLayout)
		from, to := addDays(today, -20), addDays(today, 20)
		got := availability(t, e, key, s.ID, from, to)
		now := time.Now()
		dates := map[string]bool{}
		for _, o := range got {
			starts, err := time.Parse(time.RFC3339, o.StartsAt)
			if err != nil {
				t.Fatalf("startsAt %q: %v", o.StartsAt, err)
			}
			if !starts.After(now) {
				t.Errorf("occurrence %s starts at %s, in the past", o.Date, o.StartsAt)
			}
			if o.Date < today {
				t.Errorf("occurrence on past date %s", o.Date)
			}
			dates[o.Date] = true
		}
		for d := 1; d <= 20; d++ {
			if date := addDays(today, d); !dates[date] {
				t.Errorf("future date %s missing", date)
			}
		}
		if n := len(got); n != 20 && n != 21 { // today's occurrence may or may not have started
			t.Errorf("%d occurrences, want 20 or 21", n)
		}
	})
}

func TestAvailabilityRange(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e := apptest.New(t, database, nil)
		keyA, keyB := e.Account("alice"), e.Account("bob")
		s := mustCreateService(t, e, keyA, schedNY, slotIn(1, "09:00", "10:00", 1))
		from := nextDate(schedNY, time.Monday)

		// 92 days inclusive is the most; 14 Mondays fall in it.
		if got := availability(t, e, keyA, s.ID, from, addDays(from, 91)); len(got) != 14 {
			t.Fatalf("92-day range: %d occurrences, want 14", len(got))
		}
		vars := func(serviceID, f, to string) map[string]any {
			return map[string]any{"serviceId": serviceID, "from": f, "to": to}
		}
		wantError(t, e.Do(keyA, gqlAvailability, vars(s.ID, from, addDays(from, 92))), db.CodeInvalidRequest, "to")
		wantError(t, e.Do(keyA, gqlAvailability, vars(s.ID, from, addDays(from, 400))), db.CodeInvalidRequest, "to")
		wantError(t, e.Do(keyA, gqlAvailability, vars(s.ID, from, addDays(from, -1))), db.CodeInvalidRequest, "to")
		for _, bad := range []string{"2026-13-01", "2026-02-30", "tomorrow", "2026-1-05"} {
			r := e.Do(keyA, gqlAvailability, vars(s.ID, bad, from))
			if r.Code() != db.CodeInvalidFieldFormat {
				t.Errorf("from %q: %s", bad, r.Raw)
			}
		}
		// Another account's (or no) service.
		wantError(t, e.Do(keyB, gqlAvailability, vars(s.ID, from, from)), db.CodeServiceNotFound, "")
		wantError(t, e.Do(keyA, gqlAvailability, vars("999999", from, from)), db.CodeServiceNotFound, "")
	})
}

// TestAvailabilityStatementCount checks that availability costs the same
// number of SQL statements whatever the length of the range (no query per
// day or per occurrence).
func TestAvailabilityStatementCount(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		counted, counter := withQueryCounter(database)
		e, key := newSchedEnv(t, counted)
		var slots []map[string]any
		for d := 0; d < 7; d++ {
			slots = append(slots, slotIn(d, "09:00", "10:00", 5), slotIn(d, "15:00", "16:00", 5))
		}
		s := mustCreateService(t, e, key, schedNY, slots...)
		from := nextDate(schedNY, time.Monday)
		// Bookings spread over the range so that the counters exist.
		for w := 0; w < 12; w++ {
			date := addDays(from, 7*w)
			mustBook(t, e, key, s.TimeSlots[2].ID, date, "") // Monday 09:00
		}

		measure := func(days int) (int64, int) {
			to := addDays(from, days-1)
			availability(t, e, key, s.ID, from, to) // warm caches (API key, query cache)
			before := counter.Count()
			got := availability(t, e, key, s.ID, from, to)
			return counter.Count() - before, len(got)
		}
		week, nWeek := measure(7)
		quarter, nQuarter := measure(90)
		if nWeek != 14 || nQuarter < 14*12 {
			t.Fatalf("occurrences: %d over 7 days (want 14), %d over 90 days", nWeek, nQuarter)
		}
		if week == 0 {
			t.Fatal("the query counter saw no statements: is the hook installed?")
		}
		if week != quarter {
			t.Fatalf("availability ran %d statements over 7 days but %d over 90 days", week, quarter)
		}
		if week > 5 {
			t.Errorf("availability ran %d statements, want a handful", week)
		}
		t.Logf("availability: %d statements per request", week)
	})
}
