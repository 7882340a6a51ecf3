package app_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/app/apptest"
	"github.com/reservekit/reservekit/server/auth"
)

const (
	whFields      = `id url service { id } events description active disabledReason consecutiveFailures createdAt updatedAt`
	gqlCreateWH   = `mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { secret webhook { ` + whFields + ` } } }`
	gqlUpdateWH   = `mutation($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) { ` + whFields + ` } }`
	gqlDeleteWH   = `mutation($id: ID!) { deleteWebhook(id: $id) }`
	gqlRotateWH   = `mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { id } } }`
	gqlTestWH     = `mutation($id: ID!) { testWebhook(id: $id) { ` + deliveryFields + ` } }`
	gqlWebhook    = `query($id: ID!) { webhook(id: $id) { ` + whFields + ` } }`
	gqlWebhooks   = `query($after: String) { webhooks(first: 2, after: $after) { totalCount nodes { id } pageInfo { hasNextPage endCursor } } }`
	gqlDeliveries = `query($id: ID!, $status: WebhookDeliveryStatus) { webhookDeliveries(webhookId: $id, first: 100, status: $status) {
		totalCount nodes { ` + deliveryFields + ` } } }`
	deliveryFields = `id eventType status payload nextRetryAt createdAt deliveredAt
		attempts { at httpStatus durationMs error responseSnippet }`
)

type whWebhook struct {
	ID                  string
	URL                 string
	Service             *struct{ ID string }
	Events              []string
	Description         string
	Active              bool
	DisabledReason      *string
	ConsecutiveFailures int
}

type whDelivery struct {
	ID          string
	EventType   string
	Status      string
	Payload     string
	NextRetryAt *string
	DeliveredAt *string
	Attempts    []struct {
		HTTPStatus      *int `json:"httpStatus"`
		DurationMs      float64
		Error           *string
		ResponseSnippet *string
	}
}

// received is one POST a receiver got.
type received struct {
	at     time.Time
	header http.Header
	body   []byte
}

// receiver is a real HTTP endpoint that records what it is sent and
// answers with status (200 unless changed).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	status int
	notify chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{status: http.StatusOK, notify: make(chan struct{}, 1000)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{at: time.Now(), header: r.Header.Clone(), body: body})
		status := rc.status
		rc.mu.Unlock()
		select {
		case rc.notify <- struct{}{}:
		default:
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// waitFor waits until the receiver holds n requests and returns them.
func (rc *receiver) waitFor(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if got := rc.all(); len(got) >= n {
			return got
		}
		select {
		case <-rc.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("receiver got %d requests, want %d", len(rc.all()), n)
		}
	}
}

// verifySignature checks ReserveKit-Signature as a receiver would, from
// the documented format alone: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">.
func verifySignature(header string, body []byte, secret string) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return fmt.Errorf("malformed signature header %q", header)
	}
	if d := time.Since(time.Unix(unix, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s too far from now", ts)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%s.%s", ts, body)
	want := hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return fmt.Errorf("signature does not verify")
	}
	return nil
}

func newWebhookEnv(t *testing.T, database *db.DB) *apptest.Env {
	return newEnv(t, database, &app.Config{WebhookAllowPrivate: true})
}

func mustCreateWebhook(t *testing.T, e *apptest.Env, key string, input map[string]any) (whWebhook, string) {
	t.Helper()
	var out struct {
		CreateWebhook struct {
			Secret  string
			Webhook whWebhook
		}
	}
	e.MustData(key, gqlCreateWH, map[string]any{"input": input}, &out)
	return out.CreateWebhook.Webhook, out.CreateWebhook.Secret
}

func deliveriesOf(t *testing.T, e *apptest.Env, key, id string) []whDelivery {
	t.Helper()
	var out struct {
		WebhookDeliveries struct {
			TotalCount int
			Nodes      []whDelivery
		}
	}
	e.MustData(key, gqlDeliveries, map[string]any{"id": id}, &out)
	if out.WebhookDeliveries.TotalCount != len(out.WebhookDeliveries.Nodes) {
		t.Fatalf("totalCount %d, %d nodes", out.WebhookDeliveries.TotalCount, len(out.WebhookDeliveries.Nodes))
	}
	return out.WebhookDeliveries.Nodes
}

