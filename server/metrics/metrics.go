// Package metrics exposes the server's Prometheus metrics: requests by
// operation and status, latency, refusals by the rate limit and the monthly
// quota, database pool statistics, dropped API log entries, Redis
// fallbacks, webhook attempts and queue depth, and open subscriptions.
package metrics

import (
	"database/sql"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reservekit/reservekit/server/reqinfo"
)

// Metrics holds the collectors of one server.
type Metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	refused  *prometheus.CounterVec
	webhooks *prometheus.CounterVec
}

// Sources are the values read at scrape time; nil funcs are left out.
type Sources struct {
	DB             *sql.DB
	DroppedLogs    func() int64
	RedisFallbacks func() int64
	// WebhookQueue is the number of deliveries waiting (read at scrape time).
	WebhookQueue func() int64
	// Subscriptions is the number of open GraphQL subscriptions.
	Subscriptions func() int64
}

// New registers the collectors.
func New(src Sources) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservekit_requests_total", Help: "Authenticated GraphQL requests by root fields and HTTP status.",
		}, []string{"operation", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "reservekit_request_duration_seconds", Help: "Latency of authenticated GraphQL requests.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"operation"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservekit_refused_total", Help: "Requests refused by limits, by error code (rate_limit_exceeded, api_limit_exceeded, query_too_complex, …).",
		}, []string{"code"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reservekit_webhook_attempts_total", Help: "Webhook delivery attempts by result (delivered, retry, failed).",
		}, []string{"result"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.refused, m.webhooks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.DB != nil {
		m.registry.MustRegister(collectors.NewDBStatsCollector(src.DB, "reservekit"))
	}
	counter := func(name, help string, f func() int64) {
		if f != nil {
			m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
				func() float64 { return float64(f()) }))
		}
	}
	counter("reservekit_api_log_dropped_total", "API log entries dropped because the buffer was full.", src.DroppedLogs)
	counter("reservekit_ratelimit_redis_fallbacks_total", "Rate-limit counter calls served locally because Redis failed.", src.RedisFallbacks)
	gauge := func(name, help string, f func() int64) {
		if f != nil {
			m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
				func() float64 { return float64(f()) }))
		}
	}
	gauge("reservekit_webhook_queue_depth", "Webhook deliveries pending (due or waiting for a retry).", src.WebhookQueue)
	gauge("reservekit_subscriptions", "Open GraphQL subscriptions on this instance.", src.Subscriptions)
	return m
}

// WebhookAttempt counts one delivery attempt: result is delivered, retry
// (failed, will be retried) or failed (failed for good). Safe on nil.
func (m *Metrics) WebhookAttempt(result string) {
	if m != nil {
		m.webhooks.WithLabelValues(result).Inc()
	}
}

// refusals are the error codes counted as refused requests.
var refusals = map[string]bool{
	"rate_limit_exceeded": true, "api_limit_exceeded": true, "query_too_complex": true,
	"query_too_deep": true, "too_many_aliases": true, "insufficient_scope": true,
}

// Middleware observes each request; it must run inside the API-log
// middleware, which gathers the request's operation.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		op := "unknown"
		if info := reqinfo.From(r.Context()); info != nil {
			snap := info.Snapshot()
			if len(snap.RootFields) > 0 {
				op = operationLabel(snap.RootFields)
			}
			for _, code := range snap.ErrorCodes {
				if refusals[code] {
					m.refused.WithLabelValues(code).Inc()
				}
			}
		}
		m.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
		m.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	})
}

// operationLabel names an operation by its root fields (schema names, so
// the label's values are bounded), at most three.
func operationLabel(fields []string) string {
	if len(fields) > 3 {
		return strings.Join(fields[:3], ",") + ",…"
	}
	return strings.Join(fields, ",")
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
