package db

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Delivery is one event on its way to one webhook. Its id is the
// ReserveKit-Delivery header, the same on every attempt.
type Delivery struct {
	bun.BaseModel `bun:"table:webhook_deliveries"`

	ID            int64 `bun:",pk,autoincrement"`
	AccountID     int64
	WebhookID     int64
	EventID       int64
	EventType     string
	Status        string
	Attempts      int
	NextAttemptAt *time.Time
	LeasedUntil   *time.Time
	CreatedAt     time.Time
	DeliveredAt   *time.Time

	// Loaded by LoadDeliveryDetails for listing, not stored here.
	AttemptList []*Attempt `bun:"-"`
	Payload     *string    `bun:"-"`
}

// LoadDeliveryDetails fills the attempts and payloads of deliveries (of one
// account) with two statements, whatever their number.
func (db *DB) LoadDeliveryDetails(ctx context.Context, ds []*Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	ids := make([]int64, len(ds))
	eventIDs := make([]int64, len(ds))
	for i, d := range ds {
		ids[i], eventIDs[i] = d.ID, d.EventID
	}
	attempts, err := db.AttemptsOf(ctx, ids)
	if err != nil {
		return err
	}
	var evs []*BookingEvent
	if err := db.NewSelect().Model(&evs).Column("id", "payload").Where("account_id = ? AND id IN (?)", ds[0].AccountID, bun.In(eventIDs)).Scan(ctx); err != nil {
		return err
	}
	payloads := map[int64]*string{}
	for _, ev := range evs {
		payloads[ev.ID] = &ev.Payload
	}
	for _, d := range ds {
		d.AttemptList = attempts[d.ID]
		if d.AttemptList == nil {
			d.AttemptList = []*Attempt{}
		}
		d.Payload = payloads[d.EventID]
	}
	return nil
}

// Attempt is one POST of a delivery.
type Attempt struct {
	bun.BaseModel `bun:"table:webhook_attempts"`

	ID              int64 `bun:",pk,autoincrement"`
	DeliveryID      int64
	AttemptedAt     time.Time
	HTTPStatus      *int `bun:"http_status"`
	DurationMs      float64
	Error           *string
	ResponseSnippet *string
}

// DeliveryFilter selects and pages a webhook's deliveries, newest first.
type DeliveryFilter struct {
	Status *string
	Page   Page
}

// LeaseDeliveries claims up to n due deliveries until the lease expires, so
// that no other instance attempts them meanwhile. On Postgres concurrent
// callers skip each other's rows (FOR UPDATE SKIP LOCKED); SQLite
// serializes writers. A crashed instance's leases simply expire.
func (db *DB) LeaseDeliveries(ctx context.Context, n int, lease time.Duration) ([]*Delivery, error) {
	t := now()
	var out []*Delivery
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewSelect().Model((*Delivery)(nil)).Column("id").
			Where("status = ? AND next_attempt_at <= ?", DeliveryPending, t).
			Where("(leased_until IS NULL OR leased_until < ?)", t).
			OrderExpr("next_attempt_at ASC, id ASC").Limit(int64(n))
		if db.postgres {
			q = q.For("UPDATE SKIP LOCKED")
		}
		var ids []int64
		if err := q.Scan(ctx, &ids); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		until := t.Add(lease)
		if _, err := tx.NewUpdate().Model((*Delivery)(nil)).Set("leased_until = ?", until).
			Where("id IN (?)", bun.In(ids)).Exec(ctx); err != nil {
			return err
		}
		return tx.NewSelect().Model(&out).Where("id IN (?)", bun.In(ids)).OrderExpr("id ASC").Scan(ctx)
	})
	return out, err
}

// DeliveryOutcome is what one attempt of a leased delivery came to.
type DeliveryOutcome struct {
	Attempt Attempt
	// Delivered: the receiver answered 2xx.
	Delivered bool
	// NextAttemptAt, when not delivered, schedules a retry; nil marks the
	// delivery failed for good.
	NextAttemptAt *time.Time
}

// FinishAttempt records an attempt and its outcome, and keeps the
// webhook's consecutive failures: reset by a delivery, counted by a
// delivery that failed for good, disabling the webhook at
// MaxConsecutiveFailures. It reports whether the webhook was disabled.
func (db *DB) FinishAttempt(ctx context.Context, d *Delivery, out DeliveryOutcome) (disabled bool, err error) {
	err = db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		a := out.Attempt
		a.DeliveryID = d.ID
		if _, err := tx.NewInsert().Model(&a).Exec(ctx); err != nil {
			return err
		}
		d.Attempts++
		d.LeasedUntil = nil
		switch {
		case out.Delivered:
			d.Status, d.NextAttemptAt, d.DeliveredAt = DeliveryDelivered, nil, &a.AttemptedAt
		case out.NextAttemptAt != nil:
			d.NextAttemptAt = out.NextAttemptAt
		default:
			d.Status, d.NextAttemptAt = DeliveryFailed, nil
		}
		if _, err := tx.NewUpdate().Model(d).Column("status", "attempts", "next_attempt_at", "leased_until", "delivered_at").
			WherePK().Exec(ctx); err != nil {
			return err
		}
		switch d.Status {
		case DeliveryDelivered:
			_, err := tx.NewUpdate().Model((*Webhook)(nil)).Set("consecutive_failures = 0").
				Where("id = ? AND consecutive_failures <> 0", d.WebhookID).Exec(ctx)
			return err
		case DeliveryFailed:
			w := new(Webhook)
			q := tx.NewSelect().Model(w).Column("id", "account_id", "consecutive_failures", "active").Where("id = ?", d.WebhookID)
			if db.postgres {
				q = q.For("UPDATE")
			}
			if err := q.Scan(ctx); err != nil {
				if isNoRows(err) {
					return nil // deleted meanwhile
				}
				return err
			}
			w.ConsecutiveFailures++
			up := tx.NewUpdate().Model(w).Set("consecutive_failures = ?", w.ConsecutiveFailures)
			if w.Active && w.ConsecutiveFailures >= MaxConsecutiveFailures {
				disabled = true
				up = up.Set("active = ?", false).Set("disabled_reason = ?",
					fmt.Sprintf("disabled after %d consecutive events failed every attempt", w.ConsecutiveFailures))
			}
			if _, err := up.WherePK().Exec(ctx); err != nil {
				return err
			}
			if disabled {
				return RecordAudit(ctx, tx, w.AccountID, nil, AuditWebhookDisabled, webhookTarget(w.ID))
			}
			return nil
		}
		return nil
	})
	return disabled, err
}

