package db

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// TimeSlotInput creates a slot (ID nil) or updates the slot with that ID.
type TimeSlotInput struct {
	ID          *int64
	DayOfWeek   int
	StartMinute int
	EndMinute   int
	MaxBookings int
}

func slotField(i int, name string) string { return fmt.Sprintf("timeSlots[%d].%s", i, name) }

func (in TimeSlotInput) validate(i int) error {
	if in.DayOfWeek < 0 || in.DayOfWeek > 6 {
		return Errorf(CodeInvalidFieldFormat, slotField(i, "dayOfWeek"), "dayOfWeek must be between 0 (Sunday) and 6 (Saturday)")
	}
	if in.StartMinute < 0 || in.EndMinute > 24*60 || in.StartMinute >= in.EndMinute {
		return Errorf(CodeInvalidFieldFormat, slotField(i, "endTime"), "endTime must be after startTime")
	}
	if in.MaxBookings < 1 {
		return Errorf(CodeInvalidFieldFormat, slotField(i, "maxBookings"), "maxBookings must be at least 1")
	}
	return nil
}

// UpsertTimeSlots updates the slots that carry an id and creates the others,
// all or nothing, and returns the service's resulting slots in input order.
func (db *DB) UpsertTimeSlots(ctx context.Context, accountID, serviceID int64, slots []TimeSlotInput) ([]*TimeSlot, error) {
	var out []*TimeSlot
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		s, err := lockService(ctx, tx, db.postgres, accountID, serviceID, "serviceId")
		if err != nil {
			return err
		}
		out, err = upsertSlots(ctx, tx, s, slots)
		if err != nil {
			return err
		}
		s.UpdatedAt = now()
		_, err = tx.NewUpdate().Model(s).Column("updated_at").WherePK().Exec(ctx)
		return err
	})
	return out, err
}

