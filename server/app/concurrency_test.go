package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app/apptest"
)

// outcome is what one concurrent request got: its error code ("" for
// success) and, on success, the data.
type outcome struct {
	code string
	data json.RawMessage
	raw  string
}

// runConcurrently runs n calls of fn at once (released together by a
// barrier) and returns their outcomes by index. fn must not call t.Fatal.
func runConcurrently(n int, fn func(i int) *apptest.Response) []outcome {
	out := make([]outcome, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			r := fn(i)
			code := r.Code()
			if len(r.Errors) > 0 && code == "" {
				code = "<no code>"
			}
			out[i] = outcome{code: code, data: r.Data, raw: string(r.Raw)}
		}(i)
	}
	close(start)
	wg.Wait()
	return out
}

// tally counts outcomes by code and fails on any code not in allowed.
func tally(t *testing.T, outs []outcome, allowed ...string) map[string]int {
	t.Helper()
	ok := map[string]bool{"": true}
	for _, a := range allowed {
		ok[a] = true
	}
	counts := map[string]int{}
	for i, o := range outs {
		counts[o.code]++
		if !ok[o.code] {
			t.Errorf("request %d: unexpected outcome %q: %s", i, o.code, o.raw)
		}
	}
	return counts
}

// activeBookings counts the non-cancelled bookings of an occurrence as the
// bookings listing reports them.
func activeBookings(t *testing.T, e *apptest.Env, key, slotID, date string) int {
	t.Helper()
	n := 0
	var after any
	for {
		var page struct {
			Bookings struct {
				PageInfo struct {
					HasNextPage bool
					EndCursor   *string
				}
				Nodes []struct {
					Status   string
					TimeSlot struct{ ID string }
				}
			}
		}
		e.MustData(key, `query($d: Date, $after: String) { bookings(from: $d, to: $d, first: 100, after: $after) {
			pageInfo { hasNextPage endCursor } nodes { status timeSlot { id } } } }`,
			map[string]any{"d": date, "after": after}, &page)
		for _, b := range page.Bookings.Nodes {
			if b.TimeSlot.ID == slotID && b.Status != "CANCELLED" {
				n++
			}
		}
		if !page.Bookings.PageInfo.HasNextPage {
			break
		}
		after = *page.Bookings.PageInfo.EndCursor
	}
	return n
}

func TestConcurrentCreateBooking(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		const capacity, clients = 8, 50
		s := mustCreateService(t, e, key, schedNY, slotIn(4, "10:00", "11:00", capacity))
		slot := s.TimeSlots[0]
		thursday := nextDate(schedNY, time.Thursday)

		outs := runConcurrently(clients, func(i int) *apptest.Response {
			return doCreateBooking(e, key, map[string]any{
				"timeSlotId": slot.ID, "date": thursday,
				"customerEmail": fmt.Sprintf("client%02d@example.com", i), "customerName": fmt.Sprintf("Client %d", i),
			})
		})
		counts := tally(t, outs, db.CodeTimeSlotFull)
		if counts[""] != capacity || counts[db.CodeTimeSlotFull] != clients-capacity {
			t.Fatalf("outcomes %v, want %d created and %d time_slot_full", counts, capacity, clients-capacity)
		}

		occ := occurrenceOf(t, availability(t, e, key, s.ID, thursday, thursday), slot.ID, thursday)
		if occ.Booked != capacity || occ.Remaining != 0 || occ.Capacity != capacity {
			t.Fatalf("availability %+v, want booked %d remaining 0", occ, capacity)
		}
		if n := occurrenceCount(t, database, slot.ID, thursday); n != capacity {
			t.Fatalf("db counter %d, want %d", n, capacity)
		}
		if n := activeBookings(t, e, key, slot.ID, thursday); n != capacity {
			t.Fatalf("stored bookings %d, want %d", n, capacity)
		}
		wantError(t, doCreateBooking(e, key, bookingInput(slot.ID, thursday, "late@example.com")), db.CodeTimeSlotFull, "")
	})
}