func TestWebhookManagement(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newWebhookEnv(t, database)
		key := e.Account("acme")
		svc := mustCreateService(t, e, key, "Europe/Paris")
		rc := newReceiver(t)

		w, secret := mustCreateWebhook(t, e, key, map[string]any{
			"url": rc.URL + "/hooks", "serviceId": svc.ID, "events": []string{"bookings.create", "bookings.delete", "bookings.create"},
			"description": "  front desk  ",
		})
		if !strings.HasPrefix(secret, "whsec_") || len(secret) < 6+32 {
			t.Fatalf("secret %q", secret)
		}
		if w.URL != rc.URL+"/hooks" || w.Service == nil || w.Service.ID != svc.ID || !w.Active ||
			!slices.Equal(w.Events, []string{"bookings.create", "bookings.delete"}) || w.Description != "front desk" {
			t.Fatalf("created %+v", w)
		}
		// The secret is stored sealed, never in plain text.
		var sealed string
		if err := database.NewSelect().Table("webhooks").Column("secret_sealed").Where("id = ?", mustInt64(t, w.ID)).Scan(context.Background(), &sealed); err != nil {
			t.Fatal(err)
		}
		if sealed == "" || strings.Contains(sealed, secret) || strings.Contains(sealed, secret[6:]) {
			t.Fatalf("secret stored in plain text: %q", sealed)
		}

		// Validation: code and field, nothing written.
		for _, c := range []struct {
			input       map[string]any
			code, field string
		}{
			{map[string]any{"url": "ftp://example.com/x", "events": []string{"bookings.create"}}, db.CodeInvalidFieldFormat, "url"},
			{map[string]any{"url": "not a url", "events": []string{"bookings.create"}}, db.CodeInvalidFieldFormat, "url"},
			{map[string]any{"url": "https://user:pw@example.com/", "events": []string{"bookings.create"}}, db.CodeInvalidFieldFormat, "url"},
			{map[string]any{"url": rc.URL, "events": []string{"booking.created"}}, db.CodeInvalidFieldFormat, "events"},
			{map[string]any{"url": rc.URL, "events": []string{}}, db.CodeMissingRequiredField, "events"},
			{map[string]any{"url": rc.URL, "events": []string{"bookings.update"}, "serviceId": "999999"}, db.CodeServiceNotFound, "serviceId"},
			{map[string]any{"url": rc.URL, "events": []string{"bookings.update"}, "description": strings.Repeat("x", 501)}, db.CodeInvalidFieldFormat, "description"},
		} {
			wantError(t, e.Do(key, gqlCreateWH, map[string]any{"input": c.input}), c.code, c.field)
		}

		// Paging over three webhooks.
		mustCreateWebhook(t, e, key, map[string]any{"url": rc.URL + "/2", "events": []string{"bookings.update"}})
		mustCreateWebhook(t, e, key, map[string]any{"url": rc.URL + "/3", "events": []string{"bookings.update"}})
		var page struct {
			Webhooks struct {
				TotalCount int
				Nodes      []struct{ ID string }
				PageInfo   struct {
					HasNextPage bool
					EndCursor   string
				}
			}
		}
		e.MustData(key, gqlWebhooks, nil, &page)
		if page.Webhooks.TotalCount != 3 || len(page.Webhooks.Nodes) != 2 || !page.Webhooks.PageInfo.HasNextPage {
			t.Fatalf("first page %+v", page.Webhooks)
		}
		e.MustData(key, gqlWebhooks, map[string]any{"after": page.Webhooks.PageInfo.EndCursor}, &page)
		if len(page.Webhooks.Nodes) != 1 || page.Webhooks.PageInfo.HasNextPage {
			t.Fatalf("second page %+v", page.Webhooks)
		}

		// Update.
		var upd struct{ UpdateWebhook whWebhook }
		e.MustData(key, gqlUpdateWH, map[string]any{"id": w.ID, "input": map[string]any{
			"events": []string{"bookings.update"}, "active": false, "description": "",
		}}, &upd)
		if upd.UpdateWebhook.Active || !slices.Equal(upd.UpdateWebhook.Events, []string{"bookings.update"}) || upd.UpdateWebhook.Description != "" {
			t.Fatalf("updated %+v", upd.UpdateWebhook)
		}
		wantError(t, e.Do(key, gqlUpdateWH, map[string]any{"id": w.ID, "input": map[string]any{"events": []string{"nope"}}}),
			db.CodeInvalidFieldFormat, "events")
		wantError(t, e.Do(key, gqlUpdateWH, map[string]any{"id": w.ID, "input": map[string]any{"url": "javascript:alert(1)"}}),
			db.CodeInvalidFieldFormat, "url")

		// Rotate: a new secret.
		var rot struct {
			RotateWebhookSecret struct{ Secret string }
		}
		e.MustData(key, gqlRotateWH, map[string]any{"id": w.ID}, &rot)
		if rot.RotateWebhookSecret.Secret == secret || !strings.HasPrefix(rot.RotateWebhookSecret.Secret, "whsec_") {
			t.Fatalf("rotated secret %q (old %q)", rot.RotateWebhookSecret.Secret, secret)
		}

		// Delete.
		var del struct{ DeleteWebhook bool }
		e.MustData(key, gqlDeleteWH, map[string]any{"id": w.ID}, &del)
		var got struct{ Webhook *whWebhook }
		e.MustData(key, gqlWebhook, map[string]any{"id": w.ID}, &got)
		if !del.DeleteWebhook || got.Webhook != nil {
			t.Fatalf("after delete: %v %+v", del.DeleteWebhook, got.Webhook)
		}
		wantError(t, e.Do(key, gqlDeleteWH, map[string]any{"id": w.ID}), db.CodeWebhookNotFound, "id")
	})
}

func TestWebhookPrivateAddressesRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil) // WEBHOOK_ALLOW_PRIVATE unset
	key := e.Account("acme")
	for _, u := range []string{
		"http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/hook", "http://192.168.0.10/hook",
		"http://169.254.169.254/latest/meta-data", "http://[::1]/hook", "http://0.0.0.0/hook",
	} {
		r := e.Do(key, gqlCreateWH, map[string]any{"input": map[string]any{"url": u, "events": []string{"bookings.create"}}})
		wantError(t, r, db.CodeInvalidFieldFormat, "url")
	}
	var n struct{ Webhooks struct{ TotalCount int } }
	e.MustData(key, `{ webhooks { totalCount } }`, nil, &n)
	if n.Webhooks.TotalCount != 0 {
		t.Fatalf("%d webhooks created with refused URLs", n.Webhooks.TotalCount)
	}
}

func TestWebhookScopeAndTenancy(t *testing.T) {
	t.Parallel()
	e := newWebhookEnv(t, dbtest.Open(t, dbtest.SQLite))
	acme, other := e.Account("acme"), e.Account("other")
	rc := newReceiver(t)
	w, _ := mustCreateWebhook(t, e, acme, map[string]any{"url": rc.URL, "events": []string{"bookings.create"}})

	reader := lcCreateKey(t, e, acme, map[string]any{"name": "reader", "scopes": []string{"bookings:read"}}).Secret
	r := e.Do(reader, gqlCreateWH, map[string]any{"input": map[string]any{"url": rc.URL, "events": []string{"bookings.create"}}})
	if r.Code() != auth.CodeInsufficientScope {
		t.Fatalf("createWebhook without webhooks:manage: %s", r.Raw)
	}

	// Another account sees nothing and can change nothing.
	var got struct{ Webhook *whWebhook }
	e.MustData(other, gqlWebhook, map[string]any{"id": w.ID}, &got)
	if got.Webhook != nil {
		t.Fatalf("another account reads the webhook: %+v", got.Webhook)
	}
	wantError(t, e.Do(other, gqlUpdateWH, map[string]any{"id": w.ID, "input": map[string]any{"active": false}}), db.CodeWebhookNotFound, "id")
	wantError(t, e.Do(other, gqlDeleteWH, map[string]any{"id": w.ID}), db.CodeWebhookNotFound, "id")
	wantError(t, e.Do(other, gqlRotateWH, map[string]any{"id": w.ID}), db.CodeWebhookNotFound, "id")
	wantError(t, e.Do(other, gqlTestWH, map[string]any{"id": w.ID}), db.CodeWebhookNotFound, "id")
	wantError(t, e.Do(other, gqlDeliveries, map[string]any{"id": w.ID}), db.CodeWebhookNotFound, "webhookId")
	if n := len(rc.all()); n != 0 {
		t.Fatalf("receiver got %d requests", n)
	}
}

