package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/httprate"
	"github.com/redis/go-redis/v9"
)

// DefaultKeyPrefix starts every Redis key the rate limiter writes.
const DefaultKeyPrefix = "rk:rl:"

// DefaultRedisTimeout bounds each Redis call of a RedisCounter, so a slow or
// hung Redis delays a request by at most this long.
const DefaultRedisTimeout = 100 * time.Millisecond

// DefaultRetryInterval is how often a FallbackCounter retries Redis while it
// serves requests from its in-process counter.
const DefaultRetryInterval = time.Second

// keyWindows is how many windows a counter key lives after its last
// increment: its own, the next (where it is the previous window) and one
// more for clock skew between replicas.
const keyWindows = 3

// RedisOption tunes RedisCounter, FallbackCounter and RedisCounters.
type RedisOption func(*redisConfig)

type redisConfig struct {
	prefix  string
	timeout time.Duration
	retry   time.Duration
}

func newRedisConfig(opts []RedisOption) redisConfig {
	cfg := redisConfig{prefix: DefaultKeyPrefix, timeout: DefaultRedisTimeout, retry: DefaultRetryInterval}
	for _, opt := range opts {
		opt(&cfg)
	}
	return cfg
}

// WithKeyPrefix replaces DefaultKeyPrefix, e.g. to keep several deployments
// (or tests) apart in one Redis database.
func WithKeyPrefix(prefix string) RedisOption {
	return func(c *redisConfig) { c.prefix = prefix }
}

// WithRedisTimeout replaces DefaultRedisTimeout (values <= 0 are ignored).
func WithRedisTimeout(d time.Duration) RedisOption {
	return func(c *redisConfig) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// RedisCounter is an httprate.LimitCounter whose counts live in Redis, so
// every replica of the server draws from the same budget. Each window of
// each key is one Redis integer,
//
//	{prefix}{window-ms}:{{key}}:{window-start-unix-ms}
//
// (the key in braces is a Redis Cluster hash tag: the current and previous
// windows of a key share a slot); keys expire by themselves keyWindows
// windows after their last increment.
//
// A request costs one round trip. httprate asks Get for the counts, decides,
// and calls IncrementBy for an admitted request; Get instead runs a script
// that reads both windows and, when the sliding-window rate leaves room
// under the limit given to Config (httprate's decision, made atomically in
// Redis), counts the request at once. The IncrementBy that follows for that
// key and window finds the request counted and goes to Redis only for the
// rest of its amount, if any. httprate serialises Get and IncrementBy per
// limiter, and a RedisCounter serves one limiter.
//
// Every call is bounded by a timeout (DefaultRedisTimeout). The bound holds
// even when the client was built without ContextTimeoutEnabled (go-redis then
// ignores context deadlines on reads and writes): the call is then waited for
// in a goroutine and abandoned at the deadline.
//
// RedisCounter returns Redis's errors; wrap it in a FallbackCounter so that
// httprate never sees them.
type RedisCounter struct {
	client *redis.Client
	cfg    redisConfig
	// guard: the client does not honour context deadlines by itself.
	guard  bool
	window time.Duration
	ttl    time.Duration
	winMs  string
	limit  int

	mu sync.Mutex
	// counted is the request Get counted already, for IncrementBy.
	counted struct {
		key    string
		window time.Time
	}
}

var _ httprate.LimitCounter = (*RedisCounter)(nil)

// NewRedisCounter returns a counter for windows of the given length (Config
// may change it) on client.
func NewRedisCounter(client *redis.Client, window time.Duration, opts ...RedisOption) *RedisCounter {
	c := &RedisCounter{client: client, cfg: newRedisConfig(opts), guard: !client.Options().ContextTimeoutEnabled}
	c.setWindow(window)
	return c
}

func (c *RedisCounter) setWindow(window time.Duration) {
	c.window = window
	c.ttl = keyWindows * window
	c.winMs = strconv.FormatInt(window.Milliseconds(), 10)
}

// Config implements httprate.LimitCounter; httprate calls it once, with the
// limiter's request limit and window, before any other call.
func (c *RedisCounter) Config(requestLimit int, windowLength time.Duration) {
	c.setWindow(windowLength)
	c.limit = requestLimit
}

// Key is the Redis key holding key's count for the window starting at window.
func (c *RedisCounter) Key(key string, window time.Time) string {
	b := make([]byte, 0, len(c.cfg.prefix)+len(c.winMs)+len(key)+20)
	b = append(b, c.cfg.prefix...)
	b = append(b, c.winMs...)
	b = append(b, ":{"...)
	b = append(b, key...)
	b = append(b, "}:"...)
	b = strconv.AppendInt(b, window.UnixMilli(), 10)
	return string(b)
}

// Increment implements httprate.LimitCounter.
func (c *RedisCounter) Increment(key string, currentWindow time.Time) error {
	return c.IncrementBy(key, currentWindow, 1)
}

// IncrementBy implements httprate.LimitCounter. The request the last Get
// counted for this key and window is not counted again; anything else is
// one round trip of MULTI, INCRBY, PEXPIRE, EXEC.
func (c *RedisCounter) IncrementBy(key string, currentWindow time.Time, amount int) error {
	c.mu.Lock()
	if c.counted.key == key && c.counted.window.Equal(currentWindow) {
		c.counted.key = ""
		amount--
	}
	c.mu.Unlock()
	if amount <= 0 {
		return nil
	}
	k := c.Key(key, currentWindow)
	_, err := bounded(c, func(ctx context.Context) (struct{}, error) {
		_, err := c.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.IncrBy(ctx, k, int64(amount))
			p.PExpire(ctx, k, c.ttl)
			return nil
		})
		return struct{}{}, err
	})
	if err != nil {
		return fmt.Errorf("ratelimit: redis INCRBY %s: %w", k, err)
	}
	return nil
}