func TestConcurrentReschedules(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		const targetCap = 5
		s := mustCreateService(t, e, key, schedNY,
			slotIn(1, "09:00", "10:00", targetCap), // target
			slotIn(1, "11:00", "12:00", 10),
			slotIn(1, "13:00", "14:00", 10))
		target, src1, src2 := s.TimeSlots[0], s.TimeSlots[1], s.TimeSlots[2]
		mon1 := nextDate(schedNY, time.Monday)
		mon2 := addDays(mon1, 7)
		type occKey struct{ slot, date string }
		occs := []occKey{{target.ID, mon1}, {src1.ID, mon1}, {src2.ID, mon1}, {src1.ID, mon2}, {src2.ID, mon2}, {target.ID, mon2}}

		// Two bookings already in the target; 24 spread over four sources.
		var inTarget []schedBooking
		for i := 0; i < 2; i++ {
			inTarget = append(inTarget, mustBook(t, e, key, target.ID, mon1, fmt.Sprintf("t%d@example.com", i)))
		}
		var movers []schedBooking
		for i := 0; i < 24; i++ {
			o := occs[1+i%4]
			movers = append(movers, mustBook(t, e, key, o.slot, o.date, fmt.Sprintf("m%02d@example.com", i)))
		}

		// Everyone moves into the target occurrence while its two holders
		// move out (opposite directions, to provoke lock-order deadlocks).
		n := len(movers) + len(inTarget)
		outs := runConcurrently(n, func(i int) *apptest.Response {
			if i < len(movers) {
				return e.Do(key, gqlUpdateBooking, map[string]any{"id": movers[i].ID,
					"input": map[string]any{"timeSlotId": target.ID, "date": mon1}})
			}
			out := occs[1+i%4]
			return e.Do(key, gqlUpdateBooking, map[string]any{"id": inTarget[i-len(movers)].ID,
				"input": map[string]any{"timeSlotId": out.slot, "date": out.date}})
		})
		tally(t, outs, db.CodeTimeSlotFull)
		movedIn, movedOut := 0, 0
		for i, o := range outs {
			if o.code != "" {
				continue
			}
			if i < len(movers) {
				movedIn++
			} else {
				movedOut++
			}
		}
		if movedOut != len(inTarget) {
			t.Errorf("%d of %d moves out of the target succeeded", movedOut, len(inTarget))
		}
		want := len(inTarget) - movedOut + movedIn
		if want > targetCap || movedIn < targetCap-len(inTarget) {
			t.Errorf("moved in %d, out %d: target would hold %d of %d", movedIn, movedOut, want, targetCap)
		}

		// Every counter agrees with the stored bookings and none exceeds its capacity.
		caps := map[string]int{target.ID: targetCap, src1.ID: 10, src2.ID: 10}
		total := 0
		for _, o := range occs {
			counter, stored := occurrenceCount(t, database, o.slot, o.date), activeBookings(t, e, key, o.slot, o.date)
			if counter != stored || counter > caps[o.slot] {
				t.Errorf("occurrence %s/%s: counter %d, stored %d, capacity %d", o.slot, o.date, counter, stored, caps[o.slot])
			}
			total += stored
		}
		if got := occurrenceCount(t, database, target.ID, mon1); got != want {
			t.Errorf("target holds %d, want %d", got, want)
		}
		if total != n {
			t.Errorf("%d active bookings in all, want %d", total, n)
		}
	})
}

