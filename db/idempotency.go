package db

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// IdempotentRequest is a request sent with an Idempotency-Key: claimed while
// it runs, then holding its response for replays until it expires.
type IdempotentRequest struct {
	bun.BaseModel `bun:"table:idempotency_keys"`

	AccountID   int64  `bun:",pk"`
	Key         string `bun:",pk"`
	RequestHash string
	Done        bool
	Status      int
	ContentType string
	Body        string
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// ClaimIdempotencyKey claims key for a request with the given body hash. It
// returns claimed=true when this request is the first (it must then call
// CompleteIdempotencyKey or ReleaseIdempotencyKey); otherwise the existing
// claim, running or done. An expired claim is replaced.
func (db *DB) ClaimIdempotencyKey(ctx context.Context, accountID int64, key, hash string, ttl time.Duration) (claimed bool, existing *IdempotentRequest, err error) {
	err = db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		t := now()
		if _, err := tx.NewDelete().Model((*IdempotentRequest)(nil)).
			Where("account_id = ? AND key = ? AND expires_at <= ?", accountID, key, t).Exec(ctx); err != nil {
			return err
		}
		row := &IdempotentRequest{AccountID: accountID, Key: key, RequestHash: hash, CreatedAt: t, ExpiresAt: t.Add(ttl)}
		res, err := tx.NewInsert().Model(row).On("CONFLICT (account_id, key) DO NOTHING").Exec(ctx)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			claimed = true
			return nil
		}
		existing = new(IdempotentRequest)
		return tx.NewSelect().Model(existing).Where("account_id = ? AND key = ?", accountID, key).Scan(ctx)
	})
	return claimed, existing, err
}

// IdempotencyKey reads a claim.
func (db *DB) IdempotencyKey(ctx context.Context, accountID int64, key string) (*IdempotentRequest, error) {
	r := new(IdempotentRequest)
	err := db.NewSelect().Model(r).Where("account_id = ? AND key = ?", accountID, key).Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeResourceNotFound, "Idempotency-Key", "idempotency key not found")
	}
	return r, err
}

// CompleteIdempotencyKey stores the response of a claimed request.
func (db *DB) CompleteIdempotencyKey(ctx context.Context, accountID int64, key string, status int, contentType, body string) error {
	_, err := db.NewUpdate().Model((*IdempotentRequest)(nil)).
		Set("done = ?", true).Set("status = ?", status).Set("content_type = ?", contentType).Set("body = ?", body).
		Where("account_id = ? AND key = ?", accountID, key).Exec(ctx)
	return err
}

// ReleaseIdempotencyKey drops a claim whose request did not complete, so a
// retry may run it.
func (db *DB) ReleaseIdempotencyKey(ctx context.Context, accountID int64, key string) error {
	_, err := db.NewDelete().Model((*IdempotentRequest)(nil)).Where("account_id = ? AND key = ?", accountID, key).Exec(ctx)
	return err
}

// PruneIdempotencyKeys deletes expired claims.
func (db *DB) PruneIdempotencyKeys(ctx context.Context) (int64, error) {
	res, err := db.NewDelete().Model((*IdempotentRequest)(nil)).Where("expires_at <= ?", now()).Exec(ctx)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
