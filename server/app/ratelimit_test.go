package app_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app/apptest"
	"github.com/reservekit/reservekit/server/ratelimit"
)

// The limiter's windows start with the first request that uses them, so a
// short run of requests right after an account's first one stays within a
// single window and the counts below are exact.

const rateQuery = `{ viewer { account { name } } }`

// headerInt reads an integer response header.
func headerInt(t *testing.T, r *apptest.Response, name string) int64 {
	t.Helper()
	v := r.Header.Get(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("header %s = %q is not an integer (HTTP %d %s)", name, v, r.Status, r.Raw)
	}
	return n
}

// wantResetSoon checks X-RateLimit-Reset: a Unix time at most one window
// (plus rounding) away.
func wantResetSoon(t *testing.T, r *apptest.Response, window time.Duration) {
	t.Helper()
	reset := headerInt(t, r, "X-RateLimit-Reset")
	now := time.Now().Unix()
	if reset < now-1 || reset > now+int64(window/time.Second)+2 {
		t.Errorf("X-RateLimit-Reset %d is not a Unix time within %s of now (%d)", reset, window, now)
	}
}

// burst sends n sequential requests with key and returns the responses.
func burst(t *testing.T, e *apptest.Env, key string, n int) []*apptest.Response {
	t.Helper()
	out := make([]*apptest.Response, n)
	for i := range out {
		out[i] = e.Do(key, rateQuery, nil)
	}
	return out
}

// wantLimited checks that exactly limit requests of rs succeeded, in order,
// with the X-RateLimit headers, and the rest were refused with 429.
func wantLimited(t *testing.T, rs []*apptest.Response, limit int, retryAfter int) {
	t.Helper()
	window := time.Duration(retryAfter) * time.Second
	ok := 0
	for i, r := range rs {
		if r.Status == http.StatusOK && len(r.Errors) == 0 {
			ok++
			if i >= limit {
				t.Fatalf("request %d succeeded after the limit of %d", i+1, limit)
			}
			if got := headerInt(t, r, "X-RateLimit-Limit"); got != int64(limit) {
				t.Errorf("request %d: X-RateLimit-Limit %d, want %d", i+1, got, limit)
			}
			if got := headerInt(t, r, "X-RateLimit-Remaining"); got != int64(limit-i-1) {
				t.Errorf("request %d: X-RateLimit-Remaining %d, want %d", i+1, got, limit-i-1)
			}
			wantResetSoon(t, r, window)
			if r.Header.Get("Retry-After") != "" {
				t.Errorf("request %d: successful response has Retry-After", i+1)
			}
			continue
		}
		msg := "Rate limit exceeded. Try again in " + strconv.Itoa(retryAfter) + " seconds."
		wantHTTPError(t, r, http.StatusTooManyRequests, "rate_limit_exceeded", msg)
		if got := r.Errors[0].Extensions["retryAfter"]; got != float64(retryAfter) {
			t.Errorf("request %d: extensions.retryAfter %v, want %d", i+1, got, retryAfter)
		}
		if got := headerInt(t, r, "Retry-After"); got != int64(retryAfter) {
			t.Errorf("request %d: Retry-After %d, want %d", i+1, got, retryAfter)
		}
		if got := headerInt(t, r, "X-RateLimit-Limit"); got != int64(limit) {
			t.Errorf("request %d: X-RateLimit-Limit %d, want %d", i+1, got, limit)
		}
		if got := headerInt(t, r, "X-RateLimit-Remaining"); got != 0 {
			t.Errorf("request %d: X-RateLimit-Remaining %d, want 0", i+1, got)
		}
		wantResetSoon(t, r, window)
	}
	if ok != limit {
		t.Fatalf("%d of %d requests succeeded, want exactly %d", ok, len(rs), limit)
	}
}

func TestRateLimitStarterPlan(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		key := e.AccountWith("starter", db.PlanStarter, db.AccountLimits{}, nil)
		// Starter: 5 requests/s with a burst of 10, so the burst refills in 2 s.
		wantLimited(t, burst(t, e, key, 15), 10, 2)
	})
}

