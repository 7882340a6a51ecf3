package db

import (
	"context"
	"strconv"
	"time"

	"github.com/uptrace/bun"
)

// NewAPIKey is what CreateAPIKey stores: the hash and display prefix of a
// freshly generated secret, never the secret itself.
type NewAPIKey struct {
	Name         string
	Domain       *string
	Prefix       string
	Hash         string
	Scopes       StringList
	AllowedCIDRs StringList
	ExpiresAt    *time.Time
}

// CreateAPIKey stores a key for an account and records who created it
// (actor nil: the command line).
func (db *DB) CreateAPIKey(ctx context.Context, accountID int64, actor *Actor, in NewAPIKey) (*APIKey, error) {
	k := &APIKey{
		AccountID: accountID, Name: in.Name, Domain: in.Domain, Prefix: in.Prefix, Hash: in.Hash,
		Scopes: in.Scopes, AllowedCIDRs: in.AllowedCIDRs, ExpiresAt: in.ExpiresAt, CreatedAt: now(),
	}
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(k).Exec(ctx); err != nil {
			return err
		}
		return RecordAudit(ctx, tx, accountID, actor, AuditKeyCreated, keyTarget(k.ID))
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

func keyTarget(id int64) string { return "api_key:" + strconv.FormatInt(id, 10) }

// MaxRollGrace is the longest an old key keeps working after a roll.
const MaxRollGrace = 7 * 24 * time.Hour

// RollAPIKey replaces a key: the new key (already hashed by the caller)
// inherits name, domain, scopes, networks and expiry, and the old key
// expires after grace, never later than it would have anyway.
func (db *DB) RollAPIKey(ctx context.Context, accountID, id int64, actor *Actor, grace time.Duration, prefix, hash string) (old, replacement *APIKey, err error) {
	if grace < 0 || grace > MaxRollGrace {
		return nil, nil, Errorf(CodeInvalidFieldFormat, "expiresIn", "expiresIn must be between 0 and %d seconds", int(MaxRollGrace.Seconds()))
	}
	err = db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		old = new(APIKey)
		q := tx.NewSelect().Model(old).Where("account_id = ? AND id = ?", accountID, id)
		if db.postgres {
			q = q.For("UPDATE")
		}
		if err := q.Scan(ctx); err != nil {
			if isNoRows(err) {
				return Errorf(CodeAPIKeyNotFound, "id", "API key %d not found", id)
			}
			return err
		}
		t := now()
		if old.RevokedAt != nil || (old.ExpiresAt != nil && !old.ExpiresAt.After(t)) {
			return Errorf(CodeInvalidRequest, "id", "API key %d is revoked or expired and cannot be rolled", id)
		}
		replacement = &APIKey{
			AccountID: accountID, Name: old.Name, Domain: old.Domain, Prefix: prefix, Hash: hash,
			Scopes: old.Scopes, AllowedCIDRs: old.AllowedCIDRs, ExpiresAt: old.ExpiresAt, CreatedAt: t,
		}
		if _, err := tx.NewInsert().Model(replacement).Exec(ctx); err != nil {
			return err
		}
		deadline := t.Add(grace)
		if old.ExpiresAt == nil || deadline.Before(*old.ExpiresAt) {
			old.ExpiresAt = &deadline
		}
		if _, err := tx.NewUpdate().Model(old).Column("expires_at").WherePK().Exec(ctx); err != nil {
			return err
		}
		if err := db.notifyKeyChanged(ctx, tx, old.Hash); err != nil {
			return err
		}
		return RecordAudit(ctx, tx, accountID, actor, AuditKeyRolled, keyTarget(old.ID)+" -> "+keyTarget(replacement.ID))
	})
	if err != nil {
		return nil, nil, err
	}
	return old, replacement, nil
}

// APIKeyByHash finds a key and its account by the hash of its secret.
func (db *DB) APIKeyByHash(ctx context.Context, hash string) (*APIKey, *Account, error) {
	k := new(APIKey)
	if err := db.NewSelect().Model(k).Where("hash = ?", hash).Scan(ctx); err != nil {
		if isNoRows(err) {
			return nil, nil, Errorf(CodeAPIKeyNotFound, "", "API key not found")
		}
		return nil, nil, err
	}
	a, err := db.AccountByID(ctx, k.AccountID)
	if err != nil {
		return nil, nil, err
	}
	return k, a, nil
}

// APIKey returns one key of an account.
func (db *DB) APIKey(ctx context.Context, accountID, id int64) (*APIKey, error) {
	k := new(APIKey)
	err := db.NewSelect().Model(k).Where("account_id = ? AND id = ?", accountID, id).Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeAPIKeyNotFound, "id", "API key %d not found", id)
	}
	return k, err
}

// ListAPIKeys pages through an account's keys, oldest first.
func (db *DB) ListAPIKeys(ctx context.Context, accountID int64, page Page) ([]*APIKey, error) {
	var keys []*APIKey
	q := db.NewSelect().Model(&keys).Where("account_id = ?", accountID).OrderExpr("id ASC").Limit(int64(page.First + 1))
	if page.AfterID > 0 {
		q = q.Where("id > ?", page.AfterID)
	}
	return keys, q.Scan(ctx)
}

// CountAPIKeys counts an account's keys.
func (db *DB) CountAPIKeys(ctx context.Context, accountID int64) (int, error) {
	n, err := db.NewSelect().Model((*APIKey)(nil)).Where("account_id = ?", accountID).Count(ctx)
	return int(n), err
}

// RevokeAPIKey revokes a key of an account (accountID 0: any account, for
// the command line); revoking twice keeps the first time. Other instances
// sharing a Postgres database hear of it through NOTIFY.
func (db *DB) RevokeAPIKey(ctx context.Context, accountID, id int64, actor *Actor) (*APIKey, error) {
	var k *APIKey
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewUpdate().Model((*APIKey)(nil)).Set("revoked_at = ?", now()).
			Where("id = ? AND revoked_at IS NULL", id)
		if accountID != 0 {
			q = q.Where("account_id = ?", accountID)
		}
		if _, err := q.Exec(ctx); err != nil {
			return err
		}
		k = new(APIKey)
		sel := tx.NewSelect().Model(k).Where("id = ?", id)
		if accountID != 0 {
			sel = sel.Where("account_id = ?", accountID)
		}
		if err := sel.Scan(ctx); err != nil {
			if isNoRows(err) {
				return Errorf(CodeAPIKeyNotFound, "id", "API key %d not found", id)
			}
			return err
		}
		if err := db.notifyKeyChanged(ctx, tx, k.Hash); err != nil {
			return err
		}
		return RecordAudit(ctx, tx, k.AccountID, actor, AuditKeyRevoked, keyTarget(k.ID))
	})
	return k, err
}

// TouchAPIKeys records when keys were last used, in one statement per key
// batch; callers coalesce uses so this runs rarely.
func (db *DB) TouchAPIKeys(ctx context.Context, used map[int64]time.Time) error {
	if len(used) == 0 {
		return nil
	}
	return db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		for id, at := range used {
			if _, err := tx.NewUpdate().Model((*APIKey)(nil)).Set("last_used_at = ?", at.UTC()).
				Where("id = ?", id).Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}