// upsertSlots applies slot inputs to a service inside tx, checking that the
// result has no overlapping slots on any day. The caller holds the service lock.
func upsertSlots(ctx context.Context, tx bun.Tx, s *Service, inputs []TimeSlotInput) ([]*TimeSlot, error) {
	for i, in := range inputs {
		if err := in.validate(i); err != nil {
			return nil, err
		}
	}
	var existing []*TimeSlot
	if err := tx.NewSelect().Model(&existing).Where("service_id = ?", s.ID).Scan(ctx); err != nil {
		return nil, err
	}
	byID := make(map[int64]*TimeSlot, len(existing))
	for _, ts := range existing {
		byID[ts.ID] = ts
	}
	t := now()
	out := make([]*TimeSlot, len(inputs))
	byIDBefore := make(map[int64]TimeSlot, len(existing)) // as they were
	for _, ts := range existing {
		byIDBefore[ts.ID] = *ts
	}
	seen := map[int64]bool{}
	for i, in := range inputs {
		if in.ID == nil {
			out[i] = &TimeSlot{AccountID: s.AccountID, ServiceID: s.ID, CreatedAt: t}
		} else {
			ts, ok := byID[*in.ID]
			if !ok {
				return nil, Errorf(CodeTimeSlotNotFound, slotField(i, "id"), "time slot %d not found in service %d", *in.ID, s.ID)
			}
			if seen[ts.ID] {
				return nil, Errorf(CodeInvalidRequest, slotField(i, "id"), "time slot %d appears twice", ts.ID)
			}
			seen[ts.ID] = true
			if ts.DayOfWeek != in.DayOfWeek {
				active, err := tx.NewSelect().Model((*Booking)(nil)).
					Where("time_slot_id = ? AND status <> ?", ts.ID, StatusCancelled).Exists(ctx)
				if err != nil {
					return nil, err
				}
				if active {
					return nil, Errorf(CodeInvalidRequest, slotField(i, "dayOfWeek"),
						"time slot %d has active bookings; its dayOfWeek cannot change", ts.ID)
				}
			}
			out[i] = ts
		}
		ts := out[i]
		if ts.ID != 0 && ts.DayOfWeek == in.DayOfWeek && ts.StartMinute == in.StartMinute &&
			ts.EndMinute == in.EndMinute && ts.MaxBookings == in.MaxBookings {
			continue // unchanged: keeps its updatedAt
		}
		ts.DayOfWeek, ts.StartMinute, ts.EndMinute, ts.MaxBookings = in.DayOfWeek, in.StartMinute, in.EndMinute, in.MaxBookings
		ts.UpdatedAt = t
	}
	if err := checkOverlaps(existing, out); err != nil {
		return nil, err
	}
	for i, ts := range out {
		if ts.ID == 0 {
			if _, err := tx.NewInsert().Model(ts).Exec(ctx); err != nil {
				return nil, err
			}
			continue
		}
		old := byIDBefore[ts.ID]
		if old == *ts {
			continue // unchanged: no write, no lock
		}
		// Locks in the order a booking or a reschedule takes them (booking
		// rows, then occurrences, then the slot), so that they cannot
		// deadlock with this.
		if ts.StartMinute != old.StartMinute {
			if _, err := tx.NewUpdate().Model((*Booking)(nil)).Set("start_minute = ?", ts.StartMinute).
				Where("time_slot_id = ?", ts.ID).Exec(ctx); err != nil {
				return nil, err
			}
		}
		if ts.MaxBookings < old.MaxBookings {
			if err := checkCapacityHolds(ctx, tx, s, ts, i); err != nil {
				return nil, err
			}
		}
		if _, err := tx.NewUpdate().Model(ts).
			Column("day_of_week", "start_minute", "end_minute", "max_bookings", "updated_at").WherePK().Exec(ctx); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkCapacityHolds refuses a lowered maxBookings that an occurrence from
// today on (in the service's timezone) already holds more bookings than. On
// Postgres it locks those occurrences first, so bookings taking seats in
// them meanwhile are counted (and the later ones see the new capacity, see
// claimSeat).
func checkCapacityHolds(ctx context.Context, tx bun.Tx, s *Service, ts *TimeSlot, i int) error {
	loc, err := LoadLocation(s.Timezone)
	if err != nil {
		return err
	}
	var over []*occurrence
	q := tx.NewSelect().Model(&over).
		Where("time_slot_id = ? AND date >= ?", ts.ID, time.Now().In(loc).Format(DateLayout)).
		OrderExpr("date ASC")
	if tx.Dialect().Name() == dialect.PG {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil {
		return err
	}
	over = slices.DeleteFunc(over, func(o *occurrence) bool { return o.Booked <= ts.MaxBookings })
	if len(over) > 0 {
		return Errorf(CodeInvalidRequest, slotField(i, "maxBookings"),
			"maxBookings %d is below the %d bookings time slot %d holds on %s; cancel bookings first",
			ts.MaxBookings, over[0].Booked, ts.ID, over[0].Date)
	}
	return nil
}

// checkOverlaps reports the first input slot that overlaps another slot of the
// service on the same day, after the changes are applied.
func checkOverlaps(existing, changed []*TimeSlot) error {
	type entry struct {
		ts    *TimeSlot
		input int // index in inputs, or -1 for an untouched slot
	}
	var all []entry
	touched := map[*TimeSlot]int{}
	for i, ts := range changed {
		touched[ts] = i
		all = append(all, entry{ts, i})
	}
	for _, ts := range existing {
		if _, ok := touched[ts]; !ok {
			all = append(all, entry{ts, -1})
		}
	}
	sort.Slice(all, func(a, b int) bool {
		x, y := all[a].ts, all[b].ts
		if x.DayOfWeek != y.DayOfWeek {
			return x.DayOfWeek < y.DayOfWeek
		}
		return x.StartMinute < y.StartMinute
	})
	for k := 1; k < len(all); k++ {
		prev, cur := all[k-1], all[k]
		if prev.ts.DayOfWeek == cur.ts.DayOfWeek && cur.ts.StartMinute < prev.ts.EndMinute {
			i := cur.input
			if i < 0 {
				i = prev.input
			}
			return Errorf(CodeInvalidFieldFormat, slotField(i, "startTime"),
				"time slot %s–%s on day %d overlaps another slot of this service (%s–%s)",
				FormatMinute(cur.ts.StartMinute), FormatMinute(cur.ts.EndMinute), cur.ts.DayOfWeek,
				FormatMinute(prev.ts.StartMinute), FormatMinute(prev.ts.EndMinute))
		}
	}
	return nil
}

// FormatMinute renders minutes since midnight as HH:MM.
func FormatMinute(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// TimeSlot returns a slot of the account.
func (db *DB) TimeSlot(ctx context.Context, accountID, id int64) (*TimeSlot, error) {
	ts := new(TimeSlot)
	err := db.NewSelect().Model(ts).Where("account_id = ? AND id = ?", accountID, id).Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeTimeSlotNotFound, "timeSlotId", "time slot %d not found", id)
	}
	return ts, err
}

// TimeSlotsByIDs loads slots of an account by id (for dataloaders).
func (db *DB) TimeSlotsByIDs(ctx context.Context, accountID int64, ids []int64) ([]*TimeSlot, error) {
	var out []*TimeSlot
	err := db.NewSelect().Model(&out).Where("account_id = ? AND id IN (?)", accountID, bun.In(ids)).Scan(ctx)
	return out, err
}

// TimeSlotsByServices loads the slots of several services, ordered by day
// and start time (for dataloaders).
func (db *DB) TimeSlotsByServices(ctx context.Context, accountID int64, serviceIDs []int64) ([]*TimeSlot, error) {
	var out []*TimeSlot
	err := db.NewSelect().Model(&out).
		Where("account_id = ? AND service_id IN (?)", accountID, bun.In(serviceIDs)).
		OrderExpr("day_of_week ASC, start_minute ASC").Scan(ctx)
	return out, err
}

// DeleteTimeSlot deletes a slot with its bookings (one bookings.delete
// event for them).
func (db *DB) DeleteTimeSlot(ctx context.Context, accountID, id int64) error {
	var ev *BookingEvent
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		slot := new(TimeSlot)
		err := tx.NewSelect().Model(slot).Where("account_id = ? AND id = ?", accountID, id).Scan(ctx)
		if isNoRows(err) {
			return Errorf(CodeTimeSlotNotFound, "id", "time slot %d not found", id)
		}
		if err != nil {
			return err
		}
		if _, err := lockService(ctx, tx, db.postgres, accountID, slot.ServiceID, "id"); err != nil {
			return err
		}
		if err := lockForCascade(ctx, tx, db.postgres, "id = ?", id); err != nil {
			return err
		}
		if ev, err = db.recordCascade(ctx, tx, accountID, slot.ServiceID, "time_slot_id = ?", id); err != nil {
			return err
		}
		_, err = tx.NewDelete().Model(slot).WherePK().Exec(ctx)
		return err
	})
	if err == nil {
		db.published(ev)
	}
	return err
}

