package db

import (
	"context"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
)

// Booking event types, ReserveKit's names.
const (
	EventBookingCreated = "bookings.create"
	EventBookingUpdated = "bookings.update"
	EventBookingDeleted = "bookings.delete"
)

// EventTypes are the event names a webhook may ask for.
var EventTypes = []string{EventBookingCreated, EventBookingUpdated, EventBookingDeleted}

// MaxConsecutiveFailures is how many events in a row may fail for a webhook
// (every attempt exhausted) before it is disabled.
const MaxConsecutiveFailures = 5

// Webhook is an account's subscription to booking events at a URL.
type Webhook struct {
	bun.BaseModel `bun:"table:webhooks"`

	ID                  int64 `bun:",pk,autoincrement"`
	AccountID           int64
	ServiceID           *int64
	URL                 string `bun:"url"`
	Description         string
	Events              StringList
	SecretSealed        string
	Active              bool
	DisabledReason      *string
	ConsecutiveFailures int
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// WebhookInput creates a webhook.
type WebhookInput struct {
	URL         string
	ServiceID   *int64
	Events      []string
	Description string
}

// WebhookUpdate changes a webhook; nil fields stay as they are. Setting
// Active to true re-enables a disabled webhook and clears its failures.
type WebhookUpdate struct {
	URL         *string
	Events      []string
	Active      *bool
	Description *string
}

// CheckWebhookURL checks the URL's syntax: absolute http or https with a
// host, no credentials, at most 2000 characters. (Which addresses it may
// reach is the dispatcher's policy.)
func CheckWebhookURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case raw == "":
		return nil, Errorf(CodeMissingRequiredField, "url", "url is required")
	case err != nil || len(raw) > 2000 || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "":
		return nil, Errorf(CodeInvalidFieldFormat, "url", "url must be an absolute http or https URL of at most 2000 characters")
	case u.User != nil:
		return nil, Errorf(CodeInvalidFieldFormat, "url", "url must not carry credentials")
	}
	return u, nil
}

func checkEvents(events []string) (StringList, error) {
	if len(events) == 0 {
		return nil, Errorf(CodeMissingRequiredField, "events", "events needs at least one of %s", strings.Join(EventTypes, ", "))
	}
	var out StringList
	for _, e := range events {
		known := false
		for _, t := range EventTypes {
			known = known || e == t
		}
		if !known {
			return nil, Errorf(CodeInvalidFieldFormat, "events", "unknown event %q; events are %s", e, strings.Join(EventTypes, ", "))
		}
		if !out.Contains(e) {
			out = append(out, e)
		}
	}
	return out, nil
}

func checkDescription(d string) error {
	if utf8.RuneCountInString(d) > 500 {
		return Errorf(CodeInvalidFieldFormat, "description", "description must be at most 500 characters")
	}
	return nil
}

// CreateWebhook stores a webhook with its sealed signing secret; actor (nil
// for none) is recorded in the audit trail.
func (db *DB) CreateWebhook(ctx context.Context, accountID int64, actor *Actor, in WebhookInput, secretSealed string) (*Webhook, error) {
	u, err := CheckWebhookURL(in.URL)
	if err != nil {
		return nil, err
	}
	events, err := checkEvents(in.Events)
	if err != nil {
		return nil, err
	}
	if err := checkDescription(in.Description); err != nil {
		return nil, err
	}
	if in.ServiceID != nil {
		if _, err := db.Service(ctx, accountID, *in.ServiceID); err != nil {
			if ErrorCode(err) == CodeServiceNotFound {
				return nil, Errorf(CodeServiceNotFound, "serviceId", "service %d not found", *in.ServiceID)
			}
			return nil, err
		}
	}
	t := now()
	w := &Webhook{
		AccountID: accountID, ServiceID: in.ServiceID, URL: u.String(), Description: strings.TrimSpace(in.Description),
		Events: events, SecretSealed: secretSealed, Active: true, CreatedAt: t, UpdatedAt: t,
	}
	err = db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(w).Exec(ctx); err != nil {
			return err
		}
		return RecordAudit(ctx, tx, accountID, actor, AuditWebhookCreated, webhookTarget(w.ID))
	})
	return w, err
}

