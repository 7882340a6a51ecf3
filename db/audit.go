package db

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// Audit actions.
const (
	AuditKeyCreated    = "api_key.created"
	AuditKeyRolled     = "api_key.rolled"
	AuditKeyRevoked    = "api_key.revoked"
	AuditKeyExpiredUse = "api_key.expired_use"
	AuditScopeDenied   = "scope.denied"

	AuditWebhookCreated       = "webhook.created"
	AuditWebhookUpdated       = "webhook.updated"
	AuditWebhookSecretRotated = "webhook.secret_rotated"
	AuditWebhookDeleted       = "webhook.deleted"
	// AuditWebhookDisabled: ReserveKit disabled a failing webhook (no actor).
	AuditWebhookDisabled = "webhook.disabled"
)

func webhookTarget(webhookID int64) string { return "webhook:" + id(webhookID) }

// AuditEvent records a security-relevant action of an account.
type AuditEvent struct {
	bun.BaseModel `bun:"table:audit_events"`

	ID             int64 `bun:",pk,autoincrement"`
	AccountID      int64
	Action         string
	ActorKeyID     *int64
	ActorKeyPrefix string
	Target         string
	OccurredAt     time.Time
}

// Actor is the key that performed an action (nil for the CLI).
type Actor struct {
	KeyID  int64
	Prefix string
}

// RecordAudit appends an event; q is the database or the transaction of the
// change it records.
func RecordAudit(ctx context.Context, q bun.IDB, accountID int64, actor *Actor, action, target string) error {
	e := &AuditEvent{AccountID: accountID, Action: action, Target: target, OccurredAt: now()}
	if actor != nil {
		e.ActorKeyID, e.ActorKeyPrefix = &actor.KeyID, actor.Prefix
	}
	_, err := q.NewInsert().Model(e).Exec(ctx)
	return err
}

// RecordAudit appends an event outside any other transaction.
func (db *DB) RecordAudit(ctx context.Context, accountID int64, actor *Actor, action, target string) error {
	return RecordAudit(ctx, db, accountID, actor, action, target)
}

// ListAuditEvents pages an account's audit trail, newest first.
func (db *DB) ListAuditEvents(ctx context.Context, accountID int64, page Page) ([]*AuditEvent, error) {
	var out []*AuditEvent
	q := db.NewSelect().Model(&out).Where("account_id = ?", accountID).OrderExpr("id DESC").Limit(int64(page.First + 1))
	if page.AfterID > 0 {
		q = q.Where("id < ?", page.AfterID)
	}
	return out, q.Scan(ctx)
}

// CountAuditEvents counts an account's audit events.
func (db *DB) CountAuditEvents(ctx context.Context, accountID int64) (int, error) {
	n, err := db.NewSelect().Model((*AuditEvent)(nil)).Where("account_id = ?", accountID).Count(ctx)
	return int(n), err
}
