package db

import (
	"context"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
)

// DateLayout is the wire format of dates (YYYY-MM-DD).
const DateLayout = "2006-01-02"

const maxMessageLen = 2000

// BookingInput creates a booking for one occurrence (slot + date).
type BookingInput struct {
	TimeSlotID int64
	Date       string
	Customer   CustomerInput
	Message    *string
}

// BookingUpdate changes a booking; nil fields stay as they are. A new Date
// or TimeSlotID is a reschedule, checked exactly like a new booking.
type BookingUpdate struct {
	Date         *string
	TimeSlotID   *int64
	Status       *BookingStatus
	CancelReason *string
	Message      *string
}

// BookingFilter selects and pages bookings, newest first by date then start time.
type BookingFilter struct {
	ServiceID *int64
	Status    *BookingStatus
	From, To  *string
	First     int
	After     *BookingCursor
}

// BookingCursor is a keyset position in the booking order.
type BookingCursor struct {
	Date        string
	StartMinute int
	ID          int64
}

// ParseDate checks a YYYY-MM-DD date.
func ParseDate(field, s string) (time.Time, error) {
	d, err := time.Parse(DateLayout, s)
	if err != nil {
		return time.Time{}, Errorf(CodeInvalidFieldFormat, field, "%s must be a date in YYYY-MM-DD form", field)
	}
	return d, nil
}

// OccurrenceStart is the instant an occurrence of a slot starts on a date,
// in the service's timezone.
func OccurrenceStart(date time.Time, minute int, loc *time.Location) time.Time {
	return time.Date(date.Year(), date.Month(), date.Day(), minute/60, minute%60, 0, 0, loc)
}

func validateMessage(m *string) error {
	if m != nil && utf8.RuneCountInString(*m) > maxMessageLen {
		return Errorf(CodeInvalidFieldFormat, "message", "message must be at most %d characters", maxMessageLen)
	}
	return nil
}

// CreateBooking books an occurrence for a customer. Capacity and duplicates
// are checked inside the transaction that writes, under the occurrence lock.
func (db *DB) CreateBooking(ctx context.Context, accountID int64, in BookingInput) (*Booking, error) {
	if err := in.Customer.normalize("customer"); err != nil {
		return nil, err
	}
	if err := validateMessage(in.Message); err != nil {
		return nil, err
	}
	if _, err := ParseDate("date", in.Date); err != nil {
		return nil, err
	}
	var b *Booking
	var ev *BookingEvent
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		slot, err := checkOccurrence(ctx, tx, accountID, in.TimeSlotID, in.Date)
		if err != nil {
			return err
		}
		customer, err := resolveCustomer(ctx, tx, accountID, in.Customer)
		if err != nil {
			return err
		}
		if err := claimSeat(ctx, tx, slot, in.Date); err != nil {
			return err
		}
		if err := checkDuplicate(ctx, tx, slot.ID, in.Date, customer, 0); err != nil {
			return err
		}
		t := now()
		b = &Booking{
			AccountID: accountID, ServiceID: slot.ServiceID, TimeSlotID: slot.ID, Date: in.Date,
			StartMinute: slot.StartMinute, Status: StatusPending, Message: in.Message,
			CreatedAt: t, UpdatedAt: t,
		}
		if customer != nil {
			b.CustomerID = &customer.ID
		}
		if _, err = tx.NewInsert().Model(b).Exec(ctx); err != nil {
			return err
		}
		ev, err = db.recordEvent(ctx, tx, accountID, b.ServiceID, EventBookingCreated, []*Booking{b}, customer)
		return err
	})
	if err != nil {
		return nil, err
	}
	db.published(ev)
	return b, nil
}

// slotWithZone is a time slot read with its service's timezone.
type slotWithZone struct {
	bun.BaseModel `bun:"table:time_slots,alias:time_slot"`
	TimeSlot      `bun:",extend"`
	Timezone      string `bun:",scanonly"`
}

