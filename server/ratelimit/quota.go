package ratelimit

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/caller"
	"github.com/reservekit/reservekit/server/reqinfo"
	"github.com/reservekit/reservekit/server/respond"
)

// PlanQuotas are the monthly request quotas of the plans; growth has none
// unless the account sets one.
var PlanQuotas = map[db.Plan]int64{
	db.PlanStarter:   10_000,
	db.PlanDeveloper: 50_000,
}

// QuotaFor returns an account's monthly quota, 0 meaning unlimited.
func QuotaFor(a *db.Account) int64 {
	if a.MonthlyQuota != nil {
		return *a.MonthlyQuota
	}
	return PlanQuotas[a.Plan]
}

// UsageStore keeps monthly totals shared by every instance.
type UsageStore interface {
	// Add adds n to the month's total and returns the new total.
	Add(ctx context.Context, accountID int64, month string, n int64) (int64, error)
	// Used returns the month's total.
	Used(ctx context.Context, accountID int64, month string) (int64, error)
}

// DBUsage stores monthly usage in the database.
type DBUsage struct{ DB *db.DB }

// Add implements UsageStore.
func (s DBUsage) Add(ctx context.Context, accountID int64, month string, n int64) (int64, error) {
	return s.DB.AddUsage(ctx, accountID, month, n)
}

// Used implements UsageStore.
func (s DBUsage) Used(ctx context.Context, accountID int64, month string) (int64, error) {
	return s.DB.UsageOf(ctx, accountID, month)
}

type usageKey struct {
	account int64
	month   string
}

// Quotas counts each account's requests per calendar month (UTC) and refuses
// requests over the quota. Counts are kept in memory and added to the shared
// store in batches (Flush), never one write per request; other instances'
// usage shows up at the next flush.
type Quotas struct {
	store UsageStore
	now   func() time.Time

	mu      sync.Mutex
	pending map[usageKey]int64 // counted here, not yet in the store
	stored  map[usageKey]int64 // the store's total as last seen
}

// NewQuotas counts usage into store.
func NewQuotas(store UsageStore) *Quotas {
	return &Quotas{store: store, now: time.Now, pending: map[usageKey]int64{}, stored: map[usageKey]int64{}}
}

// MonthOf names the calendar month (UTC) of t and returns when it ends.
func MonthOf(t time.Time) (string, time.Time) {
	t = t.UTC()
	start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	return start.Format("2006-01"), start.AddDate(0, 1, 0)
}

// Used returns the account's usage this month as this instance knows it.
func (q *Quotas) Used(ctx context.Context, accountID int64) (int64, time.Time, error) {
	month, reset := MonthOf(q.now())
	k := usageKey{accountID, month}
	q.mu.Lock()
	stored, ok := q.stored[k]
	pending := q.pending[k]
	q.mu.Unlock()
	if !ok {
		var err error
		if stored, err = q.store.Used(ctx, accountID, month); err != nil {
			return 0, reset, err
		}
		q.mu.Lock()
		q.stored[k] = stored
		q.mu.Unlock()
	}
	return stored + pending, reset, nil
}

// Add counts n requests for the account this month.
func (q *Quotas) Add(accountID int64, n int64) {
	month, _ := MonthOf(q.now())
	q.mu.Lock()
	q.pending[usageKey{accountID, month}] += n
	q.mu.Unlock()
}

// Flush adds the pending counts to the store, one statement per account.
func (q *Quotas) Flush(ctx context.Context) error {
	q.mu.Lock()
	pending := q.pending
	q.pending = map[usageKey]int64{}
	q.mu.Unlock()
	var firstErr error
	for k, n := range pending {
		total, err := q.store.Add(ctx, k.account, k.month, n)
		q.mu.Lock()
		if err != nil {
			q.pending[k] += n // keep it for the next flush
			if firstErr == nil {
				firstErr = err
			}
		} else {
			q.stored[k] = total
		}
		q.mu.Unlock()
	}
	// Forget other months and refresh what others added: drop totals not
	// just written so the next Used reads them again.
	q.mu.Lock()
	for k := range q.stored {
		if _, written := pending[k]; !written {
			delete(q.stored, k)
		}
	}
	q.mu.Unlock()
	return firstErr
}

// Run flushes every interval until ctx ends, then once more.
func (q *Quotas) Run(ctx context.Context, every time.Duration, logErr func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := q.Flush(flushCtx); err != nil {
				logErr(err)
			}
			return
		case <-t.C:
			if err := q.Flush(ctx); err != nil {
				logErr(err)
			}
		}
	}
}

// Handler refuses requests of accounts over their monthly quota with 429
// api_limit_exceeded, and counts served requests by their cost.
func (q *Quotas) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := caller.From(r.Context())
		if c == nil {
			next.ServeHTTP(w, r)
			return
		}
		quota := QuotaFor(c.Account)
		used, reset, err := q.Used(r.Context(), c.AccountID())
		if err != nil {
			respond.Error(w, http.StatusServiceUnavailable, "internal_error", "Usage could not be read; try again", nil)
			return
		}
		if st := StatusFrom(r.Context()); st != nil {
			st.MonthlyQuota, st.MonthlyUsed, st.MonthlyResetAt = quota, used, reset
		}
		if quota > 0 {
			setMonthlyHeaders(w, quota, used, reset, q.now())
			if used >= quota {
				retry := int(reset.Sub(q.now()).Seconds()) + 1
				w.Header().Set("Retry-After", strconv.Itoa(retry))
				respond.RequestError(w, r, http.StatusTooManyRequests, "api_limit_exceeded",
					fmt.Sprintf("Monthly quota of %d requests (cost units) exceeded; it resets at %s.", quota, reset.Format(time.RFC3339)),
					map[string]any{"retryAfter": retry, "monthlyQuota": quota, "resetAt": reset.Format(time.RFC3339)})
				return
			}
		}
		next.ServeHTTP(w, r)
		cost := int64(1)
		if info := reqinfo.From(r.Context()); info != nil {
			cost = max(int64(info.Snapshot().Cost), 1)
		}
		q.Add(c.AccountID(), cost)
	})
}
