package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app/apptest"
)

func TestCreateBooking(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		s := mustCreateService(t, e, key, schedNY, slotIn(1, "09:00", "10:00", 20))
		slot := s.TimeSlots[0]
		monday := nextDate(schedNY, time.Monday)

		var out struct{ CreateBooking schedBooking }
		e.MustData(key, gqlCreateBooking, map[string]any{"input": map[string]any{
			"timeSlotId": slot.ID, "date": monday, "customerName": "  Ada Lovelace ",
			"customerEmail": " Ada@Example.COM ", "customerPhone": "+12025550185", "message": "Window seat please",
		}}, &out)
		b := out.CreateBooking
		if b.ID == "" || b.Status != "PENDING" || b.Date != monday || b.TimeSlot.ID != slot.ID || b.Service.ID != s.ID {
			t.Fatalf("created %+v", b)
		}
		if b.CancelReason != nil || deref(b.Message) != "Window seat please" {
			t.Fatalf("cancelReason %q message %q", deref(b.CancelReason), deref(b.Message))
		}
		c := b.Customer
		if c == nil || c.ID == "" || deref(c.Name) != "Ada Lovelace" || deref(c.Email) != "ada@example.com" || deref(c.Phone) != "+12025550185" {
			t.Fatalf("customer %+v", c)
		}
		if got := getBooking(t, e, key, b.ID); got == nil || got.Status != "PENDING" || got.Customer == nil || got.Customer.ID != c.ID {
			t.Fatalf("booking(id) = %+v", got)
		}

		// Without any customer field there is no customer.
		anon := mustBook(t, e, key, slot.ID, monday, "")
		if anon.Customer != nil || anon.Status != "PENDING" {
			t.Fatalf("anonymous booking %+v", anon)
		}

		// Exactly 2000 characters (not bytes) of message are fine.
		long := strings.Repeat("é", 2000)
		in := bookingInput(slot.ID, monday, "long@example.com")
		in["message"] = long
		e.MustData(key, gqlCreateBooking, map[string]any{"input": in}, &out)
		if deref(out.CreateBooking.Message) != long {
			t.Fatalf("2000-character message not kept")
		}
		created := 3

		tuesday := nextDate(schedNY, time.Tuesday)
		for _, tc := range []struct {
			name        string
			change      map[string]any
			code, field string
		}{
			{"weekday mismatch", map[string]any{"date": tuesday}, db.CodeInvalidFieldFormat, "date"},
			{"past date", map[string]any{"date": pastDate(schedNY, time.Monday)}, db.CodeInvalidFieldFormat, "date"},
			{"last year", map[string]any{"date": addDays(nextDate(schedNY, time.Monday), -364)}, db.CodeInvalidFieldFormat, "date"},
			{"not a date", map[string]any{"date": "next monday"}, db.CodeInvalidFieldFormat, ""},
			{"unknown slot", map[string]any{"timeSlotId": "999999"}, db.CodeTimeSlotNotFound, "timeSlotId"},
			{"email without at", map[string]any{"customerEmail": "not-an-email"}, db.CodeInvalidFieldFormat, "customerEmail"},
			{"email without dot", map[string]any{"customerEmail": "ada@localhost"}, db.CodeInvalidFieldFormat, "customerEmail"},
			{"email with name", map[string]any{"customerEmail": "Ada <ada@example.com>"}, db.CodeInvalidFieldFormat, "customerEmail"},
			{"email double at", map[string]any{"customerEmail": "ada@@example.com"}, db.CodeInvalidFieldFormat, "customerEmail"},
			{"phone without plus", map[string]any{"customerPhone": "12025550185"}, db.CodeInvalidFieldFormat, "customerPhone"},
			{"phone with spaces", map[string]any{"customerPhone": "+1 202 555 0185"}, db.CodeInvalidFieldFormat, "customerPhone"},
			{"phone leading zero", map[string]any{"customerPhone": "+0123456789"}, db.CodeInvalidFieldFormat, "customerPhone"},
			{"phone too long", map[string]any{"customerPhone": "+1234567890123456"}, db.CodeInvalidFieldFormat, "customerPhone"},
			{"phone letters", map[string]any{"customerPhone": "+1202555CALL"}, db.CodeInvalidFieldFormat, "customerPhone"},
			{"message too long", map[string]any{"message": strings.Repeat("x", 2001)}, db.CodeInvalidFieldFormat, "message"},
		} {
			in := bookingInput(slot.ID, monday, "ok@example.com")
			for k, v := range tc.change {
				in[k] = v
			}
			r := doCreateBooking(e, key, in)
			t.Run(tc.name, func(t *testing.T) { wantError(t, r, tc.code, tc.field) })
		}
		// None of the refused bookings took a seat or was stored.
		if n := occurrenceCount(t, database, slot.ID, monday); n != created {
			t.Fatalf("occurrence count %d, want %d", n, created)
		}
		var list struct {
			Bookings struct{ TotalCount int }
		}
		e.MustData(key, `{ bookings { totalCount } }`, nil, &list)
		if list.Bookings.TotalCount != created {
			t.Fatalf("bookings totalCount %d, want %d", list.Bookings.TotalCount, created)
		}
	})
}

