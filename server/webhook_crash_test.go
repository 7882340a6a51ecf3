package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestWebhookDeliveredAfterKill kills the server process (SIGKILL) while a
// webhook delivery is in flight and starts it again on the same database:
// the delivery is sent again, with the same ReserveKit-Delivery id, and
// recorded as delivered. At least once: nothing is lost to the crash.
func TestWebhookDeliveredAfterKill(t *testing.T) {
	bin := shutdownBuild(t)

	var mu sync.Mutex
	var deliveries []string // ReserveKit-Delivery of each request, in order
	inFlight := make(chan struct{}, 1)
	release := make(chan struct{})
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		deliveries = append(deliveries, r.Header.Get("ReserveKit-Delivery"))
		first := len(deliveries) == 1
		mu.Unlock()
		if first { // hold the first attempt until its sender is dead
			inFlight <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)
	t.Cleanup(func() { close(release) }) // before receiver.Close, which waits for handlers

	s := shutdownStartOn(t, bin, t.TempDir()+"/x.db", "", "WEBHOOK_ALLOW_PRIVATE=1")
	gql := func(s *shutdownServer, query string, out any) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"query": query})
		req, _ := http.NewRequest(http.MethodPost, s.base+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+s.key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var v struct {
			Data   json.RawMessage
			Errors []json.RawMessage
		}
		if err := json.Unmarshal(raw, &v); err != nil || len(v.Errors) > 0 || res.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d %s", res.StatusCode, raw)
		}
		if out != nil {
			if err := json.Unmarshal(v.Data, out); err != nil {
				t.Fatal(err)
			}
		}
	}

	var hook struct {
		CreateWebhook struct{ Webhook struct{ ID string } }
	}
	gql(s, fmt.Sprintf(`mutation { createWebhook(input: {url: %q, events: ["bookings.create"]}) { webhook { id } } }`, receiver.URL+"/hook"), &hook)
	var svc struct {
		CreateService struct{ TimeSlots []struct{ ID string } }
	}
	date := time.Now().UTC().AddDate(0, 0, 8)
	gql(s, fmt.Sprintf(`mutation { createService(input: {name: "Crash course", timezone: "UTC",
		timeSlots: [{dayOfWeek: %d, startTime: "09:00", endTime: "10:00", maxBookings: 5}]}) { timeSlots { id } } }`, date.Weekday()), &svc)
	gql(s, fmt.Sprintf(`mutation { createBooking(input: {timeSlotId: %q, date: %q, customerEmail: "ada@example.com"}) { id } }`,
		svc.CreateService.TimeSlots[0].ID, date.Format("2006-01-02")), nil)

	select {
	case <-inFlight:
	case <-time.After(30 * time.Second):
		t.Fatal("the delivery never reached the receiver")
	}
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.exited

	restarted := shutdownStartOn(t, bin, s.dbPath, s.key, "WEBHOOK_ALLOW_PRIVATE=1")
	if shutdownKeyRE.MatchString(restarted.stdout.String()) {
		t.Error("the second start on the database printed a key again")
	}
	type delivery struct {
		ID, Status string
		Attempts   []struct{ HTTPStatus *int }
	}
	var got struct {
		WebhookDeliveries struct{ Nodes []delivery }
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		gql(restarted, fmt.Sprintf(`{ webhookDeliveries(webhookId: %q) { nodes { id status attempts { httpStatus } } } }`,
			hook.CreateWebhook.Webhook.ID), &got)
		if n := got.WebhookDeliveries.Nodes; len(n) == 1 && n[0].Status == "DELIVERED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered 30 s after the restart: %+v", got.WebhookDeliveries.Nodes)
		}
		time.Sleep(50 * time.Millisecond)
	}
	d := got.WebhookDeliveries.Nodes[0]
	mu.Lock()
	defer mu.Unlock()
	if len(deliveries) != 2 || deliveries[0] != d.ID || deliveries[1] != d.ID {
		t.Fatalf("receiver got deliveries %v, want the killed attempt and its repeat, both %s", deliveries, d.ID)
	}
	// The killed attempt left no record; the repeat is the one attempt.
	if len(d.Attempts) != 1 || d.Attempts[0].HTTPStatus == nil || *d.Attempts[0].HTTPStatus != http.StatusNoContent {
		t.Fatalf("attempts %+v", d.Attempts)
	}
}
