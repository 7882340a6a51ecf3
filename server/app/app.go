// Package app wires ReserveKit together: configuration, the HTTP router and
// its middleware order, first-start bootstrap and background jobs. The main
// package only parses the command line and calls it; tests start it on
// port 0 against a database of their own.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/graph"
	"github.com/reservekit/reservekit/server/auth"
	"github.com/reservekit/reservekit/server/ratelimit"
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
	// TrustedProxies are the proxies whose X-Forwarded-For gives the client
	// address (TRUST_PROXY_HEADERS); empty means the connection's peer.
	TrustedProxies []netip.Prefix
}

func (c *Config) defaults() {
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
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
}

// App is a running ReserveKit server.
type App struct {
	cfg      Config
	DB       *db.DB
	Verifier *auth.Verifier
	handler  http.Handler
	stop     context.CancelFunc
	done     chan struct{}
}

// New builds the server on an open, migrated database and starts its
// background jobs; Close stops them.
func New(database *db.DB, cfg Config) *App {
	cfg.defaults()
	a := &App{cfg: cfg, DB: database, done: make(chan struct{})}
	a.Verifier = auth.NewVerifier(database, 10_000, cfg.KeyCacheTTL)
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
		a.Verifier.ListenForChanges(ctx, func(err error) {
			cfg.Log.Warn("key change notifications interrupted; cache purged on reconnect", "err", err)
		})
	})
	go func() {
		jobs.Wait()
		close(a.done)
	}()
	return a
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
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
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
	return graph.NewHandler(&graph.Resolver{DB: a.DB, Keys: a.Verifier}, a.cfg.Log)
}

func (a *App) rateLimiter() *ratelimit.Limiter { return ratelimit.New(nil) }
