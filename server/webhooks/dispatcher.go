// Package webhooks delivers booking events to the accounts' webhook URLs.
//
// Every booking change writes its event and one pending delivery per
// matching webhook in the transaction of the change (the outbox, see db).
// A Dispatcher leases due deliveries, POSTs each event's payload signed
// with the webhook's secret, and records every attempt. A delivery is
// retried on its schedule until the receiver answers 2xx or the attempts
// run out; a webhook whose events fail for good MaxConsecutiveFailures
// times in a row is disabled. Delivery is at least once: a dispatcher that
// dies mid-attempt leaves its lease to expire, and another (or the next)
// one sends the delivery again with the same ReserveKit-Delivery id.
//
// Receivers check the ReserveKit-Signature header with Verify (or its
// equivalent in their language, see Sign).
package webhooks

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/metrics"
	"github.com/reservekit/reservekit/server/secretbox"
)

// DefaultRetry is the default wait before attempts 2 to 10: ten attempts
// over about 23 hours (each wait is jittered by ±20%).
var DefaultRetry = []time.Duration{
	30 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute,
	time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 8 * time.Hour,
}

// Defaults of Config.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultLease        = 60 * time.Second
	DefaultPollInterval = time.Second
	DefaultWorkers      = 4
)

// jitter is the relative spread of retry delays (±20%).
const jitter = 0.2

// Config configures a Dispatcher. Zero fields take the defaults.
type Config struct {
	DB      *db.DB
	Secrets *secretbox.Box
	Policy  Policy
	Log     *slog.Logger
	Metrics *metrics.Metrics
	// Retry are the waits before attempts 2..len(Retry)+1; after the last
	// attempt fails the delivery fails for good. Default DefaultRetry.
	Retry []time.Duration
	// Timeout bounds one attempt: connect, TLS, request and response.
	Timeout time.Duration
	// Lease is how long a leased delivery is ours; it must exceed Timeout
	// (it is raised to 2×Timeout+5s when it does not).
	Lease time.Duration
	// PollInterval is how often to look for due deliveries when not woken.
	PollInterval time.Duration
	// Workers bounds the attempts in flight.
	Workers int
	// Batch bounds the deliveries leased at once (default Workers). The
	// dispatcher never leases more than it has idle workers for, so a
	// leased delivery is attempted at once and its lease cannot run out
	// while it waits.
	Batch int
}

// Dispatcher sends webhook deliveries. Run it once per process; any
// number of processes may share a database.
type Dispatcher struct {
	cfg    Config
	db     *db.DB
	log    *slog.Logger
	client *http.Client
	wake   chan struct{}
	freed  chan struct{}
}

// New returns a dispatcher for cfg, with defaults filled in.
func New(cfg Config) *Dispatcher {
	if cfg.Retry == nil {
		cfg.Retry = DefaultRetry
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Lease <= cfg.Timeout {
		cfg.Lease = 2*cfg.Timeout + 5*time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Batch <= 0 || cfg.Batch > cfg.Workers {
		cfg.Batch = cfg.Workers
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would dial for us, past the address policy
		DialContext:           cfg.Policy.dialer(cfg.Timeout).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   cfg.Workers,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeout,
		ExpectContinueTimeout: time.Second,
	}
	return &Dispatcher{
		cfg: cfg, db: cfg.DB, log: cfg.Log,
		client: &http.Client{
			Transport: transport,
			// Deliver to the URL itself: a redirect is an answer, and not 2xx.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		wake:  make(chan struct{}, 1),
		freed: make(chan struct{}, 1),
	}
}

// CheckURL refuses a webhook URL that is malformed or whose host the
// policy does not allow, as a *db.Error on field "url".
func (d *Dispatcher) CheckURL(ctx context.Context, rawURL string) error {
	return d.cfg.Policy.CheckURL(ctx, rawURL)
}

// Wake tells Run that deliveries may be due (an event was committed). It
// never blocks, and wakes coalesce.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers due deliveries until ctx is done: it leases as many as it
// has idle workers for, attempts them concurrently, and looks again at
// once when it leased a full batch, when a worker frees up while all were
// busy, on Wake, or after PollInterval. When ctx is done it stops leasing
// and returns after the attempts in flight have finished and been recorded
// (each is bounded by Timeout, not by ctx). On SQLite, which has one
// instance, it first releases the leases a killed process left.
func (d *Dispatcher) Run(ctx context.Context) {
	if !d.db.IsPostgres() {
		// SQLite has a single instance: a lease found at start is one a
		// killed process left; its delivery need not wait for it to expire.
		if n, err := d.db.ReleaseLeases(ctx); err != nil {
			d.log.Error("release webhook leases", "err", err)
		} else if n > 0 {
			d.log.Info("webhook deliveries of a previous run are due again", "deliveries", n)
		}
	}
	sem := make(chan struct{}, d.cfg.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(d.cfg.PollInterval)
	defer timer.Stop()
	for ctx.Err() == nil {
		n := min(d.cfg.Batch, cap(sem)-len(sem))
		busy := n == 0
		if n > 0 {
			// Not cut short by ctx: what gets leased gets attempted.
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.Timeout)
			leased, err := d.db.LeaseDeliveries(lctx, n, d.cfg.Lease)
			cancel()
			if err != nil {
				d.log.Error("lease webhook deliveries", "err", err)
			}
			for _, dl := range leased {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := d.attempt(context.WithoutCancel(ctx), dl, false); err != nil {
						d.log.Error("webhook delivery", "delivery_id", dl.ID, "webhook_id", dl.WebhookID, "err", err)
					}
					<-sem
					select {
					case d.freed <- struct{}{}:
					default:
					}
				}()
			}
			if err == nil && len(leased) == n {
				continue // a full batch: more may be due
			}
		}
		timer.Reset(d.cfg.PollInterval) // since Go 1.23, Reset drops a stale tick
		var freed <-chan struct{}
		if busy {
			freed = d.freed
		}
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-freed:
		case <-timer.C:
		}
	}
}

// DeliverNow makes one attempt of a delivery the caller has leased (the
// test delivery of testWebhook) and records it, like Run would; a failed
// attempt is retried by Run on the usual schedule. Unlike Run it also sends
// to a disabled webhook, so that a receiver can be tested before the
// webhook is enabled again. The attempt is bounded by Timeout and is not
// cut short when ctx is cancelled, so that it is always recorded.
func (d *Dispatcher) DeliverNow(ctx context.Context, dl *db.Delivery) error {
	_, err := d.attempt(context.WithoutCancel(ctx), dl, true)
	return err
}

// retryDelay is the jittered wait after the attempts-th failed attempt, or
// false when no attempt is left.
func (d *Dispatcher) retryDelay(attempts int) (time.Duration, bool) {
	if attempts < 1 || attempts > len(d.cfg.Retry) {
		return 0, false
	}
	base := d.cfg.Retry[attempts-1]
	f := 1 + jitter*(2*rand.Float64()-1)
	return time.Duration(float64(base) * f), true
}