// checkOccurrence loads the slot and checks that the date falls on its
// weekday and that the occurrence has not started, in the service's timezone.
func checkOccurrence(ctx context.Context, tx bun.Tx, accountID, slotID int64, date string) (*TimeSlot, error) {
	d, err := ParseDate("date", date)
	if err != nil {
		return nil, err
	}
	// The slot with its service's timezone, in one statement.
	row := new(slotWithZone)
	q := tx.NewSelect().Model(row).ColumnExpr("time_slot.*, s.timezone").
		Join("JOIN services AS s ON s.id = time_slot.service_id").
		Where("time_slot.account_id = ? AND time_slot.id = ?", accountID, slotID)
	if err := q.Scan(ctx); err != nil {
		if isNoRows(err) {
			return nil, Errorf(CodeTimeSlotNotFound, "timeSlotId", "time slot %d not found", slotID)
		}
		return nil, err
	}
	slot, tz := &row.TimeSlot, row.Timezone
	if int(d.Weekday()) != slot.DayOfWeek {
		return nil, Errorf(CodeInvalidFieldFormat, "date", "date %s is a %s but time slot %d is on %s",
			date, d.Weekday(), slot.ID, time.Weekday(slot.DayOfWeek))
	}
	loc, err := LoadLocation(tz)
	if err != nil {
		return nil, err
	}
	if !OccurrenceStart(d, slot.StartMinute, loc).After(time.Now()) {
		return nil, Errorf(CodeInvalidFieldFormat, "date", "date %s at %s (%s) is in the past", date, FormatMinute(slot.StartMinute), tz)
	}
	return slot, nil
}

// claimSeat takes one seat of an occurrence with a guarded upsert: the row is
// created or incremented only while it holds fewer than maxBookings, so no
// interleaving of transactions can overbook. It also locks the occurrence row
// until commit, which serializes the duplicate check that follows.
//
// On Postgres it then reads maxBookings again, holding the slot row shared
// until commit: a concurrent lowering of maxBookings (upsertSlots) either
// committed before, and the fresh read sees it, or waits for this booking
// and then counts its seat. The shared lock is taken last, after the
// occurrence, as the lowering takes them (occurrences, then the slot), so
// the two cannot deadlock.
func claimSeat(ctx context.Context, tx bun.Tx, slot *TimeSlot, date string) error {
	var booked int
	err := tx.NewRaw(`INSERT INTO slot_occurrences (time_slot_id, date, booked) VALUES (?, ?, 1)
ON CONFLICT (time_slot_id, date) DO UPDATE SET booked = slot_occurrences.booked + 1
WHERE slot_occurrences.booked < ? RETURNING booked`, slot.ID, date, slot.MaxBookings).Scan(ctx, &booked)
	if isForeignKeyViolation(err) { // the slot was deleted meanwhile
		return Errorf(CodeTimeSlotNotFound, "timeSlotId", "time slot %d not found", slot.ID)
	}
	full := func(max int) error {
		return Errorf(CodeTimeSlotFull, "timeSlotId", "time slot %d is full on %s (%d of %d booked)", slot.ID, date, max, max)
	}
	if isNoRows(err) {
		return full(slot.MaxBookings)
	}
	if err != nil || tx.Dialect().Name() != dialect.PG {
		return err
	}
	var max int
	if err := tx.NewRaw("SELECT max_bookings FROM time_slots WHERE id = ? FOR SHARE", slot.ID).Scan(ctx, &max); err != nil {
		if isNoRows(err) {
			return Errorf(CodeTimeSlotNotFound, "timeSlotId", "time slot %d not found", slot.ID)
		}
		return err
	}
	if booked > max {
		return full(max)
	}
	return nil
}

// releaseSeat gives back one seat of an occurrence.
func releaseSeat(ctx context.Context, tx bun.Tx, slotID int64, date string) error {
	_, err := tx.NewRaw(`UPDATE slot_occurrences SET booked = booked - 1 WHERE time_slot_id = ? AND date = ? AND booked > 0`,
		slotID, date).Exec(ctx)
	return err
}