func TestBookingCapacityAndDuplicates(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		s := mustCreateService(t, e, key, schedNY, slotIn(1, "09:00", "10:00", 3))
		slot := s.TimeSlots[0]
		monday := nextDate(schedNY, time.Monday)
		book := func(email, phone string) *apptest.Response {
			in := bookingInput(slot.ID, monday, email)
			if phone != "" {
				in["customerPhone"] = phone
			}
			return doCreateBooking(e, key, in)
		}
		var first struct{ CreateBooking schedBooking }
		book("a@example.com", "+12025550100").Decode(t, &first)

		// The same customer, by email (in any case) or by phone, only once per occurrence.
		wantError(t, book("a@example.com", ""), db.CodeDuplicateBooking, "")
		wantError(t, book("A@EXAMPLE.com", ""), db.CodeDuplicateBooking, "")
		wantError(t, book("other@example.com", "+12025550100"), db.CodeDuplicateBooking, "")
		wantError(t, book("", "+12025550100"), db.CodeDuplicateBooking, "")
		if n := occurrenceCount(t, database, slot.ID, monday); n != 1 {
			t.Fatalf("duplicates took seats: count %d", n)
		}

		// The same customer can book another occurrence.
		next := mustBook(t, e, key, slot.ID, addDays(monday, 7), "a@example.com")
		if next.Customer == nil || next.Customer.ID != first.CreateBooking.Customer.ID {
			t.Fatalf("customer not matched by email: %+v vs %+v", next.Customer, first.CreateBooking.Customer)
		}

		// Capacity: 3 per occurrence.
		var b2 struct{ CreateBooking schedBooking }
		book("b@example.com", "+12025550101").Decode(t, &b2)
		book("", "").Decode(t, &struct{}{}) // anonymous bookings count too
		r := book("c@example.com", "")
		wantError(t, r, db.CodeTimeSlotFull, "")
		if st := errStatus(r); st != http.StatusConflict {
			t.Errorf("time_slot_full extensions.status = %d, want 409", st)
		}
		// Full and duplicate at once: either answer refuses.
		if c := book("a@example.com", "").Code(); c != db.CodeTimeSlotFull && c != db.CodeDuplicateBooking {
			t.Fatalf("full + duplicate answered %q", c)
		}

		// Cancelling frees the seat and lets the same customer book again.
		mustCancel(t, e, key, first.CreateBooking.ID)
		if n := occurrenceCount(t, database, slot.ID, monday); n != 2 {
			t.Fatalf("count after cancel = %d, want 2", n)
		}
		again := mustBook(t, e, key, slot.ID, monday, "a@example.com")
		if again.Customer == nil || again.Customer.ID != first.CreateBooking.Customer.ID {
			t.Fatalf("rebooking customer %+v", again.Customer)
		}
		wantError(t, book("c@example.com", ""), db.CodeTimeSlotFull, "")
		// b's phone is still taken in this occurrence; cancelling b frees it.
		mustCancel(t, e, key, b2.CreateBooking.ID)
		wantError(t, book("a@example.com", ""), db.CodeDuplicateBooking, "")
		var viaPhone struct{ CreateBooking schedBooking }
		book("", "+12025550101").Decode(t, &viaPhone)
		if viaPhone.CreateBooking.Customer == nil || viaPhone.CreateBooking.Customer.ID != b2.CreateBooking.Customer.ID {
			t.Fatalf("customer not matched by phone: %+v", viaPhone.CreateBooking.Customer)
		}
		if n := occurrenceCount(t, database, slot.ID, monday); n != 3 {
			t.Fatalf("final count %d, want 3", n)
		}
		occ := occurrenceOf(t, availability(t, e, key, s.ID, monday, monday), slot.ID, monday)
		if occ.Booked != 3 || occ.Remaining != 0 {
			t.Fatalf("availability %+v", occ)
		}
	})
}

func TestCustomersMatchedByEmail(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e := apptest.New(t, database, nil)
		keyA, keyB := e.Account("alice"), e.Account("bob")
		sa := mustCreateService(t, e, keyA, schedNY, slotIn(1, "09:00", "10:00", 5), slotIn(3, "09:00", "10:00", 5))
		sb := mustCreateService(t, e, keyB, schedNY, slotIn(1, "09:00", "10:00", 5))
		monday, wednesday := nextDate(schedNY, time.Monday), nextDate(schedNY, time.Wednesday)

		var b1, b2 struct{ CreateBooking schedBooking }
		e.MustData(keyA, gqlCreateBooking, map[string]any{"input": map[string]any{
			"timeSlotId": sa.TimeSlots[0].ID, "date": monday, "customerEmail": "sam@example.com", "customerName": "Sam",
		}}, &b1)
		// A later booking with the same email (other case) is the same
		// customer; it fills in the phone the customer lacked.
		e.MustData(keyA, gqlCreateBooking, map[string]any{"input": map[string]any{
			"timeSlotId": sa.TimeSlots[1].ID, "date": wednesday, "customerEmail": "SAM@example.com",
			"customerName": "Samuel", "customerPhone": "+447700900123",
		}}, &b2)
		c1, c2 := b1.CreateBooking.Customer, b2.CreateBooking.Customer
		if c1 == nil || c2 == nil || c1.ID != c2.ID {
			t.Fatalf("customers %+v and %+v, want one", c1, c2)
		}
		if deref(c2.Name) != "Sam" || deref(c2.Email) != "sam@example.com" || deref(c2.Phone) != "+447700900123" {
			t.Fatalf("merged customer %+v", c2)
		}
		if got := getBooking(t, e, keyA, b1.CreateBooking.ID); got.Customer == nil || deref(got.Customer.Phone) != "+447700900123" {
			t.Fatalf("first booking's customer %+v", got.Customer)
		}
		other := mustBook(t, e, keyA, sa.TimeSlots[0].ID, monday, "kim@example.com")
		if other.Customer == nil || other.Customer.ID == c1.ID {
			t.Fatalf("another email shares the customer: %+v", other.Customer)
		}
		// Customers are per account.
		inB := mustBook(t, e, keyB, sb.TimeSlots[0].ID, monday, "sam@example.com")
		if inB.Customer == nil || inB.Customer.ID == c1.ID || inB.Customer.Name != nil {
			t.Fatalf("bob's customer %+v is alice's %+v", inB.Customer, c1)
		}
	})
}