func TestRateLimitAccountsDoNotShareBuckets(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		a := e.AccountWith("a", db.PlanStarter, db.AccountLimits{}, nil)
		b := e.AccountWith("b", db.PlanStarter, db.AccountLimits{}, nil)
		wantLimited(t, burst(t, e, a, 11), 10, 2)

		r := e.Do(b, rateQuery, nil)
		if r.Status != http.StatusOK || len(r.Errors) > 0 {
			t.Fatalf("account b throttled by account a's requests: HTTP %d %s", r.Status, r.Raw)
		}
		if got := headerInt(t, r, "X-RateLimit-Remaining"); got != 9 {
			t.Fatalf("account b's first request: X-RateLimit-Remaining %d, want 9", got)
		}
		if r := e.Do(a, rateQuery, nil); r.Status != http.StatusTooManyRequests {
			t.Fatalf("account a no longer limited after b's request: HTTP %d", r.Status)
		}
	})
}

func TestRateLimitOverrides(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)

		// A larger burst than the plan's 10, refilling in 6 s.
		rate, bigBurst := 2, 12
		big := e.AccountWith("big", db.PlanStarter, db.AccountLimits{Rate: &rate, Burst: &bigBurst}, nil)
		wantLimited(t, burst(t, e, big, 14), 12, 6)

		// A smaller one: 3 requests, refilling in 3 s.
		one, small := 1, 3
		tight := e.AccountWith("tight", db.PlanGrowth, db.AccountLimits{Rate: &one, Burst: &small}, nil)
		wantLimited(t, burst(t, e, tight, 5), 3, 3)

		// Developer without overrides: burst 20 in 2 s.
		dev := e.AccountWith("dev", db.PlanDeveloper, db.AccountLimits{}, nil)
		wantLimited(t, burst(t, e, dev, 22), 20, 2)
	})
}

func TestRateLimitRetryAfterRoundsUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil)
	// 2 requests/s, burst 3: the window is 1.5 s, announced as 2 s.
	rate, b := 2, 3
	key := e.AccountWith("frac", db.PlanGrowth, db.AccountLimits{Rate: &rate, Burst: &b}, nil)
	wantLimited(t, burst(t, e, key, 4), 3, 2)
}

func TestRateLimitIgnoresAuthFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil)
	key := e.AccountWith("starter", db.PlanStarter, db.AccountLimits{}, nil)
	// Unauthenticated failures carry no account and use none of its budget.
	for range 5 {
		if r := e.Do("", rateQuery, nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("HTTP %d, want 401", r.Status)
		}
	}
	wantLimited(t, burst(t, e, key, 11), 10, 2)
}

func TestRateLimitsForPlans(t *testing.T) {
	t.Parallel()
	three, nine := 3, 9
	cases := []struct {
		account db.Account
		want    ratelimit.Limits
		window  time.Duration
	}{
		{db.Account{Plan: db.PlanStarter}, ratelimit.Limits{Rate: 5, Burst: 10}, 2 * time.Second},
		{db.Account{Plan: db.PlanDeveloper}, ratelimit.Limits{Rate: 10, Burst: 20}, 2 * time.Second},
		{db.Account{Plan: db.PlanGrowth}, ratelimit.Limits{Rate: 20, Burst: 50}, 2500 * time.Millisecond},
		{db.Account{Plan: db.PlanGrowth, Rate: &three, Burst: &nine}, ratelimit.Limits{Rate: 3, Burst: 9}, 3 * time.Second},
		{db.Account{Plan: db.PlanStarter, Rate: &three}, ratelimit.Limits{Rate: 5, Burst: 10}, 2 * time.Second},
		{db.Account{Plan: "unknown"}, ratelimit.Limits{Rate: 5, Burst: 10}, 2 * time.Second},
	}
	for _, c := range cases {
		got := ratelimit.For(&c.account)
		if got != c.want || got.Window() != c.window {
			t.Errorf("For(%+v) = %+v (window %s), want %+v (window %s)", c.account, got, got.Window(), c.want, c.window)
		}
	}
}