// checkDuplicate refuses a second non-cancelled booking of the same customer
// (same customer record, email or phone) in one occurrence.
//
// It looks up the matching customers first (by id, and by email and phone
// through their indexes) and then probes the occurrence's bookings for them
// through bookings_one_per_customer_idx, rather than joining every booking
// of the occurrence to its customer: the cost stays that of a few index
// lookups however many bookings the occurrence holds, and it runs while the
// occurrence row is locked. The bookings of an account's slots always have
// customers of that account, so matching customers of c's account only is
// the same test.
func checkDuplicate(ctx context.Context, tx bun.Tx, slotID int64, date string, c *Customer, exceptBooking int64) error {
	if c == nil {
		return nil
	}
	same := tx.NewSelect().TableExpr("customers AS c").Column("c.id").
		WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			q = q.Where("c.id = ?", c.ID)
			if c.Email != nil {
				q = q.WhereOr("c.account_id = ? AND c.email = ?", c.AccountID, *c.Email)
			}
			if c.Phone != nil {
				q = q.WhereOr("c.account_id = ? AND c.phone = ?", c.AccountID, *c.Phone)
			}
			return q
		})
	q := tx.NewSelect().TableExpr("bookings AS b").
		Where("b.time_slot_id = ? AND b.date = ? AND b.status <> ? AND b.id <> ?", slotID, date, StatusCancelled, exceptBooking).
		Where("b.customer_id IN (?)", same)
	exists, err := q.Exists(ctx)
	if err != nil {
		return err
	}
	if exists {
		return Errorf(CodeDuplicateBooking, "customerEmail", "this customer already has a booking for time slot %d on %s", slotID, date)
	}
	return nil
}

// Booking returns a booking of the account.
func (db *DB) Booking(ctx context.Context, accountID, id int64) (*Booking, error) {
	b := new(Booking)
	err := db.NewSelect().Model(b).Where("account_id = ? AND id = ?", accountID, id).Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeBookingNotFound, "id", "booking %d not found", id)
	}
	return b, err
}

func lockBooking(ctx context.Context, tx bun.Tx, postgres bool, accountID, id int64) (*Booking, error) {
	b := new(Booking)
	q := tx.NewSelect().Model(b).Where("account_id = ? AND id = ?", accountID, id)
	if postgres {
		q = q.For("UPDATE")
	}
	err := q.Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeBookingNotFound, "id", "booking %d not found", id)
	}
	return b, err
}

// allowedTransitions lists the status changes a booking may make.
var allowedTransitions = map[BookingStatus][]BookingStatus{
	StatusPending:   {StatusConfirmed, StatusCancelled},
	StatusConfirmed: {StatusCancelled},
}

func canTransition(from, to BookingStatus) bool {
	for _, s := range allowedTransitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// UpdateBooking changes status, message or occurrence of a booking atomically.
func (db *DB) UpdateBooking(ctx context.Context, accountID, id int64, in BookingUpdate) (*Booking, error) {
	if err := validateMessage(in.Message); err != nil {
		return nil, err
	}
	if in.Date != nil {
		if _, err := ParseDate("date", *in.Date); err != nil {
			return nil, err
		}
	}
	if in.Status != nil && *in.Status != StatusPending && *in.Status != StatusConfirmed && *in.Status != StatusCancelled {
		return nil, Errorf(CodeInvalidFieldFormat, "status", "status must be PENDING, CONFIRMED or CANCELLED")
	}
	var b *Booking
	var ev *BookingEvent
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if b, err = lockBooking(ctx, tx, db.postgres, accountID, id); err != nil {
			return err
		}
		if err := applyUpdate(ctx, tx, b, in); err != nil {
			return err
		}
		ev, err = db.recordEvent(ctx, tx, accountID, b.ServiceID, EventBookingUpdated, []*Booking{b})
		return err
	})
	if err != nil {
		return nil, err
	}
	db.published(ev)
	return b, nil
}