func TestBookingStatusTransitions(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		s := mustCreateService(t, e, key, schedNY, slotIn(1, "09:00", "10:00", 5))
		slot := s.TimeSlots[0]
		monday := nextDate(schedNY, time.Monday)
		update := func(id string, input map[string]any) *apptest.Response {
			return e.Do(key, gqlUpdateBooking, map[string]any{"id": id, "input": input})
		}
		mustUpdate := func(id string, input map[string]any) schedBooking {
			t.Helper()
			var out struct{ UpdateBooking schedBooking }
			update(id, input).Decode(t, &out)
			return out.UpdateBooking
		}
		wantTransition := func(r *apptest.Response) {
			t.Helper()
			wantError(t, r, db.CodeInvalidStatusTransition, "status")
			if st := errStatus(r); st != http.StatusUnprocessableEntity {
				t.Fatalf("extensions.status = %d, want 422: %s", st, r.Raw)
			}
		}

		b := mustBook(t, e, key, slot.ID, monday, "a@example.com")
		if got := mustUpdate(b.ID, map[string]any{"status": "PENDING"}); got.Status != "PENDING" {
			t.Fatalf("PENDING → PENDING gave %s", got.Status)
		}
		if got := mustUpdate(b.ID, map[string]any{"status": "CONFIRMED", "message": "confirmed by phone"}); got.Status != "CONFIRMED" || deref(got.Message) != "confirmed by phone" {
			t.Fatalf("PENDING → CONFIRMED gave %+v", got)
		}
		wantTransition(update(b.ID, map[string]any{"status": "PENDING"}))
		wantError(t, update(b.ID, map[string]any{"cancelReason": "why not"}), db.CodeInvalidRequest, "cancelReason")

		// Cancelling needs a reason.
		wantError(t, update(b.ID, map[string]any{"status": "CANCELLED"}), db.CodeMissingRequiredField, "cancelReason")
		wantError(t, update(b.ID, map[string]any{"status": "CANCELLED", "cancelReason": "   "}), db.CodeMissingRequiredField, "cancelReason")
		wantError(t, e.Do(key, gqlCancelBooking, map[string]any{"id": b.ID, "reason": ""}), db.CodeMissingRequiredField, "cancelReason")
		wantError(t, e.Do(key, gqlCancelBooking, map[string]any{"id": b.ID, "reason": " \t "}), db.CodeMissingRequiredField, "cancelReason")
		wantError(t, e.Do(key, gqlCancelBooking, map[string]any{"id": b.ID, "reason": strings.Repeat("r", 2001)}), db.CodeInvalidFieldFormat, "cancelReason")
		if got := getBooking(t, e, key, b.ID); got.Status != "CONFIRMED" || got.CancelReason != nil {
			t.Fatalf("refused cancels changed the booking: %+v", got)
		}
		if n := occurrenceCount(t, database, slot.ID, monday); n != 1 {
			t.Fatalf("refused cancels freed the seat: count %d", n)
		}

		got := mustUpdate(b.ID, map[string]any{"status": "CANCELLED", "cancelReason": " customer is ill "})
		if got.Status != "CANCELLED" || deref(got.CancelReason) != "customer is ill" {
			t.Fatalf("CONFIRMED → CANCELLED gave %+v", got)
		}
		if n := occurrenceCount(t, database, slot.ID, monday); n != 0 {
			t.Fatalf("cancel kept the seat: count %d", n)
		}
		// Nothing leaves CANCELLED.
		wantTransition(update(b.ID, map[string]any{"status": "PENDING"}))
		wantTransition(update(b.ID, map[string]any{"status": "CONFIRMED"}))
		wantTransition(e.Do(key, gqlCancelBooking, map[string]any{"id": b.ID, "reason": "again"}))
		wantTransition(update(b.ID, map[string]any{"date": addDays(monday, 7)}))
		if got := getBooking(t, e, key, b.ID); got.Status != "CANCELLED" || deref(got.CancelReason) != "customer is ill" || got.Date != monday {
			t.Fatalf("cancelled booking changed: %+v", got)
		}
		if n := occurrenceCount(t, database, slot.ID, monday); n != 0 {
			t.Fatalf("count %d after refused changes of a cancelled booking, want 0", n)
		}

		// PENDING → CANCELLED with cancelBooking.
		b2 := mustBook(t, e, key, slot.ID, monday, "b@example.com")
		var c struct{ CancelBooking schedBooking }
		e.MustData(key, gqlCancelBooking, map[string]any{"id": b2.ID, "reason": "changed plans"}, &c)
		if c.CancelBooking.Status != "CANCELLED" || deref(c.CancelBooking.CancelReason) != "changed plans" || c.CancelBooking.ID != b2.ID {
			t.Fatalf("cancelBooking gave %+v", c.CancelBooking)
		}
		if got := getBooking(t, e, key, b2.ID); got.Status != "CANCELLED" || deref(got.CancelReason) != "changed plans" {
			t.Fatalf("after cancelBooking: %+v", got)
		}

		// Moving and cancelling at once is refused.
		b3 := mustBook(t, e, key, slot.ID, monday, "c@example.com")
		wantError(t, update(b3.ID, map[string]any{"status": "CANCELLED", "cancelReason": "x", "date": addDays(monday, 7)}), db.CodeInvalidRequest, "")
		if n := occurrenceCount(t, database, slot.ID, monday); n != 1 {
			t.Fatalf("count %d, want 1", n)
		}

		// Unknown bookings.
		wantError(t, update("999999", map[string]any{"status": "CONFIRMED"}), db.CodeBookingNotFound, "")
		wantError(t, e.Do(key, gqlCancelBooking, map[string]any{"id": "999999", "reason": "x"}), db.CodeBookingNotFound, "")
	})
}

