package ratelimit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/caller"
)

// redisURL is the shared test Redis: REDIS_URL, else the local default.
func redisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// testRedis connects to the shared test Redis; it skips the test when Redis
// is unreachable, except on CI (CI=true) where it fails.
func testRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	opt, err := redis.ParseURL(redisURL())
	if err != nil {
		tb.Fatalf("REDIS_URL: %v", err)
	}
	client := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		if os.Getenv("CI") == "true" {
			tb.Fatalf("redis at %s unreachable: %v", redisURL(), err)
		}
		tb.Skipf("redis at %s unreachable (set REDIS_URL, or run redis-server): %v", redisURL(), err)
	}
	tb.Cleanup(func() { _ = client.Close() })
	return client
}

// uniquePrefix is a key prefix no other test (or run) uses; the test's keys
// are deleted when it ends.
func uniquePrefix(tb testing.TB, client *redis.Client) string {
	tb.Helper()
	prefix := fmt.Sprintf("rk:rltest:%s:%d:", strings.ReplaceAll(tb.Name(), "/", "_"), time.Now().UnixNano())
	tb.Cleanup(func() { deleteKeys(client, prefix) })
	return prefix
}

func deleteKeys(client *redis.Client, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		client.Del(ctx, keys...)
	}
}

func scanKeys(t *testing.T, client *redis.Client, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	keys, _, err := client.Scan(ctx, 0, prefix+"*", 10000).Result()
	if err != nil {
		t.Fatalf("SCAN %s*: %v", prefix, err)
	}
	return keys
}

var accountSeq atomic.Int64

// newAccount is an in-memory account with an ID no other test or run uses.
func newAccount(plan db.Plan) *db.Account {
	return &db.Account{ID: time.Now().UnixNano() + accountSeq.Add(1), Name: "rate test", Plan: plan}
}

func withLimits(a *db.Account, rate, burst int) *db.Account {
	a.Rate, a.Burst = &rate, &burst
	return a
}

// request is an authenticated request of a.
func request(a *db.Account) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	c := &caller.Caller{Account: a, Key: &db.APIKey{ID: 1, AccountID: a.ID, Prefix: "rk_test"}}
	return r.WithContext(caller.With(r.Context(), c))
}

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })

// serve runs one request through h and returns its status.
func serve(h http.Handler, a *db.Account) int {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, request(a))
	return w.Code
}

// startOfWindow sleeps until just after the next wall-clock boundary of
// window, so a burst of requests fits in one window (counters for shared
// stores are wall-clock aligned).
func startOfWindow(window time.Duration) {
	now := time.Now()
	time.Sleep(now.Truncate(window).Add(window).Sub(now) + 5*time.Millisecond)
}