// lockForCascade locks, on Postgres, the occurrences and then the slots
// (those matching slotWhere) that a cascade delete is about to remove: in
// the order a booking takes them (claimSeat), so the two cannot deadlock,
// and before the cascade reads the bookings, so that its event holds every
// booking made before it, and none is made after (a later one finds its
// slot gone). The caller holds the service lock, as slot changes do.
func lockForCascade(ctx context.Context, tx bun.Tx, postgres bool, slotWhere string, args ...any) error {
	if !postgres {
		return nil // SQLite: one writer at a time
	}
	if _, err := tx.NewRaw("SELECT 1 FROM slot_occurrences WHERE time_slot_id IN (SELECT id FROM time_slots WHERE "+slotWhere+
		") ORDER BY time_slot_id, date FOR UPDATE", args...).Exec(ctx); err != nil {
		return err
	}
	_, err := tx.NewRaw("SELECT 1 FROM time_slots WHERE "+slotWhere+" ORDER BY id FOR UPDATE", args...).Exec(ctx)
	return err
}

// recordCascade writes one bookings.delete event for the bookings of a
// service (matching where, if given) that are about to go with their slots
// or service; none, no event.
func (db *DB) recordCascade(ctx context.Context, tx bun.Tx, accountID, serviceID int64, where string, args ...any) (*BookingEvent, error) {
	var bs []*Booking
	q := tx.NewSelect().Model(&bs).Where("account_id = ? AND service_id = ?", accountID, serviceID).OrderExpr("id ASC")
	if where != "" {
		q = q.Where(where, args...)
	}
	if err := q.Scan(ctx); err != nil || len(bs) == 0 {
		return nil, err
	}
	return db.recordEvent(ctx, tx, accountID, serviceID, EventBookingDeleted, bs)
}

// DeleteTimeSlots deletes every slot of a service on one weekday and returns
// how many were deleted.
func (db *DB) DeleteTimeSlots(ctx context.Context, accountID, serviceID int64, dayOfWeek int) (int, error) {
	if dayOfWeek < 0 || dayOfWeek > 6 {
		return 0, Errorf(CodeInvalidFieldFormat, "dayOfWeek", "dayOfWeek must be between 0 (Sunday) and 6 (Saturday)")
	}
	var n int64
	var ev *BookingEvent
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := lockService(ctx, tx, db.postgres, accountID, serviceID, "serviceId"); err != nil {
			return err
		}
		if err := lockForCascade(ctx, tx, db.postgres, "account_id = ? AND service_id = ? AND day_of_week = ?", accountID, serviceID, dayOfWeek); err != nil {
			return err
		}
		var err error
		ev, err = db.recordCascade(ctx, tx, accountID, serviceID,
			"time_slot_id IN (SELECT id FROM time_slots WHERE service_id = ? AND day_of_week = ?)", serviceID, dayOfWeek)
		if err != nil {
			return err
		}
		res, err := tx.NewDelete().Model((*TimeSlot)(nil)).
			Where("account_id = ? AND service_id = ? AND day_of_week = ?", accountID, serviceID, dayOfWeek).Exec(ctx)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err == nil {
		db.published(ev)
	}
	return int(n), err
}
