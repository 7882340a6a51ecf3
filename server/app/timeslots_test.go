package app_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app/apptest"
)

func TestCreateServiceWithTimeSlots(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)

		// Given out of order, with both LocalTime input forms.
		s := mustCreateService(t, e, key, schedNY,
			slotIn(3, "14:00", "15:30:00", 4),
			slotIn(1, "13:00:00", "14:00", 2),
			slotIn(0, "09:00", "10:00", 1),
			slotIn(1, "09:00", "10:00", 3),
			slotIn(6, "23:00", "24:00", 1),
		)
		want := []schedSlot{
			{DayOfWeek: 0, StartTime: "09:00", EndTime: "10:00", MaxBookings: 1},
			{DayOfWeek: 1, StartTime: "09:00", EndTime: "10:00", MaxBookings: 3},
			{DayOfWeek: 1, StartTime: "13:00", EndTime: "14:00", MaxBookings: 2},
			{DayOfWeek: 3, StartTime: "14:00", EndTime: "15:30", MaxBookings: 4},
			{DayOfWeek: 6, StartTime: "23:00", EndTime: "24:00", MaxBookings: 1},
		}
		for name, got := range map[string][]schedSlot{
			"createService": s.TimeSlots,
			"service(id)":   serviceSlots(t, e, key, s.ID),
		} {
			if len(got) != len(want) {
				t.Fatalf("%s: %d slots, want %d: %+v", name, len(got), len(want), got)
			}
			ids := map[string]bool{}
			for i, g := range got {
				w := want[i]
				if g.DayOfWeek != w.DayOfWeek || g.StartTime != w.StartTime || g.EndTime != w.EndTime || g.MaxBookings != w.MaxBookings {
					t.Errorf("%s: slot %d = %+v, want %+v", name, i, g, w)
				}
				if g.ServiceID != s.ID {
					t.Errorf("%s: slot %d serviceId %s, want %s", name, i, g.ServiceID, s.ID)
				}
				if g.ID == "" || ids[g.ID] {
					t.Errorf("%s: slot %d id %q missing or repeated", name, i, g.ID)
				}
				ids[g.ID] = true
			}
		}
		if n := serviceCount(t, e, key); n != 1 {
			t.Fatalf("services = %d, want 1", n)
		}

		// A bad slot anywhere in the list creates nothing: neither the service
		// nor the good slots before it.
		for _, tc := range []struct {
			name        string
			slots       []map[string]any
			code, field string
		}{
			{"end before start", []map[string]any{slotIn(1, "09:00", "10:00", 1), slotIn(2, "11:00", "10:00", 1)},
				db.CodeInvalidFieldFormat, "timeSlots[1].endTime"},
			{"overlap within input", []map[string]any{slotIn(2, "09:00", "10:00", 1), slotIn(4, "08:00", "09:00", 1), slotIn(2, "09:30", "11:00", 1)},
				db.CodeInvalidFieldFormat, "timeSlots[2].startTime"},
			{"maxBookings 0", []map[string]any{slotIn(1, "09:00", "10:00", 1), slotIn(1, "10:00", "11:00", 0)},
				db.CodeInvalidFieldFormat, "timeSlots[1].maxBookings"},
			{"dayOfWeek 7", []map[string]any{slotIn(7, "09:00", "10:00", 1)},
				db.CodeInvalidFieldFormat, "timeSlots[0].dayOfWeek"},
		} {
			r := e.Do(key, gqlCreateServiceWithSlots, map[string]any{"input": map[string]any{
				"name": "Broken " + tc.name, "timezone": schedNY, "timeSlots": tc.slots,
			}})
			wantError(t, r, tc.code, tc.field)
			if n := serviceCount(t, e, key); n != 1 {
				t.Fatalf("%s: services = %d after a failed createService, want 1", tc.name, n)
			}
		}
		var list struct {
			Services struct{ Nodes []schedService }
		}
		e.MustData(key, `{ services(first: 100) { nodes { id timeSlots { id } } } }`, nil, &list)
		if len(list.Services.Nodes) != 1 || len(list.Services.Nodes[0].TimeSlots) != len(want) {
			t.Fatalf("after failed creates: %+v", list.Services.Nodes)
		}
	})
}

