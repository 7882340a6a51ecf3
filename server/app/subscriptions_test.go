package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/app/apptest"
	"github.com/reservekit/reservekit/server/auth"
)

// Subscriptions (bookingEvents) with real clients: WebSocket speaking
// graphql-transport-ws by hand, and SSE.

const subBookingEvents = `subscription($serviceId: ID) { bookingEvents(serviceId: $serviceId) {
	type occurredAt booking { id status date service { id name } timeSlot { id dayOfWeek } customer { email } } } }`

type subEvent struct {
	Type       string
	OccurredAt time.Time
	Booking    struct {
		ID       string
		Status   string
		Date     string
		Service  struct{ ID, Name string }
		TimeSlot struct {
			ID        string
			DayOfWeek int
		}
		Customer *struct{ Email string }
	}
}

// wsMsg is a graphql-transport-ws message, with when it arrived.
type wsMsg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
	at      time.Time
}

// wsClient is a graphql-transport-ws client that answers pings itself.
type wsClient struct {
	t      *testing.T
	conn   *websocket.Conn
	msgs   chan wsMsg
	closed chan struct{}
	// closeErr is how the connection ended (read after closed).
	closeErr error
	// stalled, once set, stops the client reading: it never reads again.
	stalled atomic.Bool
}

// wsDial connects and sends connection_init with payload; it does not wait
// for connection_ack (see ack).
func wsDial(t *testing.T, url string, payload any, opts *websocket.DialOptions) *wsClient {
	t.Helper()
	if opts == nil {
		opts = &websocket.DialOptions{}
	}
	opts.Subprotocols = []string{"graphql-transport-ws"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, res, err := websocket.Dial(ctx, strings.Replace(url, "http", "ws", 1)+"/graphql", opts)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, res)
	}
	if got := conn.Subprotocol(); got != "graphql-transport-ws" {
		t.Fatalf("subprotocol %q", got)
	}
	conn.SetReadLimit(1 << 20)
	c := &wsClient{t: t, conn: conn, msgs: make(chan wsMsg, 100_000), closed: make(chan struct{})}
	t.Cleanup(func() { _ = conn.CloseNow() })
	c.send(wsMsg{Type: "connection_init", Payload: mustJSON(payload)})
	go c.read()
	return c
}

func mustJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, _ := json.Marshal(v)
	return b
}

func (c *wsClient) send(m wsMsg) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, _ := json.Marshal(m)
	_ = c.conn.Write(ctx, websocket.MessageText, b)
}

func (c *wsClient) read() {
	defer close(c.closed)
	for {
		if c.stalled.Load() {
			<-c.closed // never: the test ends with the connection open
		}
		_, b, err := c.conn.Read(context.Background())
		if err != nil {
			c.closeErr = err
			return
		}
		var m wsMsg
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		m.at = time.Now()
		if m.Type == "ping" {
			c.send(wsMsg{Type: "pong"})
			continue
		}
		c.msgs <- m
	}
}

// next returns the next message, failing after timeout.
func (c *wsClient) next(timeout time.Duration) wsMsg {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-c.closed:
		select {
		case m := <-c.msgs:
			return m
		default:
		}
		c.t.Fatalf("connection closed while waiting for a message: %v", c.closeErr)
	case <-time.After(timeout):
		c.t.Fatalf("no message within %v", timeout)
	}
	return wsMsg{}
}

func (c *wsClient) ack() {
	c.t.Helper()
	if m := c.next(5 * time.Second); m.Type != "connection_ack" {
		c.t.Fatalf("want connection_ack, got %s %s", m.Type, m.Payload)
	}
}

func (c *wsClient) subscribe(id, query string, vars map[string]any) {
	c.send(wsMsg{ID: id, Type: "subscribe", Payload: mustJSON(map[string]any{"query": query, "variables": vars})})
}

