package db

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"
)

// BookingEvent is one entry of the outbox: a booking change, written in the
// transaction of the change, with its webhook payload.
type BookingEvent struct {
	bun.BaseModel `bun:"table:booking_events"`

	ID        int64 `bun:",pk,autoincrement"`
	AccountID int64
	ServiceID int64
	EventType string
	// Payload is the webhook body: {"event_type", "bookings", "timestamp"}.
	Payload   string
	CreatedAt time.Time
	// Deliveries is how many webhook deliveries the event queued (known to
	// the instance that wrote it; not stored).
	Deliveries int `bun:"-"`
}

// EventNotice is what the notification of a committed booking event says:
// enough for an instance to decide whether it needs the event at all
// (a subscriber of the account, or deliveries to send).
type EventNotice struct {
	ID, AccountID, ServiceID int64
	Deliveries               int
}

func (n EventNotice) String() string {
	return fmt.Sprintf("%d,%d,%d,%d", n.ID, n.AccountID, n.ServiceID, n.Deliveries)
}

// parseEventNotice reads a notification payload written by String.
func parseEventNotice(payload string) (EventNotice, error) {
	var n EventNotice
	parts := strings.Split(payload, ",")
	if len(parts) != 4 {
		return n, fmt.Errorf("booking event notification %q: want 4 fields", payload)
	}
	var nums [4]int64
	for i, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return n, fmt.Errorf("booking event notification %q: %w", payload, err)
		}
		nums[i] = v
	}
	return EventNotice{ID: nums[0], AccountID: nums[1], ServiceID: nums[2], Deliveries: int(nums[3])}, nil
}

// EventPayload is the webhook body, in ReserveKit's snake_case wire names.
type EventPayload struct {
	EventType string        `json:"event_type"`
	Bookings  []WireBooking `json:"bookings"`
	Timestamp string        `json:"timestamp"`
}

// WireBooking is a booking as webhooks carry it.
type WireBooking struct {
	ID           string        `json:"id"`
	ServiceID    string        `json:"service_id"`
	TimeSlotID   string        `json:"time_slot_id"`
	Date         string        `json:"date"`
	Status       BookingStatus `json:"status"`
	CancelReason *string       `json:"cancel_reason"`
	Message      *string       `json:"message"`
	Customer     *WireCustomer `json:"customer"`
	CreatedAt    string        `json:"created_at"`
	UpdatedAt    string        `json:"updated_at"`
}

// WireCustomer is a booking's customer as webhooks carry it.
type WireCustomer struct {
	ID    string  `json:"id"`
	Name  *string `json:"name"`
	Email *string `json:"email"`
	Phone *string `json:"phone"`
}

// Bookings decodes the event's bookings back into rows (customer ids only).
func (e *BookingEvent) Bookings() ([]*Booking, error) {
	var p EventPayload
	if err := json.Unmarshal([]byte(e.Payload), &p); err != nil {
		return nil, err
	}
	out := make([]*Booking, 0, len(p.Bookings))
	for _, w := range p.Bookings {
		b := &Booking{AccountID: e.AccountID, Date: w.Date, Status: w.Status, CancelReason: w.CancelReason, Message: w.Message}
		b.ID, _ = strconv.ParseInt(w.ID, 10, 64)
		b.ServiceID, _ = strconv.ParseInt(w.ServiceID, 10, 64)
		b.TimeSlotID, _ = strconv.ParseInt(w.TimeSlotID, 10, 64)
		b.CreatedAt, _ = time.Parse(time.RFC3339Nano, w.CreatedAt)
		b.UpdatedAt, _ = time.Parse(time.RFC3339Nano, w.UpdatedAt)
		if w.Customer != nil {
			id, _ := strconv.ParseInt(w.Customer.ID, 10, 64)
			b.CustomerID = &id
		}
		out = append(out, b)
	}
	return out, nil
}

func wireTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func id(n int64) string { return strconv.FormatInt(n, 10) }