func TestTimeSlotValidation(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		s := mustCreateService(t, e, key, schedNY, slotIn(1, "09:00", "10:00", 2), slotIn(1, "12:00", "13:00", 2))
		other := mustCreateService(t, e, key, schedNY, slotIn(2, "09:00", "10:00", 1))
		before := serviceSlots(t, e, key, s.ID)

		for _, tc := range []struct {
			name        string
			slots       []map[string]any
			code, field string
		}{
			{"start equals end", []map[string]any{slotIn(2, "10:00", "10:00", 1)}, db.CodeInvalidFieldFormat, "timeSlots[0].endTime"},
			{"start after end", []map[string]any{slotIn(2, "11:00", "10:00", 1)}, db.CodeInvalidFieldFormat, "timeSlots[0].endTime"},
			{"dayOfWeek 7", []map[string]any{slotIn(7, "09:00", "10:00", 1)}, db.CodeInvalidFieldFormat, "timeSlots[0].dayOfWeek"},
			{"dayOfWeek -1", []map[string]any{slotIn(-1, "09:00", "10:00", 1)}, db.CodeInvalidFieldFormat, "timeSlots[0].dayOfWeek"},
			{"maxBookings 0", []map[string]any{slotIn(2, "09:00", "10:00", 0)}, db.CodeInvalidFieldFormat, "timeSlots[0].maxBookings"},
			{"maxBookings -3", []map[string]any{slotIn(2, "09:00", "10:00", -3)}, db.CodeInvalidFieldFormat, "timeSlots[0].maxBookings"},
			{"overlaps existing (inside)", []map[string]any{slotIn(1, "09:15", "09:45", 1)}, db.CodeInvalidFieldFormat, "timeSlots[0].startTime"},
			{"overlaps existing (before)", []map[string]any{slotIn(1, "08:00", "09:01", 1)}, db.CodeInvalidFieldFormat, "timeSlots[0].startTime"},
			{"overlaps existing (after)", []map[string]any{slotIn(1, "09:59", "11:00", 1)}, db.CodeInvalidFieldFormat, "timeSlots[0].startTime"},
			{"spans two existing", []map[string]any{slotIn(1, "08:00", "14:00", 1)}, db.CodeInvalidFieldFormat, "timeSlots[0].startTime"},
			{"overlap between inputs", []map[string]any{slotIn(3, "08:30", "09:30", 1), slotIn(5, "09:00", "10:00", 1), slotIn(3, "09:00", "10:00", 1)},
				db.CodeInvalidFieldFormat, "timeSlots[2].startTime"},
			{"other service's slot id", []map[string]any{slotUpd(other.TimeSlots[0].ID, 2, "09:00", "10:00", 1)}, db.CodeTimeSlotNotFound, "timeSlots[0].id"},
			{"unknown slot id", []map[string]any{slotIn(2, "15:00", "16:00", 1), slotUpd("999999", 2, "09:00", "10:00", 1)}, db.CodeTimeSlotNotFound, "timeSlots[1].id"},
			{"same id twice", []map[string]any{slotUpd(before[0].ID, 1, "09:00", "10:00", 1), slotUpd(before[0].ID, 1, "09:00", "10:00", 2)},
				db.CodeInvalidRequest, "timeSlots[1].id"},
		} {
			r := e.Do(key, gqlUpsertSlots, map[string]any{"serviceId": s.ID, "slots": tc.slots})
			t.Run(tc.name, func(t *testing.T) { wantError(t, r, tc.code, tc.field) })
		}

		// Malformed LocalTime values are refused by the scalar, naming the field.
		for _, bad := range []string{"9am", "25:00", "9:00", "09:60", "24:01", "09:00:30", "09", "", "+9:00", "09:0a"} {
			for _, which := range []string{"startTime", "endTime"} {
				in := slotIn(2, "09:00", "10:00", 1)
				in[which] = bad
				r := e.Do(key, gqlUpsertSlots, map[string]any{"serviceId": s.ID, "slots": []any{in}})
				if r.Code() != db.CodeInvalidFieldFormat || !strings.HasSuffix(r.Field(), which) {
					t.Errorf("%s %q: want invalid_field_format on %s, got %s", which, bad, which, r.Raw)
				}
			}
		}

		// Nothing changed.
		after := serviceSlots(t, e, key, s.ID)
		if len(after) != len(before) {
			t.Fatalf("failed upserts changed the slots: %+v", after)
		}
		for i := range before {
			if after[i] != before[i] {
				t.Fatalf("failed upserts changed slot %d: %+v → %+v", i, before[i], after[i])
			}
		}

		// Adjacent slots touch without overlapping; the same times on another
		// day are fine.
		var ok struct{ UpsertTimeSlots []schedSlot }
		e.MustData(key, gqlUpsertSlots, map[string]any{"serviceId": s.ID, "slots": []any{
			slotIn(1, "10:00", "11:00", 1), slotIn(1, "08:00", "09:00", 1), slotIn(1, "11:00", "12:00", 1),
			slotIn(2, "09:00", "10:00", 1), slotIn(1, "13:00", "24:00", 1), slotIn(1, "00:00", "08:00", 1),
		}}, &ok)
		if len(ok.UpsertTimeSlots) != 6 {
			t.Fatalf("adjacent upsert returned %+v", ok.UpsertTimeSlots)
		}
		got := serviceSlots(t, e, key, s.ID)
		var monday []string
		for _, ts := range got {
			if ts.DayOfWeek == 1 {
				monday = append(monday, ts.StartTime+"-"+ts.EndTime)
			}
		}
		if want := "00:00-08:00 08:00-09:00 09:00-10:00 10:00-11:00 11:00-12:00 12:00-13:00 13:00-24:00"; strings.Join(monday, " ") != want {
			t.Fatalf("monday slots %v, want %s", monday, want)
		}
	})
}