// AbandonDelivery marks a leased delivery failed without an attempt: its
// webhook was disabled or deleted meanwhile.
func (db *DB) AbandonDelivery(ctx context.Context, d *Delivery) error {
	d.Status, d.LeasedUntil, d.NextAttemptAt = DeliveryFailed, nil, nil
	_, err := db.NewUpdate().Model(d).Column("status", "leased_until", "next_attempt_at").WherePK().Exec(ctx)
	return err
}

// NewLeasedDelivery creates a delivery of an event to one webhook,
// regardless of the webhook's filters, already leased for lease so that the
// caller makes its first attempt (testWebhook) and no dispatcher does.
func (db *DB) NewLeasedDelivery(ctx context.Context, w *Webhook, ev *BookingEvent, lease time.Duration) (*Delivery, error) {
	t := now()
	until := t.Add(lease)
	d := &Delivery{AccountID: w.AccountID, WebhookID: w.ID, EventID: ev.ID, EventType: ev.EventType,
		Status: DeliveryPending, NextAttemptAt: &t, LeasedUntil: &until, CreatedAt: t}
	_, err := db.NewInsert().Model(d).Exec(ctx)
	return d, err
}

// Delivery returns a delivery of the account.
func (db *DB) Delivery(ctx context.Context, accountID, id int64) (*Delivery, error) {
	d := new(Delivery)
	err := db.NewSelect().Model(d).Where("account_id = ? AND id = ?", accountID, id).Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeResourceNotFound, "id", "delivery %d not found", id)
	}
	return d, err
}

// ListDeliveries pages a webhook's deliveries, newest first.
func (db *DB) ListDeliveries(ctx context.Context, accountID, webhookID int64, f DeliveryFilter) ([]*Delivery, error) {
	var out []*Delivery
	q := db.NewSelect().Model(&out).Where("account_id = ? AND webhook_id = ?", accountID, webhookID).
		OrderExpr("id DESC").Limit(int64(f.Page.First + 1))
	if f.Status != nil {
		q = q.Where("status = ?", *f.Status)
	}
	if f.Page.AfterID > 0 {
		q = q.Where("id < ?", f.Page.AfterID)
	}
	return out, q.Scan(ctx)
}

// CountDeliveries counts a webhook's deliveries matching the filter.
func (db *DB) CountDeliveries(ctx context.Context, accountID, webhookID int64, status *string) (int, error) {
	q := db.NewSelect().Model((*Delivery)(nil)).Where("account_id = ? AND webhook_id = ?", accountID, webhookID)
	if status != nil {
		q = q.Where("status = ?", *status)
	}
	n, err := q.Count(ctx)
	return int(n), err
}

// AttemptsOf returns the attempts of deliveries, oldest first, by delivery.
func (db *DB) AttemptsOf(ctx context.Context, deliveryIDs []int64) (map[int64][]*Attempt, error) {
	out := map[int64][]*Attempt{}
	if len(deliveryIDs) == 0 {
		return out, nil
	}
	var as []*Attempt
	if err := db.NewSelect().Model(&as).Where("delivery_id IN (?)", bun.In(deliveryIDs)).OrderExpr("id ASC").Scan(ctx); err != nil {
		return nil, err
	}
	for _, a := range as {
		out[a.DeliveryID] = append(out[a.DeliveryID], a)
	}
	return out, nil
}

// PendingDeliveries counts deliveries not yet delivered or failed (the
// webhook queue depth).
func (db *DB) PendingDeliveries(ctx context.Context) (int, error) {
	n, err := db.NewSelect().Model((*Delivery)(nil)).Where("status = ?", DeliveryPending).Count(ctx)
	return int(n), err
}

// ReleaseLeases ends every lease on a pending delivery, so they are due
// again at once, and returns how many there were. Only for a database one
// process uses (SQLite): at its start, any lease is a dead process's.
func (db *DB) ReleaseLeases(ctx context.Context) (int, error) {
	res, err := db.NewUpdate().Model((*Delivery)(nil)).Set("leased_until = NULL").
		Where("status = ? AND leased_until IS NOT NULL", DeliveryPending).Exec(ctx)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
