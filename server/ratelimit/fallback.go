package ratelimit

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/go-chi/httprate"
	"github.com/redis/go-redis/v9"
)

// FallbackCounter is an httprate.LimitCounter that counts in Redis (a
// RedisCounter) and, whenever Redis fails, in process instead, so httprate
// never sees an error (it would answer 428 Precondition Required).
//
// Every increment is also applied to the in-process counter, so when Redis
// fails mid-window the account's budget is not reset: this replica carries on
// from what it has admitted itself. During an outage each replica enforces
// the limit alone, so N replicas may together admit up to N times the limit;
// requests admitted during an outage are not replayed into Redis.
//
// The first failure starts an outage, logged once (Warn). While it lasts,
// calls are served in process and Redis is retried at most once per retry
// interval (DefaultRetryInterval) by a single request; when Redis answers,
// the outage ends, logged once (Info, "redis rate-limit counters restored").
type FallbackCounter struct {
	redis *RedisCounter
	local httprate.LimitCounter
	state *fallbackState
}

var _ httprate.LimitCounter = (*FallbackCounter)(nil)

func newFallbackCounter(r *RedisCounter, state *fallbackState) *FallbackCounter {
	return &FallbackCounter{redis: r, local: httprate.NewLocalLimitCounter(r.window), state: state}
}

// Config implements httprate.LimitCounter.
func (f *FallbackCounter) Config(requestLimit int, windowLength time.Duration) {
	f.redis.Config(requestLimit, windowLength)
	f.local.Config(requestLimit, windowLength)
}

// Increment implements httprate.LimitCounter.
func (f *FallbackCounter) Increment(key string, currentWindow time.Time) error {
	return f.IncrementBy(key, currentWindow, 1)
}

// IncrementBy implements httprate.LimitCounter; it never fails.
func (f *FallbackCounter) IncrementBy(key string, currentWindow time.Time, amount int) error {
	_ = f.local.IncrementBy(key, currentWindow, amount) // the in-process counter never fails
	if start, ok := f.state.tryRedis(); ok {
		err := f.redis.IncrementBy(key, currentWindow, amount)
		if err == nil {
			f.state.succeeded(start)
			return nil
		}
		f.state.failed(err)
	}
	f.state.fallbacks.Add(1)
	return nil
}

// Get implements httprate.LimitCounter; it never fails.
func (f *FallbackCounter) Get(key string, currentWindow, previousWindow time.Time) (int, int, error) {
	if start, ok := f.state.tryRedis(); ok {
		curr, prev, err := f.redis.Get(key, currentWindow, previousWindow)
		if err == nil {
			f.state.succeeded(start)
			return curr, prev, nil
		}
		f.state.failed(err)
	}
	f.state.fallbacks.Add(1)
	return f.local.Get(key, currentWindow, previousWindow)
}

// RedisCounters makes the FallbackCounters of one server, one per window
// length, sharing a Redis client and one outage state: an outage is logged
// once, not once per window, and Fallbacks adds up all of them.
type RedisCounters struct {
	client *redis.Client
	opts   []RedisOption
	state  *fallbackState
}

// NewRedisCounterSet returns counters on client logging outages to log (nil
// means slog.Default()). Pass its New method to New; read Fallbacks and
// Degraded for metrics.
func NewRedisCounterSet(client *redis.Client, log *slog.Logger, opts ...RedisOption) *RedisCounters {
	return &RedisCounters{client: client, opts: opts, state: newFallbackState(log, newRedisConfig(opts).retry)}
}

// NewRedisCounters returns a counter factory for New: Redis-backed counters
// that fall back to in-process ones while Redis is unavailable. Use
// NewRedisCounterSet instead to read the fallback metrics.
func NewRedisCounters(client *redis.Client, log *slog.Logger, opts ...RedisOption) func(window time.Duration) httprate.LimitCounter {
	return NewRedisCounterSet(client, log, opts...).New
}

// New returns a *FallbackCounter for windows of the given length; its
// signature is the counter factory New accepts.
func (s *RedisCounters) New(window time.Duration) httprate.LimitCounter {
	return newFallbackCounter(NewRedisCounter(s.client, window, s.opts...), s.state)
}

// Fallbacks is how many calls of all s's counters were served in process.
func (s *RedisCounters) Fallbacks() int64 { return s.state.fallbacks.Load() }

// Outages is how many Redis outages s's counters have gone through.
func (s *RedisCounters) Outages() int64 { return s.state.outages.Load() }

// Degraded reports whether an outage is in progress.
func (s *RedisCounters) Degraded() bool { return s.state.downSince.Load() != 0 }

// fallbackState tracks Redis outages for one or more FallbackCounters.
type fallbackState struct {
	log   *slog.Logger
	retry time.Duration
	// downSince is when the outage began (Unix ns); 0 when Redis is healthy.
	downSince atomic.Int64
	// nextTry is when a request may try Redis again during an outage (Unix ns).
	nextTry   atomic.Int64
	fallbacks atomic.Int64
	outages   atomic.Int64
}

func newFallbackState(log *slog.Logger, retry time.Duration) *fallbackState {
	if log == nil {
		log = slog.Default()
	}
	return &fallbackState{log: log, retry: retry}
}

// tryRedis reports whether this call should use Redis: always when healthy;
// during an outage, for one call per retry interval. start is the call's
// start (Unix ns).
func (s *fallbackState) tryRedis() (start int64, ok bool) {
	now := time.Now().UnixNano()
	if s.downSince.Load() == 0 {
		return now, true
	}
	next := s.nextTry.Load()
	if now < next {
		return now, false
	}
	return now, s.nextTry.CompareAndSwap(next, now+int64(s.retry))
}

// failed records a Redis failure, starting an outage if none is in progress.
func (s *fallbackState) failed(err error) {
	now := time.Now().UnixNano()
	s.nextTry.Store(now + int64(s.retry))
	if s.downSince.CompareAndSwap(0, now) {
		s.outages.Add(1)
		s.log.Warn("redis rate-limit counters unavailable; using in-process counters",
			"err", err, "retryEvery", s.retry)
	}
}

// succeeded records a Redis success of a call that started at start: it ends
// the outage unless the call had started before the outage did.
func (s *fallbackState) succeeded(start int64) {
	since := s.downSince.Load()
	if since == 0 || start < since {
		return
	}
	if s.downSince.CompareAndSwap(since, 0) {
		s.log.Info("redis rate-limit counters restored",
			"outage", time.Duration(time.Now().UnixNano()-since).Round(time.Millisecond),
			"fallbacks", s.fallbacks.Load())
	}
}
