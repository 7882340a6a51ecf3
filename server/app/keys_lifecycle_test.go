package app_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/app/apptest"
	"github.com/reservekit/reservekit/server/auth"
)

// Helpers shared by the key lifecycle, scope, network, CORS, revocation and
// tenant isolation tests. Their names start with "lc" so they do not collide
// with the helpers of auth_test.go.

// lcKeyFields selects every field of an ApiKey.
const lcKeyFields = `id name prefix domain createdAt lastUsedAt revokedAt expiresAt scopes allowedCidrs`

// lcKey is an ApiKey with every field.
type lcKey struct {
	ID           string
	Name         string
	Prefix       string
	Domain       *string
	CreatedAt    string
	LastUsedAt   *string
	RevokedAt    *string
	ExpiresAt    *string
	Scopes       []string
	AllowedCidrs []string
}

// lcCreated is a CreateApiKeyPayload.
type lcCreated struct {
	APIKey lcKey `json:"apiKey"`
	Secret string
}

const (
	lcCreateKeyOp = `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { ` + lcKeyFields + ` } } }`
	lcRollKeyOp   = `mutation($id: ID!, $expiresIn: Int!) { rollApiKey(id: $id, expiresIn: $expiresIn) { secret apiKey { ` + lcKeyFields + ` } } }`
	lcListKeysOp  = `{ apiKeys(first: 100) { totalCount nodes { ` + lcKeyFields + ` } } }`
	lcAuditOp     = `query($first: Int, $after: String) { auditEvents(first: $first, after: $after) {
		totalCount pageInfo { hasNextPage endCursor } nodes { id action actorKeyPrefix target occurredAt } } }`
)

// lcCreateKey creates a key with input through createApiKey, which must succeed.
func lcCreateKey(t *testing.T, e *apptest.Env, key string, input map[string]any, headers ...string) lcCreated {
	t.Helper()
	r := e.Do(key, lcCreateKeyOp, map[string]any{"input": input}, headers...)
	if r.Status != http.StatusOK {
		t.Fatalf("createApiKey: HTTP %d: %s", r.Status, r.Raw)
	}
	var out struct {
		CreateAPIKey lcCreated `json:"createApiKey"`
	}
	r.Decode(t, &out)
	if !auth.WellFormed(out.CreateAPIKey.Secret) {
		t.Fatalf("createApiKey returned a malformed secret: %s", r.Raw)
	}
	return out.CreateAPIKey
}

// lcRoll runs rollApiKey.
func lcRoll(e *apptest.Env, key, id string, expiresIn int, headers ...string) *apptest.Response {
	e.T.Helper()
	return e.Do(key, lcRollKeyOp, map[string]any{"id": id, "expiresIn": expiresIn}, headers...)
}

// lcMustRoll runs rollApiKey, which must succeed, and returns the new key.
func lcMustRoll(t *testing.T, e *apptest.Env, key, id string, expiresIn int) lcCreated {
	t.Helper()
	r := lcRoll(e, key, id, expiresIn)
	var out struct {
		RollAPIKey lcCreated `json:"rollApiKey"`
	}
	r.Decode(t, &out)
	if !auth.WellFormed(out.RollAPIKey.Secret) {
		t.Fatalf("rollApiKey returned a malformed secret: %s", r.Raw)
	}
	return out.RollAPIKey
}

// lcKeys lists the account's keys (read from the database, not the cache).
func lcKeys(t *testing.T, e *apptest.Env, key string) []lcKey {
	t.Helper()
	var out struct {
		APIKeys struct {
			TotalCount int
			Nodes      []lcKey
		} `json:"apiKeys"`
	}
	e.MustData(key, lcListKeysOp, nil, &out)
	if out.APIKeys.TotalCount != len(out.APIKeys.Nodes) {
		t.Fatalf("apiKeys: totalCount %d but %d nodes", out.APIKeys.TotalCount, len(out.APIKeys.Nodes))
	}
	return out.APIKeys.Nodes
}

// lcKeyByID finds one key in the account's listing.
func lcKeyByID(t *testing.T, e *apptest.Env, key, id string) lcKey {
	t.Helper()
	for _, k := range lcKeys(t, e, key) {
		if k.ID == id {
			return k
		}
	}
	t.Fatalf("key %s not in apiKeys", id)
	return lcKey{}
}

