// Package app wires ReserveKit together: configuration, the HTTP router and
// its middleware order, first-start bootstrap and background jobs. The main
// package only parses the command line and calls it; tests start it on
// port 0 against a database of their own.
package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/httprate"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/graph"
	"github.com/reservekit/reservekit/server/apilog"
	"github.com/reservekit/reservekit/server/auth"
	"github.com/reservekit/reservekit/server/events"
	"github.com/reservekit/reservekit/server/metrics"
	"github.com/reservekit/reservekit/server/ratelimit"
	"github.com/reservekit/reservekit/server/redact"
	"github.com/reservekit/reservekit/server/secretbox"
	"github.com/reservekit/reservekit/server/webhooks"
)

// Config is everything the server needs besides its database.
type Config struct {
	// Log receives structured logs; never secrets.
	Log *slog.Logger
	// AuthFailuresPerIP limits failed authentications per client IP per
	// AuthFailureWindow (default 30 per minute).
	AuthFailuresPerIP int
	AuthFailureWindow time.Duration
	// KeyCacheTTL bounds how long a verified key is served from memory
	// (default 30 s); revocations through the API evict at once.
	KeyCacheTTL time.Duration
	// LastUsedFlush is how often lastUsedAt is written (default 1 min).
	LastUsedFlush time.Duration
	// ShutdownTimeout bounds graceful shutdown (default 20 s).
	ShutdownTimeout time.Duration
	// DrainDelay is how long the server keeps serving after SIGTERM, with
	// /readyz answering 503, before it stops accepting connections
	// (SHUTDOWN_DRAIN_DELAY, default 0).
	DrainDelay time.Duration
	// TrustedProxies are the proxies whose X-Forwarded-For gives the client
	// address (TRUST_PROXY_HEADERS); empty means the connection's peer.
	TrustedProxies []netip.Prefix
	// GraphQL bounds each operation's cost, depth and aliases (zero values:
	// graph.DefaultLimits).
	GraphQL graph.Limits
	// RateCounters, when set, shares the request-rate counters between
	// instances (Redis); nil keeps them in process.
	RateCounters func(window time.Duration) httprate.LimitCounter
	// Usage stores monthly usage shared by instances (default: the database).
	Usage ratelimit.UsageStore
	// UsageFlush is how often monthly usage is added to Usage (default 1 s).
	UsageFlush time.Duration
	// LogBuffer is how many API log entries may wait to be written before
	// new ones are dropped (default 10 000); LogFlush how often they are
	// written (default 500 ms); LogRetention how long they are kept (default
	// 30 days).
	LogBuffer    int
	LogFlush     time.Duration
	LogRetention time.Duration
	// NoIntrospection turns GraphQL introspection and suggestions off
	// (GRAPHQL_INTROSPECTION=false); NoPlayground removes the playground
	// (PLAYGROUND=false).
	NoIntrospection bool
	NoPlayground    bool
	// MetricsElsewhere keeps /metrics off the API's router, for serving
	// App.Metrics.Handler() on its own address (METRICS_ADDR).
	MetricsElsewhere bool
	// RedisFallbacks reports how often rate-limit counters fell back from
	// Redis, for the metrics (nil without Redis).
	RedisFallbacks func() int64
	// Secrets seals webhook signing secrets (WEBHOOK_SECRET_KEY); nil means
	// a random key for this process only (tests).
	Secrets *secretbox.Box
	// WebhookAllowPrivate lets webhooks reach private, loopback and
	// link-local addresses (WEBHOOK_ALLOW_PRIVATE=1: development, tests).
	WebhookAllowPrivate bool
	// WebhookRetry overrides the delays between delivery attempts (tests);
	// nil keeps the default schedule.
	WebhookRetry []time.Duration
}