// lockWebhook reads a webhook of the account inside tx, locking its row on
// Postgres (the dispatcher updates its failure count concurrently).
func lockWebhook(ctx context.Context, tx bun.Tx, postgres bool, accountID, id int64) (*Webhook, error) {
	w := new(Webhook)
	q := tx.NewSelect().Model(w).Where("account_id = ? AND id = ?", accountID, id)
	if postgres {
		q = q.For("UPDATE")
	}
	err := q.Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeWebhookNotFound, "id", "webhook %d not found", id)
	}
	return w, err
}

// Webhook returns a webhook of the account.
func (db *DB) Webhook(ctx context.Context, accountID, id int64) (*Webhook, error) {
	w := new(Webhook)
	err := db.NewSelect().Model(w).Where("account_id = ? AND id = ?", accountID, id).Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeWebhookNotFound, "id", "webhook %d not found", id)
	}
	return w, err
}

// WebhookByID returns any account's webhook (for the dispatcher).
func (db *DB) WebhookByID(ctx context.Context, id int64) (*Webhook, error) {
	w := new(Webhook)
	err := db.NewSelect().Model(w).Where("id = ?", id).Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeWebhookNotFound, "id", "webhook %d not found", id)
	}
	return w, err
}

// ListWebhooks pages an account's webhooks by id.
func (db *DB) ListWebhooks(ctx context.Context, accountID int64, page Page) ([]*Webhook, error) {
	var out []*Webhook
	q := db.NewSelect().Model(&out).Where("account_id = ?", accountID).OrderExpr("id ASC").Limit(int64(page.First + 1))
	if page.AfterID > 0 {
		q = q.Where("id > ?", page.AfterID)
	}
	return out, q.Scan(ctx)
}

// CountWebhooks counts an account's webhooks.
func (db *DB) CountWebhooks(ctx context.Context, accountID int64) (int, error) {
	n, err := db.NewSelect().Model((*Webhook)(nil)).Where("account_id = ?", accountID).Count(ctx)
	return int(n), err
}

// UpdateWebhook changes a webhook.
func (db *DB) UpdateWebhook(ctx context.Context, accountID int64, actor *Actor, id int64, in WebhookUpdate) (*Webhook, error) {
	var w *Webhook
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if w, err = lockWebhook(ctx, tx, db.postgres, accountID, id); err != nil {
			return err
		}
		if in.URL != nil {
			u, err := CheckWebhookURL(*in.URL)
			if err != nil {
				return err
			}
			w.URL = u.String()
		}
		if in.Events != nil {
			if w.Events, err = checkEvents(in.Events); err != nil {
				return err
			}
		}
		if in.Description != nil {
			if err := checkDescription(*in.Description); err != nil {
				return err
			}
			w.Description = strings.TrimSpace(*in.Description)
		}
		if in.Active != nil {
			if *in.Active && !w.Active {
				w.ConsecutiveFailures, w.DisabledReason = 0, nil
			}
			w.Active = *in.Active
		}
		w.UpdatedAt = now()
		if _, err := tx.NewUpdate().Model(w).
			Column("url", "events", "description", "active", "disabled_reason", "consecutive_failures", "updated_at").
			WherePK().Exec(ctx); err != nil {
			return err
		}
		return RecordAudit(ctx, tx, accountID, actor, AuditWebhookUpdated, webhookTarget(w.ID))
	})
	return w, err
}

// SetWebhookSecret replaces a webhook's sealed signing secret.
func (db *DB) SetWebhookSecret(ctx context.Context, accountID int64, actor *Actor, id int64, secretSealed string) (*Webhook, error) {
	var w *Webhook
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if w, err = lockWebhook(ctx, tx, db.postgres, accountID, id); err != nil {
			return err
		}
		w.SecretSealed, w.UpdatedAt = secretSealed, now()
		if _, err := tx.NewUpdate().Model(w).Column("secret_sealed", "updated_at").WherePK().Exec(ctx); err != nil {
			return err
		}
		return RecordAudit(ctx, tx, accountID, actor, AuditWebhookSecretRotated, webhookTarget(w.ID))
	})
	return w, err
}

// DeleteWebhook deletes a webhook with its deliveries.
func (db *DB) DeleteWebhook(ctx context.Context, accountID int64, actor *Actor, id int64) error {
	return db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Model((*Webhook)(nil)).Where("account_id = ? AND id = ?", accountID, id).Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return Errorf(CodeWebhookNotFound, "id", "webhook %d not found", id)
		}
		return RecordAudit(ctx, tx, accountID, actor, AuditWebhookDeleted, webhookTarget(id))
	})
}