func applyUpdate(ctx context.Context, tx bun.Tx, b *Booking, in BookingUpdate) error {
	moving := (in.Date != nil && *in.Date != b.Date) || (in.TimeSlotID != nil && *in.TimeSlotID != b.TimeSlotID)
	cancelling := in.Status != nil && *in.Status == StatusCancelled && b.Status != StatusCancelled
	if in.Status != nil && *in.Status != b.Status && !canTransition(b.Status, *in.Status) {
		return Errorf(CodeInvalidStatusTransition, "status", "a %s booking cannot become %s", b.Status, *in.Status)
	}
	if b.Status == StatusCancelled && moving {
		return Errorf(CodeInvalidStatusTransition, "status", "a cancelled booking cannot be rescheduled")
	}
	if cancelling && moving {
		return Errorf(CodeInvalidRequest, "status", "reschedule and cancel in separate updates")
	}
	if cancelling && (in.CancelReason == nil || len(trim(*in.CancelReason)) == 0) {
		return Errorf(CodeMissingRequiredField, "cancelReason", "cancelReason is required to cancel a booking")
	}
	if in.CancelReason != nil && !cancelling && b.Status != StatusCancelled {
		return Errorf(CodeInvalidRequest, "cancelReason", "cancelReason is only accepted when cancelling")
	}
	if moving {
		if err := reschedule(ctx, tx, b, in); err != nil {
			return err
		}
	}
	if cancelling {
		if err := releaseSeat(ctx, tx, b.TimeSlotID, b.Date); err != nil {
			return err
		}
		reason := trim(*in.CancelReason)
		if utf8.RuneCountInString(reason) > maxMessageLen {
			return Errorf(CodeInvalidFieldFormat, "cancelReason", "cancelReason must be at most %d characters", maxMessageLen)
		}
		b.CancelReason = &reason
	}
	if in.Status != nil {
		b.Status = *in.Status
	}
	if in.Message != nil {
		b.Message = in.Message
	}
	b.UpdatedAt = now()
	_, err := tx.NewUpdate().Model(b).
		Column("service_id", "time_slot_id", "date", "start_minute", "status", "cancel_reason", "message", "updated_at").
		WherePK().Exec(ctx)
	return err
}

// reschedule moves a non-cancelled booking to another occurrence, checked
// like a new booking. Seats are taken and given back in key order so two
// opposite reschedules cannot deadlock.
func reschedule(ctx context.Context, tx bun.Tx, b *Booking, in BookingUpdate) error {
	slotID, date := b.TimeSlotID, b.Date
	if in.TimeSlotID != nil {
		slotID = *in.TimeSlotID
	}
	if in.Date != nil {
		date = *in.Date
	}
	slot, err := checkOccurrence(ctx, tx, b.AccountID, slotID, date)
	if err != nil {
		return err
	}
	if slot.ServiceID != b.ServiceID {
		return Errorf(CodeInvalidRequest, "timeSlotId", "time slot %d belongs to another service", slotID)
	}
	oldFirst := b.TimeSlotID < slotID || (b.TimeSlotID == slotID && b.Date < date)
	if oldFirst {
		if err := releaseSeat(ctx, tx, b.TimeSlotID, b.Date); err != nil {
			return err
		}
	}
	if err := claimSeat(ctx, tx, slot, date); err != nil {
		return err
	}
	if !oldFirst {
		if err := releaseSeat(ctx, tx, b.TimeSlotID, b.Date); err != nil {
			return err
		}
	}
	if b.CustomerID != nil {
		c := new(Customer)
		if err := tx.NewSelect().Model(c).Where("id = ?", *b.CustomerID).Scan(ctx); err != nil {
			return err
		}
		if err := checkDuplicate(ctx, tx, slot.ID, date, c, b.ID); err != nil {
			return err
		}
	}
	b.TimeSlotID, b.Date, b.StartMinute = slot.ID, date, slot.StartMinute
	return nil
}

// CancelBooking cancels a booking with a reason.
func (db *DB) CancelBooking(ctx context.Context, accountID, id int64, reason string) (*Booking, error) {
	var b *Booking
	var ev *BookingEvent
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if b, err = lockBooking(ctx, tx, db.postgres, accountID, id); err != nil {
			return err
		}
		if b.Status == StatusCancelled {
			return Errorf(CodeInvalidStatusTransition, "status", "booking %d is already cancelled", id)
		}
		cancelled := StatusCancelled
		if err := applyUpdate(ctx, tx, b, BookingUpdate{Status: &cancelled, CancelReason: &reason}); err != nil {
			return err
		}
		ev, err = db.recordEvent(ctx, tx, accountID, b.ServiceID, EventBookingUpdated, []*Booking{b})
		return err
	})
	if err != nil {
		return nil, err
	}
	db.published(ev)
	return b, nil
}