func TestConcurrentCancelAndCreate(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		const capacity = 6
		s := mustCreateService(t, e, key, schedNY, slotIn(5, "18:00", "19:00", capacity))
		slot := s.TimeSlots[0]
		friday := nextDate(schedNY, time.Friday)
		var existing []schedBooking
		for i := 0; i < capacity; i++ {
			existing = append(existing, mustBook(t, e, key, slot.ID, friday, fmt.Sprintf("old%d@example.com", i)))
		}

		// Cancel (or delete) the existing bookings while 30 clients try to
		// book; interleave the two kinds of requests.
		const creators = 30
		outs := runConcurrently(capacity+creators, func(i int) *apptest.Response {
			if i%6 == 0 && i/6 < capacity {
				b := existing[i/6]
				if i/6%2 == 0 {
					return e.Do(key, gqlCancelBooking, map[string]any{"id": b.ID, "reason": "conflict"})
				}
				return e.Do(key, `mutation($id: ID!) { deleteBooking(id: $id) }`, map[string]any{"id": b.ID})
			}
			return doCreateBooking(e, key, bookingInput(slot.ID, friday, fmt.Sprintf("new%02d@example.com", i)))
		})
		tally(t, outs, db.CodeTimeSlotFull)
		created, removed := 0, 0
		for i, o := range outs {
			if o.code != "" {
				continue
			}
			if i%6 == 0 && i/6 < capacity {
				removed++
			} else {
				created++
			}
		}
		if removed != capacity {
			t.Fatalf("%d of %d cancels/deletes succeeded", removed, capacity)
		}
		if created > capacity {
			t.Fatalf("%d bookings created into %d seats", created, capacity)
		}
		counter, stored := occurrenceCount(t, database, slot.ID, friday), activeBookings(t, e, key, slot.ID, friday)
		if counter != created || stored != created {
			t.Fatalf("created %d; counter %d; stored %d", created, counter, stored)
		}

		// The counter has not drifted: exactly the free seats can still be taken.
		for i := created; i < capacity; i++ {
			mustBook(t, e, key, slot.ID, friday, fmt.Sprintf("fill%d@example.com", i))
		}
		wantError(t, doCreateBooking(e, key, bookingInput(slot.ID, friday, "over@example.com")), db.CodeTimeSlotFull, "")
		if n := occurrenceCount(t, database, slot.ID, friday); n != capacity {
			t.Fatalf("counter %d after filling, want %d", n, capacity)
		}
	})
}

// TestConcurrentSameNewCustomer books one new customer (same email) into
// several occurrences at once: every booking succeeds and they share one
// customer.
func TestConcurrentSameNewCustomer(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		var slots []map[string]any
		for d := 0; d < 7; d++ {
			slots = append(slots, slotIn(d, "09:00", "10:00", 3), slotIn(d, "12:00", "13:00", 3))
		}
		s := mustCreateService(t, e, key, schedNY, slots...)
		first := nextDate(schedNY, time.Sunday)
		// Three rounds, each a new email booked into 14 occurrences at once.
		for round := 0; round < 3; round++ {
			email := fmt.Sprintf("Same.Person%d@example.com", round)
			outs := runConcurrently(len(s.TimeSlots), func(i int) *apptest.Response {
				ts := s.TimeSlots[i]
				return e.Do(key, `mutation($input: CreateBookingInput!) { createBooking(input: $input) { id customer { id email } } }`,
					map[string]any{"input": map[string]any{
						"timeSlotId": ts.ID, "date": addDays(first, 7*round+ts.DayOfWeek),
						"customerEmail": email, "customerName": "Same Person",
					}})
			})
			counts := tally(t, outs)
			if counts[""] != len(s.TimeSlots) {
				t.Fatalf("round %d: outcomes %v", round, counts)
			}
			ids := map[string]bool{}
			for _, o := range outs {
				var data struct {
					CreateBooking struct {
						Customer struct{ ID, Email string }
					}
				}
				if err := json.Unmarshal([]byte(o.data), &data); err != nil {
					t.Fatalf("decode %s: %v", o.raw, err)
				}
				if c := data.CreateBooking.Customer; c.ID == "" || c.Email != strings.ToLower(email) {
					t.Fatalf("round %d: customer %+v", round, c)
				}
				ids[data.CreateBooking.Customer.ID] = true
			}
			if len(ids) != 1 {
				keys := make([]string, 0, len(ids))
				for k := range ids {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				t.Fatalf("round %d: one email became %d customers: %v", round, len(ids), keys)
			}
		}
	})
}