func TestRescheduleBooking(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		s := mustCreateService(t, e, key, schedNY,
			slotIn(1, "09:00", "10:00", 1), slotIn(1, "11:00", "12:00", 2), slotIn(2, "09:00", "10:00", 1))
		mon9, mon11, tue9 := s.TimeSlots[0], s.TimeSlots[1], s.TimeSlots[2]
		otherSvc := mustCreateService(t, e, key, schedNY, slotIn(1, "09:00", "10:00", 5))
		mon1, tue1 := nextDate(schedNY, time.Monday), nextDate(schedNY, time.Tuesday)
		mon2, tue2 := addDays(mon1, 7), addDays(tue1, 7)

		b1 := mustBook(t, e, key, mon9.ID, mon1, "a@example.com")
		b2 := mustBook(t, e, key, mon11.ID, mon1, "b@example.com")
		mustBook(t, e, key, tue9.ID, tue1, "c@example.com")

		update := func(id string, input map[string]any) *apptest.Response {
			return e.Do(key, gqlUpdateBooking, map[string]any{"id": id, "input": input})
		}
		counts := func() map[string]int {
			return map[string]int{
				"mon9/1": occurrenceCount(t, database, mon9.ID, mon1), "mon9/2": occurrenceCount(t, database, mon9.ID, mon2),
				"mon11/1": occurrenceCount(t, database, mon11.ID, mon1), "mon11/2": occurrenceCount(t, database, mon11.ID, mon2),
				"tue9/1": occurrenceCount(t, database, tue9.ID, tue1), "tue9/2": occurrenceCount(t, database, tue9.ID, tue2),
			}
		}
		unchanged := func(label string, b schedBooking, wantCounts map[string]int) {
			t.Helper()
			got := getBooking(t, e, key, b.ID)
			if got == nil || got.Date != b.Date || got.TimeSlot.ID != b.TimeSlot.ID || got.Status != b.Status || deref(got.Message) != deref(b.Message) {
				t.Fatalf("%s: booking changed from %+v to %+v", label, b, got)
			}
			c := counts()
			for k, v := range wantCounts {
				if c[k] != v {
					t.Fatalf("%s: counts %v, want %v", label, c, wantCounts)
				}
			}
		}
		start := map[string]int{"mon9/1": 1, "mon9/2": 0, "mon11/1": 1, "mon11/2": 0, "tue9/1": 1, "tue9/2": 0}
		unchanged("start", b2, start)

		// Refused reschedules leave everything as it was, including the
		// other fields of the same update.
		for _, tc := range []struct {
			name        string
			input       map[string]any
			code, field string
		}{
			{"into a full occurrence", map[string]any{"timeSlotId": mon9.ID, "status": "CONFIRMED", "message": "moved"}, db.CodeTimeSlotFull, "timeSlotId"},
			{"into a full slot on another day", map[string]any{"timeSlotId": tue9.ID, "date": tue1}, db.CodeTimeSlotFull, "timeSlotId"},
			{"wrong weekday", map[string]any{"date": tue2}, db.CodeInvalidFieldFormat, "date"},
			{"wrong weekday for the new slot", map[string]any{"timeSlotId": tue9.ID}, db.CodeInvalidFieldFormat, "date"},
			{"past date", map[string]any{"date": pastDate(schedNY, time.Monday)}, db.CodeInvalidFieldFormat, "date"},
			{"another service's slot", map[string]any{"timeSlotId": otherSvc.TimeSlots[0].ID}, db.CodeInvalidRequest, "timeSlotId"},
			{"unknown slot", map[string]any{"timeSlotId": "999999"}, db.CodeTimeSlotNotFound, "timeSlotId"},
			{"bad date", map[string]any{"date": "2026-02-30"}, db.CodeInvalidFieldFormat, ""},
		} {
			r := update(b2.ID, tc.input)
			t.Run(tc.name, func(t *testing.T) {
				wantError(t, r, tc.code, tc.field)
				unchanged(tc.name, b2, start)
			})
		}

		// Duplicate: a@ holds mon11/2, so a@'s other booking cannot move there.
		mustBook(t, e, key, mon11.ID, mon2, "a@example.com")
		start["mon11/2"] = 1
		wantError(t, update(b1.ID, map[string]any{"timeSlotId": mon11.ID, "date": mon2}), db.CodeDuplicateBooking, "")
		unchanged("duplicate", b1, start)

		// A valid reschedule moves the seat, atomically with the other fields.
		var out struct{ UpdateBooking schedBooking }
		update(b2.ID, map[string]any{"date": mon2, "status": "CONFIRMED"}).Decode(t, &out)
		if got := out.UpdateBooking; got.Date != mon2 || got.TimeSlot.ID != mon11.ID || got.Status != "CONFIRMED" {
			t.Fatalf("rescheduled %+v", got)
		}
		start["mon11/1"], start["mon11/2"] = 0, 2
		unchanged("after move", out.UpdateBooking, start)

		// mon11/2 is now full.
		wantError(t, update(b1.ID, map[string]any{"timeSlotId": mon11.ID, "date": mon2}), db.CodeTimeSlotFull, "timeSlotId")
		unchanged("full", b1, start)

		// Slot and date at once, to another weekday.
		update(b2.ID, map[string]any{"timeSlotId": tue9.ID, "date": tue2}).Decode(t, &out)
		if got := out.UpdateBooking; got.Date != tue2 || got.TimeSlot.ID != tue9.ID || got.Status != "CONFIRMED" {
			t.Fatalf("rescheduled %+v", got)
		}
		start["mon11/2"], start["tue9/2"] = 1, 1
		unchanged("after second move", out.UpdateBooking, start)

		// Moving to where it already is changes nothing.
		update(b2.ID, map[string]any{"timeSlotId": tue9.ID, "date": tue2}).Decode(t, &out)
		unchanged("no-op move", out.UpdateBooking, start)

		// The freed seat can be taken.
		mustBook(t, e, key, mon11.ID, mon2, "e@example.com")
		wantError(t, doCreateBooking(e, key, bookingInput(tue9.ID, tue2, "f@example.com")), db.CodeTimeSlotFull, "")

		// The occurrence listing follows the booking.
		occ := occurrenceOf(t, availability(t, e, key, s.ID, tue2, tue2), tue9.ID, tue2)
		if occ.Booked != 1 || occ.Remaining != 0 {
			t.Fatalf("tue9/2 availability %+v", occ)
		}
	})
}