// logBuffer collects slog output safely from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count is how many log lines contain s.
func (b *logBuffer) count(s string) int {
	n := 0
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func newLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

const (
	outageMsg   = "redis rate-limit counters unavailable"
	restoredMsg = "redis rate-limit counters restored"
)

func TestRedisCounterSemantics(t *testing.T) {
	client := testRedis(t)
	prefix := uniquePrefix(t, client)
	window := 2 * time.Second
	c := NewRedisCounter(client, time.Minute, WithKeyPrefix(prefix))
	c.Config(10, window) // as httprate does

	now := time.Now().UTC()
	cur := now.Truncate(window)
	prev := cur.Add(-window)
	next := cur.Add(window)
	key := "account:42"

	// Get answers the counts before the request and, with room under the
	// limit, counts the request; the IncrementBy that follows does not
	// count it again.
	if curr, prv, err := c.Get(key, cur, prev); err != nil || curr != 0 || prv != 0 {
		t.Fatalf("Get of unknown key = %d, %d, %v; want 0, 0, nil", curr, prv, err)
	}
	if err := c.IncrementBy(key, cur, 3); err != nil {
		t.Fatal(err)
	}
	if err := c.Increment(key, cur); err != nil {
		t.Fatal(err)
	}
	if err := c.IncrementBy(key, prev, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.IncrementBy("account:43", cur, 7); err != nil {
		t.Fatal(err)
	}
	if curr, prv, err := c.Get(key, cur, prev); err != nil || curr != 4 || prv != 2 {
		t.Fatalf("Get(cur, prev) = %d, %d, %v; want 4, 2, nil", curr, prv, err)
	}
	// One window later, the current window becomes the previous one (with
	// the request the last Get counted).
	if curr, prv, err := c.Get(key, next, cur); err != nil || curr != 0 || prv != 5 {
		t.Fatalf("Get(next, cur) = %d, %d, %v; want 0, 5, nil", curr, prv, err)
	}
	if curr, prv, err := c.Get("account:43", cur, prev); err != nil || curr != 7 || prv != 0 {
		t.Fatalf("Get of another key = %d, %d, %v; want 7, 0, nil", curr, prv, err)
	}
	// At the limit, Get counts nothing.
	if err := c.IncrementBy("account:44", cur, 10); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if curr, _, err := c.Get("account:44", cur, prev); err != nil || curr != 10 {
			t.Fatalf("Get of a full key = %d, %v; want 10", curr, err)
		}
	}

	wantKey := prefix + "2000:{account:42}:" + strconv.FormatInt(cur.UnixMilli(), 10)
	if got := c.Key(key, cur); got != wantKey {
		t.Fatalf("Key = %q, want %q", got, wantKey)
	}
	keys := scanKeys(t, client, prefix)
	if len(keys) != 5 {
		t.Fatalf("keys = %v, want 5", keys)
	}
	ctx := context.Background()
	for _, k := range keys {
		ttl, err := client.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > keyWindows*window {
			t.Errorf("PTTL %s = %v, want in (0, %v]", k, ttl, keyWindows*window)
		}
		t.Logf("PTTL %s = %v", k, ttl)
	}
}

func TestRedisCounterExpires(t *testing.T) {
	client := testRedis(t)
	prefix := uniquePrefix(t, client)
	window := 100 * time.Millisecond
	c := NewRedisCounter(client, window, WithKeyPrefix(prefix))
	cur := time.Now().UTC().Truncate(window)
	if err := c.IncrementBy("k", cur, 5); err != nil {
		t.Fatal(err)
	}
	if curr, _, err := c.Get("k", cur, cur.Add(-window)); err != nil || curr != 5 {
		t.Fatalf("Get = %d, %v; want 5", curr, err)
	}
	time.Sleep(keyWindows*window + 150*time.Millisecond)
	if keys := scanKeys(t, client, prefix); len(keys) != 0 {
		t.Fatalf("keys after %d windows = %v, want none (expired)", keyWindows, keys)
	}
}

// Two limiters, as two server replicas would have, share one budget.
func TestRedisSharedBudget(t *testing.T) {
	client := testRedis(t)
	prefix := uniquePrefix(t, client)
	log, logs := newLog()
	limits := PlanLimits[db.PlanStarter]

	for _, mode := range []string{"alternating", "concurrent"} {
		t.Run(mode, func(t *testing.T) {
			// Separate counter sets and limiters: nothing in process is shared.
			a := New(NewRedisCounters(client, log, WithKeyPrefix(prefix))).Handler(okHandler)
			b := New(NewRedisCounters(client, log, WithKeyPrefix(prefix))).Handler(okHandler)
			account := newAccount(db.PlanStarter)
			const requests = 40
			var admittedA, admittedB, rejected, other atomic.Int64
			tally := func(code int, admitted *atomic.Int64) {
				switch code {
				case http.StatusOK:
					admitted.Add(1)
				case http.StatusTooManyRequests:
					rejected.Add(1)
				default:
					other.Add(1)
				}
			}

			startOfWindow(limits.Window())
			began := time.Now()
			if mode == "alternating" {
				for i := range requests {
					if i%2 == 0 {
						tally(serve(a, account), &admittedA)
					} else {
						tally(serve(b, account), &admittedB)
					}
				}
			} else {
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range requests {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						if i%2 == 0 {
							tally(serve(a, account), &admittedA)
						} else {
							tally(serve(b, account), &admittedB)
						}
					}()
				}
				close(start)
				wg.Wait()
			}
			elapsed := time.Since(began)

			admitted := admittedA.Load() + admittedB.Load()
			t.Logf("%s: %d requests in %v: admitted %d (limiter A %d, limiter B %d), rejected %d; burst %d",
				mode, requests, elapsed, admitted, admittedA.Load(), admittedB.Load(), rejected.Load(), limits.Burst)
			if other.Load() != 0 {
				t.Fatalf("%d responses neither 200 nor 429", other.Load())
			}
			if elapsed >= limits.Window() {
				t.Skipf("requests took %v, longer than a window (%v): budget not comparable", elapsed, limits.Window())
			}
			// Alternating requests see every increment of the other limiter:
			// exactly the burst. Concurrent ones may interleave Get and
			// IncrementBy of the two limiters (httprate does not make them
			// atomic): at most one extra admission per other replica.
			slack := int64(0)
			if mode == "concurrent" {
				slack = 1
			}
			if admitted < int64(limits.Burst) || admitted > int64(limits.Burst)+slack {
				t.Fatalf("admitted %d across two limiters, want %d..%d", admitted, limits.Burst, int64(limits.Burst)+slack)
			}
			// Alternating, both share the budget; concurrent, one may by
			// chance take it all first.
			if mode == "alternating" && (admittedA.Load() == 0 || admittedB.Load() == 0) {
				t.Fatalf("one limiter admitted nothing (A %d, B %d)", admittedA.Load(), admittedB.Load())
			}
		})
	}
	if n := logs.count(outageMsg); n != 0 {
		t.Fatalf("healthy Redis logged %d outages:\n%s", n, logs)
	}
}

