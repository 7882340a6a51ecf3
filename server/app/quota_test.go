package app_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/app/apptest"
	"github.com/reservekit/reservekit/server/ratelimit"
)

// Monthly quotas (server/ratelimit/quota.go) and the rate-limit headers
// and query (server/ratelimit/status.go).

const usageRateLimitQuery = `{ rateLimit { limit remaining resetAt monthlyQuota monthlyUsed monthlyResetAt } }`

// usageRateLimit is the rateLimit query's answer.
type usageRateLimit struct {
	Limit          int
	Remaining      int
	ResetAt        string
	MonthlyQuota   *int
	MonthlyUsed    int
	MonthlyResetAt string
}

// usageMonthNow is the current calendar month (UTC) and its end, computed
// independently of the code under test.
func usageMonthNow() (month string, reset time.Time) {
	now := time.Now().UTC()
	return now.Format("2006-01"), time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
}

// usageSameMonth skips the test when the month changed while it ran (the
// counts restart then, so its expectations do not hold).
func usageSameMonth(t *testing.T, month string) {
	t.Helper()
	if now, _ := usageMonthNow(); now != month {
		t.Skipf("the month changed during the test (%s → %s)", month, now)
	}
}

// usageQuotaEnv starts a server that never flushes usage by itself (the
// test flushes), unless cfg says otherwise.
func usageQuotaEnv(t *testing.T, database *db.DB, cfg *app.Config) *apptest.Env {
	t.Helper()
	c := app.Config{UsageFlush: time.Hour}
	if cfg != nil {
		c = *cfg
	}
	return newEnv(t, database, &c)
}

// usageQuotaAccount creates an account without rate limits worth speaking
// of and with a monthly quota; it returns the key and the account's id.
func usageQuotaAccount(t *testing.T, e *apptest.Env, name string, quota int64) (key string, accountID int64) {
	t.Helper()
	rate, burst := 100_000, 100_000
	key = e.AccountWith(name, db.PlanGrowth, db.AccountLimits{Rate: &rate, Burst: &burst, MonthlyQuota: &quota}, nil)
	return key, usageAccountID(t, e.DB, name)
}

func usageAccountID(t *testing.T, database *db.DB, name string) int64 {
	t.Helper()
	a, err := database.AccountByName(context.Background(), name)
	if err != nil {
		t.Fatalf("account %s: %v", name, err)
	}
	return a.ID
}

// usageStored is the account's usage_months row for month.
func usageStored(t *testing.T, database *db.DB, accountID int64, month string) int64 {
	t.Helper()
	n, err := database.UsageOf(context.Background(), accountID, month)
	if err != nil {
		t.Fatalf("UsageOf: %v", err)
	}
	return n
}

func usageFlush(t *testing.T, e *apptest.Env) {
	t.Helper()
	if err := e.App.Quotas.Flush(context.Background()); err != nil {
		t.Fatalf("flush usage: %v", err)
	}
}

// usageRate runs the rateLimit query, which must succeed.
func usageRate(t *testing.T, e *apptest.Env, key string) (usageRateLimit, *apptest.Response) {
	t.Helper()
	r := e.Do(key, usageRateLimitQuery, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("rateLimit: HTTP %d: %s", r.Status, r.Raw)
	}
	var out struct{ RateLimit usageRateLimit }
	r.Decode(t, &out)
	return out.RateLimit, r
}

// usageWantQuotaExceeded checks a 429 api_limit_exceeded for a quota.
func usageWantQuotaExceeded(t *testing.T, r *apptest.Response, quota int64, reset time.Time) {
	t.Helper()
	msg := fmt.Sprintf("Monthly quota of %d requests (cost units) exceeded; it resets at %s.", quota, reset.Format(time.RFC3339))
	wantHTTPError(t, r, http.StatusTooManyRequests, "api_limit_exceeded", msg)
	want := int64(math.Ceil(time.Until(reset).Seconds()))
	retry := headerInt(t, r, "Retry-After")
	if retry < want-2 || retry > want+2 {
		t.Errorf("Retry-After %d, want about %d (seconds to %s)", retry, want, reset.Format(time.RFC3339))
	}
	ext := r.Errors[0].Extensions
	if ext["retryAfter"] != float64(retry) || ext["monthlyQuota"] != float64(quota) || ext["resetAt"] != reset.Format(time.RFC3339) {
		t.Errorf("extensions %v, want retryAfter %d, monthlyQuota %d, resetAt %s", ext, retry, quota, reset.Format(time.RFC3339))
	}
	if got := usageHeaderItem(t, r.Header.Values("RateLimit"), "monthly"); got == nil || got["r"] != 0 {
		t.Errorf("RateLimit %q: want a monthly item with r=0", r.Header.Values("RateLimit"))
	}
}