func TestDeleteBooking(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		s := mustCreateService(t, e, key, schedNY, slotIn(1, "09:00", "10:00", 2))
		slot := s.TimeSlots[0]
		monday := nextDate(schedNY, time.Monday)
		const del = `mutation($id: ID!) { deleteBooking(id: $id) }`

		x := mustBook(t, e, key, slot.ID, monday, "x@example.com")
		y := mustBook(t, e, key, slot.ID, monday, "y@example.com")
		wantError(t, doCreateBooking(e, key, bookingInput(slot.ID, monday, "z@example.com")), db.CodeTimeSlotFull, "")

		var out struct{ DeleteBooking string }
		e.MustData(key, del, map[string]any{"id": x.ID}, &out)
		if out.DeleteBooking != x.ID {
			t.Fatalf("deleteBooking returned %q, want %s", out.DeleteBooking, x.ID)
		}
		if b := getBooking(t, e, key, x.ID); b != nil {
			t.Fatalf("deleted booking readable: %+v", b)
		}
		if n := occurrenceCount(t, database, slot.ID, monday); n != 1 {
			t.Fatalf("count after delete %d, want 1", n)
		}
		wantError(t, e.Do(key, del, map[string]any{"id": x.ID}), db.CodeBookingNotFound, "")
		z := mustBook(t, e, key, slot.ID, monday, "z@example.com")

		// Deleting a cancelled booking does not give its seat back twice.
		mustCancel(t, e, key, y.ID)
		e.MustData(key, del, map[string]any{"id": y.ID}, &out)
		if n := occurrenceCount(t, database, slot.ID, monday); n != 1 {
			t.Fatalf("count after deleting a cancelled booking %d, want 1", n)
		}
		mustBook(t, e, key, slot.ID, monday, "w@example.com")
		wantError(t, doCreateBooking(e, key, bookingInput(slot.ID, monday, "v@example.com")), db.CodeTimeSlotFull, "")
		if b := getBooking(t, e, key, z.ID); b == nil {
			t.Fatal("unrelated booking deleted")
		}
	})
}

