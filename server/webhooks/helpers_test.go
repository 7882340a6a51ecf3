package webhooks_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/secretbox"
	"github.com/reservekit/reservekit/server/webhooks"
)

// fixture is an account with one service and one weekly slot that never
// fills, on a fresh database.
type fixture struct {
	t       testing.TB
	db      *db.DB
	box     *secretbox.Box
	account int64
	slot    *db.TimeSlot
	date    string
	n       atomic.Int64
}

func newFixture(t testing.TB, database *db.DB) *fixture {
	t.Helper()
	ctx := context.Background()
	box, err := secretbox.New(bytes.Repeat([]byte{7}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	acct, err := database.CreateAccount(ctx, "acme", db.PlanGrowth, db.AccountLimits{})
	if err != nil {
		t.Fatal(err)
	}
	name, tz := "Consultation", "UTC"
	svc, err := database.CreateService(ctx, acct.ID, db.ServiceInput{Name: &name, Timezone: &tz}, nil)
	if err != nil {
		t.Fatal(err)
	}
	date := time.Now().UTC().AddDate(0, 0, 8)
	slots, err := database.UpsertTimeSlots(ctx, acct.ID, svc.ID, []db.TimeSlotInput{{
		DayOfWeek: int(date.Weekday()), StartMinute: 600, EndMinute: 660, MaxBookings: 1_000_000,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, db: database, box: box, account: acct.ID, slot: slots[0], date: date.Format(db.DateLayout)}
}

// webhook subscribes a URL to bookings.create; it returns the webhook and
// its plain secret. The URL is not checked against any policy (as after
// a DNS change).
func (f *fixture) webhook(rawURL string) (*db.Webhook, string) {
	f.t.Helper()
	secret := webhooks.NewSecret()
	w, err := f.db.CreateWebhook(context.Background(), f.account, nil,
		db.WebhookInput{URL: rawURL, Events: []string{db.EventBookingCreated}}, f.box.Seal(secret))
	if err != nil {
		f.t.Fatal(err)
	}
	return w, secret
}

// book creates a booking, hence a bookings.create event and its deliveries.
func (f *fixture) book() *db.Booking {
	f.t.Helper()
	email := fmt.Sprintf("customer%d@example.com", f.n.Add(1))
	b, err := f.db.CreateBooking(context.Background(), f.account, db.BookingInput{
		TimeSlotID: f.slot.ID, Date: f.date, Customer: db.CustomerInput{Email: &email},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// deliveries returns the deliveries of a webhook, oldest first.
func (f *fixture) deliveries(webhookID int64) []*db.Delivery {
	f.t.Helper()
	var out []*db.Delivery
	if err := f.db.NewSelect().Model(&out).Where("webhook_id = ?", webhookID).OrderExpr("id ASC").
		Scan(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// attempts returns a delivery's attempts, oldest first.
func (f *fixture) attempts(deliveryID int64) []*db.Attempt {
	f.t.Helper()
	m, err := f.db.AttemptsOf(context.Background(), []int64{deliveryID})
	if err != nil {
		f.t.Fatal(err)
	}
	return m[deliveryID]
}

// dispatcher returns a dispatcher for tests: private addresses allowed,
// tiny retry delays and poll interval.
func (f *fixture) dispatcher(mod func(*webhooks.Config)) *webhooks.Dispatcher {
	cfg := webhooks.Config{
		DB: f.db, Secrets: f.box, Policy: webhooks.Policy{AllowPrivate: true},
		Log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		Retry:        []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond},
		Timeout:      2 * time.Second,
		Lease:        5 * time.Second,
		PollInterval: 20 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	return webhooks.New(cfg)
}

// run runs d until the test ends (and waits for it to return).
func run(t testing.TB, d *webhooks.Dispatcher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countStatus counts a webhook's deliveries by status.
func (f *fixture) countStatus(webhookID int64, status string) int {
	f.t.Helper()
	n, err := f.db.CountDeliveries(context.Background(), f.account, webhookID, &status)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// request is what a receiver got.
type request struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a real HTTP endpoint that records requests and answers
// with status(n) for its n-th request (from 1).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
	ok       map[string]int // 2xx answers by delivery id
	status   func(n int, r *http.Request) int
}

func newReceiver(t testing.TB, status func(n int, r *http.Request) int) *receiver {
	rc := &receiver{ok: map[string]int{}, status: status}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.requests = append(rc.requests, request{header: r.Header.Clone(), body: body, at: time.Now()})
	n := len(rc.requests)
	rc.mu.Unlock()
	code := http.StatusOK
	if rc.status != nil {
		code = rc.status(n, r)
	}
	if code >= 200 && code < 300 {
		rc.mu.Lock()
		rc.ok[r.Header.Get(webhooks.HeaderDelivery)]++
		rc.mu.Unlock()
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, "answer %d", code)
}

func (rc *receiver) got() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.requests...)
}

func (rc *receiver) okCounts() map[string]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]int, len(rc.ok))
	for k, v := range rc.ok {
		out[k] = v
	}
	return out
}

// secondHandle opens another connection pool on the same database: on
// Postgres a new *db.DB on the test's schema (as a second process would),
// on SQLite nil (the caller shares the handle).
func secondHandle(t testing.TB, database *db.DB) *db.DB {
	t.Helper()
	if !database.IsPostgres() {
		return nil
	}
	var schema string
	if err := database.QueryRowContext(context.Background(), "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(os.Getenv("TEST_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	other, err := db.Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	other.DB.DB.SetMaxOpenConns(5)
	t.Cleanup(func() { other.Close() })
	return other
}