// usageItemRE is one item of RateLimit or RateLimit-Policy:
// "name";key=int;key=int.
var usageItemRE = regexp.MustCompile(`^"([a-z]+)"((?:;[a-z]+=\d+)+)$`)
var usageParamRE = regexp.MustCompile(`;([a-z]+)=(\d+)`)

// usageHeaderItems parses the values of an IETF draft RateLimit or
// RateLimit-Policy header (several lines or a comma-separated list) into
// their items, in order, failing on a malformed one.
func usageHeaderItems(t *testing.T, values []string) []string {
	t.Helper()
	var names []string
	for _, v := range values {
		for _, item := range regexp.MustCompile(`\s*,\s*`).Split(v, -1) {
			m := usageItemRE.FindStringSubmatch(item)
			if m == nil {
				t.Fatalf("malformed item %q in %q", item, values)
			}
			names = append(names, m[1])
		}
	}
	return names
}

// usageHeaderItem returns the parameters of the named item, or nil.
func usageHeaderItem(t *testing.T, values []string, name string) map[string]int64 {
	t.Helper()
	usageHeaderItems(t, values)
	for _, v := range values {
		for _, item := range regexp.MustCompile(`\s*,\s*`).Split(v, -1) {
			m := usageItemRE.FindStringSubmatch(item)
			if m[1] != name {
				continue
			}
			params := map[string]int64{}
			for _, p := range usageParamRE.FindAllStringSubmatch(m[2], -1) {
				n, _ := strconv.ParseInt(p[2], 10, 64)
				params[p[1]] = n
			}
			return params
		}
	}
	return nil
}

func TestQuotaMonthlyOverride(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		for _, flushed := range []bool{false, true} {
			name := map[bool]string{false: "unflushed", true: "flushed"}[flushed]
			t.Run(name, func(t *testing.T) {
				month, reset := usageMonthNow()
				e := usageQuotaEnv(t, database, nil)
				key, id := usageQuotaAccount(t, e, "quota-"+name, 5)

				for i := range 5 {
					rl, _ := usageRate(t, e, key)
					if rl.MonthlyQuota == nil || *rl.MonthlyQuota != 5 || rl.MonthlyUsed != i {
						t.Fatalf("request %d: monthlyQuota %v monthlyUsed %d, want 5 and %d", i+1, rl.MonthlyQuota, rl.MonthlyUsed, i)
					}
				}
				if flushed {
					usageFlush(t, e)
					if n := usageStored(t, database, id, month); n != 5 {
						t.Fatalf("usage_months holds %d after a flush, want 5", n)
					}
				} else if n := usageStored(t, database, id, month); n != 0 {
					t.Fatalf("usage_months holds %d before any flush: usage written per request", n)
				}

				for range 3 {
					usageWantQuotaExceeded(t, e.Do(key, usageRateLimitQuery, nil), 5, reset)
				}
				// Refused requests are not counted.
				usageFlush(t, e)
				if n := usageStored(t, database, id, month); n != 5 {
					t.Fatalf("usage_months holds %d, want 5 (refused requests must not count)", n)
				}
				usageWantQuotaExceeded(t, e.Do(key, `{ __typename }`, nil), 5, reset)

				// A new instance (a restart) reads the stored usage.
				e2 := usageQuotaEnv(t, database, nil)
				usageWantQuotaExceeded(t, e2.Do(key, `{ __typename }`, nil), 5, reset)
				usageSameMonth(t, month)
			})
		}
	})
}