// DeleteBooking deletes a booking and gives back its seat.
func (db *DB) DeleteBooking(ctx context.Context, accountID, id int64) error {
	var ev *BookingEvent
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		b, err := lockBooking(ctx, tx, db.postgres, accountID, id)
		if err != nil {
			return err
		}
		if b.Status != StatusCancelled {
			if err := releaseSeat(ctx, tx, b.TimeSlotID, b.Date); err != nil {
				return err
			}
		}
		// The event is written first: its payload reads the customer.
		if ev, err = db.recordEvent(ctx, tx, accountID, b.ServiceID, EventBookingDeleted, []*Booking{b}); err != nil {
			return err
		}
		_, err = tx.NewDelete().Model(b).WherePK().Exec(ctx)
		return err
	})
	if err == nil {
		db.published(ev)
	}
	return err
}

func (f BookingFilter) apply(q *bun.SelectQuery, accountID int64) *bun.SelectQuery {
	q = q.Where("account_id = ?", accountID)
	if f.ServiceID != nil {
		q = q.Where("service_id = ?", *f.ServiceID)
	}
	if f.Status != nil {
		q = q.Where("status = ?", *f.Status)
	}
	if f.From != nil {
		q = q.Where("date >= ?", *f.From)
	}
	if f.To != nil {
		q = q.Where("date <= ?", *f.To)
	}
	return q
}

// ListBookings returns up to First+1 bookings after the cursor.
func (db *DB) ListBookings(ctx context.Context, accountID int64, f BookingFilter) ([]*Booking, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	var out []*Booking
	q := f.apply(db.NewSelect().Model(&out), accountID).
		OrderExpr("date DESC, start_minute DESC, id DESC").Limit(int64(f.First + 1))
	if f.After != nil {
		q = q.Where("(date, start_minute, id) < (?, ?, ?)", f.After.Date, f.After.StartMinute, f.After.ID)
	}
	return out, q.Scan(ctx)
}

// CountBookings counts the bookings a filter selects (ignoring paging).
func (db *DB) CountBookings(ctx context.Context, accountID int64, f BookingFilter) (int, error) {
	n, err := f.apply(db.NewSelect().Model((*Booking)(nil)), accountID).Count(ctx)
	return int(n), err
}

func (f BookingFilter) validate() error {
	for field, d := range map[string]*string{"from": f.From, "to": f.To} {
		if d != nil {
			if _, err := ParseDate(field, *d); err != nil {
				return err
			}
		}
	}
	if f.From != nil && f.To != nil && *f.From > *f.To {
		return Errorf(CodeInvalidRequest, "to", "to must not be before from")
	}
	return nil
}

// ListBookingsForServices pages the bookings of several services at once
// (for dataloaders): up to First+1 per service after the cursor, in order.
func (db *DB) ListBookingsForServices(ctx context.Context, accountID int64, serviceIDs []int64, f BookingFilter) ([]*Booking, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	f.ServiceID = nil
	inner := f.apply(db.NewSelect().Model((*Booking)(nil)), accountID).
		ColumnExpr("booking.*").
		ColumnExpr("ROW_NUMBER() OVER (PARTITION BY service_id ORDER BY date DESC, start_minute DESC, id DESC) AS rn").
		Where("service_id IN (?)", bun.In(serviceIDs))
	if f.After != nil {
		inner = inner.Where("(date, start_minute, id) < (?, ?, ?)", f.After.Date, f.After.StartMinute, f.After.ID)
	}
	var out []*Booking
	err := db.NewSelect().Model(&out).ModelTableExpr("(?) AS booking", inner).
		Where("rn <= ?", f.First+1).
		OrderExpr("service_id, date DESC, start_minute DESC, id DESC").Scan(ctx)
	return out, err
}

// OccurrenceCount returns how many non-cancelled bookings an occurrence holds
// according to its counter row.
func (db *DB) OccurrenceCount(ctx context.Context, slotID int64, date string) (int, error) {
	var booked int
	err := db.NewSelect().Model((*occurrence)(nil)).Column("booked").
		Where("time_slot_id = ? AND date = ?", slotID, date).Scan(ctx, &booked)
	if isNoRows(err) {
		return 0, nil
	}
	return booked, err
}
