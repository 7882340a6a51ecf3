package webhooks_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/metrics"
	"github.com/reservekit/reservekit/server/webhooks"
)

// TestDeliveryRetriedUntilAccepted: the receiver answers 500 twice, then
// 200; the POSTs are signed, carry the headers and the exact payload, and
// keep one delivery id across attempts, all of which are recorded.
func TestDeliveryRetriedUntilAccepted(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		f := newFixture(t, database)
		rc := newReceiver(t, func(n int, _ *http.Request) int {
			if n <= 2 {
				return http.StatusInternalServerError
			}
			return http.StatusNoContent
		})
		w, secret := f.webhook(rc.URL + "/hook?token=abc")
		m := metrics.New(metrics.Sources{})
		d := f.dispatcher(func(c *webhooks.Config) { c.Metrics = m })
		run(t, d)
		f.book()
		d.Wake()
		eventually(t, 10*time.Second, "delivery", func() bool { return f.countStatus(w.ID, db.DeliveryDelivered) == 1 })

		ds := f.deliveries(w.ID)
		if len(ds) != 1 || ds[0].Attempts != 3 || ds[0].DeliveredAt == nil || ds[0].LeasedUntil != nil {
			t.Fatalf("deliveries = %+v, want one delivered after 3 attempts", ds)
		}
		ev, err := database.BookingEventByID(context.Background(), ds[0].AccountID, ds[0].EventID)
		if err != nil {
			t.Fatal(err)
		}
		reqs := rc.got()
		if len(reqs) != 3 {
			t.Fatalf("receiver got %d requests, want 3", len(reqs))
		}
		for i, r := range reqs {
			if got := r.header.Get(webhooks.HeaderDelivery); got != strconv.FormatInt(ds[0].ID, 10) {
				t.Errorf("request %d: delivery id %q, want %d", i, got, ds[0].ID)
			}
			if err := webhooks.Verify(secret, r.header.Get(webhooks.HeaderSignature), r.body, time.Now(), time.Minute); err != nil {
				t.Errorf("request %d: signature: %v", i, err)
			}
			if string(r.body) != ev.Payload {
				t.Errorf("request %d: body %s, want the event payload %s", i, r.body, ev.Payload)
			}
			for k, want := range map[string]string{
				"Content-Type": "application/json", "User-Agent": "ReserveKit-Webhooks/1",
				webhooks.HeaderEvent: db.EventBookingCreated,
			} {
				if got := r.header.Get(k); got != want {
					t.Errorf("request %d: %s = %q, want %q", i, k, got, want)
				}
			}
		}
		as := f.attempts(ds[0].ID)
		if len(as) != 3 {
			t.Fatalf("%d attempts recorded, want 3", len(as))
		}
		for i, a := range as {
			want := 500
			if i == 2 {
				want = 204
			}
			if a.HTTPStatus == nil || *a.HTTPStatus != want {
				t.Errorf("attempt %d: status %v, want %d", i, a.HTTPStatus, want)
			}
			if a.DurationMs <= 0 || a.AttemptedAt.IsZero() {
				t.Errorf("attempt %d: duration %v at %v", i, a.DurationMs, a.AttemptedAt)
			}
		}
		if as[0].Error == nil || *as[0].Error != "HTTP 500" || as[0].ResponseSnippet == nil || *as[0].ResponseSnippet != "answer 500" {
			t.Errorf("first attempt: error %v snippet %v", deref(as[0].Error), deref(as[0].ResponseSnippet))
		}
		if as[2].Error != nil {
			t.Errorf("last attempt: error %q, want none", *as[2].Error)
		}
		scrape := scrapeMetrics(t, m)
		for _, want := range []string{`reservekit_webhook_attempts_total{result="retry"} 2`, `reservekit_webhook_attempts_total{result="delivered"} 1`} {
			if !strings.Contains(scrape, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

// TestReceiverDownThenUp: nothing listens at first (connection refused),
// then the receiver starts on that port and gets the delivery.
func TestReceiverDownThenUp(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		f := newFixture(t, database)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		w, _ := f.webhook("http://" + addr + "/hook")
		d := f.dispatcher(func(c *webhooks.Config) {
			c.Retry = []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond,
				50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond}
		})
		run(t, d)
		f.book()
		d.Wake()
		var del *db.Delivery
		eventually(t, 10*time.Second, "a refused attempt", func() bool {
			ds := f.deliveries(w.ID)
			del = ds[0]
			return len(ds) == 1 && ds[0].Attempts >= 1
		})
		l, err = net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("port %s taken meanwhile: %v", addr, err)
		}
		rc := &receiver{ok: map[string]int{}}
		rc.Server = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
		rc.Listener.Close()
		rc.Listener = l
		rc.Start()
		t.Cleanup(rc.Close)
		eventually(t, 10*time.Second, "delivery", func() bool { return f.countStatus(w.ID, db.DeliveryDelivered) == 1 })
		as := f.attempts(del.ID)
		if len(as) < 2 {
			t.Fatalf("%d attempts, want at least 2", len(as))
		}
		first, last := as[0], as[len(as)-1]
		if first.HTTPStatus != nil || first.Error == nil || *first.Error != "connection refused" {
			t.Errorf("first attempt: status %v error %q", first.HTTPStatus, deref(first.Error))
		}
		if last.HTTPStatus == nil || *last.HTTPStatus != 200 || last.Error != nil {
			t.Errorf("last attempt: status %v error %q", last.HTTPStatus, deref(last.Error))
		}
		if got := rc.okCounts()[strconv.FormatInt(del.ID, 10)]; got != 1 {
			t.Errorf("receiver accepted the delivery %d times", got)
		}
	})
}

