// Package ratelimit enforces each account's request rate with httprate:
// a burst of B requests per window of B/rate seconds, from the account's
// plan or its overrides.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/httprate"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/caller"
	"github.com/reservekit/reservekit/server/respond"
)

// Limits is a sustained rate (requests per second) and a burst.
type Limits struct {
	Rate  int
	Burst int
}

// Window is how long a burst takes to refill.
func (l Limits) Window() time.Duration {
	return time.Duration(float64(l.Burst) / float64(l.Rate) * float64(time.Second))
}

// PlanLimits are ReserveKit's published numbers.
var PlanLimits = map[db.Plan]Limits{
	db.PlanStarter:   {Rate: 5, Burst: 10},
	db.PlanDeveloper: {Rate: 10, Burst: 20},
	db.PlanGrowth:    {Rate: 20, Burst: 50},
}

// For returns an account's limits: its overrides, else its plan's.
func For(a *db.Account) Limits {
	if a.Rate != nil && a.Burst != nil {
		return Limits{Rate: *a.Rate, Burst: *a.Burst}
	}
	if l, ok := PlanLimits[a.Plan]; ok {
		return l
	}
	return PlanLimits[db.PlanStarter]
}

// Limiter keeps one httprate limiter per window length and burst (the
// accounts of a plan share one), each with its own counter, which is told
// the limit (a Redis counter decides in Redis, in one round trip).
type Limiter struct {
	mu       sync.Mutex
	byWindow map[windowLimit]*httprate.RateLimiter
	counter  func(window time.Duration) httprate.LimitCounter
}

type windowLimit struct {
	window time.Duration
	limit  int
}

// New returns a limiter with in-process counters; newCounter, when not nil,
// supplies shared counters instead (e.g. Redis for several replicas).
func New(newCounter func(window time.Duration) httprate.LimitCounter) *Limiter {
	return &Limiter{byWindow: map[windowLimit]*httprate.RateLimiter{}, counter: newCounter}
}

func (l *Limiter) forWindow(window time.Duration, limit int) *httprate.RateLimiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	wl := windowLimit{window, limit}
	rl, ok := l.byWindow[wl]
	if !ok {
		opts := []httprate.Option{}
		if l.counter != nil {
			opts = append(opts, httprate.WithLimitCounter(l.counter(window)))
		}
		rl = httprate.NewRateLimiter(limit, window, opts...)
		l.byWindow[wl] = rl
	}
	return rl
}

// Handler counts each authenticated request against its account and answers
// 429 rate_limit_exceeded beyond the limit. It sets X-RateLimit-* headers.
func (l *Limiter) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := caller.From(r.Context())
		if c == nil {
			next.ServeHTTP(w, r)
			return
		}
		limits := For(c.Account)
		window := limits.Window()
		rl := l.forWindow(window, limits.Burst)
		st := &Status{}
		ctx := context.WithValue(httprate.WithRequestLimit(r.Context(), limits.Burst), statusKey{}, st)
		r = r.WithContext(ctx)
		limited := rl.OnLimit(w, r, "account:"+strconv.FormatInt(c.Account.ID, 10))
		st.fromHeaders(w.Header())
		setBurstHeaders(w, limits, st)
		if limited {
			retry := int(math.Ceil(window.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(retry))
			respond.RequestError(w, r, http.StatusTooManyRequests, "rate_limit_exceeded",
				fmt.Sprintf("Rate limit exceeded. Try again in %d seconds.", retry), map[string]any{"retryAfter": retry})
			return
		}
		next.ServeHTTP(w, r)
	})
}