// lcAuditEvent is one AuditEvent.
type lcAuditEvent struct {
	ID             string
	Action         string
	ActorKeyPrefix string
	Target         string
	OccurredAt     string
}

// lcAudit reads the newest audit events of the key's account (the key needs
// logs:read).
func lcAudit(t *testing.T, e *apptest.Env, key string) []lcAuditEvent {
	t.Helper()
	var out struct {
		AuditEvents struct {
			TotalCount int
			Nodes      []lcAuditEvent
		}
	}
	e.MustData(key, lcAuditOp, map[string]any{"first": 100}, &out)
	return out.AuditEvents.Nodes
}

// lcFindAudit returns the newest event with action and target, failing the
// test when there is none.
func lcFindAudit(t *testing.T, events []lcAuditEvent, action, target string) lcAuditEvent {
	t.Helper()
	for _, ev := range events {
		if ev.Action == action && ev.Target == target {
			return ev
		}
	}
	t.Fatalf("no audit event %s %q in %+v", action, target, events)
	return lcAuditEvent{}
}

// lcTime parses a DateTime, which must be RFC 3339 in UTC.
func lcTime(t *testing.T, s *string) time.Time {
	t.Helper()
	if s == nil {
		t.Fatal("DateTime is null")
	}
	v, err := time.Parse(time.RFC3339Nano, *s)
	if err != nil || !strings.HasSuffix(*s, "Z") {
		t.Fatalf("DateTime %q is not RFC 3339 UTC: %v", *s, err)
	}
	return v
}

// lcSelf is the id and prefix of the key used for a request.
func lcSelf(t *testing.T, e *apptest.Env, key string, headers ...string) (id, prefix string) {
	t.Helper()
	var out struct {
		Viewer struct {
			APIKey struct{ ID, Prefix string } `json:"apiKey"`
		}
	}
	r := e.Do(key, `{ viewer { apiKey { id prefix } } }`, nil, headers...)
	if r.Status != http.StatusOK {
		t.Fatalf("viewer: HTTP %d: %s", r.Status, r.Raw)
	}
	r.Decode(t, &out)
	return out.Viewer.APIKey.ID, out.Viewer.APIKey.Prefix
}

func lcKeyTarget(id string) string { return "api_key:" + id }

func TestKeyRollExpiresOldKeyAtOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		_, adminPrefix := lcSelf(t, e, admin)
		old := lcCreateKey(t, e, admin, map[string]any{"name": "deploy"})

		// The verifier caches the key on this request...
		wantOK(t, e, old.Secret, "acme")
		wantOK(t, e, old.Secret, "acme")
		before := time.Now()
		rolled := lcMustRoll(t, e, admin, old.APIKey.ID, 0)

		// ...and yet the very next request is refused.
		r := e.Do(old.Secret, viewerQuery, nil)
		wantHTTPError(t, r, http.StatusUnauthorized, "api_key_expired", "API key expired")
		r = e.Do(old.Secret, `mutation { createApiKey(input: {}) { secret } }`, nil)
		wantHTTPError(t, r, http.StatusUnauthorized, "api_key_expired", "API key expired")

		if rolled.Secret == old.Secret || rolled.APIKey.ID == old.APIKey.ID {
			t.Fatalf("roll returned the old key: %+v", rolled.APIKey)
		}
		if rolled.APIKey.Prefix != auth.DisplayPrefix(rolled.Secret) || rolled.APIKey.Name != "deploy" {
			t.Fatalf("replacement key %+v (secret prefix %s)", rolled.APIKey, auth.DisplayPrefix(rolled.Secret))
		}
		wantOK(t, e, rolled.Secret, "acme")

		stored := lcKeyByID(t, e, admin, old.APIKey.ID)
		if exp := lcTime(t, stored.ExpiresAt); exp.Before(before.Add(-time.Second)) || exp.After(time.Now()) {
			t.Fatalf("old key expiresAt %s, want the time of the roll (between %s and now)", exp, before)
		}
		if stored.RevokedAt != nil {
			t.Fatalf("rolled key is revoked (%s); it should only expire", *stored.RevokedAt)
		}
		if newKey := lcKeyByID(t, e, admin, rolled.APIKey.ID); newKey.ExpiresAt != nil {
			t.Fatalf("replacement of a key without expiry expires at %s", *newKey.ExpiresAt)
		}

		// An expired key cannot be rolled again.
		r = lcRoll(e, admin, old.APIKey.ID, 60)
		wantError(t, r, db.CodeInvalidRequest, "id")

		// The audit trail has the roll (by the admin key) and the refused use.
		events := lcAudit(t, e, admin)
		roll := lcFindAudit(t, events, db.AuditKeyRolled, lcKeyTarget(old.APIKey.ID)+" -> "+lcKeyTarget(rolled.APIKey.ID))
		if roll.ActorKeyPrefix != adminPrefix {
			t.Errorf("api_key.rolled actor %q, want %q", roll.ActorKeyPrefix, adminPrefix)
		}
		expired := lcFindAudit(t, events, db.AuditKeyExpiredUse, lcKeyTarget(old.APIKey.ID))
		if expired.ActorKeyPrefix != old.APIKey.Prefix {
			t.Errorf("api_key.expired_use actor %q, want the expired key %q", expired.ActorKeyPrefix, old.APIKey.Prefix)
		}
		created := lcFindAudit(t, events, db.AuditKeyCreated, lcKeyTarget(old.APIKey.ID))
		if mustInt64(t, expired.ID) <= mustInt64(t, roll.ID) || mustInt64(t, roll.ID) <= mustInt64(t, created.ID) {
			t.Errorf("audit events out of order: created %s, rolled %s, expired use %s", created.ID, roll.ID, expired.ID)
		}
		if events[0].Action != db.AuditKeyExpiredUse && events[0].Action != db.AuditKeyRolled {
			t.Errorf("newest audit event is %+v", events[0])
		}

		// A key may roll itself: its replacement works, it does not.
		self := lcCreateKey(t, e, admin, map[string]any{"name": "self"})
		r = lcRoll(e, self.Secret, self.APIKey.ID, 0)
		var out struct {
			RollAPIKey lcCreated `json:"rollApiKey"`
		}
		r.Decode(t, &out)
		wantHTTPError(t, e.Do(self.Secret, viewerQuery, nil), http.StatusUnauthorized, "api_key_expired", "API key expired")
		wantOK(t, e, out.RollAPIKey.Secret, "acme")
	})
}