func TestUpsertTimeSlots(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		s := mustCreateService(t, e, key, schedNY, slotIn(1, "09:00", "10:00", 2), slotIn(2, "09:00", "10:00", 2))
		mon, tue := s.TimeSlots[0], s.TimeSlots[1]
		other := mustCreateService(t, e, key, schedNY, slotIn(4, "09:00", "10:00", 1))

		// Update one (moving it away from 09:00) and create two, one of which
		// takes the old place of the moved slot: overlaps are judged on the
		// result, not on the state before.
		var up struct{ UpsertTimeSlots []schedSlot }
		e.MustData(key, gqlUpsertSlots, map[string]any{"serviceId": s.ID, "slots": []any{
			slotIn(3, "13:00", "14:00:00", 6),
			slotUpd(mon.ID, 1, "15:00", "16:30", 5),
			slotIn(1, "09:00", "10:00", 1),
		}}, &up)
		res := up.UpsertTimeSlots
		if len(res) != 3 {
			t.Fatalf("upsert returned %+v", res)
		}
		if res[1].ID != mon.ID || res[1].StartTime != "15:00" || res[1].EndTime != "16:30" || res[1].MaxBookings != 5 {
			t.Fatalf("updated slot = %+v (want id %s 15:00-16:30 max 5)", res[1], mon.ID)
		}
		if res[0].ID == "" || res[0].ID == mon.ID || res[0].ID == tue.ID || res[0].DayOfWeek != 3 || res[0].EndTime != "14:00" || res[0].MaxBookings != 6 {
			t.Fatalf("created slot = %+v", res[0])
		}
		if res[2].ID == "" || res[2].ID == res[0].ID || res[2].ID == mon.ID || res[2].StartTime != "09:00" {
			t.Fatalf("created slot = %+v", res[2])
		}
		got := serviceSlots(t, e, key, s.ID)
		want := []schedSlot{
			{ID: res[2].ID, ServiceID: s.ID, DayOfWeek: 1, StartTime: "09:00", EndTime: "10:00", MaxBookings: 1},
			{ID: mon.ID, ServiceID: s.ID, DayOfWeek: 1, StartTime: "15:00", EndTime: "16:30", MaxBookings: 5},
			{ID: tue.ID, ServiceID: s.ID, DayOfWeek: 2, StartTime: "09:00", EndTime: "10:00", MaxBookings: 2},
			{ID: res[0].ID, ServiceID: s.ID, DayOfWeek: 3, StartTime: "13:00", EndTime: "14:00", MaxBookings: 6},
		}
		if len(got) != len(want) {
			t.Fatalf("slots = %+v, want %+v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("slot %d = %+v, want %+v", i, got[i], want[i])
			}
		}

		// All or nothing: a valid update next to an invalid item changes nothing.
		for _, tc := range []struct {
			name        string
			bad         map[string]any
			code, field string
		}{
			{"bad new slot", slotIn(5, "12:00", "11:00", 1), db.CodeInvalidFieldFormat, "timeSlots[1].endTime"},
			{"overlapping new slot", slotIn(3, "13:30", "14:30", 1), db.CodeInvalidFieldFormat, "timeSlots[1].startTime"},
			{"other service's slot", slotUpd(other.TimeSlots[0].ID, 5, "09:00", "10:00", 1), db.CodeTimeSlotNotFound, "timeSlots[1].id"},
		} {
			r := e.Do(key, gqlUpsertSlots, map[string]any{"serviceId": s.ID, "slots": []any{
				slotUpd(tue.ID, 2, "07:00", "08:00", 9), tc.bad,
			}})
			wantError(t, r, tc.code, tc.field)
			now := serviceSlots(t, e, key, s.ID)
			if len(now) != len(want) {
				t.Fatalf("%s: slots changed: %+v", tc.name, now)
			}
			for i := range want {
				if now[i] != want[i] {
					t.Fatalf("%s: slot %d changed to %+v", tc.name, i, now[i])
				}
			}
		}
		if o := serviceSlots(t, e, key, other.ID); len(o) != 1 || o[0].DayOfWeek != 4 || o[0].ServiceID != other.ID {
			t.Fatalf("other service's slots changed: %+v", o)
		}

		// A slot with active bookings keeps its weekday; its new start time
		// carries over to the order of its bookings.
		monday := nextDate(schedNY, time.Monday)
		early := mustBook(t, e, key, res[2].ID, monday, "early@example.com") // Monday 09:00
		late := mustBook(t, e, key, mon.ID, monday, "late@example.com")      // Monday 15:00
		wantError(t, e.Do(key, gqlUpsertSlots, map[string]any{"serviceId": s.ID, "slots": []any{slotUpd(res[2].ID, 0, "09:00", "10:00", 1)}}),
			db.CodeInvalidRequest, "timeSlots[0].dayOfWeek")
		order := func() string {
			var out struct{ Bookings bookingPage }
			e.MustData(key, gqlListBookings, map[string]any{"serviceId": s.ID}, &out)
			return strings.Join(out.Bookings.ids(), ",")
		}
		if got, want := order(), late.ID+","+early.ID; got != want {
			t.Fatalf("bookings order %s, want %s", got, want)
		}
		e.MustData(key, gqlUpsertSlots, map[string]any{"serviceId": s.ID, "slots": []any{
			slotUpd(mon.ID, 1, "06:00", "07:00", 5), slotUpd(res[2].ID, 1, "17:00", "18:00", 1),
		}}, &up)
		if got, want := order(), early.ID+","+late.ID; got != want {
			t.Fatalf("bookings order after moving the slots %s, want %s", got, want)
		}
		mustCancel(t, e, key, early.ID)
		e.MustData(key, gqlUpsertSlots, map[string]any{"serviceId": s.ID, "slots": []any{slotUpd(res[2].ID, 0, "09:00", "10:00", 1)}}, &up)
		if up.UpsertTimeSlots[0].DayOfWeek != 0 {
			t.Fatalf("weekday change after cancelling: %+v", up.UpsertTimeSlots)
		}

		// Unknown service.
		r := e.Do(key, gqlUpsertSlots, map[string]any{"serviceId": "999999", "slots": []any{slotIn(1, "09:00", "10:00", 1)}})
		wantError(t, r, db.CodeServiceNotFound, "")
	})
}