// A counter on an unreachable Redis serves from its in-process counter.
func TestRedisFallbackClosedPort(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = client.Close() })
	log, logs := newLog()
	set := NewRedisCounterSet(client, log)
	h := New(set.New).Handler(okHandler)
	limits := PlanLimits[db.PlanStarter]
	account := newAccount(db.PlanStarter)

	startOfWindow(limits.Window())
	codes := map[int]int{}
	for range 20 {
		codes[serve(h, account)]++
	}
	t.Logf("closed port: statuses %v, fallbacks %d", codes, set.Fallbacks())
	if codes[http.StatusOK] != limits.Burst || codes[http.StatusTooManyRequests] != 20-limits.Burst {
		t.Fatalf("statuses %v, want %d×200 and %d×429 (local limit)", codes, limits.Burst, 20-limits.Burst)
	}
	// Each admitted request is a Get and an IncrementBy, each rejected one a Get.
	if want := int64(2*limits.Burst + (20 - limits.Burst)); set.Fallbacks() != want {
		t.Fatalf("Fallbacks = %d, want %d", set.Fallbacks(), want)
	}
	if !set.Degraded() || set.Outages() != 1 {
		t.Fatalf("Degraded = %v, Outages = %d; want true, 1", set.Degraded(), set.Outages())
	}

	// Past the retry interval Redis is tried again, fails again: no new log.
	time.Sleep(DefaultRetryInterval + 100*time.Millisecond)
	other := newAccount(db.PlanDeveloper)
	for range 5 {
		if code := serve(h, other); code != http.StatusOK {
			t.Fatalf("status %d during outage", code)
		}
	}
	if n := logs.count(outageMsg); n != 1 {
		t.Fatalf("%d outage log lines, want 1:\n%s", n, logs)
	}
	if n := logs.count(restoredMsg); n != 0 {
		t.Fatalf("restored logged while Redis is down:\n%s", logs)
	}
	t.Logf("log:\n%s", logs)
}

// hungRedis accepts connections and never answers.
func hungRedis(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// A Redis that accepts connections but never answers delays a request by
// about one timeout, once per retry interval, whatever the client's options.
func TestRedisFallbackHung(t *testing.T) {
	addr := hungRedis(t)
	for _, ctxTimeout := range []bool{false, true} {
		t.Run(fmt.Sprintf("ContextTimeoutEnabled=%v", ctxTimeout), func(t *testing.T) {
			client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: ctxTimeout})
			t.Cleanup(func() { _ = client.Close() })
			log, logs := newLog()
			set := NewRedisCounterSet(client, log)
			h := New(set.New).Handler(okHandler)
			account := withLimits(newAccount(db.PlanStarter), 1000, 1000)
			var slowest time.Duration
			began := time.Now()
			for range 50 {
				t0 := time.Now()
				if code := serve(h, account); code != http.StatusOK {
					t.Fatalf("status %d", code)
				}
				slowest = max(slowest, time.Since(t0))
			}
			total := time.Since(began)
			t.Logf("50 requests in %v, slowest %v, fallbacks %d", total, slowest, set.Fallbacks())
			if slowest > DefaultRedisTimeout+150*time.Millisecond {
				t.Fatalf("slowest request took %v, want about %v", slowest, DefaultRedisTimeout)
			}
			if logs.count(outageMsg) != 1 {
				t.Fatalf("want one outage log line:\n%s", logs)
			}
		})
	}
}