// event waits for the next "next" message of subscription id.
func (c *wsClient) event(id string, timeout time.Duration) (subEvent, time.Time) {
	c.t.Helper()
	for {
		m := c.next(timeout)
		if m.ID != id {
			continue
		}
		if m.Type != "next" {
			c.t.Fatalf("subscription %s: want next, got %s %s", id, m.Type, m.Payload)
		}
		var p struct {
			Data struct {
				BookingEvents subEvent
			}
			Errors []apptest.Error
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
			c.t.Fatalf("subscription %s: bad payload %s", id, m.Payload)
		}
		return p.Data.BookingEvents, m.at
	}
}

// noEvent checks that nothing arrives within d.
func (c *wsClient) noEvent(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		c.t.Fatalf("unexpected message %s %s", m.Type, m.Payload)
	case <-time.After(d):
	}
}

// waitClosed waits for the server to close the connection and returns the
// close code and reason.
func (c *wsClient) waitClosed(timeout time.Duration) (websocket.StatusCode, string) {
	c.t.Helper()
	select {
	case <-c.closed:
	case <-time.After(timeout):
		c.t.Fatalf("connection still open after %v", timeout)
	}
	var ce websocket.CloseError
	if !errors.As(c.closeErr, &ce) {
		c.t.Fatalf("connection ended without a close frame: %v", c.closeErr)
	}
	return ce.Code, ce.Reason
}

func bearer(key string) map[string]any { return map[string]any{"Authorization": "Bearer " + key} }

// subFixture is a service with a roomy slot to book.
type subFixture struct {
	service, slot, date string
}

func newSubFixture(t *testing.T, e *apptest.Env, key string) subFixture {
	t.Helper()
	s := mustCreateService(t, e, key, "UTC", slotIn(3, "09:00", "10:00", 10_000))
	return subFixture{service: s.ID, slot: s.TimeSlots[0].ID, date: nextDate("UTC", time.Wednesday)}
}

var bookingSeq atomic.Int64

func (f subFixture) book(t *testing.T, e *apptest.Env, key string) schedBooking {
	t.Helper()
	return mustBook(t, e, key, f.slot, f.date, fmt.Sprintf("c%d@example.com", bookingSeq.Add(1)))
}

// warmUp books on a until the subscription (id) on c receives an event:
// B's LISTEN starts in the background, and events before it are not heard.
func warmUp(t *testing.T, a *apptest.Env, key string, f subFixture, c *wsClient, id string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b := f.book(t, a, key)
		select {
		case m := <-c.msgs:
			if m.Type != "next" {
				t.Fatalf("warm-up: %s %s", m.Type, m.Payload)
			}
			// Drain the events of earlier attempts that arrive late.
			for !strings.Contains(string(m.Payload), `"id":"`+b.ID+`"`) {
				m = c.next(5 * time.Second)
			}
			return
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("warm-up: no event reached the subscription")
		}
	}
}