// recordEvent writes an event for bookings of one service, and a pending
// delivery for every active webhook of the account that wants it, inside
// tx: no change without its event, no event without its change. On Postgres
// it also announces the event (on commit) to every instance, see
// Listen.
// known are customers the caller has loaded already (nil ones are ignored);
// the others are read.
func (db *DB) recordEvent(ctx context.Context, tx bun.Tx, accountID, serviceID int64, eventType string, bookings []*Booking, known ...*Customer) (*BookingEvent, error) {
	customers := map[int64]*Customer{}
	for _, c := range known {
		if c != nil {
			customers[c.ID] = c
		}
	}
	var ids []int64
	for _, b := range bookings {
		if b.CustomerID != nil && customers[*b.CustomerID] == nil {
			ids = append(ids, *b.CustomerID)
		}
	}
	if len(ids) > 0 {
		var cs []*Customer
		if err := tx.NewSelect().Model(&cs).Where("account_id = ? AND id IN (?)", accountID, bun.In(ids)).Scan(ctx); err != nil {
			return nil, err
		}
		for _, c := range cs {
			customers[c.ID] = c
		}
	}
	t := now()
	p := EventPayload{EventType: eventType, Bookings: make([]WireBooking, 0, len(bookings)), Timestamp: wireTime(t)}
	for _, b := range bookings {
		w := WireBooking{
			ID: id(b.ID), ServiceID: id(b.ServiceID), TimeSlotID: id(b.TimeSlotID), Date: b.Date, Status: b.Status,
			CancelReason: b.CancelReason, Message: b.Message, CreatedAt: wireTime(b.CreatedAt), UpdatedAt: wireTime(b.UpdatedAt),
		}
		if b.CustomerID != nil {
			if c := customers[*b.CustomerID]; c != nil {
				w.Customer = &WireCustomer{ID: id(c.ID), Name: c.Name, Email: c.Email, Phone: c.Phone}
			}
		}
		p.Bookings = append(p.Bookings, w)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	ev := &BookingEvent{AccountID: accountID, ServiceID: serviceID, EventType: eventType, Payload: string(body), CreatedAt: t}
	if _, err := tx.NewInsert().Model(ev).Exec(ctx); err != nil {
		return nil, err
	}
	res, err := tx.NewRaw(`INSERT INTO webhook_deliveries (account_id, webhook_id, event_id, event_type, status, attempts, next_attempt_at, created_at)
		SELECT account_id, id, ?, ?, ?, 0, ?, ? FROM webhooks
		WHERE account_id = ? AND active AND (service_id IS NULL OR service_id = ?) AND (' ' || events || ' ') LIKE ?`,
		ev.ID, eventType, DeliveryPending, t, t, accountID, serviceID, "% "+eventType+" %").Exec(ctx)
	if err != nil {
		return nil, err
	}
	queued, err := res.RowsAffected()
	if err != nil {
		return nil, err
	}
	ev.Deliveries = int(queued)
	if db.postgres {
		notice := EventNotice{ID: ev.ID, AccountID: accountID, ServiceID: serviceID, Deliveries: ev.Deliveries}
		if _, err := tx.ExecContext(ctx, "SELECT pg_notify(?, ?)", db.channel(eventChannel), notice.String()); err != nil {
			return nil, err
		}
	}
	return ev, nil
}

// published hands events committed on SQLite to OnEvent (on Postgres every
// instance hears them through Listen instead).
func (db *DB) published(events ...*BookingEvent) {
	if db.postgres || db.OnEvent == nil {
		return
	}
	for _, ev := range events {
		if ev != nil {
			db.OnEvent(ev)
		}
	}
}

// BookingEventByID loads an event of the account.
func (db *DB) BookingEventByID(ctx context.Context, accountID, id int64) (*BookingEvent, error) {
	ev := new(BookingEvent)
	err := db.NewSelect().Model(ev).Where("account_id = ? AND id = ?", accountID, id).Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeResourceNotFound, "id", "event %d not found", id)
	}
	return ev, err
}

// SampleEvent stores a bookings.create event with a made-up booking for
// testWebhook. It has no deliveries of its own and reaches no subscriber.
func (db *DB) SampleEvent(ctx context.Context, w *Webhook) (*BookingEvent, error) {
	t := now()
	serviceID := int64(0)
	if w.ServiceID != nil {
		serviceID = *w.ServiceID
	}
	name, email := "Test Customer", "test@example.com"
	message := "Sample booking sent by testWebhook"
	p := EventPayload{EventType: EventBookingCreated, Timestamp: wireTime(t), Bookings: []WireBooking{{
		ID: "0", ServiceID: id(serviceID), TimeSlotID: "0", Date: t.Format(DateLayout), Status: StatusPending,
		Message: &message, Customer: &WireCustomer{ID: "0", Name: &name, Email: &email},
		CreatedAt: wireTime(t), UpdatedAt: wireTime(t),
	}}}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	ev := &BookingEvent{AccountID: w.AccountID, ServiceID: serviceID, EventType: EventBookingCreated, Payload: string(body), CreatedAt: t}
	_, err = db.NewInsert().Model(ev).Exec(ctx)
	return ev, err
}
