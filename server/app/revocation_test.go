package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app/apptest"
	"github.com/reservekit/reservekit/server/auth"
)

// propagationBound is how soon a revocation on one instance must reach the
// others sharing the Postgres database.
const propagationBound = time.Second

// lcPollUntilRefused polls e with key every 5 ms until it answers status and
// code, and returns how long that took since start; it fails the test when
// the answer does not come within limit.
func lcPollUntilRefused(t *testing.T, e *apptest.Env, key string, start time.Time, limit time.Duration, status int, code, message string) time.Duration {
	t.Helper()
	d, ok := lcWaitRefused(t, e, key, start, limit, status, code, message)
	if !ok {
		t.Fatalf("instance still accepts the key %v after the change (bound %v)", d.Round(time.Millisecond), limit)
	}
	return d
}

// lcWaitRefused is lcPollUntilRefused reporting a timeout instead of failing.
func lcWaitRefused(t *testing.T, e *apptest.Env, key string, start time.Time, limit time.Duration, status int, code, message string) (time.Duration, bool) {
	t.Helper()
	for {
		r := e.Do(key, viewerQuery, nil)
		elapsed := time.Since(start)
		switch {
		case r.Status == status:
			wantHTTPError(t, r, status, code, message)
			return elapsed, true
		case r.Status != http.StatusOK:
			t.Fatalf("answered HTTP %d while waiting for %d %s: %s", r.Status, status, code, r.Raw)
		}
		if elapsed > limit {
			return elapsed, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lcTwoInstances starts two servers on one fresh Postgres database, as two
// replicas of a deployment would run, and returns them with a full-access
// key.
//
// B's listener connects in the background after app.New returns, and a
// change announced before it listens is never heard (the key then stays
// cached until KeyCacheTTL). So before returning, revocations of throw-away
// keys are repeated until one reaches B within the bound: the measurements
// of the tests start from a running listener.
func lcTwoInstances(t *testing.T) (database *db.DB, a, b *apptest.Env, admin string) {
	t.Helper()
	database = dbtest.Open(t, dbtest.Postgres)
	a = newEnv(t, database, nil)
	b = newEnv(t, database, nil)
	admin = a.Account("acme")
	deadline := time.Now().Add(15 * time.Second)
	for attempt := 1; ; attempt++ {
		warm := lcCreateKey(t, a, admin, map[string]any{"name": "warm-up"})
		wantOK(t, b, warm.Secret, "acme")
		start := time.Now()
		a.MustData(admin, revokeKey, map[string]any{"id": warm.APIKey.ID}, &struct{}{})
		d, ok := lcWaitRefused(t, b, warm.Secret, start, propagationBound, http.StatusUnauthorized, "invalid_api_key", "API key revoked")
		if ok {
			if attempt > 1 {
				t.Logf("warm-up: revocation %d was the first B heard (after %v); the earlier ones came before its listener ran",
					attempt, d.Round(100*time.Microsecond))
			}
			return database, a, b, admin
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance B never heard a revocation in %d attempts: its key-change listener is not running", attempt)
		}
	}
}

func TestRevocationReachesOtherInstances(t *testing.T) {
	t.Parallel()
	_, a, b, admin := lcTwoInstances(t)
	k := lcCreateKey(t, a, admin, map[string]any{"name": "leaked"})
	wantOK(t, b, k.Secret, "acme") // cached on B
	wantOK(t, a, k.Secret, "acme") // and on A

	start := time.Now()
	a.MustData(admin, revokeKey, map[string]any{"id": k.APIKey.ID}, &struct{}{})
	wantHTTPError(t, a.Do(k.Secret, viewerQuery, nil), http.StatusUnauthorized, "invalid_api_key", "API key revoked")
	d := lcPollUntilRefused(t, b, k.Secret, start, propagationBound, http.StatusUnauthorized, "invalid_api_key", "API key revoked")
	t.Logf("revokeApiKey on A reached B after %v", d.Round(100*time.Microsecond))
	// It stays refused, and other keys keep working on B.
	wantHTTPError(t, b.Do(k.Secret, viewerQuery, nil), http.StatusUnauthorized, "invalid_api_key", "API key revoked")
	wantOK(t, b, admin, "acme")
}

func TestRollReachesOtherInstances(t *testing.T) {
	t.Parallel()
	_, a, b, admin := lcTwoInstances(t)
	k := lcCreateKey(t, a, admin, map[string]any{"name": "rotated"})
	wantOK(t, b, k.Secret, "acme")
	wantOK(t, a, k.Secret, "acme")

	start := time.Now()
	rolled := lcMustRoll(t, a, admin, k.APIKey.ID, 0)
	wantHTTPError(t, a.Do(k.Secret, viewerQuery, nil), http.StatusUnauthorized, "api_key_expired", "API key expired")
	d := lcPollUntilRefused(t, b, k.Secret, start, propagationBound, http.StatusUnauthorized, "api_key_expired", "API key expired")
	t.Logf("rollApiKey(expiresIn: 0) on A reached B after %v", d.Round(100*time.Microsecond))
	wantOK(t, b, rolled.Secret, "acme")
}

func TestCommandLineRevocationReachesInstances(t *testing.T) {
	t.Parallel()
	database, a, b, admin := lcTwoInstances(t)
	k := lcCreateKey(t, a, admin, map[string]any{"name": "cli"})
	wantOK(t, a, k.Secret, "acme")
	wantOK(t, b, k.Secret, "acme")

	start := time.Now()
	// What `reservekit keys revoke` does: no instance's verifier is involved.
	revoked, err := database.RevokeAPIKey(context.Background(), 0, mustInt64(t, k.APIKey.ID), nil)
	if err != nil || revoked.RevokedAt == nil {
		t.Fatalf("RevokeAPIKey: %+v, %v", revoked, err)
	}
	for name, e := range map[string]*apptest.Env{"A": a, "B": b} {
		d := lcPollUntilRefused(t, e, k.Secret, start, propagationBound, http.StatusUnauthorized, "invalid_api_key", "API key revoked")
		t.Logf("command-line revocation reached %s after %v", name, d.Round(100*time.Microsecond))
	}
	ev := lcFindAudit(t, lcAudit(t, a, admin), db.AuditKeyRevoked, lcKeyTarget(k.APIKey.ID))
	if ev.ActorKeyPrefix != "" {
		t.Errorf("command-line revocation recorded actor %q, want none", ev.ActorKeyPrefix)
	}
}

// TestRevocationBeforeListenerConnects covers an instance that is starting:
// app.New starts the key-change listener in the background and serves
// requests at once, so a key can be cached, and then revoked elsewhere,
// before the listener has run LISTEN. Once the listener is up, such a key
// must not go on working until the cache entry expires (KeyCacheTTL, 30 s by
// default). The verifier is driven directly to order these steps.
func TestRevocationBeforeListenerConnects(t *testing.T) {
	t.Parallel()
	database := dbtest.Open(t, dbtest.Postgres)
	ctx := context.Background()
	acct, err := database.CreateAccount(ctx, "acme", db.PlanGrowth, db.AccountLimits{})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string) (int64, string) {
		k, secret, err := auth.Issue(ctx, database, acct.ID, nil, auth.KeySpec{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return k.ID, secret
	}
	v := auth.NewVerifier(database, 100, time.Minute)

	// A request before the listener runs caches the key...
	early, earlySecret := issue("early")
	if _, err := v.Verify(ctx, earlySecret); err != nil {
		t.Fatal(err)
	}
	// ...and another instance (or the command line) revokes it.
	if _, err := database.RevokeAPIKey(ctx, 0, early, nil); err != nil {
		t.Fatal(err)
	}

	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		database.Listen(lctx, v.Listeners(), func(err error) { t.Logf("listener: %v", err) })
	}()
	t.Cleanup(func() { stop(); <-done })

	// The listener is up once it has delivered a later revocation.
	deadline := time.Now().Add(10 * time.Second)
	for heard := false; !heard; {
		id, secret := issue("probe")
		if _, err := v.Verify(ctx, secret); err != nil {
			t.Fatal(err)
		}
		if _, err := database.RevokeAPIKey(ctx, 0, id, nil); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(propagationBound); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			if _, err := v.Verify(ctx, secret); err == auth.ErrRevoked {
				heard = true
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener never delivered a revocation")
		}
	}

	if _, err := v.Verify(ctx, earlySecret); err != auth.ErrRevoked {
		t.Fatalf("a key revoked before the listener connected is still accepted from the cache once it listens (err %v); "+
			"it would work until KeyCacheTTL expires", err)
	}
}

// On SQLite a key revoked by the command line (another process, no
// notifications) stops working within about a second: the server polls.
func TestCommandLineRevocationOnSQLite(t *testing.T) {
	t.Parallel()
	database := dbtest.Open(t, dbtest.SQLite)
	e := newEnv(t, database, nil)
	admin := e.Account("acme")
	k := lcCreateKey(t, e, admin, map[string]any{"name": "cli"})
	wantOK(t, e, k.Secret, "acme") // cached now
	// A second handle on the file, as `server keys revoke` would open.
	cli, err := db.Open(context.Background(), "sqlite:"+sqlitePath(t, database))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	start := time.Now()
	if _, err := cli.RevokeAPIKey(context.Background(), 0, mustInt64(t, k.APIKey.ID), nil); err != nil {
		t.Fatal(err)
	}
	d := lcPollUntilRefused(t, e, k.Secret, start, 3*time.Second, http.StatusUnauthorized, "invalid_api_key", "API key revoked")
	t.Logf("command-line revocation on SQLite reached the server after %v", d.Round(time.Millisecond))
	wantOK(t, e, admin, "acme")
}

// sqlitePath is the file of an SQLite test database.
func sqlitePath(t *testing.T, database *db.DB) string {
	t.Helper()
	var file string
	if err := database.QueryRowContext(context.Background(), "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
		t.Fatal(err)
	}
	return file
}