func TestUpdateBookingCustomer(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e := apptest.New(t, database, nil)
		key, keyB := e.Account("alice"), e.Account("bob")
		s := mustCreateService(t, e, key, schedNY, slotIn(1, "09:00", "10:00", 5), slotIn(3, "09:00", "10:00", 5))
		monday, wednesday := nextDate(schedNY, time.Monday), nextDate(schedNY, time.Wednesday)
		const upd = `mutation($id: ID!, $input: CustomerInput!) {
			updateBookingCustomer(bookingId: $id, input: $input) { id name email phone } }`
		type custOut struct{ UpdateBookingCustomer schedCustomer }

		// A booking without customer gets one.
		anon := mustBook(t, e, key, s.TimeSlots[0].ID, monday, "")
		var c custOut
		e.MustData(key, upd, map[string]any{"id": anon.ID, "input": map[string]any{"name": "Lee", "email": "Lee@Example.com"}}, &c)
		if got := c.UpdateBookingCustomer; got.ID == "" || deref(got.Name) != "Lee" || deref(got.Email) != "lee@example.com" || got.Phone != nil {
			t.Fatalf("created customer %+v", got)
		}
		if b := getBooking(t, e, key, anon.ID); b.Customer == nil || b.Customer.ID != c.UpdateBookingCustomer.ID {
			t.Fatalf("booking's customer %+v", b.Customer)
		}

		// Updating a customer changes it for every booking it holds.
		b1 := mustBook(t, e, key, s.TimeSlots[0].ID, monday, "max@example.com")
		b2 := mustBook(t, e, key, s.TimeSlots[1].ID, wednesday, "max@example.com")
		e.MustData(key, upd, map[string]any{"id": b1.ID, "input": map[string]any{"name": "Max", "phone": "+33612345678"}}, &c)
		if got := c.UpdateBookingCustomer; got.ID != b1.Customer.ID || deref(got.Name) != "Max" || deref(got.Email) != "max@example.com" || deref(got.Phone) != "+33612345678" {
			t.Fatalf("updated customer %+v", got)
		}
		if b := getBooking(t, e, key, b2.ID); b.Customer == nil || deref(b.Customer.Name) != "Max" || deref(b.Customer.Phone) != "+33612345678" {
			t.Fatalf("other booking of the customer sees %+v", b.Customer)
		}

		wantError(t, e.Do(key, upd, map[string]any{"id": b1.ID, "input": map[string]any{"email": "nope"}}), db.CodeInvalidFieldFormat, "email")
		wantError(t, e.Do(key, upd, map[string]any{"id": b1.ID, "input": map[string]any{"phone": "0612345678"}}), db.CodeInvalidFieldFormat, "phone")
		wantError(t, e.Do(key, upd, map[string]any{"id": b1.ID, "input": map[string]any{"email": "LEE@example.com"}}), db.CodeInvalidRequest, "email")
		wantError(t, e.Do(key, upd, map[string]any{"id": "999999", "input": map[string]any{"name": "x"}}), db.CodeBookingNotFound, "")
		wantError(t, e.Do(keyB, upd, map[string]any{"id": b1.ID, "input": map[string]any{"name": "Mallory"}}), db.CodeBookingNotFound, "")
		if b := getBooking(t, e, key, b1.ID); deref(b.Customer.Name) != "Max" || deref(b.Customer.Email) != "max@example.com" || deref(b.Customer.Phone) != "+33612345678" {
			t.Fatalf("refused updates changed the customer: %+v", b.Customer)
		}

		// An edit cannot make one customer hold two bookings of an
		// occurrence: Max (phone +33612345678) and Lee are booked on Monday.
		wantError(t, e.Do(key, upd, map[string]any{"id": anon.ID, "input": map[string]any{"phone": "+33612345678"}}), db.CodeDuplicateBooking, "phone")
		anon2 := mustBook(t, e, key, s.TimeSlots[0].ID, monday, "")
		wantError(t, e.Do(key, upd, map[string]any{"id": anon2.ID, "input": map[string]any{"name": "Twin", "phone": "+33612345678"}}), db.CodeDuplicateBooking, "phone")
		if b := getBooking(t, e, key, anon2.ID); b.Customer != nil {
			t.Fatalf("a refused edit gave the booking a customer: %+v", b.Customer)
		}
		if b := getBooking(t, e, key, anon.ID); b.Customer.Phone != nil {
			t.Fatalf("a refused edit changed the customer: %+v", b.Customer)
		}
		// The same phone is fine for a booking in another occurrence.
		other := mustBook(t, e, key, s.TimeSlots[0].ID, addDays(monday, 7), "")
		e.MustData(key, upd, map[string]any{"id": other.ID, "input": map[string]any{"phone": "+33612345678"}}, &c)
	})
}

func TestBookingsOfOtherAccounts(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e := apptest.New(t, database, nil)
		keyA, keyB := e.Account("alice"), e.Account("bob")
		s := mustCreateService(t, e, keyA, schedNY, slotIn(1, "09:00", "10:00", 5))
		monday := nextDate(schedNY, time.Monday)
		b := mustBook(t, e, keyA, s.TimeSlots[0].ID, monday, "a@example.com")

		if got := getBooking(t, e, keyB, b.ID); got != nil {
			t.Fatalf("bob reads alice's booking: %+v", got)
		}
		if got := getBooking(t, e, keyA, "999999"); got != nil {
			t.Fatalf("unknown booking: %+v", got)
		}
		var list struct {
			Bookings struct {
				TotalCount int
				Nodes      []schedBooking
			}
		}
		e.MustData(keyB, `{ bookings { totalCount nodes { id } } }`, nil, &list)
		if list.Bookings.TotalCount != 0 || len(list.Bookings.Nodes) != 0 {
			t.Fatalf("bob lists %+v", list.Bookings)
		}
		wantError(t, e.Do(keyB, gqlUpdateBooking, map[string]any{"id": b.ID, "input": map[string]any{"status": "CONFIRMED"}}), db.CodeBookingNotFound, "")
		wantError(t, e.Do(keyB, gqlCancelBooking, map[string]any{"id": b.ID, "reason": "x"}), db.CodeBookingNotFound, "")
		wantError(t, e.Do(keyB, `mutation($id: ID!) { deleteBooking(id: $id) }`, map[string]any{"id": b.ID}), db.CodeBookingNotFound, "")
		if got := getBooking(t, e, keyA, b.ID); got == nil || got.Status != "PENDING" {
			t.Fatalf("alice's booking after bob's attempts: %+v", got)
		}
		if n := occurrenceCount(t, database, s.TimeSlots[0].ID, monday); n != 1 {
			t.Fatalf("count %d, want 1", n)
		}
	})
}