func TestSubscriptionBookingEventsAcrossInstances(t *testing.T) {
	database := dbtest.Open(t, dbtest.Postgres)
	a := newEnv(t, database, nil)
	b := newEnv(t, database, nil)
	key := a.Account("acme")
	other := a.Account("other")
	f := newSubFixture(t, a, key)
	f2 := newSubFixture(t, a, key)
	fo := newSubFixture(t, a, other)

	c := wsDial(t, b.Server.URL, map[string]any{"authorization": "Bearer " + key}, nil) // lower-case key accepted
	c.ack()
	c.subscribe("all", subBookingEvents, nil)
	warmUp(t, a, key, f, c, "all")
	c.subscribe("svc2", subBookingEvents, map[string]any{"serviceId": f2.service})
	waitOpen(t, b, 2) // the second subscription has started

	// Another account's booking never arrives; the next event is ours.
	fo.book(t, a, other)
	created := f.book(t, a, key)
	ev, _ := c.event("all", 5*time.Second)
	if ev.Type != "CREATED" || ev.Booking.ID != created.ID || ev.Booking.Service.ID != f.service ||
		ev.Booking.TimeSlot.ID != f.slot || ev.Booking.Status != "PENDING" || ev.Booking.Customer == nil || ev.OccurredAt.IsZero() {
		t.Fatalf("created: %+v", ev)
	}

	mustCancel(t, a, key, created.ID)
	ev, _ = c.event("all", 5*time.Second)
	if ev.Type != "UPDATED" || ev.Booking.ID != created.ID || ev.Booking.Status != "CANCELLED" {
		t.Fatalf("updated: %+v", ev)
	}

	a.MustData(key, `mutation($id: ID!) { deleteBooking(id: $id) }`, map[string]any{"id": created.ID}, &struct{}{})
	ev, _ = c.event("all", 5*time.Second)
	if ev.Type != "DELETED" || ev.Booking.ID != created.ID || ev.Booking.Service.ID != f.service {
		t.Fatalf("deleted: %+v", ev)
	}

	// The serviceId filter: svc2 sees service 2 only, "all" sees both.
	in2 := f2.book(t, a, key)
	got := map[string]string{}
	for range 2 {
		m := c.next(5 * time.Second)
		var p struct {
			Data struct{ BookingEvents subEvent }
		}
		_ = json.Unmarshal(m.Payload, &p)
		got[m.ID] = p.Data.BookingEvents.Booking.ID
	}
	if got["all"] != in2.ID || got["svc2"] != in2.ID {
		t.Fatalf("service 2 booking %s reached %v", in2.ID, got)
	}
	f.book(t, a, key)
	if m := c.next(5 * time.Second); m.ID != "all" {
		t.Fatalf("service 1 booking reached %s", m.ID)
	}

	// A cascade (deleteService) delivers one DELETED per booking, though
	// the service and slot are gone.
	in2b := f2.book(t, a, key)
	for range 2 {
		c.next(5 * time.Second) // CREATED on both subscriptions
	}
	a.MustData(key, `mutation($id: ID!) { deleteService(id: $id) }`, map[string]any{"id": f2.service}, &struct{}{})
	var deleted []string
	for range 4 {
		m := c.next(5 * time.Second)
		var p struct {
			Data   struct{ BookingEvents subEvent }
			Errors []apptest.Error
		}
		_ = json.Unmarshal(m.Payload, &p)
		if m.Type != "next" || len(p.Errors) > 0 || p.Data.BookingEvents.Type != "DELETED" ||
			p.Data.BookingEvents.Booking.Service.ID != f2.service {
			t.Fatalf("cascade: %s %s", m.Type, m.Payload)
		}
		deleted = append(deleted, m.ID+":"+p.Data.BookingEvents.Booking.ID)
	}
	slices.Sort(deleted)
	want := []string{"all:" + in2.ID, "all:" + in2b.ID, "svc2:" + in2.ID, "svc2:" + in2b.ID}
	slices.Sort(want)
	if !slices.Equal(deleted, want) {
		t.Fatalf("cascade deleted %v, want %v", deleted, want)
	}
	// Unsubscribing (complete) ends a subscription.
	c.send(wsMsg{ID: "all", Type: "complete"})
	waitOpen(t, b, 1)
}

func TestSubscriptionSQLite(t *testing.T) {
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil)
	key := e.Account("acme")
	f := newSubFixture(t, e, key)
	c := wsDial(t, e.Server.URL, bearer(key), nil)
	c.ack()
	c.subscribe("1", subBookingEvents, map[string]any{"serviceId": f.service})
	waitOpen(t, e, 1)
	b := f.book(t, e, key)
	ev, _ := c.event("1", 5*time.Second)
	if ev.Type != "CREATED" || ev.Booking.ID != b.ID {
		t.Fatalf("%+v", ev)
	}
	// Stale loaders: a renamed service shows its new name in later events.
	e.MustData(key, `mutation($id: ID!) { updateService(id: $id, input: {name: "Renamed"}) { id } }`, map[string]any{"id": f.service}, &struct{}{})
	mustCancel(t, e, key, b.ID)
	ev, _ = c.event("1", 5*time.Second)
	if ev.Type != "UPDATED" || ev.Booking.Service.Name != "Renamed" {
		t.Fatalf("%+v", ev)
	}
	// An unknown service is refused at subscribe time.
	c.subscribe("2", subBookingEvents, map[string]any{"serviceId": "999999"})
	m := c.next(5 * time.Second)
	if m.ID != "2" || !strings.Contains(string(m.Payload), "service_not_found") {
		t.Fatalf("unknown service: %s %s", m.Type, m.Payload)
	}
	if n := e.App.Events.Open(); n != 1 {
		t.Fatalf("open subscriptions: %d", n)
	}
	res, err := http.Get(e.Server.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	found := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "subscriptions") && !strings.HasPrefix(sc.Text(), "#") {
			found = strings.HasSuffix(sc.Text(), " 1")
			t.Logf("metrics: %s", sc.Text())
		}
	}
	if !found {
		t.Error("metrics: no open-subscriptions gauge at 1")
	}
}

