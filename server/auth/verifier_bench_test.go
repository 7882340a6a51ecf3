package auth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/auth"
	"github.com/reservekit/reservekit/server/ratelimit"
)

func benchKey(b testing.TB) (*auth.Verifier, string) {
	database := dbtest.Open(b, dbtest.SQLite)
	ctx := context.Background()
	rate, burst := 1<<30, 1<<30
	a, err := database.CreateAccount(ctx, "bench", db.PlanGrowth, db.AccountLimits{Rate: &rate, Burst: &burst})
	if err != nil {
		b.Fatal(err)
	}
	_, secret, err := auth.Issue(ctx, database, a.ID, nil, auth.KeySpec{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	v := auth.NewVerifier(database, 1000, time.Hour)
	if _, err := v.Verify(ctx, secret); err != nil { // fills the cache
		b.Fatal(err)
	}
	return v, secret
}

// Verifying a cached key allocates nothing.
func TestVerifyCachedAllocatesNothing(t *testing.T) {
	v, secret := benchKey(t)
	ctx := context.Background()
	if n := testing.AllocsPerRun(200, func() {
		if _, err := v.Verify(ctx, secret); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Verify of a cached key: %v allocations per call, want 0", n)
	}
}

// BenchmarkVerifyCached is the key lookup of a cached key: format and
// checksum check, SHA-256, LRU hit, expiry check, lastUsedAt mark.
func BenchmarkVerifyCached(b *testing.B) {
	v, secret := benchKey(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(ctx, secret); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMiddlewareCached is the auth middleware for a cached key (header
// parsing, IP failure check, verification, caller in the context) in front
// of an empty handler; "+ratelimit" adds the per-account rate limiter, i.e.
// the whole pre-GraphQL chain. The response recorder's own allocations are
// included.
func BenchmarkMiddlewareCached(b *testing.B) {
	v, secret := benchKey(b)
	mw := auth.NewMiddleware(v, 30, time.Minute, nil, func(*http.Request, error) {})
	empty := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for name, h := range map[string]http.Handler{
		"auth":           mw.Handler(empty),
		"auth+ratelimit": mw.Handler(ratelimit.New(nil).Handler(empty)),
	} {
		b.Run(name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
			req.Header.Set("Authorization", "Bearer "+secret)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