func TestKeyRollWithGracePeriod(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		origin := "Origin: https://app.example.com"
		old := lcCreateKey(t, e, admin, map[string]any{
			"name":         "storefront",
			"domain":       "app.example.com",
			"scopes":       []string{"services:read", "bookings:read"},
			"allowedCidrs": []string{"127.0.0.0/8", "::1/128"},
		})
		wantOK(t, e, old.Secret, "acme", origin)

		before := time.Now()
		rolled := lcMustRoll(t, e, admin, old.APIKey.ID, 3600)
		after := time.Now()

		// Both keys work during the grace period.
		wantOK(t, e, old.Secret, "acme", origin)
		wantOK(t, e, rolled.Secret, "acme", origin)

		// The replacement carries the same restrictions...
		n := rolled.APIKey
		if n.Name != "storefront" || n.Domain == nil || *n.Domain != "app.example.com" ||
			!slices.Equal(n.Scopes, []string{"services:read", "bookings:read"}) ||
			!slices.Equal(n.AllowedCidrs, []string{"127.0.0.0/8", "::1/128"}) || n.ExpiresAt != nil || n.RevokedAt != nil {
			t.Fatalf("replacement key %+v does not copy name, domain, scopes and allowedCidrs of %+v", n, old.APIKey)
		}
		if stored := lcKeyByID(t, e, admin, n.ID); !slices.Equal(stored.Scopes, n.Scopes) ||
			!slices.Equal(stored.AllowedCidrs, n.AllowedCidrs) || stored.Domain == nil || *stored.Domain != *n.Domain {
			t.Fatalf("stored replacement %+v differs from the returned %+v", stored, n)
		}
		// ...and they are enforced, not just copied.
		wantHTTPError(t, e.Do(rolled.Secret, viewerQuery, nil), http.StatusForbidden, "origin_not_allowed",
			"Origin does not match API key domain")
		r := e.Do(rolled.Secret, createService, map[string]any{"input": map[string]any{"name": "x", "timezone": "UTC"}}, origin)
		if r.Code() != auth.CodeInsufficientScope {
			t.Fatalf("replacement key wrote without services:write: %s", r.Raw)
		}

		// The old key expires an hour after the roll.
		exp := lcTime(t, lcKeyByID(t, e, admin, old.APIKey.ID).ExpiresAt)
		if exp.Before(before.Add(time.Hour-time.Second)) || exp.After(after.Add(time.Hour+time.Second)) {
			t.Fatalf("old key expiresAt %s, want now+1h (%s … %s)", exp, before.Add(time.Hour), after.Add(time.Hour))
		}
		if len(lcKeys(t, e, admin)) != 3 {
			t.Fatalf("want 3 keys (admin, old, replacement)")
		}
	})
}