// TestWebhookDeliveryEndToEnd books, cancels and deletes through the API and
// checks what a real receiver gets: the payload, the headers, the signature.
func TestWebhookDeliveryEndToEnd(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newWebhookEnv(t, database)
		key := e.Account("acme")
		svc := mustCreateService(t, e, key, "America/New_York", slotIn(int(time.Tuesday), "09:00", "10:00", 5))
		otherSvc := mustCreateService(t, e, key, "America/New_York", slotIn(int(time.Tuesday), "11:00", "12:00", 5))
		all, other := newReceiver(t), newReceiver(t)
		w, secret := mustCreateWebhook(t, e, key, map[string]any{
			"url": all.URL, "events": []string{"bookings.create", "bookings.update", "bookings.delete"},
		})
		mustCreateWebhook(t, e, key, map[string]any{"url": other.URL, "serviceId": otherSvc.ID, "events": []string{"bookings.create"}})

		date := nextDate(svc.Timezone, time.Tuesday)
		b := mustBook(t, e, key, svc.TimeSlots[0].ID, date, "ada@example.com")
		mustCancel(t, e, key, b.ID)
		var del struct{ DeleteBooking string }
		e.MustData(key, `mutation($id: ID!) { deleteBooking(id: $id) }`, map[string]any{"id": b.ID}, &del)

		got := all.waitFor(t, 3)
		types := map[string]bool{}
		ids := map[string]bool{}
		for _, g := range got {
			if ct := g.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if err := verifySignature(g.header.Get("ReserveKit-Signature"), g.body, secret); err != nil {
				t.Fatalf("%v: %s", err, g.header.Get("ReserveKit-Signature"))
			}
			if verifySignature(g.header.Get("ReserveKit-Signature"), g.body, secret+"x") == nil {
				t.Fatal("signature verifies with the wrong secret")
			}
			var p struct {
				EventType string `json:"event_type"`
				Timestamp string `json:"timestamp"`
				Bookings  []struct {
					ID         string `json:"id"`
					ServiceID  string `json:"service_id"`
					TimeSlotID string `json:"time_slot_id"`
					Date       string `json:"date"`
					Status     string `json:"status"`
					Customer   *struct {
						Email string `json:"email"`
					} `json:"customer"`
				} `json:"bookings"`
			}
			if err := json.Unmarshal(g.body, &p); err != nil {
				t.Fatalf("payload %s: %v", g.body, err)
			}
			if _, err := time.Parse(time.RFC3339, p.Timestamp); err != nil || len(p.Bookings) != 1 {
				t.Fatalf("payload %s", g.body)
			}
			pb := p.Bookings[0]
			if pb.ID != b.ID || pb.ServiceID != svc.ID || pb.TimeSlotID != svc.TimeSlots[0].ID || pb.Date != date ||
				pb.Customer == nil || pb.Customer.Email != "ada@example.com" {
				t.Fatalf("payload booking %s", g.body)
			}
			if g.header.Get("ReserveKit-Event") != p.EventType {
				t.Fatalf("ReserveKit-Event %q, payload %q", g.header.Get("ReserveKit-Event"), p.EventType)
			}
			want := map[string]string{"bookings.create": "pending", "bookings.update": "cancelled", "bookings.delete": "cancelled"}[p.EventType]
			if pb.Status != want {
				t.Fatalf("%s carries status %q, want %q", p.EventType, pb.Status, want)
			}
			types[p.EventType] = true
			ids[g.header.Get("ReserveKit-Delivery")] = true
		}
		if len(types) != 3 || len(ids) != 3 || ids[""] {
			t.Fatalf("event types %v, delivery ids %v", types, ids)
		}

		// The API shows the deliveries with their attempts.
		deadline := time.Now().Add(10 * time.Second)
		for {
			ds := deliveriesOf(t, e, key, w.ID)
			done := len(ds) == 3
			for _, d := range ds {
				done = done && d.Status == "DELIVERED"
			}
			if done {
				for _, d := range ds {
					if len(d.Attempts) != 1 || d.Attempts[0].HTTPStatus == nil || *d.Attempts[0].HTTPStatus != 200 ||
						d.Attempts[0].Error != nil || d.DeliveredAt == nil || d.NextRetryAt != nil || !ids[d.ID] {
						t.Fatalf("delivery %+v", d)
					}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("deliveries not all DELIVERED: %+v", ds)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The webhook of the other service heard nothing of this one.
		if n := len(other.all()); n != 0 {
			t.Fatalf("service-filtered webhook got %d requests", n)
		}
	})
}

func TestWebhookTestDelivery(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newWebhookEnv(t, database)
		key := e.Account("acme")
		rc := newReceiver(t)
		w, secret := mustCreateWebhook(t, e, key, map[string]any{"url": rc.URL, "events": []string{"bookings.delete"}})

		var out struct{ TestWebhook whDelivery }
		e.MustData(key, gqlTestWH, map[string]any{"id": w.ID}, &out)
		d := out.TestWebhook
		if d.Status != "DELIVERED" || d.EventType != "bookings.create" || len(d.Attempts) != 1 || *d.Attempts[0].HTTPStatus != 200 ||
			d.Attempts[0].ResponseSnippet == nil || *d.Attempts[0].ResponseSnippet != `{"ok":true}` {
			t.Fatalf("test delivery %+v", d)
		}
		got := rc.all()
		if len(got) != 1 || string(got[0].body) != d.Payload || got[0].header.Get("ReserveKit-Delivery") != d.ID {
			t.Fatalf("receiver got %d requests", len(got))
		}
		if err := verifySignature(got[0].header.Get("ReserveKit-Signature"), got[0].body, secret); err != nil {
			t.Fatal(err)
		}

		// A failing receiver: the attempt is recorded with its status.
		rc.mu.Lock()
		rc.status = http.StatusInternalServerError
		rc.mu.Unlock()
		e.MustData(key, gqlTestWH, map[string]any{"id": w.ID}, &out)
		d = out.TestWebhook
		if d.Status != "PENDING" || len(d.Attempts) != 1 || *d.Attempts[0].HTTPStatus != 500 || d.Attempts[0].Error == nil || d.NextRetryAt == nil {
			t.Fatalf("failed test delivery %+v", d)
		}
	})
}