// Usage counts each request's cost (at least 1).
func TestQuotaCountsCost(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		month, reset := usageMonthNow()
		e := usageQuotaEnv(t, database, nil)
		key, id := usageQuotaAccount(t, e, "costly", 30)

		page := `{ services(first: 20) { nodes { id } } }` // 1 + 20 × 1
		r := e.Do(key, page, nil)
		if r.Status != http.StatusOK || len(r.Errors) > 0 || usageRequestedCost(t, r.Raw) != 21 {
			t.Fatalf("first page: HTTP %d %s", r.Status, r.Raw)
		}
		if rl, _ := usageRate(t, e, key); rl.MonthlyUsed != 21 {
			t.Fatalf("monthlyUsed %d after a request costing 21, want 21", rl.MonthlyUsed)
		}
		// 22 used < 30: admitted, even though it goes past the quota.
		if r := e.Do(key, page, nil); r.Status != http.StatusOK || len(r.Errors) > 0 {
			t.Fatalf("second page (22 of 30 used): HTTP %d %s", r.Status, r.Raw)
		}
		usageWantQuotaExceeded(t, e.Do(key, `{ __typename }`, nil), 30, reset)
		usageFlush(t, e)
		if n := usageStored(t, database, id, month); n != 21+1+21 {
			t.Fatalf("usage_months holds %d, want %d", n, 21+1+21)
		}

		// Free operations still count one.
		free, freeID := usageQuotaAccount(t, e, "free", 2)
		for range 2 {
			if r := e.Do(free, `{ __typename }`, nil); r.Status != http.StatusOK || usageRequestedCost(t, r.Raw) != 0 {
				t.Fatalf("free operation: HTTP %d %s", r.Status, r.Raw)
			}
		}
		usageWantQuotaExceeded(t, e.Do(free, `{ __typename }`, nil), 2, reset)
		usageFlush(t, e)
		if n := usageStored(t, database, freeID, month); n != 2 {
			t.Fatalf("usage_months holds %d for two free operations, want 2", n)
		}

		// A batch counts the cost of all its operations.
		batched, batchedID := usageQuotaAccount(t, e, "batched", 1000)
		usageBatch(t, e, batched, []map[string]any{usageOp(page, nil), usageOp(`{ services(first: 5) { nodes { id } } }`, nil)})
		usageFlush(t, e)
		if n := usageStored(t, database, batchedID, month); n != 21+6 {
			t.Fatalf("usage_months holds %d for a batch costing 21 + 6, want 27", n)
		}
		usageSameMonth(t, month)
	})
}

// Two instances on one database share the quota through the store.
func TestQuotaSharedAcrossInstances(t *testing.T) {
	t.Parallel()
	database := dbtest.Open(t, dbtest.Postgres)
	month, reset := usageMonthNow()
	a := usageQuotaEnv(t, database, nil)
	b := usageQuotaEnv(t, database, nil)
	key, id := usageQuotaAccount(t, a, "shared", 10)

	for i := range 6 {
		if r := a.Do(key, `{ __typename }`, nil); r.Status != http.StatusOK {
			t.Fatalf("A request %d: HTTP %d %s", i+1, r.Status, r.Raw)
		}
	}
	usageFlush(t, a)
	// B reads A's 6 from the database and admits 4 more.
	for i := range 4 {
		rl, r := usageRate(t, b, key)
		if len(r.Errors) > 0 || rl.MonthlyUsed != 6+i {
			t.Fatalf("B request %d: monthlyUsed %d, want %d: %s", i+1, rl.MonthlyUsed, 6+i, r.Raw)
		}
	}
	usageWantQuotaExceeded(t, b.Do(key, `{ __typename }`, nil), 10, reset)
	usageFlush(t, b)
	if n := usageStored(t, database, id, month); n != 10 {
		t.Fatalf("usage_months holds %d, want 10", n)
	}
	// A sees B's use after its own next flush.
	usageFlush(t, a)
	usageWantQuotaExceeded(t, a.Do(key, `{ __typename }`, nil), 10, reset)
	usageSameMonth(t, month)
}