func TestDeleteTimeSlots(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		s := mustCreateService(t, e, key, schedNY,
			slotIn(1, "09:00", "10:00", 2), slotIn(1, "11:00", "12:00", 2), slotIn(1, "13:00", "14:00", 2), slotIn(2, "09:00", "10:00", 2))
		mon9, mon11, tue9 := s.TimeSlots[0], s.TimeSlots[1], s.TimeSlots[3]
		monday, tuesday := nextDate(schedNY, time.Monday), nextDate(schedNY, time.Tuesday)
		b9 := mustBook(t, e, key, mon9.ID, monday, "a@example.com")
		b11 := mustBook(t, e, key, mon11.ID, monday, "b@example.com")
		bTue := mustBook(t, e, key, tue9.ID, tuesday, "c@example.com")

		var del struct{ DeleteTimeSlot string }
		e.MustData(key, `mutation($id: ID!) { deleteTimeSlot(id: $id) }`, map[string]any{"id": mon9.ID}, &del)
		if del.DeleteTimeSlot != mon9.ID {
			t.Fatalf("deleteTimeSlot returned %q, want %s", del.DeleteTimeSlot, mon9.ID)
		}
		if b := getBooking(t, e, key, b9.ID); b != nil {
			t.Fatalf("booking of a deleted slot still readable: %+v", b)
		}
		r := e.Do(key, `mutation($id: ID!) { deleteTimeSlot(id: $id) }`, map[string]any{"id": mon9.ID})
		wantError(t, r, db.CodeTimeSlotNotFound, "")
		r = doCreateBooking(e, key, bookingInput(mon9.ID, monday, "z@example.com"))
		wantError(t, r, db.CodeTimeSlotNotFound, "timeSlotId")

		var many struct{ DeleteTimeSlots int }
		const delDay = `mutation($s: ID!, $d: Int!) { deleteTimeSlots(serviceId: $s, dayOfWeek: $d) }`
		e.MustData(key, delDay, map[string]any{"s": s.ID, "d": 1}, &many)
		if many.DeleteTimeSlots != 2 {
			t.Fatalf("deleteTimeSlots(monday) = %d, want 2", many.DeleteTimeSlots)
		}
		if b := getBooking(t, e, key, b11.ID); b != nil {
			t.Fatalf("booking of a deleted slot still readable: %+v", b)
		}
		e.MustData(key, delDay, map[string]any{"s": s.ID, "d": 1}, &many)
		if many.DeleteTimeSlots != 0 {
			t.Fatalf("second deleteTimeSlots(monday) = %d, want 0", many.DeleteTimeSlots)
		}
		e.MustData(key, delDay, map[string]any{"s": s.ID, "d": 0}, &many)
		if many.DeleteTimeSlots != 0 {
			t.Fatalf("deleteTimeSlots(sunday) = %d, want 0", many.DeleteTimeSlots)
		}
		for _, d := range []int{7, -1} {
			wantError(t, e.Do(key, delDay, map[string]any{"s": s.ID, "d": d}), db.CodeInvalidFieldFormat, "dayOfWeek")
		}
		wantError(t, e.Do(key, delDay, map[string]any{"s": "999999", "d": 1}), db.CodeServiceNotFound, "")

		// Tuesday is untouched, with its booking.
		got := serviceSlots(t, e, key, s.ID)
		if len(got) != 1 || got[0].ID != tue9.ID {
			t.Fatalf("remaining slots %+v, want only %s", got, tue9.ID)
		}
		if b := getBooking(t, e, key, bTue.ID); b == nil || b.Status != "PENDING" {
			t.Fatalf("tuesday booking = %+v", b)
		}
		var bs struct {
			Bookings struct{ TotalCount int }
		}
		e.MustData(key, `{ bookings { totalCount } }`, nil, &bs)
		if bs.Bookings.TotalCount != 1 {
			t.Fatalf("bookings after deletes = %d, want 1", bs.Bookings.TotalCount)
		}
	})
}