// TestWebhookEndToEndDelay measures mutation → receipt (logged, not
// asserted).
func TestWebhookEndToEndDelay(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e := newWebhookEnv(t, database)
		key := e.Account("acme")
		svc := mustCreateService(t, e, key, "UTC", slotIn(int(time.Wednesday), "09:00", "10:00", 1000))
		rc := newReceiver(t)
		mustCreateWebhook(t, e, key, map[string]any{"url": rc.URL, "events": []string{"bookings.create"}})
		date := nextDate("UTC", time.Wednesday)
		const n = 100
		var delays []time.Duration
		for i := range n {
			start := time.Now()
			mustBook(t, e, key, svc.TimeSlots[0].ID, date, fmt.Sprintf("c%d@example.com", i))
			got := rc.waitFor(t, i+1)
			delays = append(delays, got[i].at.Sub(start))
		}
		slices.Sort(delays)
		t.Logf("%s: mutation → webhook receipt over %d bookings: median %s, p99 %s (includes the mutation's own latency)",
			database.Description[:strings.Index(database.Description, " ")], n, delays[n/2], delays[n*99/100])
	})
}

// TestWebhookOutboxFollowsChanges checks that events exist exactly for the
// changes that happened: a refused booking writes none, and deleting a
// service announces the bookings that went with it.
func TestWebhookOutboxFollowsChanges(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newWebhookEnv(t, database)
		key := e.Account("acme")
		svc := mustCreateService(t, e, key, "UTC", slotIn(int(time.Friday), "09:00", "10:00", 2))
		rc := newReceiver(t)
		mustCreateWebhook(t, e, key, map[string]any{"url": rc.URL, "events": []string{"bookings.create", "bookings.delete"}})
		date := nextDate("UTC", time.Friday)
		mustBook(t, e, key, svc.TimeSlots[0].ID, date, "a@example.com")
		mustBook(t, e, key, svc.TimeSlots[0].ID, date, "b@example.com")
		wantError(t, doCreateBooking(e, key, bookingInput(svc.TimeSlots[0].ID, date, "c@example.com")), db.CodeTimeSlotFull, "")
		wantError(t, doCreateBooking(e, key, bookingInput(svc.TimeSlots[0].ID, date, "a@example.com")), db.CodeTimeSlotFull, "")
		var del struct{ DeleteService string }
		e.MustData(key, `mutation($id: ID!) { deleteService(id: $id) }`, map[string]any{"id": svc.ID}, &del)

		got := rc.waitFor(t, 3)
		var last struct {
			EventType string `json:"event_type"`
			Bookings  []struct {
				Customer struct{ Email string } `json:"customer"`
			} `json:"bookings"`
		}
		if err := json.Unmarshal(got[2].body, &last); err != nil {
			t.Fatal(err)
		}
		if last.EventType != "bookings.delete" || len(last.Bookings) != 2 {
			t.Fatalf("service deletion announced %s", got[2].body)
		}
		var events int
		if err := database.NewSelect().Table("booking_events").ColumnExpr("count(*)").Scan(context.Background(), &events); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // would a stray delivery arrive?
		if events != 3 || len(rc.all()) != 3 {
			t.Fatalf("%d events stored, %d delivered; want 3 (two bookings, one service deletion)", events, len(rc.all()))
		}
	})
}