// redisServer is a private redis-server the test starts and stops.
type redisServer struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("redis-server: %v", err)
	}
	probe := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer probe.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := probe.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.stop()
			s.t.Fatalf("redis-server on port %d not answering: %v", s.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// startRedisServer starts a private redis-server on a free port; it skips
// (fails on CI) when redis-server is not installed.
func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not installed: %v", err)
		}
		t.Skipf("redis-server not installed: %v", err)
	}
	s := &redisServer{t: t, port: freePort(t)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// Redis dies mid-test and comes back: the counters switch to in process
// (without resetting the budget) and back to Redis, logging once each way.
func TestRedisFallbackRecovery(t *testing.T) {
	srv := startRedisServer(t)
	client := redis.NewClient(&redis.Options{Addr: srv.addr()})
	t.Cleanup(func() { _ = client.Close() })
	log, logs := newLog()
	set := NewRedisCounterSet(client, log, WithKeyPrefix("rk:rltest:recovery:"))
	h := New(set.New).Handler(okHandler)
	limits := PlanLimits[db.PlanStarter]
	starter := newAccount(db.PlanStarter)
	big := withLimits(newAccount(db.PlanStarter), 1000, 1000)

	// Healthy: counted in Redis.
	startOfWindow(limits.Window())
	healthyWindow := time.Now().Truncate(limits.Window())
	for i := range 6 {
		if code := serve(h, starter); code != http.StatusOK {
			t.Fatalf("request %d: status %d", i, code)
		}
	}
	if set.Fallbacks() != 0 || set.Degraded() {
		t.Fatalf("healthy: Fallbacks = %d, Degraded = %v", set.Fallbacks(), set.Degraded())
	}
	if keys := scanKeys(t, client, "rk:rltest:recovery:"); len(keys) != 1 {
		t.Fatalf("keys in Redis = %v, want 1", keys)
	}

	// Redis dies: the same window carries on in process from 6, not 0.
	srv.stop()
	killed := time.Now()
	codes := map[int]int{}
	for range 10 {
		codes[serve(h, starter)]++
	}
	t.Logf("after kill: statuses %v in %v, fallbacks %d", codes, time.Since(killed), set.Fallbacks())
	if codes[http.StatusOK]+codes[http.StatusTooManyRequests] != 10 {
		t.Fatalf("statuses %v, want only 200 and 429", codes)
	}
	if time.Now().Truncate(limits.Window()).Equal(healthyWindow) {
		if codes[http.StatusOK] != limits.Burst-6 {
			t.Fatalf("admitted %d after failover, want %d (budget kept from Redis-era requests)", codes[http.StatusOK], limits.Burst-6)
		}
	}
	if !set.Degraded() || set.Fallbacks() == 0 {
		t.Fatalf("after kill: Degraded = %v, Fallbacks = %d", set.Degraded(), set.Fallbacks())
	}
	// The outage lasts past a retry: still one log line.
	for end := time.Now().Add(DefaultRetryInterval + 200*time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if code := serve(h, big); code != http.StatusOK {
			t.Fatalf("status %d during outage", code)
		}
	}
	if n := logs.count(outageMsg); n != 1 {
		t.Fatalf("%d outage log lines, want 1:\n%s", n, logs)
	}

	// Redis comes back (empty: no persistence): within about a retry
	// interval the counters use it again.
	srv.start()
	restarted := time.Now()
	for set.Degraded() {
		if time.Since(restarted) > 3*DefaultRetryInterval {
			t.Fatalf("still degraded %v after restart:\n%s", time.Since(restarted), logs)
		}
		if code := serve(h, big); code != http.StatusOK {
			t.Fatalf("status %d during recovery", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("restored %v after restart", time.Since(restarted).Round(time.Millisecond))
	fallbacks := set.Fallbacks()
	for range 5 {
		if code := serve(h, big); code != http.StatusOK {
			t.Fatalf("status %d after recovery", code)
		}
	}
	if set.Fallbacks() != fallbacks {
		t.Fatalf("Fallbacks went from %d to %d after recovery", fallbacks, set.Fallbacks())
	}
	if keys := scanKeys(t, client, "rk:rltest:recovery:"); len(keys) == 0 {
		t.Fatal("no keys in the restarted Redis: counters not back on Redis")
	}
	if n, m := logs.count(outageMsg), logs.count(restoredMsg); n != 1 || m != 1 {
		t.Fatalf("%d outage and %d restored log lines, want 1 and 1:\n%s", n, m, logs)
	}
	if set.Outages() != 1 {
		t.Fatalf("Outages = %d, want 1", set.Outages())
	}
	t.Logf("fallbacks %d; log:\n%s", set.Fallbacks(), logs)
}

// discardWriter is a reusable http.ResponseWriter.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkRedisCounter is the cost of one request through Limiter.Handler
// with a cached caller: Redis-backed (one round trip per request) against
// in-process counters.
func BenchmarkRedisCounter(b *testing.B) {
	client := testRedis(b)
	prefix := uniquePrefix(b, client)
	// Never limited: a window of 1000 s and a burst of a billion.
	account := withLimits(newAccount(db.PlanStarter), 1_000_000, 1_000_000_000)
	r := request(account)
	run := func(b *testing.B, h http.Handler, parallel bool) {
		b.ReportAllocs()
		if !parallel {
			w := &discardWriter{h: http.Header{}}
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			w := &discardWriter{h: http.Header{}}
			for pb.Next() {
				h.ServeHTTP(w, r)
			}
		})
	}
	b.Run("redis", func(b *testing.B) {
		set := NewRedisCounterSet(client, slog.New(slog.DiscardHandler), WithKeyPrefix(prefix))
		run(b, New(set.New).Handler(okHandler), false)
		if set.Fallbacks() != 0 {
			b.Fatalf("%d fallbacks", set.Fallbacks())
		}
	})
	b.Run("redis-ctxtimeout", func(b *testing.B) {
		// A client that honours context deadlines itself: no guard goroutine.
		opt := *client.Options()
		opt.ContextTimeoutEnabled = true
		c := redis.NewClient(&opt)
		defer c.Close()
		set := NewRedisCounterSet(c, slog.New(slog.DiscardHandler), WithKeyPrefix(prefix))
		run(b, New(set.New).Handler(okHandler), false)
		if set.Fallbacks() != 0 {
			b.Fatalf("%d fallbacks", set.Fallbacks())
		}
	})
	b.Run("redis-parallel", func(b *testing.B) {
		set := NewRedisCounterSet(client, slog.New(slog.DiscardHandler), WithKeyPrefix(prefix))
		run(b, New(set.New).Handler(okHandler), true)
		if set.Fallbacks() != 0 {
			b.Fatalf("%d fallbacks", set.Fallbacks())
		}
	})
	b.Run("local", func(b *testing.B) {
		run(b, New(nil).Handler(okHandler), false)
	})
}

// roundTrips counts the commands and pipelines a client sends to Redis.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		// A script run is one round trip; its EVAL fallback (once per
		// script load) is not counted.
		if cmd.Name() != "eval" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// Each request, admitted or refused, costs one round trip to Redis.
func TestRedisOneRoundTripPerRequest(t *testing.T) {
	base := testRedis(t)
	opt := *base.Options()
	client := redis.NewClient(&opt)
	t.Cleanup(func() { client.Close() })
	hook := &roundTrips{}
	client.AddHook(hook)
	prefix := uniquePrefix(t, client)
	set := NewRedisCounterSet(client, slog.New(slog.DiscardHandler), WithKeyPrefix(prefix))
	h := New(set.New).Handler(okHandler)
	account := withLimits(newAccount(db.PlanStarter), 1, 20) // a 20 s window
	if now := time.Now(); now.Truncate(20*time.Second).Add(20*time.Second).Sub(now) < 2*time.Second {
		startOfWindow(20 * time.Second) // no window change mid-test
	}
	// Warm the script cache so that EVALSHA is answered at once.
	serve(h, withLimits(newAccount(db.PlanStarter), 1, 20))
	hook.n.Store(0)
	admitted, limited := 0, 0
	for range 30 {
		switch code := serve(h, account); code {
		case http.StatusOK:
			admitted++
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("status %d", code)
		}
	}
	if admitted != 20 || limited != 10 {
		t.Fatalf("admitted %d, limited %d; want 20 and 10", admitted, limited)
	}
	if n := hook.n.Load(); n != 30 {
		t.Fatalf("%d round trips to Redis for 30 requests, want 30", n)
	}
	if set.Fallbacks() != 0 {
		t.Fatalf("%d fallbacks", set.Fallbacks())
	}
}