func TestTimeSlotsOtherAccount(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e := apptest.New(t, database, nil)
		keyA, keyB := e.Account("alice"), e.Account("bob")
		a := mustCreateService(t, e, keyA, schedNY, slotIn(1, "09:00", "10:00", 2))
		b := mustCreateService(t, e, keyB, schedNY, slotIn(2, "09:00", "10:00", 2))
		slotA := a.TimeSlots[0]
		monday := nextDate(schedNY, time.Monday)
		bookingA := mustBook(t, e, keyA, slotA.ID, monday, "a@example.com")

		wantError(t, e.Do(keyB, gqlUpsertSlots, map[string]any{"serviceId": a.ID, "slots": []any{slotIn(3, "09:00", "10:00", 1)}}),
			db.CodeServiceNotFound, "")
		wantError(t, e.Do(keyB, gqlUpsertSlots, map[string]any{"serviceId": b.ID, "slots": []any{slotUpd(slotA.ID, 1, "09:00", "10:00", 9)}}),
			db.CodeTimeSlotNotFound, "timeSlots[0].id")
		wantError(t, e.Do(keyB, `mutation($id: ID!) { deleteTimeSlot(id: $id) }`, map[string]any{"id": slotA.ID}),
			db.CodeTimeSlotNotFound, "")
		wantError(t, e.Do(keyB, `mutation($s: ID!) { deleteTimeSlots(serviceId: $s, dayOfWeek: 1) }`, map[string]any{"s": a.ID}),
			db.CodeServiceNotFound, "")
		wantError(t, doCreateBooking(e, keyB, bookingInput(slotA.ID, monday, "b@example.com")),
			db.CodeTimeSlotNotFound, "timeSlotId")
		wantError(t, e.Do(keyB, gqlAvailability, map[string]any{"serviceId": a.ID, "from": monday, "to": monday}),
			db.CodeServiceNotFound, "")
		var sv struct{ Service *schedService }
		e.MustData(keyB, gqlServiceSlots, map[string]any{"id": a.ID}, &sv)
		if sv.Service != nil {
			t.Fatalf("bob reads alice's service: %+v", sv.Service)
		}

		// Alice's data is intact.
		got := serviceSlots(t, e, keyA, a.ID)
		if len(got) != 1 || got[0] != slotA {
			t.Fatalf("alice's slots = %+v, want [%+v]", got, slotA)
		}
		if bk := getBooking(t, e, keyA, bookingA.ID); bk == nil || bk.Status != "PENDING" {
			t.Fatalf("alice's booking = %+v", bk)
		}
		if n := occurrenceCount(t, database, slotA.ID, monday); n != 1 {
			t.Fatalf("alice's occurrence count = %d, want 1", n)
		}
	})
}