func TestSubscriptionAuth(t *testing.T) {
	database := dbtest.Open(t, dbtest.SQLite)
	e := newEnv(t, database, nil)
	key := e.Account("acme")

	cases := []struct {
		name    string
		payload any
		code    websocket.StatusCode
		reason  string
	}{
		{"missing", nil, 4401, "Authorization header is missing"},
		{"empty payload", map[string]any{}, 4401, "Authorization header is missing"},
		{"malformed", map[string]any{"Authorization": "Basic abc"}, 4401, "Authorization header is malformed"},
		{"unknown key", bearer(auth.NewSecret()), 4401, "Invalid API key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := wsDial(t, e.Server.URL, tc.payload, nil)
			code, reason := c.waitClosed(5 * time.Second)
			if code != tc.code || reason != tc.reason {
				t.Fatalf("closed with %d %q, want %d %q", code, reason, tc.code, tc.reason)
			}
		})
	}

	t.Run("allowedCidrs", func(t *testing.T) {
		k := lcCreateKey(t, e, key, map[string]any{"name": "far", "allowedCidrs": []string{"203.0.113.0/24"}})
		c := wsDial(t, e.Server.URL, bearer(k.Secret), nil)
		code, reason := c.waitClosed(5 * time.Second)
		if code != 4403 || reason != "IP address not allowed for this API key" {
			t.Fatalf("closed with %d %q", code, reason)
		}
	})

	t.Run("scope", func(t *testing.T) {
		k := lcCreateKey(t, e, key, map[string]any{"name": "services only", "scopes": []string{"services:read"}})
		c := wsDial(t, e.Server.URL, bearer(k.Secret), nil)
		c.ack()
		c.subscribe("1", subBookingEvents, nil)
		m := c.next(5 * time.Second)
		if !strings.Contains(string(m.Payload), "insufficient_scope") {
			t.Fatalf("want insufficient_scope, got %s %s", m.Type, m.Payload)
		}
	})

	t.Run("revoked while connected", func(t *testing.T) {
		k := lcCreateKey(t, e, key, map[string]any{"name": "soon revoked"})
		c := wsDial(t, e.Server.URL, bearer(k.Secret), nil)
		c.ack()
		c.subscribe("1", subBookingEvents, nil)
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		e.MustData(key, revokeKey, map[string]any{"id": k.APIKey.ID}, &struct{}{})
		code, reason := c.waitClosed(10 * time.Second)
		if code != 4401 || reason != "API key revoked" {
			t.Fatalf("closed with %d %q", code, reason)
		}
		t.Logf("revoked key's connection closed after %v", time.Since(start).Round(time.Millisecond))
		// And it cannot connect again.
		c2 := wsDial(t, e.Server.URL, bearer(k.Secret), nil)
		if code, reason := c2.waitClosed(5 * time.Second); code != 4401 || reason != "API key revoked" {
			t.Fatalf("reconnect closed with %d %q", code, reason)
		}
	})

	t.Run("rate limited on connect", func(t *testing.T) {
		rate, burst := 1, 2
		limited := e.AccountWith("limited", db.PlanStarter, db.AccountLimits{Rate: &rate, Burst: &burst}, nil)
		var codes []websocket.StatusCode
		for range 3 {
			c := wsDial(t, e.Server.URL, bearer(limited), nil)
			select {
			case m := <-c.msgs:
				if m.Type != "connection_ack" {
					t.Fatalf("got %s", m.Type)
				}
				codes = append(codes, 0)
				continue
			case <-c.closed:
			}
			code, reason := c.waitClosed(5 * time.Second)
			if !strings.HasPrefix(reason, "Rate limit exceeded") {
				t.Fatalf("reason %q", reason)
			}
			codes = append(codes, code)
		}
		if !slices.Equal(codes, []websocket.StatusCode{0, 0, 4429}) {
			t.Fatalf("connections: %v", codes)
		}
		// The connections counted as requests: HTTP is refused too.
		if r := e.Do(limited, `{ viewer { id } }`, nil); r.Status != http.StatusTooManyRequests {
			t.Fatalf("HTTP after 3 connections: %d", r.Status)
		}
	})
}