// With the background flush, one instance's use reaches the other by itself.
func TestQuotaSharedByBackgroundFlush(t *testing.T) {
	t.Parallel()
	database := dbtest.Open(t, dbtest.Postgres)
	_, reset := usageMonthNow()
	cfg := &app.Config{UsageFlush: 50 * time.Millisecond}
	a := usageQuotaEnv(t, database, cfg)
	b := usageQuotaEnv(t, database, cfg)
	key, _ := usageQuotaAccount(t, a, "background", 3)
	if r := b.Do(key, `{ __typename }`, nil); r.Status != http.StatusOK { // B has read 0
		t.Fatalf("B: HTTP %d %s", r.Status, r.Raw)
	}
	for range 2 {
		if r := a.Do(key, `{ __typename }`, nil); r.Status != http.StatusOK {
			t.Fatalf("A: HTTP %d %s", r.Status, r.Raw)
		}
	}
	// A refuses once B's request reaches it; B once A's two reach it.
	for _, e := range []*apptest.Env{a, b} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := e.Do(key, `{ __typename }`, nil)
			if r.Status == http.StatusTooManyRequests {
				usageWantQuotaExceeded(t, r, 3, reset)
				break
			}
			if r.Status != http.StatusOK {
				t.Fatalf("HTTP %d %s", r.Status, r.Raw)
			}
			if time.Now().After(deadline) {
				t.Fatal("the other instance's usage never arrived")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// `server accounts update --monthly-quota` goes through UpdateAccount.
func TestQuotaUpdateAccount(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		ctx := context.Background()
		if _, err := database.CreateAccount(ctx, "upd", db.PlanStarter, db.AccountLimits{}); err != nil {
			t.Fatal(err)
		}
		a, err := database.AccountByName(ctx, "upd")
		if err != nil {
			t.Fatal(err)
		}
		if a.MonthlyQuota != nil || ratelimit.QuotaFor(a) != 10_000 {
			t.Fatalf("new starter account: MonthlyQuota %v, QuotaFor %d", a.MonthlyQuota, ratelimit.QuotaFor(a))
		}
		seven := int64(7)
		if _, err := database.UpdateAccount(ctx, "upd", nil, db.AccountLimits{MonthlyQuota: &seven}); err != nil {
			t.Fatal(err)
		}
		a, err = database.AccountByName(ctx, "upd")
		if err != nil {
			t.Fatal(err)
		}
		if a.MonthlyQuota == nil || *a.MonthlyQuota != 7 || a.Plan != db.PlanStarter || ratelimit.QuotaFor(a) != 7 {
			t.Fatalf("after update: plan %s MonthlyQuota %v QuotaFor %d", a.Plan, a.MonthlyQuota, ratelimit.QuotaFor(a))
		}
		// Changing the plan keeps the override; nil limits change nothing.
		growth := db.PlanGrowth
		if _, err := database.UpdateAccount(ctx, "upd", &growth, db.AccountLimits{}); err != nil {
			t.Fatal(err)
		}
		if a, _ = database.AccountByName(ctx, "upd"); a.Plan != db.PlanGrowth || ratelimit.QuotaFor(a) != 7 {
			t.Fatalf("after plan change: plan %s QuotaFor %d", a.Plan, ratelimit.QuotaFor(a))
		}
		zero := int64(0)
		_, err = database.UpdateAccount(ctx, "upd", nil, db.AccountLimits{MonthlyQuota: &zero})
		var de *db.Error
		if !errors.As(err, &de) || de.Code != db.CodeInvalidFieldFormat || de.Field != "monthlyQuota" {
			t.Fatalf("monthly quota 0: err %v, want %s on monthlyQuota", err, db.CodeInvalidFieldFormat)
		}
		if a, _ = database.AccountByName(ctx, "upd"); ratelimit.QuotaFor(a) != 7 {
			t.Fatalf("a refused update changed the quota to %d", ratelimit.QuotaFor(a))
		}
		if q := ratelimit.QuotaFor(&db.Account{Plan: db.PlanGrowth}); q != 0 {
			t.Fatalf("growth without override: quota %d, want 0 (unlimited)", q)
		}
		if q := ratelimit.QuotaFor(&db.Account{Plan: db.PlanDeveloper}); q != 50_000 {
			t.Fatalf("developer: quota %d, want 50000", q)
		}
	})
}