// maxBookings may go down only as far as the bookings an upcoming
// occurrence already holds.
func TestLowerMaxBookings(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e, key := newSchedEnv(t, database)
		s := mustCreateService(t, e, key, schedNY, slotIn(1, "09:00", "10:00", 5))
		slot := s.TimeSlots[0]
		monday := nextDate(schedNY, time.Monday)
		var mon []schedBooking
		for i := range 3 {
			mon = append(mon, mustBook(t, e, key, slot.ID, monday, fmt.Sprintf("low%d@example.com", i)))
		}
		r := e.Do(key, gqlUpsertSlots, map[string]any{"serviceId": s.ID, "slots": []any{slotUpd(slot.ID, 1, "09:00", "10:00", 2)}})
		wantError(t, r, db.CodeInvalidRequest, "timeSlots[0].maxBookings")
		if !strings.Contains(r.Errors[0].Message, "3 bookings") || !strings.Contains(r.Errors[0].Message, monday) {
			t.Fatalf("message %q does not say what holds the seats", r.Errors[0].Message)
		}
		if got := serviceSlots(t, e, key, s.ID)[0].MaxBookings; got != 5 {
			t.Fatalf("maxBookings %d after a refused change, want 5", got)
		}
		// Down to exactly the bookings held is fine, and then it is full.
		var out struct{ UpsertTimeSlots []schedSlot }
		e.MustData(key, gqlUpsertSlots, map[string]any{"serviceId": s.ID, "slots": []any{slotUpd(slot.ID, 1, "09:00", "10:00", 3)}}, &out)
		if out.UpsertTimeSlots[0].MaxBookings != 3 {
			t.Fatalf("upsert: %+v", out.UpsertTimeSlots)
		}
		wantError(t, doCreateBooking(e, key, bookingInput(slot.ID, monday, "low9@example.com")), db.CodeTimeSlotFull, "timeSlotId")
		// Cancelled bookings do not hold seats: with one of the 3 cancelled,
		// capacity can go down to 2.
		mustCancel(t, e, key, mon[0].ID)
		e.MustData(key, gqlUpsertSlots, map[string]any{"serviceId": s.ID, "slots": []any{slotUpd(slot.ID, 1, "09:00", "10:00", 2)}}, &out)
		if out.UpsertTimeSlots[0].MaxBookings != 2 {
			t.Fatalf("upsert to 2 with 2 active bookings: %+v", out.UpsertTimeSlots)
		}
	})
}