// sseStream posts a subscription with Accept: text/event-stream and sends
// the data of each "next" event to the returned channel.
func sseStream(t *testing.T, e *apptest.Env, key string, vars map[string]any) (<-chan string, *http.Response) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": subBookingEvents, "variables": vars})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.Server.URL+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 100)
	go func() {
		defer close(out)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "next":
				out <- strings.TrimPrefix(line, "data: ")
			case strings.HasPrefix(line, "event: complete"):
				return
			}
		}
	}()
	return out, res
}

func TestSubscriptionSSE(t *testing.T) {
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil)
	key := e.Account("acme")
	f := newSubFixture(t, e, key)
	events, res := sseStream(t, e, key, nil)
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("HTTP %d %s", res.StatusCode, ct)
	}
	waitOpen(t, e, 1)
	b := f.book(t, e, key)
	select {
	case data := <-events:
		var p struct {
			Data struct{ BookingEvents subEvent }
		}
		if err := json.Unmarshal([]byte(data), &p); err != nil || p.Data.BookingEvents.Booking.ID != b.ID || p.Data.BookingEvents.Type != "CREATED" {
			t.Fatalf("event %s", data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no SSE event")
	}

	// Without a key, the HTTP chain refuses it as any request.
	body := `{"query":"subscription { bookingEvents { type } }"}`
	req, _ := http.NewRequest(http.MethodPost, e.Server.URL+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	wantHTTPError(t, e.Send(req), http.StatusUnauthorized, "authentication_required", "Authorization header is missing")

	// A revoked key ends the stream.
	k := lcCreateKey(t, e, key, map[string]any{"name": "sse"})
	events2, _ := sseStream(t, e, k.Secret, nil)
	time.Sleep(100 * time.Millisecond)
	e.MustData(key, revokeKey, map[string]any{"id": k.APIKey.ID}, &struct{}{})
	deadline := time.After(10 * time.Second)
	for ended := false; !ended; {
		select {
		case _, ok := <-events2:
			ended = !ok
		case <-deadline:
			t.Fatal("SSE stream of a revoked key still open")
		}
	}
}

// smallBuffers makes a listener whose connections buffer little, so that a
// client that does not read blocks the server's writes quickly.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func TestSubscriptionSlowSubscriberDropped(t *testing.T) {
	database := dbtest.Open(t, dbtest.SQLite)
	a := app.New(database, app.Config{})
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(func() { srv.Close(); a.Close() })
	e := &apptest.Env{T: t, DB: database, App: a, Server: srv}
	key := e.Account("acme")
	f := newSubFixture(t, e, key)

	fast := wsDial(t, srv.URL, bearer(key), nil)
	fast.ack()
	fast.subscribe("1", subBookingEvents, nil)

	// The slow client's socket reads into a tiny buffer and it never reads.
	dialer := &net.Dialer{}
	slowHTTP := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	}}}
	slow := wsDial(t, srv.URL, bearer(key), &websocket.DialOptions{HTTPClient: slowHTTP})
	slow.ack()
	slow.subscribe("1", subBookingEvents, nil)
	waitOpen(t, e, 2)        // fast and slow
	slow.stalled.Store(true) // from now on nothing reads its socket

	n, fastGot := 0, 0
	deadline := time.Now().Add(60 * time.Second)
	for a.Events.Dropped() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("slow subscriber not dropped after %d events", n)
		}
		f.book(t, e, key)
		n++
		fast.event("1", 5*time.Second)
		fastGot++
	}
	// The fast one keeps receiving after the drop.
	for range 20 {
		f.book(t, e, key)
		n++
		fast.event("1", 5*time.Second)
		fastGot++
	}
	if fastGot != n {
		t.Fatalf("fast subscriber got %d of %d events", fastGot, n)
	}
	if open := a.Events.Open(); open != 1 {
		t.Fatalf("open subscriptions after the drop: %d, want 1", open)
	}
	t.Logf("slow subscriber dropped after %d events; fast subscriber received %d/%d", n-20, fastGot, n)
}

