package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/netip"
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
	ErrMissing      = &Error{http.StatusUnauthorized, "authentication_required", "Authorization header is missing"}
	ErrMalformed    = &Error{http.StatusUnauthorized, "authorization_header_malformed", "Authorization header is malformed"}
	ErrInvalid      = &Error{http.StatusUnauthorized, "invalid_api_key", "Invalid API key"}
	ErrRevoked      = &Error{http.StatusUnauthorized, "invalid_api_key", "API key revoked"}
	ErrExpired      = &Error{http.StatusUnauthorized, "api_key_expired", "API key expired"}
	ErrOrigin       = &Error{http.StatusForbidden, "origin_not_allowed", "Origin does not match API key domain"}
	ErrIPNotAllowed = &Error{http.StatusForbidden, "ip_not_allowed", "IP address not allowed for this API key"}
)

// digest is the SHA-256 of a secret: the cache key and, hex-encoded, the
// database key.
type digest [sha256.Size]byte

func digestOf(secret string) digest {
	var buf [SecretLen]byte // a fixed-size copy keeps the hashing allocation-free
	return sha256.Sum256(buf[:copy(buf[:], secret)])
}

// Verifier checks secrets against the database through an in-process cache.
type Verifier struct {
	db    *db.DB
	cache *expirable.LRU[digest, *caller.Caller]
	now   func() time.Time

	mu   sync.Mutex
	used map[int64]time.Time // key id → last use, flushed by FlushLastUsed
	// expiredUse is when each expired key's use was last audited: at most
	// once a minute per key, so a client retrying an expired key in a loop
	// costs no write per request.
	expiredUse map[int64]time.Time
}

// expiredUseEvery is how often the use of one expired key is audited.
const expiredUseEvery = time.Minute

// firstExpiredUse reports whether the use of an expired key at now is the
// first in expiredUseEvery, and so to be audited.
func (v *Verifier) firstExpiredUse(keyID int64, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if last, ok := v.expiredUse[keyID]; ok && now.Sub(last) < expiredUseEvery {
		return false
	}
	if len(v.expiredUse) > 10_000 { // bounded: forget, at worst audit again
		clear(v.expiredUse)
	}
	v.expiredUse[keyID] = now
	return true
}

// NewVerifier returns a verifier caching up to size keys for ttl. Revoked and
// rolled keys are evicted at once on this instance (and, through
// Listeners, on the others); expiry is checked on every request.
func NewVerifier(database *db.DB, size int, ttl time.Duration) *Verifier {
	return &Verifier{
		db: database, cache: expirable.NewLRU[digest, *caller.Caller](size, nil, ttl),
		now: time.Now, used: map[int64]time.Time{}, expiredUse: map[int64]time.Time{},
	}
}

// Verify resolves a secret to its caller; a cached key costs no query.
func (v *Verifier) Verify(ctx context.Context, secret string) (*caller.Caller, error) {
	if !WellFormed(secret) {
		return nil, ErrMalformed
	}
	d := digestOf(secret)
	c, ok := v.cache.Get(d)
	if !ok {
		var err error
		if c, err = v.load(ctx, d); err != nil {
			return nil, err
		}
		v.cache.Add(d, c)
	}
	if c.Key.RevokedAt != nil {
		return nil, ErrRevoked
	}
	now := v.now()
	if exp := c.Key.ExpiresAt; exp != nil && !now.Before(*exp) {
		if v.firstExpiredUse(c.Key.ID, now) {
			if err := v.db.RecordAudit(ctx, c.AccountID(), c.Actor(), db.AuditKeyExpiredUse, "api_key:"+itoa(c.Key.ID)); err != nil {
				v.mu.Lock()
				delete(v.expiredUse, c.Key.ID) // record it next time
				v.mu.Unlock()
				return nil, err
			}
		}
		return nil, ErrExpired
	}
	v.mu.Lock()
	v.used[c.Key.ID] = now
	v.mu.Unlock()
	return c, nil
}

func (v *Verifier) load(ctx context.Context, d digest) (*caller.Caller, error) {
	key, account, err := v.db.APIKeyByHash(ctx, hex.EncodeToString(d[:]))
	if db.ErrorCode(err) == db.CodeAPIKeyNotFound {
		return nil, ErrInvalid
	}
	if err != nil {
		return nil, err
	}
	c := &caller.Caller{Account: account, Key: key}
	for _, cidr := range key.AllowedCIDRs {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return nil, errors.New("stored CIDR does not parse: " + cidr)
		}
		c.Networks = append(c.Networks, p)
	}
	return c, nil
}

// Evict drops a key (by its stored hex hash) from the cache.
func (v *Verifier) Evict(hexHash string) {
	var d digest
	if n, err := hex.Decode(d[:], []byte(hexHash)); err == nil && n == len(d) {
		v.cache.Remove(d)
	}
}

// Listeners keep the cache true to changes made elsewhere (other
// instances, the command line), for db.Listen: a changed key is evicted,
// and the whole cache is dropped whenever the listener (re)connects.
func (v *Verifier) Listeners() db.Listeners {
	return db.Listeners{KeyChanged: v.Evict, Listening: v.cache.Purge}
}

// Revoke revokes a key and evicts it from the cache so it fails at once.
func (v *Verifier) Revoke(ctx context.Context, by *caller.Caller, keyID int64) (*db.APIKey, error) {
	k, err := v.db.RevokeAPIKey(ctx, by.AccountID(), keyID, by.Actor())
	if err != nil {
		return nil, err
	}
	v.Evict(k.Hash)
	return k, nil
}

// Roll replaces a key (see db.RollAPIKey) and returns the new key with its
// secret; the old key's new deadline applies at once.
func (v *Verifier) Roll(ctx context.Context, by *caller.Caller, keyID int64, grace time.Duration) (*db.APIKey, string, error) {
	// Rolling mints a new secret with the old key's scopes, so a scoped key
	// may only roll keys whose scopes it has itself.
	target, err := v.db.APIKey(ctx, by.AccountID(), keyID)
	if err != nil {
		return nil, "", err
	}
	if err := mayGrant(by, target.Scopes); err != nil {
		return nil, "", err
	}
	secret := NewSecret()
	old, replacement, err := v.db.RollAPIKey(ctx, by.AccountID(), keyID, by.Actor(), grace, DisplayPrefix(secret), Hash(secret))
	if err != nil {
		return nil, "", err
	}
	v.Evict(old.Hash)
	return replacement, secret, nil
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