// TestFailingWebhookDisabled: every attempt of every event fails; each
// delivery fails for good after its attempts, and after
// MaxConsecutiveFailures such events the webhook is disabled (logged at
// Warn, without secret or payload) and gets no more deliveries.
func TestFailingWebhookDisabled(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		f := newFixture(t, database)
		rc := newReceiver(t, func(int, *http.Request) int { return http.StatusServiceUnavailable })
		w, secret := f.webhook(rc.URL + "/hook")
		var logs syncBuffer
		m := metrics.New(metrics.Sources{})
		d := f.dispatcher(func(c *webhooks.Config) {
			c.Log = slog.New(slog.NewTextHandler(&logs, nil))
			c.Metrics = m
			c.Workers = 1 // one event after the other, so failures are consecutive in order
		})
		for range db.MaxConsecutiveFailures {
			f.book()
		}
		run(t, d)
		eventually(t, 20*time.Second, "all deliveries finished", func() bool {
			return f.countStatus(w.ID, db.DeliveryPending) == 0
		})
		if got := f.countStatus(w.ID, db.DeliveryFailed); got != db.MaxConsecutiveFailures {
			t.Fatalf("%d failed deliveries, want %d", got, db.MaxConsecutiveFailures)
		}
		for _, dl := range f.deliveries(w.ID) {
			as := f.attempts(dl.ID)
			if dl.Attempts != 4 || len(as) != 4 {
				t.Errorf("delivery %d: %d attempts (%d recorded), want 4", dl.ID, dl.Attempts, len(as))
			}
			for _, a := range as {
				if a.Error == nil || *a.Error != "HTTP 503" {
					t.Errorf("delivery %d: attempt error %q", dl.ID, deref(a.Error))
				}
			}
		}
		got, err := database.WebhookByID(context.Background(), w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Active || got.DisabledReason == nil || got.ConsecutiveFailures != db.MaxConsecutiveFailures {
			t.Fatalf("webhook active=%v reason=%q failures=%d, want disabled", got.Active, deref(got.DisabledReason), got.ConsecutiveFailures)
		}
		audit, err := database.ListAuditEvents(context.Background(), f.account, db.Page{First: 10})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(audit); n == 0 || audit[0].Action != db.AuditWebhookDisabled || audit[0].Target != fmt.Sprintf("webhook:%d", w.ID) || audit[0].ActorKeyPrefix != "" {
			t.Fatalf("newest audit event %+v, want %s of webhook %d without an actor", audit, db.AuditWebhookDisabled, w.ID)
		}
		out := logs.String()
		if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "webhook disabled") {
			t.Errorf("no warning about the disabled webhook in logs:\n%s", out)
		}
		if strings.Contains(out, secret) || strings.Contains(out, "bookings.create") || strings.Contains(out, "customer1@") {
			t.Errorf("logs leak the secret or payload:\n%s", out)
		}
		if s := scrapeMetrics(t, m); !strings.Contains(s, `reservekit_webhook_attempts_total{result="failed"} 5`) ||
			!strings.Contains(s, `reservekit_webhook_attempts_total{result="retry"} 15`) {
			t.Errorf("metrics:\n%s", s)
		}
		// A disabled webhook gets no new deliveries.
		f.book()
		d.Wake()
		if n := len(f.deliveries(w.ID)); n != db.MaxConsecutiveFailures {
			t.Errorf("%d deliveries after disabling, want %d", n, db.MaxConsecutiveFailures)
		}
	})
}