// Creating, changing, rotating and deleting a webhook are in the audit
// trail, with the acting key.
func TestWebhookAudit(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newWebhookEnv(t, database)
		key := e.Account("acme")
		_, prefix := lcSelf(t, e, key)
		w, _ := mustCreateWebhook(t, e, key, map[string]any{"url": "http://127.0.0.1:1/hook", "events": []string{"bookings.create"}})
		e.MustData(key, gqlUpdateWH, map[string]any{"id": w.ID, "input": map[string]any{"active": false}}, &struct{}{})
		e.MustData(key, gqlRotateWH, map[string]any{"id": w.ID}, &struct{}{})
		e.MustData(key, gqlDeleteWH, map[string]any{"id": w.ID}, &struct{}{})
		events := lcAudit(t, e, key)
		target := "webhook:" + w.ID
		want := []string{db.AuditWebhookDeleted, db.AuditWebhookSecretRotated, db.AuditWebhookUpdated, db.AuditWebhookCreated}
		var got []string
		for _, ev := range events {
			if ev.Target == target {
				got = append(got, ev.Action)
				if ev.ActorKeyPrefix != prefix {
					t.Errorf("%s by %q, want %q", ev.Action, ev.ActorKeyPrefix, prefix)
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("audit events of %s: %v, want %v (newest first)", target, got, want)
		}
		// A refused change leaves no trace.
		wantError(t, e.Do(key, gqlUpdateWH, map[string]any{"id": w.ID, "input": map[string]any{"active": true}}), db.CodeWebhookNotFound, "id")
		if n := len(lcAudit(t, e, key)); n != len(events) {
			t.Fatalf("%d audit events after a refused update, want %d", n, len(events))
		}
	})
}
