package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/app/apptest"
	"github.com/reservekit/reservekit/server/ratelimit"
)

// Rate-limit counters shared by replicas through Redis
// (server/ratelimit/redis.go, fallback.go).

// usageRedis connects to REDIS_URL (default redis://127.0.0.1:6379/0); it
// skips the test when Redis is unreachable, except under CI=true.
func usageRedis(t *testing.T) *redis.Client {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	client := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis at %s unreachable: %v", url, err)
		}
		t.Skipf("redis at %s unreachable (set REDIS_URL, or run redis-server): %v", url, err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// usageRedisKeys lists the keys under prefix.
func usageRedisKeys(t *testing.T, client *redis.Client, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var keys []string
	iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan redis: %v", err)
	}
	return keys
}

// usageRedisPrefix is a key prefix of this test alone, removed afterwards.
func usageRedisPrefix(t *testing.T, client *redis.Client) string {
	t.Helper()
	prefix := fmt.Sprintf("rk:usagetest:%s:%d:", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())
	t.Cleanup(func() {
		if keys := usageRedisKeys(t, client, prefix); len(keys) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			client.Del(ctx, keys...)
		}
	})
	return prefix
}

// usageLockedBuffer collects slog output from several goroutines.
type usageLockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *usageLockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *usageLockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// usageStatus sends one GraphQL request and returns its status and
// extensions.code; it may run on any goroutine.
func usageStatus(e *apptest.Env, key, query string) (int, string, error) {
	body, _ := json.Marshal(map[string]any{"query": query})
	req, err := http.NewRequest(http.MethodPost, e.Server.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := e.Server.Client().Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, "", err
	}
	var decoded struct {
		Errors []apptest.Error `json:"errors"`
	}
	if err := json.Unmarshal(raw, &decoded); err != nil {
		return res.StatusCode, "", fmt.Errorf("HTTP %d: body is not JSON: %q", res.StatusCode, raw)
	}
	code := ""
	if len(decoded.Errors) > 0 {
		code, _ = decoded.Errors[0].Extensions["code"].(string)
	}
	return res.StatusCode, code, nil
}

// usageWindowStart sleeps until just after the next boundary of windows of
// the given length, so that a short run of requests falls in one window.
// httprate aligns the windows of custom counters (Redis) to the clock; its
// in-process windows start with the limiter's first request instead.
func usageWindowStart(window time.Duration) {
	now := time.Now()
	time.Sleep(now.Truncate(window).Add(window).Sub(now) + 5*time.Millisecond)
}

// usageBurstResult is what a burst across replicas got.
type usageBurstResult struct {
	admitted    int
	perInstance []int
	limited     int
	elapsed     time.Duration
}

// usageBurstAcross starts n instances on one database (cfg from newCfg),
// creates a starter account on the first and sends requests concurrently,
// spread round-robin over the instances, right after a window begins.
// Configs should not flush usage during the test (UsageFlush: time.Hour),
// so each instance keeps the usage it read at warm-up.
func usageBurstAcross(t *testing.T, database *db.DB, n, requests int, newCfg func() *app.Config) usageBurstResult {
	t.Helper()
	envs := make([]*apptest.Env, n)
	for i := range envs {
		envs[i] = newEnv(t, database, newCfg())
	}
	key := envs[0].AccountWith("replicated", db.PlanStarter, db.AccountLimits{}, nil)
	window := ratelimit.PlanLimits[db.PlanStarter].Window()

	// Warm each instance up (key verified and cached, monthly usage read),
	// so that the burst itself needs no database connections, then skip a
	// whole (clock-aligned) window so that, with Redis counters, the
	// warm-up no longer counts in httprate's sliding estimate. In-process
	// windows start at each limiter's first request, so there the warm-up
	// may still count once per instance.
	for i, e := range envs {
		if status, code, err := usageStatus(e, key, `{ __typename }`); err != nil || status != http.StatusOK {
			t.Fatalf("warm-up of instance %d: HTTP %d %q %v", i, status, code, err)
		}
	}
	usageWindowStart(window)
	usageWindowStart(window)

	type outcome struct {
		instance, status int
		code             string
		err              error
	}
	outs := make([]outcome, requests)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			<-start
			status, code, err := usageStatus(envs[i%n], key, `{ __typename }`)
			outs[i] = outcome{i % n, status, code, err}
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	res := usageBurstResult{perInstance: make([]int, n), elapsed: time.Since(began)}
	for _, o := range outs {
		switch {
		case o.err != nil:
			t.Fatalf("request on instance %d: %v", o.instance, o.err)
		case o.status == http.StatusOK && o.code == "":
			res.admitted++
			res.perInstance[o.instance]++
		case o.status == http.StatusTooManyRequests && o.code == "rate_limit_exceeded":
			res.limited++
		default:
			t.Fatalf("instance %d answered HTTP %d %q; its log:\n%s", o.instance, o.status, o.code, envs[o.instance].Logs())
		}
	}
	return res
}