// TestDisabledOrDeletedWebhookAbandoned: deliveries already queued for a
// webhook that gets disabled are failed without an attempt; DeliverNow
// still sends to a disabled webhook (testWebhook before re-enabling).
func TestDisabledOrDeletedWebhookAbandoned(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		ctx := context.Background()
		f := newFixture(t, database)
		rc := newReceiver(t, nil)
		w, _ := f.webhook(rc.URL)
		f.book()
		off := false
		if _, err := database.UpdateWebhook(ctx, f.account, nil, w.ID, db.WebhookUpdate{Active: &off}); err != nil {
			t.Fatal(err)
		}
		d := f.dispatcher(nil)
		run(t, d)
		eventually(t, 10*time.Second, "abandoned", func() bool { return f.countStatus(w.ID, db.DeliveryFailed) == 1 })
		dl := f.deliveries(w.ID)[0]
		if dl.Attempts != 0 || len(f.attempts(dl.ID)) != 0 || len(rc.got()) != 0 {
			t.Fatalf("abandoned delivery: %d attempts, receiver got %d", dl.Attempts, len(rc.got()))
		}

		ev, err := database.SampleEvent(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		test, err := database.NewLeasedDelivery(ctx, w, ev, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.DeliverNow(ctx, test); err != nil {
			t.Fatal(err)
		}
		if test.Status != db.DeliveryDelivered || len(rc.got()) != 1 || string(rc.got()[0].body) != ev.Payload {
			t.Fatalf("test delivery status %s, receiver got %d", test.Status, len(rc.got()))
		}
	})
}

// TestDeliverNowCancelledContext: the caller's context going away does
// not cut the attempt short, so it is always recorded.
func TestDeliverNowCancelledContext(t *testing.T) {
	database := dbtest.Open(t, dbtest.SQLite)
	f := newFixture(t, database)
	rc := newReceiver(t, nil)
	w, _ := f.webhook(rc.URL)
	ctx := context.Background()
	ev, err := database.SampleEvent(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := database.NewLeasedDelivery(ctx, w, ev, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := f.dispatcher(nil).DeliverNow(cctx, dl); err != nil {
		t.Fatal(err)
	}
	if dl.Status != db.DeliveryDelivered || len(f.attempts(dl.ID)) != 1 {
		t.Fatalf("status %s, %d attempts", dl.Status, len(f.attempts(dl.ID)))
	}
}

// TestAttemptErrors: timeouts, redirects and large or binary answers are
// recorded as short failures.
func TestAttemptErrors(t *testing.T) {
	database := dbtest.Open(t, dbtest.SQLite)
	f := newFixture(t, database)
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		// 1023 ASCII bytes then a 3-byte rune cut by the 1 KB limit, a NUL, more.
		w.Write(append(append(bytes.Repeat([]byte("x"), 1023), "€\x00"...), bytes.Repeat([]byte("y"), 5000)...))
	})
	mux.HandleFunc("/binary", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte{0xff, 0xfe, 'o', 'k', 0x00})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: srv.Close waits for /slow
	d := f.dispatcher(func(c *webhooks.Config) { c.Timeout = 200 * time.Millisecond; c.Retry = []time.Duration{time.Hour} })
	ctx := context.Background()
	for _, tc := range []struct {
		path, err string
		status    int
		snippet   func(string) bool
	}{
		{"/slow", "timeout after 200ms", 0, nil},
		{"/redirect", "HTTP 302 (redirects are not followed)", 302, nil},
		{"/big", "HTTP 400", 400, func(s string) bool { return s == strings.Repeat("x", 1023) }},
		{"/binary", "", 200, func(s string) bool { return s == "\uFFFDok" }}, // a run of invalid bytes becomes one U+FFFD
	} {
		t.Run(tc.path, func(t *testing.T) {
			w, _ := f.webhook(srv.URL + tc.path)
			ev, err := database.SampleEvent(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			dl, err := database.NewLeasedDelivery(ctx, w, ev, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.DeliverNow(ctx, dl); err != nil {
				t.Fatal(err)
			}
			as := f.attempts(dl.ID)
			if len(as) != 1 {
				t.Fatalf("%d attempts", len(as))
			}
			a := as[0]
			if deref(a.Error) != tc.err {
				t.Errorf("error %q, want %q", deref(a.Error), tc.err)
			}
			if (tc.status == 0) != (a.HTTPStatus == nil) || (a.HTTPStatus != nil && *a.HTTPStatus != tc.status) {
				t.Errorf("status %v, want %d", a.HTTPStatus, tc.status)
			}
			if tc.snippet != nil && (a.ResponseSnippet == nil || !tc.snippet(*a.ResponseSnippet)) {
				t.Errorf("snippet %q", deref(a.ResponseSnippet))
			}
			if tc.status != 200 && (dl.Status != db.DeliveryPending || dl.NextAttemptAt == nil || time.Until(*dl.NextAttemptAt) < 40*time.Minute) {
				t.Errorf("after a failed first attempt: status %s next %v, want pending in about an hour", dl.Status, dl.NextAttemptAt)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func scrapeMetrics(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