// admitScript returns the counts of the current and previous windows
// (KEYS[1], KEYS[2]) as they were, and counts one request in the current
// window when the sliding-window rate, rounded as httprate rounds it, leaves
// room for it under the limit. ARGV: window ms, ms elapsed in the current
// window, limit, key TTL ms.
var admitScript = redis.NewScript(`
local curr = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local window = tonumber(ARGV[1])
local rate = prev * (window - tonumber(ARGV[2])) / window + curr
if math.floor(rate + 0.5) + 1 <= tonumber(ARGV[3]) then
  redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {curr, prev, 1}
end
return {curr, prev, 0}
`)

// Get implements httprate.LimitCounter in one round trip (admitScript):
// the counts before this request, which it has counted when there was room.
func (c *RedisCounter) Get(key string, currentWindow, previousWindow time.Time) (int, int, error) {
	ck, pk := c.Key(key, currentWindow), c.Key(key, previousWindow)
	elapsed := max(time.Since(currentWindow).Milliseconds(), 0)
	vals, err := bounded(c, func(ctx context.Context) ([]int64, error) {
		return admitScript.Run(ctx, c.client, []string{ck, pk},
			c.window.Milliseconds(), elapsed, c.limit, c.ttl.Milliseconds()).Int64Slice()
	})
	if err != nil {
		return 0, 0, fmt.Errorf("ratelimit: redis admit %s: %w", ck, err)
	}
	if len(vals) != 3 {
		return 0, 0, fmt.Errorf("ratelimit: redis admit %s: %d values, want 3", ck, len(vals))
	}
	c.mu.Lock()
	if vals[2] == 1 {
		c.counted.key, c.counted.window = key, currentWindow
	} else {
		c.counted.key = ""
	}
	c.mu.Unlock()
	return int(vals[0]), int(vals[1]), nil
}

// bounded runs fn with c's timeout. When the client ignores context
// deadlines, fn runs in a goroutine that is abandoned at the deadline (its
// result is dropped; go-redis's own read timeout ends it later).
func bounded[T any](c *RedisCounter, fn func(ctx context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.timeout)
	defer cancel()
	if !c.guard {
		return fn(ctx)
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn(ctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
