package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql/playground"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/reservekit/reservekit/graph"
	"github.com/reservekit/reservekit/server/auth"
	"github.com/reservekit/reservekit/server/idempotency"
	"github.com/reservekit/reservekit/server/ratelimit"
	"github.com/reservekit/reservekit/server/respond"
)

// MaxBodyBytes caps request bodies.
const MaxBodyBytes = 1 << 20

// routes lays out the middleware in the order of DESIGN.md: request id,
// recovery and body limit for everything; auth (with its per-IP failure
// limit) and the per-account rate limit before GraphQL.
func (a *App) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID, exposeRequestID, a.logRequests, a.recoverer, limitBody, cors)

	if !a.cfg.NoPlayground {
		r.Get("/", playground.Handler("ReserveKit GraphQL", "/graphql",
			playground.WithGraphiqlUiHeaders(map[string]string{"Authorization": "Bearer sk_rsv_paste_your_key_here"})))
	}
	r.Get("/healthz", a.healthz)
	r.Get("/readyz", a.readyz)
	if !a.cfg.MetricsElsewhere {
		r.Handle("/metrics", a.Metrics.Handler())
	}

	authn := auth.NewMiddleware(a.Verifier, a.cfg.AuthFailuresPerIP, a.cfg.AuthFailureWindow, a.cfg.TrustedProxies,
		func(r *http.Request, err error) {
			a.cfg.Log.Error("authenticate", "err", err, "request_id", middleware.GetReqID(r.Context()))
		})
	// Order matters: the API log sees every authenticated request, including
	// those the rate limit and the monthly quota refuse.
	limiter := ratelimit.New(a.cfg.RateCounters)
	idem := idempotency.New(a.DB, a.cfg.Log)
	// WebSocket connections authenticate in connection_init (browsers send
	// no Authorization header with the upgrade), then pass the same limits.
	a.subs = a.subscriptions(authn, a.Logs.Middleware(a.cfg.TrustedProxies)(limiter.Handler(a.Quotas.Handler(admit))))
	graphQL := a.graphQL()
	gql := authn.Handler(a.Logs.Middleware(a.cfg.TrustedProxies)(a.Metrics.Middleware(
		limiter.Handler(a.Quotas.Handler(idem.Handler(watchStreams(authn)(graphQL)))))))
	r.Handle("/graphql", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if graph.IsWebSocket(r) {
			graphQL.ServeHTTP(w, r)
			return
		}
		gql.ServeHTTP(w, r)
	}))
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		respond.Error(w, http.StatusNotFound, "resource_not_found", "Not found: the API is at /graphql", nil)
	})
	return r
}

func exposeRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", middleware.GetReqID(r.Context()))
		next.ServeHTTP(w, r)
	})
}

func (a *App) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.cfg.Log.Error("panic", "panic", p, "request_id", middleware.GetReqID(r.Context()))
				respond.Error(w, http.StatusInternalServerError, "internal_error", "Internal error", nil)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			respond.Error(w, http.StatusRequestEntityTooLarge, "invalid_request", "Request body is larger than 1 MiB", nil)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

func (a *App) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	if err := a.DB.PingContext(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"unavailable","database":"unreachable"}`))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}

// readyz answers 200 when the database is reachable, every migration is
// applied and the server is not shutting down; 503 otherwise.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	problem := ""
	if a.draining.Load() {
		problem = "shutting down"
	} else if err := a.DB.PingContext(ctx); err != nil {
		problem = "database unreachable"
	} else if n, err := a.DB.Pending(ctx); err != nil || n > 0 {
		problem = "migrations not applied"
	}
	if problem != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, `{"status":"unavailable","reason":%q}`, problem)
		return
	}
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}

// logRequests writes one structured line per request: never variables,
// bodies or headers that may hold secrets.
func (a *App) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		a.cfg.Log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("request_id", middleware.GetReqID(r.Context())),
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", status), slog.Int("bytes", ww.BytesWritten()),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
	})
}