// A value that does not parse as its scalar is refused naming the input
// field by its path, as domain errors name it, in the field and the message.
func TestScalarErrorsNameTheField(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil)
	key := e.Account("acme")
	s := mustCreateService(t, e, key, "UTC", slotIn(1, "09:00", "10:00", 1))
	for _, c := range []struct {
		name, op string
		vars     map[string]any
		field    string
	}{
		{"slot in createService", gqlCreateServiceWithSlots, map[string]any{"input": map[string]any{"name": "x", "timezone": "UTC",
			"timeSlots": []any{slotIn(1, "09:00", "10:00", 1), slotIn(2, "25:00", "26:00", 1)}}}, "timeSlots[1].startTime"},
		{"slot in upsertTimeSlots", gqlUpsertSlots, map[string]any{"serviceId": s.ID, "slots": []any{slotIn(2, "09:00", "9pm", 1)}}, "timeSlots[0].endTime"},
		{"booking date", gqlCreateBooking, map[string]any{"input": map[string]any{"timeSlotId": s.TimeSlots[0].ID, "date": "2026-13-01"}}, "date"},
		{"booking slot id", gqlCreateBooking, map[string]any{"input": map[string]any{"timeSlotId": "x1", "date": "2026-12-07"}}, "timeSlotId"},
		{"top-level argument", `query($id: ID!) { service(id: $id) { id } }`, map[string]any{"id": "-4"}, "id"},
		{"list filter", `query($from: Date) { bookings(from: $from) { totalCount } }`, map[string]any{"from": "tomorrow"}, "from"},
	} {
		r := e.Do(key, c.op, c.vars)
		wantError(t, r, db.CodeInvalidFieldFormat, c.field)
		if !strings.HasPrefix(r.Errors[0].Message, c.field+": ") {
			t.Errorf("%s: message %q does not start with the field %q", c.name, r.Errors[0].Message, c.field)
		}
	}
}