func (c *Config) defaults() {
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// Nothing the server logs may carry a secret, whoever put it there.
	c.Log = slog.New(redact.NewHandler(c.Log.Handler()))
	if c.AuthFailuresPerIP == 0 {
		c.AuthFailuresPerIP = 30
	}
	if c.AuthFailureWindow == 0 {
		c.AuthFailureWindow = time.Minute
	}
	if c.KeyCacheTTL == 0 {
		c.KeyCacheTTL = 30 * time.Second
	}
	if c.LastUsedFlush == 0 {
		c.LastUsedFlush = time.Minute
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.UsageFlush == 0 {
		c.UsageFlush = time.Second
	}
	if c.LogBuffer == 0 {
		c.LogBuffer = 10_000
	}
	if c.LogFlush == 0 {
		c.LogFlush = 500 * time.Millisecond
	}
	if c.LogRetention == 0 {
		c.LogRetention = 30 * 24 * time.Hour
	}
	if c.Secrets == nil {
		key := make([]byte, secretbox.KeySize)
		_, _ = rand.Read(key)
		c.Secrets, _ = secretbox.New(key)
	}
}

// App is a running ReserveKit server.
type App struct {
	cfg      Config
	DB       *db.DB
	Verifier *auth.Verifier
	Quotas   *ratelimit.Quotas
	Logs     *apilog.Writer
	Metrics  *metrics.Metrics
	// Events fans booking events out to this instance's subscriptions.
	Events *events.Broker
	// Webhooks delivers the outbox's webhook deliveries.
	Webhooks *webhooks.Dispatcher
	subs     *graph.Subscriptions // set by routes for graphQL
	handler  http.Handler
	draining atomic.Bool // set when shutdown starts: /readyz answers 503
	stop     context.CancelFunc
	done     chan struct{}
}

// New builds the server on an open, migrated database and starts its
// background jobs; Close stops them.
func New(database *db.DB, cfg Config) *App {
	cfg.defaults()
	a := &App{cfg: cfg, DB: database, done: make(chan struct{})}
	a.Verifier = auth.NewVerifier(database, 10_000, cfg.KeyCacheTTL)
	if cfg.Usage == nil {
		cfg.Usage = ratelimit.DBUsage{DB: database}
	}
	a.Quotas = ratelimit.NewQuotas(cfg.Usage)
	a.Logs = apilog.New(database, cfg.LogBuffer, cfg.LogFlush, cfg.Log)
	a.Events = events.New(0)
	a.Metrics = metrics.New(metrics.Sources{
		DB: database.DB.DB, DroppedLogs: a.Logs.Dropped, RedisFallbacks: cfg.RedisFallbacks,
		Subscriptions: a.Events.Open, WebhookQueue: a.webhookQueue,
	})
	a.Webhooks = webhooks.New(webhooks.Config{
		DB: database, Secrets: cfg.Secrets, Policy: webhooks.Policy{AllowPrivate: cfg.WebhookAllowPrivate},
		Log: cfg.Log, Metrics: a.Metrics, Retry: cfg.WebhookRetry,
	})
	a.handler = a.routes()
	ctx, stop := context.WithCancel(context.Background())
	a.stop = stop
	var jobs sync.WaitGroup
	jobs.Go(func() {
		a.Verifier.RunLastUsedFlusher(ctx, cfg.LastUsedFlush, func(err error) {
			cfg.Log.Error("write lastUsedAt", "err", err)
		})
	})
	jobs.Go(func() {
		a.Quotas.Run(ctx, cfg.UsageFlush, func(err error) { cfg.Log.Error("write monthly usage", "err", err) })
	})
	jobs.Go(func() { a.Logs.Run(ctx) })
	jobs.Go(func() { apilog.RunPruner(ctx, database, cfg.LogRetention, time.Hour, cfg.Log) })
	jobs.Go(func() { a.pruneIdempotencyKeys(ctx, time.Hour) })
	// Every committed booking event passes here once: in process on SQLite,
	// as a notice from any instance on Postgres, loaded only when a
	// subscriber of this instance wants it.
	database.OnEvent = func(ev *db.BookingEvent) {
		if ev.Deliveries > 0 {
			a.Webhooks.Wake()
		}
		a.Events.Publish(ev)
	}
	// Events wanted here are loaded by a worker of their own, so that a slow
	// load never holds up the listener (which also carries key revocations).
	wanted := make(chan db.EventNotice, noticeQueue)
	onNotice := func(n db.EventNotice) {
		if n.Deliveries > 0 {
			a.Webhooks.Wake()
		}
		if !a.Events.Wants(n.AccountID, n.ServiceID) {
			return
		}
		select {
		case wanted <- n:
		default:
			cfg.Log.Warn("booking event dropped for this instance's subscribers: too many waiting", "event_id", n.ID)
		}
	}
	jobs.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case n := <-wanted:
				lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				ev, err := database.BookingEventByID(lctx, n.AccountID, n.ID)
				cancel()
				if err != nil {
					cfg.Log.Error("load booking event", "event_id", n.ID, "err", err)
					continue
				}
				a.Events.Publish(ev)
			}
		}
	})
	listeners := a.Verifier.Listeners()
	listeners.Event = onNotice
	jobs.Go(func() {
		database.Listen(ctx, listeners, func(err error) {
			cfg.Log.Warn("notifications interrupted; reconnecting (the key cache is purged then)", "err", err)
		})
	})
	// Run returns once in-flight attempts are recorded.
	jobs.Go(func() { a.Webhooks.Run(ctx) })
	go func() {
		jobs.Wait()
		close(a.done)
	}()
	return a
}

// noticeQueue bounds the booking events waiting to be loaded for this
// instance's subscribers.
const noticeQueue = 4096

// webhookQueue is the number of pending webhook deliveries, for /metrics.
func (a *App) webhookQueue() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := a.DB.PendingDeliveries(ctx)
	if err != nil {
		return -1
	}
	return int64(n)
}

// Handler is the HTTP entry point.
func (a *App) Handler() http.Handler { return a.handler }

// Serve answers HTTP on ln until ctx is cancelled, then shuts down
// gracefully: in-flight requests finish within ShutdownTimeout.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.cfg.Log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(a.Events.Shutdown) // streams would hold shutdown up
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.draining.Store(true)
	// Keep serving while load balancers see /readyz answer 503 and stop
	// sending new requests here.
	time.Sleep(a.cfg.DrainDelay)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops background jobs, flushing what they hold.
func (a *App) Close() {
	a.stop()
	<-a.done
}

// graphQL builds the GraphQL handler with its dependencies.
func (a *App) graphQL() http.Handler {
	return graph.NewHandler(&graph.Resolver{DB: a.DB, Keys: a.Verifier, Events: a.Events, Secrets: a.cfg.Secrets, Webhooks: a.Webhooks, Log: a.cfg.Log}, a.cfg.Log,
		graph.Options{Limits: a.cfg.GraphQL, NoIntrospection: a.cfg.NoIntrospection, Subscriptions: a.subs})
}

func (a *App) pruneIdempotencyKeys(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := a.DB.PruneIdempotencyKeys(ctx); err != nil && ctx.Err() == nil {
			a.cfg.Log.Error("prune idempotency keys", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