func TestListBookings(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		s1 := mustCreateService(t, e, key, schedNY,
			slotIn(1, "09:00", "10:00", 5), slotIn(1, "14:00", "15:00", 5), slotIn(3, "10:00", "11:00", 5))
		s2 := mustCreateService(t, e, key, schedNY, slotIn(2, "08:00", "09:00", 5))
		mon9, mon14, wed10, tue8 := s1.TimeSlots[0], s1.TimeSlots[1], s1.TimeSlots[2], s2.TimeSlots[0]
		mon1 := nextDate(schedNY, time.Monday)
		tue1, wed1, mon2 := addDays(mon1, 1), addDays(mon1, 2), addDays(mon1, 7)

		// Created out of order.
		a := mustBook(t, e, key, mon14.ID, mon1, "a@example.com")
		b := mustBook(t, e, key, mon9.ID, mon2, "b@example.com")
		c := mustBook(t, e, key, mon9.ID, mon1, "c@example.com")
		d := mustBook(t, e, key, wed10.ID, wed1, "d@example.com")
		ee := mustBook(t, e, key, mon9.ID, mon1, "e@example.com")
		f := mustBook(t, e, key, tue8.ID, tue1, "f@example.com")
		g := mustBook(t, e, key, mon14.ID, mon2, "g@example.com")
		mustCancel(t, e, key, g.ID)

		list := func(vars map[string]any) bookingPage {
			t.Helper()
			var out struct{ Bookings bookingPage }
			e.MustData(key, gqlListBookings, vars, &out)
			for i, n := range out.Bookings.Nodes {
				if n.ID != out.Bookings.Edges[i].Node.ID {
					t.Fatalf("nodes and edges disagree: %+v", out.Bookings)
				}
			}
			return out.Bookings
		}
		// all pages of a filter, first n at a time
		pages := func(vars map[string]any, n int) ([]string, int, int) {
			t.Helper()
			var ids []string
			count, total := 0, -1
			var after any
			for {
				v := map[string]any{"first": n, "after": after}
				for k, x := range vars {
					v[k] = x
				}
				p := list(v)
				count++
				if total >= 0 && p.TotalCount != total {
					t.Fatalf("totalCount changed between pages: %d then %d", total, p.TotalCount)
				}
				total = p.TotalCount
				if len(p.Edges) > n {
					t.Fatalf("page of %d items for first %d", len(p.Edges), n)
				}
				ids = append(ids, p.ids()...)
				if len(p.Edges) > 0 && (p.PageInfo.EndCursor == nil || *p.PageInfo.EndCursor != p.Edges[len(p.Edges)-1].Cursor) {
					t.Fatalf("endCursor %v is not the last edge's cursor", p.PageInfo.EndCursor)
				}
				if !p.PageInfo.HasNextPage {
					return ids, total, count
				}
				if len(p.Edges) != n {
					t.Fatalf("short page (%d of %d) with hasNextPage", len(p.Edges), n)
				}
				after = *p.PageInfo.EndCursor
				if count > 20 {
					t.Fatal("pagination does not end")
				}
			}
		}
		eq := func(label string, got []string, want ...schedBooking) {
			t.Helper()
			w := make([]string, len(want))
			for i, b := range want {
				w[i] = b.ID
			}
			if strings.Join(got, ",") != strings.Join(w, ",") {
				t.Fatalf("%s: got %v, want %v", label, got, w)
			}
		}

		// Newest first by date, then start time, then id.
		all := []schedBooking{g, b, d, f, a, ee, c}
		p := list(map[string]any{"first": 100})
		eq("all", p.ids(), all...)
		if p.TotalCount != 7 || p.PageInfo.HasNextPage {
			t.Fatalf("all: totalCount %d hasNextPage %v", p.TotalCount, p.PageInfo.HasNextPage)
		}
		if p := list(nil); len(p.Edges) != 7 {
			t.Fatalf("default page has %d items", len(p.Edges))
		}
		for _, n := range []int{1, 2, 3, 7} {
			ids, total, count := pages(nil, n)
			eq("paged", ids, all...)
			if total != 7 || count != (7+n-1)/n {
				t.Fatalf("first %d: totalCount %d, %d pages", n, total, count)
			}
		}

		// Filters, alone and with paging.
		ids, total, _ := pages(map[string]any{"serviceId": s1.ID}, 2)
		eq("service 1", ids, g, b, d, a, ee, c)
		if total != 6 {
			t.Fatalf("service 1 totalCount %d", total)
		}
		ids, total, _ = pages(map[string]any{"serviceId": s2.ID}, 2)
		eq("service 2", ids, f)
		if total != 1 {
			t.Fatalf("service 2 totalCount %d", total)
		}
		ids, _, _ = pages(map[string]any{"status": "CANCELLED"}, 2)
		eq("cancelled", ids, g)
		ids, total, _ = pages(map[string]any{"status": "PENDING", "serviceId": s1.ID}, 2)
		eq("pending in service 1", ids, b, d, a, ee, c)
		if total != 5 {
			t.Fatalf("pending in service 1 totalCount %d", total)
		}
		ids, _, _ = pages(map[string]any{"from": wed1, "to": mon2}, 2)
		eq("wed1..mon2", ids, g, b, d)
		ids, _, _ = pages(map[string]any{"from": tue1, "to": tue1}, 2)
		eq("tue1", ids, f)
		ids, _, _ = pages(map[string]any{"to": mon1}, 1)
		eq("..mon1", ids, a, ee, c)
		ids, _, _ = pages(map[string]any{"from": addDays(mon2, 1)}, 5)
		eq("after mon2", ids)

		wantError(t, e.Do(key, gqlListBookings, map[string]any{"from": mon2, "to": mon1}), db.CodeInvalidRequest, "to")
		wantError(t, e.Do(key, gqlListBookings, map[string]any{"after": "garbage"}), db.CodeInvalidFieldFormat, "after")
		wantError(t, e.Do(key, gqlListBookings, map[string]any{"first": 0}), db.CodeInvalidFieldFormat, "first")
		wantError(t, e.Do(key, gqlListBookings, map[string]any{"first": 101}), db.CodeInvalidFieldFormat, "first")

		// Service.bookings, on one service and on a list of services.
		const svcBookings = `query($id: ID!, $first: Int, $after: String, $status: BookingStatus) { service(id: $id) {
			bookings(first: $first, after: $after, status: $status) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id date } } } } }`
		var sp struct {
			Service struct{ Bookings bookingPage }
		}
		var got []string
		var after any
		for i := 0; ; i++ {
			e.MustData(key, svcBookings, map[string]any{"id": s1.ID, "first": 4, "after": after}, &sp)
			if sp.Service.Bookings.TotalCount != 6 {
				t.Fatalf("Service.bookings totalCount %d", sp.Service.Bookings.TotalCount)
			}
			got = append(got, sp.Service.Bookings.ids()...)
			if !sp.Service.Bookings.PageInfo.HasNextPage || i > 5 {
				break
			}
			after = *sp.Service.Bookings.PageInfo.EndCursor
		}
		eq("Service.bookings", got, g, b, d, a, ee, c)
		e.MustData(key, svcBookings, map[string]any{"id": s1.ID, "status": "CANCELLED"}, &sp)
		eq("Service.bookings cancelled", sp.Service.Bookings.ids(), g)
		if sp.Service.Bookings.TotalCount != 1 {
			t.Fatalf("cancelled totalCount %d", sp.Service.Bookings.TotalCount)
		}

		var svcs struct {
			Services struct {
				Nodes []struct {
					ID       string
					Bookings bookingPage
				}
			}
		}
		e.MustData(key, `{ services { nodes { id bookings(first: 2) { totalCount pageInfo { hasNextPage } edges { node { id } } } } } }`, nil, &svcs)
		if len(svcs.Services.Nodes) != 2 {
			t.Fatalf("services %+v", svcs.Services.Nodes)
		}
		for _, n := range svcs.Services.Nodes {
			switch n.ID {
			case s1.ID:
				eq("services[s1].bookings", n.Bookings.ids(), g, b)
				if !n.Bookings.PageInfo.HasNextPage || n.Bookings.TotalCount != 6 {
					t.Fatalf("services[s1].bookings %+v", n.Bookings)
				}
			case s2.ID:
				eq("services[s2].bookings", n.Bookings.ids(), f)
				if n.Bookings.PageInfo.HasNextPage || n.Bookings.TotalCount != 1 {
					t.Fatalf("services[s2].bookings %+v", n.Bookings)
				}
			}
		}
	})
}

