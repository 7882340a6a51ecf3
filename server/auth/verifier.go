package auth

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/caller"
)

// Error is an authentication failure with the status, code and exact message
// of ReserveKit's authentication page.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// The authentication failures (messages are a public contract).
var (
	ErrMissing   = &Error{http.StatusUnauthorized, "authentication_required", "Authorization header is missing"}
	ErrMalformed = &Error{http.StatusUnauthorized, "authorization_header_malformed", "Authorization header is malformed"}
	ErrInvalid   = &Error{http.StatusUnauthorized, "invalid_api_key", "Invalid API key"}
	ErrRevoked   = &Error{http.StatusUnauthorized, "invalid_api_key", "API key revoked"}
	ErrOrigin    = &Error{http.StatusForbidden, "origin_not_allowed", "Origin does not match API key domain"}
)

// Verifier checks secrets against the database through an in-process cache.
type Verifier struct {
	db    *db.DB
	cache *expirable.LRU[string, *caller.Caller]

	mu   sync.Mutex
	used map[int64]time.Time // key id → last use, flushed by FlushLastUsed
}

// NewVerifier returns a verifier caching up to size keys for ttl; a revoke
// through Revoke evicts at once, other changes show after ttl at the latest.
func NewVerifier(database *db.DB, size int, ttl time.Duration) *Verifier {
	return &Verifier{db: database, cache: expirable.NewLRU[string, *caller.Caller](size, nil, ttl), used: map[int64]time.Time{}}
}

// Verify resolves a well-formed secret to its caller.
func (v *Verifier) Verify(ctx context.Context, secret string) (*caller.Caller, error) {
	if !WellFormed(secret) {
		return nil, ErrMalformed
	}
	hash := Hash(secret)
	c, ok := v.cache.Get(hash)
	if !ok {
		key, account, err := v.db.APIKeyByHash(ctx, hash)
		if db.ErrorCode(err) == db.CodeAPIKeyNotFound {
			return nil, ErrInvalid
		}
		if err != nil {
			return nil, err
		}
		c = &caller.Caller{Account: account, Key: key}
		v.cache.Add(hash, c)
	}
	if c.Key.RevokedAt != nil {
		return nil, ErrRevoked
	}
	v.markUsed(c.Key.ID)
	return c, nil
}

// Revoke revokes a key and evicts it from the cache so it fails at once.
func (v *Verifier) Revoke(ctx context.Context, accountID, keyID int64) (*db.APIKey, error) {
	k, err := v.db.RevokeAPIKey(ctx, accountID, keyID)
	if err != nil {
		return nil, err
	}
	v.cache.Remove(k.Hash)
	return k, nil
}

func (v *Verifier) markUsed(id int64) {
	now := time.Now()
	v.mu.Lock()
	v.used[id] = now
	v.mu.Unlock()
}

// FlushLastUsed writes the coalesced lastUsedAt times: one write per used
// key per flush, however many requests it served.
func (v *Verifier) FlushLastUsed(ctx context.Context) error {
	v.mu.Lock()
	used := v.used
	v.used = map[int64]time.Time{}
	v.mu.Unlock()
	return v.db.TouchAPIKeys(ctx, used)
}

// RunLastUsedFlusher flushes lastUsedAt every interval until ctx ends, then once more.
func (v *Verifier) RunLastUsedFlusher(ctx context.Context, interval time.Duration, logErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := v.FlushLastUsed(flushCtx); err != nil {
				logErr(err)
			}
			cancel()
			return
		case <-t.C:
			if err := v.FlushLastUsed(ctx); err != nil && !errors.Is(err, context.Canceled) {
				logErr(err)
			}
		}
	}
}