func TestKeyRollNeverExtendsExpiry(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		original := time.Now().Add(30 * time.Minute).UTC().Truncate(time.Second)
		old := lcCreateKey(t, e, admin, map[string]any{"name": "short-lived", "expiresAt": original.Format(time.RFC3339)})
		if got := lcTime(t, old.APIKey.ExpiresAt); !got.Equal(original) {
			t.Fatalf("created key expiresAt %s, want %s", got, original)
		}
		wantOK(t, e, old.Secret, "acme")

		rolled := lcMustRoll(t, e, admin, old.APIKey.ID, 7*24*3600)
		if got := lcTime(t, rolled.APIKey.ExpiresAt); !got.Equal(original) {
			t.Fatalf("replacement expiresAt %s, want the original %s", got, original)
		}
		if got := lcTime(t, lcKeyByID(t, e, admin, old.APIKey.ID).ExpiresAt); !got.Equal(original) {
			t.Fatalf("old key expiresAt %s after a 7-day roll, want the original %s", got, original)
		}
		if got := lcTime(t, lcKeyByID(t, e, admin, rolled.APIKey.ID).ExpiresAt); !got.Equal(original) {
			t.Fatalf("stored replacement expiresAt %s, want %s", got, original)
		}
		wantOK(t, e, old.Secret, "acme")
		wantOK(t, e, rolled.Secret, "acme")
	})
}

// TestKeyRollGraceEndsAtOriginalExpiryInCache checks that a key cached after
// a long roll still stops at its original expiry.
func TestKeyRollGraceEndsAtOriginalExpiryInCache(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		original := time.Now().Add(2 * time.Second).UTC().Truncate(time.Second)
		if !original.After(time.Now().Add(500 * time.Millisecond)) {
			original = original.Add(time.Second)
		}
		old := lcCreateKey(t, e, admin, map[string]any{"expiresAt": original.Format(time.RFC3339)})
		rolled := lcMustRoll(t, e, admin, old.APIKey.ID, 7*24*3600)
		// Cache both keys after the roll.
		r := e.Do(old.Secret, viewerQuery, nil)
		if time.Now().Before(original) && r.Status != http.StatusOK {
			t.Fatalf("old key refused before its expiry: %s", r.Raw)
		}
		e.Do(rolled.Secret, viewerQuery, nil)

		time.Sleep(time.Until(original) + 20*time.Millisecond)
		wantHTTPError(t, e.Do(old.Secret, viewerQuery, nil), http.StatusUnauthorized, "api_key_expired", "API key expired")
		wantHTTPError(t, e.Do(rolled.Secret, viewerQuery, nil), http.StatusUnauthorized, "api_key_expired", "API key expired")
	})
}