// Lowering maxBookings while bookings pour in never leaves an occurrence
// holding more than its capacity: the lowering either waits for the
// bookings taking seats with the old capacity and is then refused if they
// exceed the new one, or comes first and the bookings see it.
func TestConcurrentCapacityChange(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		thursday := nextDate(schedNY, time.Thursday)
		// The later the lowering starts, the likelier it meets bookings
		// made with the old capacity, and is refused.
		for round, delay := range []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond} {
			s := mustCreateService(t, e, key, schedNY, slotIn(4, "10:00", "11:00", 20))
			slot := s.TimeSlots[0]
			const clients = 30
			outs := runConcurrently(clients+1, func(i int) *apptest.Response {
				if i == clients {
					time.Sleep(delay)
					return e.Do(key, gqlUpsertSlots, map[string]any{"serviceId": s.ID,
						"slots": []any{slotUpd(slot.ID, 4, "10:00", "11:00", 5)}})
				}
				return doCreateBooking(e, key, bookingInput(slot.ID, thursday, fmt.Sprintf("cap%d-%d@example.com", round, i)))
			})
			lowered := outs[clients].code == ""
			counts := tally(t, outs[:clients], db.CodeTimeSlotFull)
			if c := outs[clients].code; c != "" && c != db.CodeInvalidRequest {
				t.Fatalf("upsertTimeSlots: %s\n%s", outs[clients].raw, e.Logs())
			}
			capacity := 20
			if lowered {
				capacity = 5
			}
			if got := serviceSlots(t, e, key, s.ID)[0].MaxBookings; got != capacity {
				t.Fatalf("maxBookings is %d, want %d (lowering succeeded: %v)", got, capacity, lowered)
			}
			booked := activeBookings(t, e, key, slot.ID, thursday)
			if booked > capacity || booked != counts[""] || occurrenceCount(t, database, slot.ID, thursday) != booked {
				t.Fatalf("%d bookings (%d created) in an occurrence of capacity %d; lowering succeeded: %v", booked, counts[""], capacity, lowered)
			}
			t.Logf("lowering after %v: succeeded %v; %d created, %d full", delay, lowered, counts[""], counts[db.CodeTimeSlotFull])
		}
	})
}

// Reschedules and slot edits (start time and capacity) on one slot at once:
// no deadlock surfaces as an error, the edits are not starved, and the
// occurrence counters stay exact.
func TestConcurrentReschedulesAndSlotEdits(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		s := mustCreateService(t, e, key, schedNY, slotIn(1, "09:00", "10:00", 30))
		slot := s.TimeSlots[0]
		d1 := nextDate(schedNY, time.Monday)
		d2 := addDays(d1, 7)
		const movers = 6
		ids := make([]string, movers)
		for i := range ids {
			ids[i] = mustBook(t, e, key, slot.ID, d1, fmt.Sprintf("mover%d@example.com", i)).ID
		}
		stop := time.Now().Add(1500 * time.Millisecond)
		var mu sync.Mutex
		counts := map[string]int{}
		count := func(what string, r *apptest.Response) {
			mu.Lock()
			defer mu.Unlock()
			code := r.Code()
			if len(r.Errors) == 0 {
				code = "ok"
			}
			counts[what+" "+code]++
			if code != "ok" {
				t.Errorf("%s: %s", what, r.Raw)
				if code == "internal_error" {
					t.Log(e.Logs())
				}
			}
		}
		var wg sync.WaitGroup
		for i := range movers {
			wg.Go(func() {
				for n := 0; time.Now().Before(stop); n++ {
					date := map[bool]string{true: d2, false: d1}[n%2 == 0]
					count("reschedule", e.Do(key, gqlUpdateBooking, map[string]any{"id": ids[i], "input": map[string]any{"date": date}}))
				}
			})
		}
		wg.Go(func() {
			for n := 0; time.Now().Before(stop); n++ {
				start, capacity := "09:00", 30
				if n%2 == 0 {
					start, capacity = "09:05", 25
				}
				count("edit", e.Do(key, gqlUpsertSlots, map[string]any{"serviceId": s.ID,
					"slots": []any{slotUpd(slot.ID, 1, start, "10:00", capacity)}}))
			}
		})
		wg.Wait()
		t.Logf("%v", counts)
		if counts["edit ok"] < 5 {
			t.Errorf("only %d slot edits went through in 1.5 s: they are starved", counts["edit ok"])
		}
		total := 0
		for _, d := range []string{d1, d2} {
			n := activeBookings(t, e, key, slot.ID, d)
			if c := occurrenceCount(t, database, slot.ID, d); c != n {
				t.Errorf("%s: counter %d, %d bookings", d, c, n)
			}
			total += n
		}
		if total != movers {
			t.Fatalf("%d bookings in the two occurrences, want %d", total, movers)
		}
	})
}