// TestSubscriptionLatency measures the delay from sending a mutation to the
// subscription receiving its event (no assertion on time).
func TestSubscriptionLatency(t *testing.T) {
	const n = 200
	measure := func(t *testing.T, a, b *apptest.Env, key string) {
		f := newSubFixture(t, a, key)
		c := wsDial(t, b.Server.URL, bearer(key), nil)
		c.ack()
		c.subscribe("1", subBookingEvents, nil)
		warmUp(t, a, key, f, c, "1")
		var delays, mutations []time.Duration
		for range n {
			start := time.Now()
			bk := f.book(t, a, key)
			mutations = append(mutations, time.Since(start))
			ev, at := c.event("1", 5*time.Second)
			if ev.Booking.ID != bk.ID {
				t.Fatalf("got %s, want %s", ev.Booking.ID, bk.ID)
			}
			delays = append(delays, at.Sub(start))
		}
		slices.Sort(delays)
		slices.Sort(mutations)
		t.Logf("%d events: mutation sent → event received: median %v, p99 %v, max %v (mutation round trip: median %v, p99 %v)",
			n, delays[n/2].Round(10*time.Microsecond), delays[n*99/100].Round(10*time.Microsecond), delays[n-1].Round(10*time.Microsecond),
			mutations[n/2].Round(10*time.Microsecond), mutations[n*99/100].Round(10*time.Microsecond))
	}
	t.Run("sqlite", func(t *testing.T) {
		e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil)
		measure(t, e, e, e.Account("acme"))
	})
	t.Run("postgres two instances", func(t *testing.T) {
		database := dbtest.Open(t, dbtest.Postgres)
		a := newEnv(t, database, nil)
		b := newEnv(t, database, nil)
		measure(t, a, b, a.Account("acme"))
	})
}