func TestKeyRollAndCreateValidation(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		k := lcCreateKey(t, e, admin, map[string]any{"name": "k"})
		wantOK(t, e, k.Secret, "acme")
		keys := len(lcKeys(t, e, admin))

		for _, in := range []int{604801, -1, 1 << 30, -604800} {
			r := lcRoll(e, admin, k.APIKey.ID, in)
			wantError(t, r, db.CodeInvalidFieldFormat, "expiresIn")
			if !strings.Contains(r.Errors[0].Message, "604800") || secretRE.Match(r.Raw) {
				t.Errorf("expiresIn %d: %s", in, r.Raw)
			}
		}
		if n := len(lcKeys(t, e, admin)); n != keys {
			t.Fatalf("refused rolls created keys: %d keys, want %d", n, keys)
		}
		if got := lcKeyByID(t, e, admin, k.APIKey.ID); got.ExpiresAt != nil {
			t.Fatalf("refused roll set expiresAt %s", *got.ExpiresAt)
		}
		wantOK(t, e, k.Secret, "acme")

		// The longest grace is accepted.
		before := time.Now()
		rolled := lcMustRoll(t, e, admin, k.APIKey.ID, 604800)
		exp := lcTime(t, lcKeyByID(t, e, admin, k.APIKey.ID).ExpiresAt)
		if exp.Before(before.Add(7*24*time.Hour-time.Second)) || exp.After(time.Now().Add(7*24*time.Hour+time.Second)) {
			t.Fatalf("expiresAt %s after a 604800 s roll", exp)
		}
		wantOK(t, e, k.Secret, "acme")
		wantOK(t, e, rolled.Secret, "acme")

		// A revoked key cannot be rolled.
		var revoked struct {
			RevokeAPIKey lcKey `json:"revokeApiKey"`
		}
		e.MustData(admin, `mutation($id: ID!) { revokeApiKey(id: $id) { `+lcKeyFields+` } }`,
			map[string]any{"id": rolled.APIKey.ID}, &revoked)
		keys = len(lcKeys(t, e, admin))
		for _, grace := range []int{0, 3600} {
			r := lcRoll(e, admin, rolled.APIKey.ID, grace)
			wantError(t, r, db.CodeInvalidRequest, "id")
			if secretRE.Match(r.Raw) {
				t.Fatalf("refused roll returned a secret: %s", r.Raw)
			}
		}
		if n := len(lcKeys(t, e, admin)); n != keys {
			t.Fatalf("rolling a revoked key created a key: %d keys, want %d", n, keys)
		}
		wantHTTPError(t, e.Do(rolled.Secret, viewerQuery, nil), http.StatusUnauthorized, "invalid_api_key", "API key revoked")

		// Unknown and malformed ids.
		wantError(t, lcRoll(e, admin, "999999999", 0), db.CodeAPIKeyNotFound, "id")
		wantError(t, lcRoll(e, admin, "0", 0), db.CodeInvalidFieldFormat, "")

		// expiresAt must be in the future.
		for _, past := range []time.Time{time.Now().Add(-time.Minute), time.Now().Add(-365 * 24 * time.Hour)} {
			r := e.Do(admin, lcCreateKeyOp, map[string]any{"input": map[string]any{"expiresAt": past.UTC().Format(time.RFC3339)}})
			wantError(t, r, db.CodeInvalidFieldFormat, "expiresAt")
			if secretRE.Match(r.Raw) {
				t.Fatalf("refused creation returned a secret: %s", r.Raw)
			}
		}
		if n := len(lcKeys(t, e, admin)); n != keys {
			t.Fatalf("refused creations created keys: %d keys, want %d", n, keys)
		}
	})
}

// apiKeyUpdates is a bun query hook counting UPDATE statements on api_keys.
type apiKeyUpdates struct{ n atomic.Int64 }

var (
	_                 bun.QueryHook = (*apiKeyUpdates)(nil)
	apiKeyUpdateQuery               = regexp.MustCompile(`(?is)^\s*UPDATE\s+"?api_keys"?\s`)
)

func (c *apiKeyUpdates) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (c *apiKeyUpdates) AfterQuery(_ context.Context, ev *bun.QueryEvent) {
	if ev.Err == nil && apiKeyUpdateQuery.MatchString(ev.Query) {
		c.n.Add(1)
	}
}

func TestKeyLastUsedAtWrittenOffHotPath(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		// The hook sees every statement of the server: it is installed on a
		// copy of the database handle that the server is started on.
		updates := &apiKeyUpdates{}
		all := &queryCounter{}
		hooked := *database
		hooked.DB = database.DB.WithQueryHook(updates).WithQueryHook(all)
		// No background flush during the test: only FlushLastUsed writes.
		e := newEnv(t, &hooked, &app.Config{LastUsedFlush: time.Hour})
		key := e.Account("acme")
		ctx := context.Background()
		start := time.Now()

		statementsBefore := all.Count()
		for range 20 {
			wantOK(t, e, key, "acme")
		}
		if all.Count() == statementsBefore {
			t.Fatal("the hook saw no statement: it is not installed on the server's database")
		}
		if n := updates.n.Load(); n != 0 {
			t.Fatalf("%d UPDATEs of api_keys while serving 20 requests, want 0 (lastUsedAt is written off the hot path)", n)
		}
		if err := e.App.Verifier.FlushLastUsed(ctx); err != nil {
			t.Fatal(err)
		}
		if n := updates.n.Load(); n != 1 {
			t.Fatalf("%d UPDATEs of api_keys after FlushLastUsed, want exactly 1 for 20 uses of one key", n)
		}
		if err := e.App.Verifier.FlushLastUsed(ctx); err != nil {
			t.Fatal(err)
		}
		if n := updates.n.Load(); n != 1 {
			t.Fatalf("a flush without new uses wrote: %d UPDATEs", n)
		}

		// Read it back with the same key (through the database, not the cache).
		id, _ := lcSelf(t, e, key)
		got := lcKeyByID(t, e, key, id)
		used := lcTime(t, got.LastUsedAt)
		if used.Before(start.Add(-time.Second)) || used.After(time.Now().Add(time.Second)) {
			t.Fatalf("lastUsedAt %s, want the time of the requests (after %s)", used, start)
		}
		k, err := database.APIKey(ctx, mustAccountOf(t, database, id), mustInt64(t, id))
		if err != nil || k.LastUsedAt == nil || !k.LastUsedAt.Equal(used) {
			t.Fatalf("stored lastUsedAt %v (err %v), API says %s", k.LastUsedAt, err, used)
		}
	})
}

