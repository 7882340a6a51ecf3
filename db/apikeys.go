package db

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// NewAPIKey is what CreateAPIKey stores: the hash and display prefix of a
// freshly generated secret, never the secret itself.
type NewAPIKey struct {
	Name   string
	Domain *string
	Prefix string
	Hash   string
}

// CreateAPIKey stores a key for an account.
func (db *DB) CreateAPIKey(ctx context.Context, accountID int64, in NewAPIKey) (*APIKey, error) {
	k := &APIKey{
		AccountID: accountID, Name: in.Name, Domain: in.Domain,
		Prefix: in.Prefix, Hash: in.Hash, CreatedAt: now(),
	}
	if _, err := db.NewInsert().Model(k).Exec(ctx); err != nil {
		return nil, err
	}
	return k, nil
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

// RevokeAPIKey revokes a key of an account; revoking twice keeps the first time.
func (db *DB) RevokeAPIKey(ctx context.Context, accountID, id int64) (*APIKey, error) {
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
		return nil
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