func TestRateLimitHeadersAndQuery(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		month, reset := usageMonthNow()
		e := usageQuotaEnv(t, database, nil)
		key := e.AccountWith("starter", db.PlanStarter, db.AccountLimits{}, nil)
		id := usageAccountID(t, database, "starter")
		monthSeconds := int64(reset.Sub(reset.AddDate(0, -1, 0)) / time.Second)

		check := func(step int, wantUsed int) usageRateLimit {
			t.Helper()
			rl, r := usageRate(t, e, key)
			policy, limit := r.Header.Values("RateLimit-Policy"), r.Header.Values("RateLimit")
			if names := usageHeaderItems(t, policy); len(names) != 2 || names[0] != "burst" || names[1] != "monthly" {
				t.Fatalf("step %d: RateLimit-Policy %q, want a burst and a monthly item", step, policy)
			}
			if names := usageHeaderItems(t, limit); len(names) != 2 || names[0] != "burst" || names[1] != "monthly" {
				t.Fatalf("step %d: RateLimit %q, want a burst and a monthly item", step, limit)
			}
			if policy[0] != `"burst";q=10;w=2` {
				t.Errorf("step %d: burst policy %q, want \"burst\";q=10;w=2", step, policy[0])
			}
			if p := usageHeaderItem(t, policy, "monthly"); p["q"] != 10_000 || p["w"] != monthSeconds {
				t.Errorf("step %d: monthly policy %q, want q=10000;w=%d", step, policy[1], monthSeconds)
			}
			b := usageHeaderItem(t, limit, "burst")
			if b["r"] != int64(rl.Remaining) || b["r"] != headerInt(t, r, "X-RateLimit-Remaining") || b["t"] > 2 {
				t.Errorf("step %d: RateLimit burst %v, want r = remaining %d and t <= 2", step, b, rl.Remaining)
			}
			m := usageHeaderItem(t, limit, "monthly")
			toReset := int64(time.Until(reset) / time.Second)
			if m["r"] != int64(10_000-wantUsed) || m["t"] < toReset-2 || m["t"] > toReset+2 {
				t.Errorf("step %d: RateLimit monthly %v, want r=%d, t about %d", step, m, 10_000-wantUsed, toReset)
			}
			if rl.Limit != 10 || int64(rl.Limit) != headerInt(t, r, "X-RateLimit-Limit") {
				t.Errorf("step %d: limit %d, want 10 (= X-RateLimit-Limit)", step, rl.Limit)
			}
			if rl.MonthlyQuota == nil || *rl.MonthlyQuota != 10_000 || rl.MonthlyUsed != wantUsed {
				t.Errorf("step %d: monthlyQuota %v monthlyUsed %d, want 10000 and %d", step, rl.MonthlyQuota, rl.MonthlyUsed, wantUsed)
			}
			if rl.MonthlyResetAt != reset.Format(time.RFC3339) {
				t.Errorf("step %d: monthlyResetAt %s, want %s", step, rl.MonthlyResetAt, reset.Format(time.RFC3339))
			}
			resetAt, err := time.Parse(time.RFC3339, rl.ResetAt)
			if err != nil || resetAt.Unix() != headerInt(t, r, "X-RateLimit-Reset") {
				t.Errorf("step %d: resetAt %s, want X-RateLimit-Reset %s", step, rl.ResetAt, r.Header.Get("X-RateLimit-Reset"))
			}
			return rl
		}

		// In-process windows start with the limiter's first request (this
		// one), so the three requests below fall in one window.
		first := check(1, 0)
		if first.Remaining != 9 {
			t.Fatalf("first request: remaining %d, want 9", first.Remaining)
		}
		second := check(2, 1) // the first request, not yet flushed
		usageFlush(t, e)
		if n := usageStored(t, database, id, month); n != 2 {
			t.Fatalf("usage_months holds %d after two requests, want 2", n)
		}
		third := check(3, 2)
		if !(second.Remaining < first.Remaining && third.Remaining < second.Remaining) {
			t.Errorf("remaining %d, %d, %d: not decreasing", first.Remaining, second.Remaining, third.Remaining)
		}

		// Growth has no monthly quota: no monthly item and a null quota.
		growth := e.AccountWith("growth", db.PlanGrowth, db.AccountLimits{}, nil)
		rl, r := usageRate(t, e, growth)
		if rl.MonthlyQuota != nil {
			t.Errorf("growth: monthlyQuota %d, want null", *rl.MonthlyQuota)
		}
		if rl.Limit != 50 || rl.Remaining != 49 || rl.MonthlyResetAt != reset.Format(time.RFC3339) {
			t.Errorf("growth: %+v", rl)
		}
		if p := r.Header.Values("RateLimit-Policy"); len(p) != 1 || p[0] != `"burst";q=50;w=3` {
			t.Errorf("growth: RateLimit-Policy %q, want only \"burst\";q=50;w=3", p)
		}
		if names := usageHeaderItems(t, r.Header.Values("RateLimit")); len(names) != 1 || names[0] != "burst" {
			t.Errorf("growth: RateLimit %q, want only a burst item", r.Header.Values("RateLimit"))
		}
		if r.Header.Get("Retry-After") != "" {
			t.Errorf("growth: Retry-After on a successful response")
		}

		// Developer: 50 000 a month.
		dev := e.AccountWith("dev", db.PlanDeveloper, db.AccountLimits{}, nil)
		rl, r = usageRate(t, e, dev)
		if rl.MonthlyQuota == nil || *rl.MonthlyQuota != 50_000 {
			t.Errorf("developer: monthlyQuota %v, want 50000", rl.MonthlyQuota)
		}
		if p := usageHeaderItem(t, r.Header.Values("RateLimit-Policy"), "monthly"); p["q"] != 50_000 {
			t.Errorf("developer: RateLimit-Policy %q, want monthly q=50000", r.Header.Values("RateLimit-Policy"))
		}

		usageSameMonth(t, month)
	})
}

