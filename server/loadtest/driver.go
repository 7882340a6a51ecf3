package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/uptrace/bun"
)

// stmtCounter is a bun query hook counting every statement the server runs
// (BEGIN and COMMIT included), and separately those run on behalf of a
// request (their context comes from labelRequests), as opposed to the
// background jobs (API log batches, usage and lastUsedAt flushes).
type stmtCounter struct {
	all, inRequest atomic.Int64
}

var _ bun.QueryHook = (*stmtCounter)(nil)

func (c *stmtCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (c *stmtCounter) AfterQuery(ctx context.Context, _ *bun.QueryEvent) {
	c.all.Add(1)
	if ctx.Value(requestKey{}) != nil {
		c.inRequest.Add(1)
	}
}

type requestKey struct{}

// scenarioHeader names the scenario of a request.
const scenarioHeader = "X-Loadtest-Scenario"

// labelRequests marks each request's context (for stmtCounter) and runs it
// under the pprof label scenario=<name>, inherited by the goroutines it
// starts (field resolvers, dataloader batches).
func labelRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), requestKey{}, true)
		pprof.Do(ctx, pprof.Labels("scenario", r.Header.Get(scenarioHeader)), func(ctx context.Context) {
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	})
}

// driver sends GraphQL requests with one key from a fixed number of clients.
type driver struct {
	url, auth   string
	concurrency int
	client      *http.Client
}

func newDriver(url, key string, concurrency int) *driver {
	return &driver{url: url, auth: "Bearer " + key, concurrency: concurrency, client: &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns: 2 * concurrency, MaxIdleConnsPerHost: 2 * concurrency, MaxConnsPerHost: 2 * concurrency,
			DisableCompression: true, IdleConnTimeout: time.Minute,
		},
	}}
}

// result is what one scenario measured.
type result struct {
	sc               *scenario
	requests, errors int
	elapsed          time.Duration
	latencies        []time.Duration
	stmts, stmtsReq  int64
	// cpu is the CPU time (user + system) the whole process used while
	// measuring: server and load generator.
	cpu        time.Duration
	firstError string
}

func (r *result) throughput() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r *result) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies)) * p)
	return r.latencies[min(i, len(r.latencies)-1)]
}

func (r *result) perOp(n int64) float64 {
	if r.requests == 0 {
		return 0
	}
	return float64(n) / float64(r.requests)
}

func (r *result) summary() string {
	s := fmt.Sprintf("%d requests, %d errors, %.0f req/s, p50 %s, p99 %s, %.2f SQL/op (%.2f in request), CPU %s/op",
		r.requests, r.errors, r.throughput(), ms(r.percentile(0.50)), ms(r.percentile(0.99)),
		r.perOp(r.stmts), r.perOp(r.stmtsReq), ms(r.cpuPerOp()))
	if r.firstError != "" {
		s += "\n    first error: " + r.firstError
	}
	return s
}

func (r *result) cpuPerOp() time.Duration {
	if r.requests == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.requests)
}

// processCPU is the user + system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// run warms the scenario up, then measures it for duration: every client
// sends its next request as soon as the previous one is answered.
func (d *driver) run(sc *scenario, warmup, duration time.Duration, counter *stmtCounter) *result {
	if warmup > 0 {
		d.phase(sc, warmup)
	}
	allBefore, reqBefore := counter.all.Load(), counter.inRequest.Load()
	cpuBefore := processCPU()
	start := time.Now()
	workers := d.phase(sc, duration)
	r := &result{sc: sc, elapsed: time.Since(start), cpu: processCPU() - cpuBefore}
	r.stmts, r.stmtsReq = counter.all.Load()-allBefore, counter.inRequest.Load()-reqBefore
	for _, w := range workers {
		r.requests += len(w.latencies)
		r.errors += w.errors
		r.latencies = append(r.latencies, w.latencies...)
		if r.firstError == "" {
			r.firstError = w.firstError
		}
	}
	slices.Sort(r.latencies)
	return r
}

type worker struct {
	latencies  []time.Duration
	errors     int
	firstError string
}

// phase runs the clients for duration and waits for their last answers.
func (d *driver) phase(sc *scenario, duration time.Duration) []*worker {
	deadline := time.Now().Add(duration)
	workers := make([]*worker, d.concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{latencies: make([]time.Duration, 0, 4096)}
		workers[i] = w
		wg.Go(func() {
			pprof.Do(context.Background(), pprof.Labels("scenario", sc.name, "side", "client"), func(context.Context) {
				var buf bytes.Buffer
				for time.Now().Before(deadline) {
					body := sc.body(sc.next.Add(1) - 1)
					t0 := time.Now()
					err := d.do(sc.name, body, &buf)
					w.latencies = append(w.latencies, time.Since(t0))
					if err != nil {
						w.errors++
						if w.firstError == "" {
							w.firstError = err.Error()
						}
					}
				}
			})
		})
	}
	wg.Wait()
	return workers
}

// do sends one request; an HTTP status other than 200 or a response with
// GraphQL errors is an error.
func (d *driver) do(name string, body []byte, buf *bytes.Buffer) error {
	req, err := http.NewRequest(http.MethodPost, d.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", d.auth)
	req.Header.Set(scenarioHeader, name)
	res, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	buf.Reset()
	if _, err := io.Copy(buf, res.Body); err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK || bytes.Contains(buf.Bytes(), []byte(`"errors":`)) ||
		!bytes.HasPrefix(buf.Bytes(), []byte(`{"data":{`)) {
		return fmt.Errorf("HTTP %d: %.300s", res.StatusCode, buf.Bytes())
	}
	return nil
}