// Three replicas sharing Redis counters admit one burst between them; with
// in-process counters each admits its own.
func TestRateLimitSharedAcrossReplicas(t *testing.T) {
	t.Parallel()
	const replicas, requests = 3, 30
	burst := ratelimit.PlanLimits[db.PlanStarter].Burst
	window := ratelimit.PlanLimits[db.PlanStarter].Window()

	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		client := usageRedis(t)
		database := dbtest.Open(t, dbtest.Postgres)
		prefix := usageRedisPrefix(t, client)
		logs := &usageLockedBuffer{}
		logger := slog.New(slog.NewTextHandler(logs, nil))
		res := usageBurstAcross(t, database, replicas, requests, func() *app.Config {
			// Each replica has its own counters, as separate processes would.
			return &app.Config{UsageFlush: time.Hour,
				RateCounters: ratelimit.NewRedisCounters(client, logger, ratelimit.WithKeyPrefix(prefix),
					// A loaded test machine may answer slower than the default
					// 100 ms; falling back would defeat the point of the test.
					ratelimit.WithRedisTimeout(2*time.Second))}
		})
		t.Logf("redis: %d requests over %d replicas in %v: admitted %d (per replica %v), limited %d; burst %d",
			requests, replicas, res.elapsed.Round(time.Millisecond), res.admitted, res.perInstance, res.limited, burst)
		if strings.Contains(logs.String(), "unavailable") {
			t.Fatalf("Redis counters fell back to in-process ones:\n%s", logs)
		}
		if keys := usageRedisKeys(t, client, prefix); len(keys) == 0 {
			t.Fatal("no counter keys in Redis: the replicas did not count there")
		}
		if res.elapsed >= window {
			t.Skipf("the burst took %v, longer than a window (%v): counts not comparable", res.elapsed, window)
		}
		// httprate's Get and IncrementBy are not one atomic step, so
		// concurrent requests may overshoot a little; never by a whole
		// replica's worth.
		if res.admitted < burst || res.admitted > 2*burst {
			t.Fatalf("admitted %d across %d replicas, want %d..%d", res.admitted, replicas, burst, 2*burst)
		}
	})

	t.Run("in-process", func(t *testing.T) {
		t.Parallel()
		database := dbtest.Open(t, dbtest.Postgres)
		res := usageBurstAcross(t, database, replicas, requests, func() *app.Config { return &app.Config{UsageFlush: time.Hour} })
		t.Logf("in-process: %d requests over %d replicas in %v: admitted %d (per replica %v), limited %d; burst %d",
			requests, replicas, res.elapsed.Round(time.Millisecond), res.admitted, res.perInstance, res.limited, burst)
		if res.elapsed >= window {
			t.Skipf("the burst took %v, longer than a window (%v): counts not comparable", res.elapsed, window)
		}
		// Each replica admits up to the burst on its own.
		if res.admitted <= burst || res.admitted > replicas*burst {
			t.Fatalf("admitted %d across %d replicas without Redis, want more than %d (at most %d)",
				res.admitted, replicas, burst, replicas*burst)
		}
	})
}