// An operation refused for its cost, depth or aliases runs nothing and
// counts as one request, not its computed cost: a starter account's single
// oversized query must not use up its month.
func TestQuotaRefusedOperationCountsOne(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		month, _ := usageMonthNow()
		e := usageQuotaEnv(t, database, &app.Config{UsageFlush: time.Hour, LogFlush: 20 * time.Millisecond})
		key := e.AccountWith("oversized", db.PlanStarter, db.AccountLimits{}, nil)
		id := usageAccountID(t, database, "oversized")

		r := e.Do(key, `{ services(first: 100) { nodes { id bookings(first: 100) { nodes { id } } } } }`, nil)
		usageWantRefused(t, r, "query_too_complex", map[string]int{"cost": 10201})
		if got := usageRequestedCost(t, r.Raw); got != 10201 {
			t.Errorf("extensions.cost.requested %d, want 10201", got)
		}
		usageWantRefused(t, e.Do(key, usageDeepQuery(11), map[string]any{"id": "1"}), "query_too_deep", nil)
		usageWantRefused(t, e.Do(key, usageAliases(31), nil), "too_many_aliases", nil)

		rl, _ := usageRate(t, e, key)
		if rl.MonthlyUsed != 3 {
			t.Fatalf("monthlyUsed %d after three refused operations, want 3 (one each)", rl.MonthlyUsed)
		}
		usageFlush(t, e)
		if n := usageStored(t, database, id, month); n != 4 {
			t.Fatalf("usage_months holds %d, want 4", n)
		}

		// The API log shows the refusals, each with its code.
		status := http.StatusOK
		deadline := time.Now().Add(5 * time.Second)
		for {
			logs, err := database.ListAPILogs(context.Background(), id, db.APILogFilter{Status: &status, First: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(logs) == 4 {
				codes := []string{}
				for _, l := range logs[1:] {
					codes = append(codes, l.ErrorCodes...)
				}
				if fmt.Sprint(codes) != "[too_many_aliases query_too_deep query_too_complex]" {
					t.Fatalf("logged error codes %v", codes)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d logs after 5 s, want 4", len(logs))
			}
			time.Sleep(20 * time.Millisecond)
		}
		usageSameMonth(t, month)
	})
}