// mustAccountOf is the account id of a key, read straight from the database.
func mustAccountOf(t *testing.T, database *db.DB, keyID string) int64 {
	t.Helper()
	var accountID int64
	if err := database.NewSelect().Model((*db.APIKey)(nil)).Column("account_id").
		Where("id = ?", mustInt64(t, keyID)).Scan(context.Background(), &accountID); err != nil {
		t.Fatalf("account of key %s: %v", keyID, err)
	}
	return accountID
}

// The audit trail pages newest first and records a revocation through the
// API with the revoking key's prefix, on both dialects.
func TestAuditEventsPages(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		_, adminPrefix := lcSelf(t, e, admin)
		var created []lcCreated
		for i := range 3 {
			created = append(created, lcCreateKey(t, e, admin, map[string]any{"name": fmt.Sprintf("k%d", i)}))
		}
		e.MustData(admin, revokeKey, map[string]any{"id": created[1].APIKey.ID}, &struct{}{})
		all := lcAudit(t, e, admin)
		ev := lcFindAudit(t, all, db.AuditKeyRevoked, lcKeyTarget(created[1].APIKey.ID))
		if ev.ActorKeyPrefix != adminPrefix {
			t.Fatalf("api_key.revoked actor %q, want %q", ev.ActorKeyPrefix, adminPrefix)
		}
		// Pages of 2 give the same events in the same order.
		var paged []lcAuditEvent
		var after any
		for page := 0; ; page++ {
			var out struct {
				AuditEvents struct {
					TotalCount int
					Nodes      []lcAuditEvent
					PageInfo   struct {
						HasNextPage bool
						EndCursor   *string
					}
				}
			}
			e.MustData(admin, `query($after: String) { auditEvents(first: 2, after: $after) {
				totalCount nodes { id action actorKeyPrefix target occurredAt } pageInfo { hasNextPage endCursor } } }`,
				map[string]any{"after": after}, &out)
			if out.AuditEvents.TotalCount != len(all) || len(out.AuditEvents.Nodes) > 2 {
				t.Fatalf("page %d: totalCount %d, %d nodes; want %d in all", page, out.AuditEvents.TotalCount, len(out.AuditEvents.Nodes), len(all))
			}
			paged = append(paged, out.AuditEvents.Nodes...)
			if !out.AuditEvents.PageInfo.HasNextPage {
				break
			}
			after = *out.AuditEvents.PageInfo.EndCursor
		}
		if !reflect.DeepEqual(paged, all) {
			t.Fatalf("paged %+v\nwhole %+v", paged, all)
		}
		if all[0].Action != db.AuditKeyRevoked || all[len(all)-1].Action != db.AuditKeyCreated {
			t.Fatalf("not newest first: %+v", all)
		}
	})
}

// An expired key used in a loop is audited once a minute, not once per
// request: every request still gets 401 "API key expired".
func TestExpiredUseAuditedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil)
	admin := e.Account("acme")
	old := lcCreateKey(t, e, admin, map[string]any{"name": "old"})
	lcMustRoll(t, e, admin, old.APIKey.ID, 0)
	for range 5 {
		wantHTTPError(t, e.Do(old.Secret, viewerQuery, nil), http.StatusUnauthorized, "api_key_expired", "API key expired")
	}
	n := 0
	for _, ev := range lcAudit(t, e, admin) {
		if ev.Action == db.AuditKeyExpiredUse && ev.Target == lcKeyTarget(old.APIKey.ID) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d api_key.expired_use events for 5 uses within a minute, want 1", n)
	}
}