// On shutdown, with a drain delay, the server keeps serving with /readyz at
// 503; then a WebSocket subscriber's connection is closed with 1001 (after
// the subscription's server_shutting_down error, when that is sent in
// time), and an SSE stream completes.
func TestShutdownEndsSubscriptions(t *testing.T) {
	t.Parallel()
	database := dbtest.Open(t, dbtest.SQLite)
	e := newEnv(t, database, &app.Config{DrainDelay: 400 * time.Millisecond})
	key := e.Account("acme")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- e.App.Serve(ctx, ln) }()

	c := wsDial(t, base, bearer(key), nil)
	c.ack()
	c.subscribe("1", subBookingEvents, nil)
	body := strings.NewReader(`{"query":"subscription { bookingEvents { type } }"}`)
	req, _ := http.NewRequest(http.MethodPost, base+"/graphql", body)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("SSE: HTTP %d", res.StatusCode)
	}
	sseDone := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, res.Body); sseDone <- err }()
	waitOpen(t, e, 2) // both subscriptions have started

	cancel()
	time.Sleep(100 * time.Millisecond)
	ready, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("/readyz during the drain delay: %v", err)
	}
	ready.Body.Close()
	if ready.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz during the drain delay: HTTP %d, want 503", ready.StatusCode)
	}

	if code, reason := c.waitClosed(5 * time.Second); code != 1001 || reason != "server shutting down" {
		t.Fatalf("closed with %d %q, want 1001 %q", code, reason, "server shutting down")
	}
	select {
	case err := <-sseDone:
		if err != nil {
			t.Fatalf("SSE stream broke off: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SSE stream still open after shutdown")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// A WebSocket carries subscriptions only (queries and mutations would skip
// the per-request rate limit and quota), and at most 16 at a time.
func TestWebSocketRunsOnlySubscriptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil)
	key := e.Account("acme")
	c := wsDial(t, e.Server.URL, bearer(key), nil)
	c.ack()
	c.subscribe("m", `mutation { createService(input: {name: "Via socket", timezone: "UTC"}) { id } }`, nil)
	m := c.next(5 * time.Second)
	if m.ID != "m" || !strings.Contains(string(m.Payload), db.CodeInvalidRequest) || strings.Contains(string(m.Payload), "createService\":{") {
		t.Fatalf("mutation over WebSocket: %s %s", m.Type, m.Payload)
	}
	c.subscribe("q", `{ viewer { account { name } } }`, nil)
	for m = c.next(5 * time.Second); m.ID != "q"; m = c.next(5 * time.Second) {
	}
	if !strings.Contains(string(m.Payload), db.CodeInvalidRequest) {
		t.Fatalf("query over WebSocket: %s %s", m.Type, m.Payload)
	}
	var n struct{ Services struct{ TotalCount int } }
	e.MustData(key, `{ services { totalCount } }`, nil, &n)
	if n.Services.TotalCount != 0 {
		t.Fatalf("a mutation sent over the WebSocket ran: %d services", n.Services.TotalCount)
	}

	// 17 at once: they start concurrently, so any one of them is refused.
	for i := range 17 {
		c.subscribe(fmt.Sprintf("s%d", i), subBookingEvents, nil)
	}
	for m = c.next(5 * time.Second); !strings.HasPrefix(m.ID, "s"); m = c.next(5 * time.Second) {
	}
	if !strings.Contains(string(m.Payload), "too_many_subscriptions") {
		t.Fatalf("17 subscriptions: %s %s %s", m.ID, m.Type, m.Payload)
	}
	refused := m.ID
	for deadline := time.Now().Add(5 * time.Second); e.App.Events.Open() != 16; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions open, want 16", e.App.Events.Open())
		}
	}
	for m := c.next(time.Second); m.ID == refused; m = c.next(time.Second) { // its complete
		if m.Type != "complete" {
			t.Fatalf("%s: %s %s", m.ID, m.Type, m.Payload)
		}
		break
	}
	c.noEvent(200 * time.Millisecond) // nothing else was refused
	first := "s0"
	if refused == "s0" {
		first = "s1"
	}
	// Ending one makes room for another.
	c.send(wsMsg{ID: first, Type: "complete"})
	if m := c.next(5 * time.Second); m.ID != first || m.Type != "complete" {
		t.Fatalf("ending %s: %s %s %s", first, m.ID, m.Type, m.Payload)
	}
	for deadline := time.Now().Add(5 * time.Second); e.App.Events.Open() != 15; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no room after ending a subscription")
		}
	}
	c.subscribe("again", subBookingEvents, nil)
	c.noEvent(300 * time.Millisecond) // not refused
	if open := e.App.Events.Open(); open != 16 {
		t.Fatalf("%d subscriptions open, want 16", open)
	}
}

// waitOpen waits until e's instance has n subscriptions open (they start
// asynchronously after the subscribe message or the SSE request).
func waitOpen(t *testing.T, e *apptest.Env, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); e.App.Events.Open() != n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions open, want %d", e.App.Events.Open(), n)
		}
	}
}