// Deleting a slot while bookings are being made in it: every booking that
// was made is announced as created and, with the slot, as deleted; every
// other request is refused with a code (never internal_error).
func TestConcurrentBookingAndSlotDeletion(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e, key := newSchedEnv(t, database)
		s := mustCreateService(t, e, key, schedNY, slotIn(4, "10:00", "11:00", 100))
		slot := s.TimeSlots[0]
		thursday := nextDate(schedNY, time.Thursday)
		const clients = 20
		outs := runConcurrently(clients+1, func(i int) *apptest.Response {
			if i == clients {
				time.Sleep(5 * time.Millisecond)
				return e.Do(key, `mutation($id: ID!) { deleteTimeSlot(id: $id) }`, map[string]any{"id": slot.ID})
			}
			return doCreateBooking(e, key, bookingInput(slot.ID, thursday, fmt.Sprintf("del%d@example.com", i)))
		})
		if outs[clients].code != "" {
			t.Fatalf("deleteTimeSlot: %s\n%s", outs[clients].raw, e.Logs())
		}
		made := map[string]bool{}
		for i, o := range outs[:clients] {
			switch o.code {
			case "":
				var b struct{ CreateBooking struct{ ID string } }
				if err := json.Unmarshal(o.data, &b); err != nil {
					t.Fatal(err)
				}
				made[b.CreateBooking.ID] = true
			case db.CodeTimeSlotNotFound: // refused: the slot was gone
			case db.CodeResourceNotFound: // made, then gone with the slot before the answer was read
			default:
				t.Errorf("request %d: %s", i, o.raw)
			}
		}
		var evs []*db.BookingEvent
		if err := database.NewSelect().Model(&evs).OrderExpr("id ASC").Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
		created, deleted := map[string]bool{}, map[string]bool{}
		for _, ev := range evs {
			bs, err := ev.Bookings()
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range bs {
				id := strconv.FormatInt(b.ID, 10)
				switch ev.EventType {
				case db.EventBookingCreated:
					created[id] = true
				case db.EventBookingDeleted:
					deleted[id] = true
				}
			}
		}
		for id := range made {
			if !created[id] {
				t.Errorf("booking %s was made without a created event", id)
			}
		}
		// Every booking created went with its slot, announced as deleted.
		if !reflect.DeepEqual(created, deleted) {
			t.Errorf("created events for %v, deleted events for %v", created, deleted)
		}
		var left int
		if err := database.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM bookings").Scan(&left); err != nil || left != 0 {
			t.Fatalf("%d bookings left after their slot was deleted (%v)", left, err)
		}
		t.Logf("%d bookings made before the slot went, %d refused", len(made), clients-len(made))
	})
}