func TestDeleteServiceRemovesBookings(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		s := mustCreateService(t, e, key, schedNY, slotIn(1, "09:00", "10:00", 5))
		keep := mustCreateService(t, e, key, schedNY, slotIn(1, "09:00", "10:00", 5))
		monday := nextDate(schedNY, time.Monday)
		b1 := mustBook(t, e, key, s.TimeSlots[0].ID, monday, "a@example.com")
		b2 := mustBook(t, e, key, s.TimeSlots[0].ID, monday, "b@example.com")
		kept := mustBook(t, e, key, keep.TimeSlots[0].ID, monday, "a@example.com")

		var out struct{ DeleteService string }
		e.MustData(key, `mutation($id: ID!) { deleteService(id: $id) }`, map[string]any{"id": s.ID}, &out)
		for _, b := range []schedBooking{b1, b2} {
			if got := getBooking(t, e, key, b.ID); got != nil {
				t.Fatalf("booking %s of a deleted service: %+v", b.ID, got)
			}
		}
		var list struct{ Bookings bookingPage }
		e.MustData(key, gqlListBookings, nil, &list)
		eq := list.Bookings.ids()
		if len(eq) != 1 || eq[0] != kept.ID || list.Bookings.TotalCount != 1 {
			t.Fatalf("bookings after deleting a service: %+v", list.Bookings)
		}
		if n := occurrenceCount(t, database, s.TimeSlots[0].ID, monday); n != 0 {
			t.Fatalf("occurrence counter of a deleted slot: %d", n)
		}
		if got := getBooking(t, e, key, kept.ID); got == nil || got.Customer == nil || deref(got.Customer.Email) != "a@example.com" {
			t.Fatalf("kept booking %+v", got)
		}
	})
}
