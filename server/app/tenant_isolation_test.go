package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/app/apptest"
)

// Tenant isolation: account B, with a full-access key, calls every root
// field of the schema on account A's records. The list of root fields comes
// from the schema itself, so a field added later without a case here fails
// the test.

// isoIDs are the record ids a case's operation is built from.
type isoIDs struct{ Service, Slot, Booking, Key, Webhook string }

// isoMissing are ids no record has.
var isoMissing = isoIDs{Service: "999999999", Slot: "999999999", Booking: "999999999", Key: "999999999", Webhook: "999999999"}

// isoFixture is the two accounts and what they hold.
type isoFixture struct {
	e          *apptest.Env
	keyA, keyB string
	a          isoIDs // A's records; Key is A's extra key
	aAdminKey  string // id of A's own full-access key
	aExtraKey  string // secret of A's extra key
	aPrefixes  []string
	aKeyIDs    []string
	bService   string
	bSlot      string
	bBooking   string
	bKeyIDs    []string
	date       string // a bookable Monday
	// aStrings must never appear in anything B is answered.
	aStrings []string
}

// isoCase calls one root field as B.
type isoCase struct {
	name string
	op   string
	// vars builds the variables from the ids to use. Cases with ids run
	// twice, on A's ids and on isoMissing, and must be answered alike.
	vars func(f *isoFixture, ids isoIDs) map[string]any
	// check, set for cases without an id of A, inspects B's answer instead.
	check func(t *testing.T, f *isoFixture, r *apptest.Response)
	// echoes is a value of A's that B sends itself, and so may get back.
	echoes string
}

const isoUsageOp = `query($from: DateTime!, $to: DateTime!) { usage(from: $from, to: $to, granularity: HOUR) { start requests errors } }`

// isoUsageTotal is the number of requests the key's account made in the last
// two hours, according to usage.
func isoUsageTotal(t *testing.T, e *apptest.Env, key string) int {
	t.Helper()
	now := time.Now().UTC()
	var out struct{ Usage []struct{ Requests int } }
	e.MustData(key, isoUsageOp, map[string]any{
		"from": now.Add(-2 * time.Hour).Format(time.RFC3339), "to": now.Add(2 * time.Hour).Format(time.RFC3339),
	}, &out)
	n := 0
	for _, u := range out.Usage {
		n += u.Requests
	}
	return n
}

// isoEventually polls ok every 20 ms for up to 10 s (for data written in the
// background, such as API logs and usage counters).
func isoEventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isoCases maps every root field to the calls that exercise it.
func isoCases() map[string][]isoCase {
	id := func(name string) func(*isoFixture, isoIDs) map[string]any {
		return func(_ *isoFixture, ids isoIDs) map[string]any {
			v := map[string]string{"service": ids.Service, "slot": ids.Slot, "booking": ids.Booking, "key": ids.Key, "webhook": ids.Webhook}[name]
			return map[string]any{"id": v}
		}
	}
	none := func(*isoFixture, isoIDs) map[string]any { return nil }
	usageWindow := func(*isoFixture, isoIDs) map[string]any {
		now := time.Now().UTC()
		return map[string]any{"from": now.Add(-2 * time.Hour).Format(time.RFC3339), "to": now.Add(2 * time.Hour).Format(time.RFC3339)}
	}
	return map[string][]isoCase{
		// Query.
		"viewer": {{name: "viewer", op: `{ viewer { account { id name plan } apiKey { id name prefix } } }`, vars: none,
			check: func(t *testing.T, f *isoFixture, r *apptest.Response) {
				var out struct {
					Viewer struct {
						Account struct{ Name string }
						APIKey  struct{ ID string } `json:"apiKey"`
					}
				}
				r.Decode(t, &out)
				if out.Viewer.Account.Name != "tenant-b" || !slices.Contains(f.bKeyIDs, out.Viewer.APIKey.ID) {
					t.Fatalf("B's viewer is %+v", out.Viewer)
				}
			}}},
		"rateLimit": {{name: "rateLimit", op: `{ rateLimit { limit remaining monthlyQuota monthlyUsed } }`, vars: none,
			check: func(t *testing.T, f *isoFixture, r *apptest.Response) {
				var b, a struct{ RateLimit struct{ MonthlyUsed int } }
				r.Decode(t, &b)
				// A has used far more than B by now; B's count must not include it.
				isoEventually(t, "A's monthly usage to count its requests", func() bool {
					f.e.MustData(f.keyA, `{ rateLimit { monthlyUsed } }`, nil, &a)
					return a.RateLimit.MonthlyUsed >= 40
				})
				fresh := f.e.Account(fmt.Sprintf("tenant-c-%d", time.Now().UnixNano()))
				var c struct{ RateLimit struct{ MonthlyUsed int } }
				f.e.MustData(fresh, `{ rateLimit { monthlyUsed } }`, nil, &c)
				if c.RateLimit.MonthlyUsed >= 40 || c.RateLimit.MonthlyUsed >= a.RateLimit.MonthlyUsed {
					t.Fatalf("a fresh account's monthlyUsed is %d, A's %d: usage is not counted per account",
						c.RateLimit.MonthlyUsed, a.RateLimit.MonthlyUsed)
				}
			}}},
		"services": {{name: "services", op: `{ services(first: 50) { totalCount nodes { id name description timeSlots { id } } } }`, vars: none,
			check: func(t *testing.T, f *isoFixture, r *apptest.Response) {
				var out struct {
					Services struct {
						TotalCount int
						Nodes      []struct {
							ID        string
							TimeSlots []struct{ ID string }
						}
					}
				}
				r.Decode(t, &out)
				if out.Services.TotalCount != len(out.Services.Nodes) || len(out.Services.Nodes) == 0 {
					t.Fatalf("B's services: %s", r.Raw)
				}
				for _, s := range out.Services.Nodes {
					if s.ID == f.a.Service || slices.ContainsFunc(s.TimeSlots, func(ts struct{ ID string }) bool { return ts.ID == f.a.Slot }) {
						t.Fatalf("B lists A's service or slot: %s", r.Raw)
					}
				}
			}}},
		"service": {{name: "service", vars: id("service"),
			op: `query($id: ID!) { service(id: $id) { id name description timeSlots { id } bookings(first: 5) { totalCount nodes { id } } } }`}},
		"bookings": {
			{name: "bookings by A's service", vars: func(_ *isoFixture, ids isoIDs) map[string]any { return map[string]any{"sid": ids.Service} },
				op: `query($sid: ID) { bookings(serviceId: $sid, first: 10) { totalCount nodes { id message customer { name email } } } }`},
			{name: "bookings", vars: none, op: `{ bookings(first: 20) { totalCount nodes { id message service { id } timeSlot { id } customer { id name email } } } }`,
				check: func(t *testing.T, f *isoFixture, r *apptest.Response) {
					var out struct{ Bookings bookingPage }
					r.Decode(t, &out)
					ids := out.Bookings.Nodes
					if len(ids) == 0 || out.Bookings.TotalCount != len(ids) {
						t.Fatalf("B's bookings: %s", r.Raw)
					}
					for _, b := range ids {
						if b.ID == f.a.Booking {
							t.Fatalf("B lists A's booking: %s", r.Raw)
						}
					}
				}},
		},
		"booking": {{name: "booking", vars: id("booking"),
			op: `query($id: ID!) { booking(id: $id) { id date status message service { id name } timeSlot { id } customer { id name email phone } } }`}},
		"availability": {{name: "availability", vars: func(f *isoFixture, ids isoIDs) map[string]any {
			return map[string]any{"sid": ids.Service, "from": f.date, "to": addDays(f.date, 14)}
		}, op: `query($sid: ID!, $from: Date!, $to: Date!) { availability(serviceId: $sid, from: $from, to: $to) { date timeSlot { id } capacity booked remaining } }`}},
		"apiKeys": {{name: "apiKeys", op: `{ apiKeys(first: 50) { totalCount nodes { id name prefix domain } } }`, vars: none,
			check: func(t *testing.T, f *isoFixture, r *apptest.Response) {
				var out struct {
					APIKeys struct {
						TotalCount int
						Nodes      []struct{ ID string }
					} `json:"apiKeys"`
				}
				r.Decode(t, &out)
				if out.APIKeys.TotalCount != len(out.APIKeys.Nodes) || len(out.APIKeys.Nodes) == 0 {
					t.Fatalf("B's apiKeys: %s", r.Raw)
				}
				for _, k := range out.APIKeys.Nodes {
					if slices.Contains(f.aKeyIDs, k.ID) {
						t.Fatalf("B lists A's key %s: %s", k.ID, r.Raw)
					}
				}
			}}},
		"auditEvents": {{name: "auditEvents", op: `{ auditEvents(first: 100) { totalCount nodes { id action actorKeyPrefix target } } }`, vars: none,
			check: func(t *testing.T, f *isoFixture, r *apptest.Response) {
				var out struct {
					AuditEvents struct {
						TotalCount int
						Nodes      []lcAuditEvent
					}
				}
				r.Decode(t, &out)
				if len(out.AuditEvents.Nodes) == 0 {
					t.Fatalf("B has no audit events at all (its key's creation should be one): %s", r.Raw)
				}
				for _, ev := range out.AuditEvents.Nodes {
					for _, k := range f.aKeyIDs {
						if strings.Contains(ev.Target+" ", lcKeyTarget(k)+" ") {
							t.Fatalf("B's audit trail mentions A's key %s: %+v", k, ev)
						}
					}
					if ev.ActorKeyPrefix != "" && slices.Contains(f.aPrefixes, ev.ActorKeyPrefix) {
						t.Fatalf("B's audit trail has an event by A's key: %+v", ev)
					}
				}
			}}},
		"apiLogs": {
			{name: "apiLogs of A's key", vars: func(_ *isoFixture, ids isoIDs) map[string]any { return map[string]any{"key": ids.Key} },
				op: `query($key: ID) { apiLogs(apiKeyId: $key, first: 20) { totalCount nodes { id apiKeyId apiKeyPrefix userAgent origin } } }`},
			{name: "apiLogs", vars: none, op: `{ apiLogs(first: 100) { totalCount nodes { id apiKeyId apiKeyPrefix userAgent origin clientIp } } }`,
				check: func(t *testing.T, f *isoFixture, r *apptest.Response) {
					var out struct {
						APILogs struct {
							TotalCount int
							Nodes      []struct{ APIKeyID, APIKeyPrefix, UserAgent string }
						} `json:"apiLogs"`
					}
					r.Decode(t, &out)
					if len(out.APILogs.Nodes) == 0 {
						t.Fatalf("B's apiLogs are empty although B's requests were logged before: %s", r.Raw)
					}
					for _, l := range out.APILogs.Nodes {
						if !slices.Contains(f.bKeyIDs, l.APIKeyID) && slices.Contains(f.aKeyIDs, l.APIKeyID) {
							t.Fatalf("B's apiLogs hold a request of A's key: %+v", l)
						}
					}
				}},
		},
		"usage": {{name: "usage", vars: usageWindow, op: isoUsageOp,
			check: func(t *testing.T, f *isoFixture, r *apptest.Response) {
				var out struct{ Usage []struct{ Requests int } }
				r.Decode(t, &out)
				// A has made many requests; a fresh account's usage must
				// count none of them.
				var a int
				isoEventually(t, "A's requests to show in its usage", func() bool {
					a = isoUsageTotal(t, f.e, f.keyA)
					return a >= 40
				})
				fresh := f.e.Account(fmt.Sprintf("tenant-d-%d", time.Now().UnixNano()))
				if c := isoUsageTotal(t, f.e, fresh); c > 1 {
					t.Fatalf("a fresh account's usage counts %d requests (A's: %d)", c, a)
				}
			}}},

		// Mutation.
		"createService": {{name: "createService", vars: none,
			op: `mutation { createService(input: {name: "B Boxing", timezone: "Europe/Paris"}) { id name timeSlots { id } } }`,
			check: func(t *testing.T, f *isoFixture, r *apptest.Response) {
				var out struct{ CreateService struct{ ID, Name string } }
				r.Decode(t, &out)
				if out.CreateService.Name != "B Boxing" || out.CreateService.ID == f.a.Service {
					t.Fatalf("createService: %s", r.Raw)
				}
				if got := isoServiceIDs(t, f.e, f.keyA); slices.Contains(got, out.CreateService.ID) {
					t.Fatalf("A sees the service B created: %v", got)
				}
			}}},
		"updateService": {{name: "updateService", vars: id("service"),
			op: `mutation($id: ID!) { updateService(id: $id, input: {name: "pwned", description: "pwned", timezone: "UTC"}) { id name description } }`}},
		"deleteService": {{name: "deleteService", vars: id("service"), op: `mutation($id: ID!) { deleteService(id: $id) }`}},
		"upsertTimeSlots": {
			{name: "upsertTimeSlots on A's service", vars: func(_ *isoFixture, ids isoIDs) map[string]any {
				return map[string]any{"sid": ids.Service, "slots": []any{slotUpd(ids.Slot, 1, "07:00", "08:00", 99), slotIn(3, "07:00", "08:00", 99)}}
			}, op: gqlUpsertSlots},
			{name: "upsertTimeSlots on A's service, new slot only", vars: func(_ *isoFixture, ids isoIDs) map[string]any {
				return map[string]any{"sid": ids.Service, "slots": []any{slotIn(4, "07:00", "08:00", 99)}}
			}, op: gqlUpsertSlots},
			{name: "upsertTimeSlots of A's slot in B's service", vars: func(f *isoFixture, ids isoIDs) map[string]any {
				return map[string]any{"sid": f.bService, "slots": []any{slotIn(5, "07:00", "08:00", 1), slotUpd(ids.Slot, 1, "07:00", "08:00", 99)}}
			}, op: gqlUpsertSlots},
		},
		"deleteTimeSlot":  {{name: "deleteTimeSlot", vars: id("slot"), op: `mutation($id: ID!) { deleteTimeSlot(id: $id) }`}},
		"deleteTimeSlots": {{name: "deleteTimeSlots", vars: id("service"), op: `mutation($id: ID!) { deleteTimeSlots(serviceId: $id, dayOfWeek: 1) }`}},
		"createBooking": {
			{name: "createBooking on A's slot", vars: func(f *isoFixture, ids isoIDs) map[string]any {
				return map[string]any{"input": map[string]any{"timeSlotId": ids.Slot, "date": f.date, "customerEmail": "mallory@tenant-b.example"}}
			}, op: gqlCreateBooking},
			{name: "createBooking with A's customer's email", vars: func(f *isoFixture, _ isoIDs) map[string]any {
				return map[string]any{"input": map[string]any{"timeSlotId": f.bSlot, "date": f.date, "customerEmail": "alice.asecret@tenant-a.example"}}
			}, op: `mutation($input: CreateBookingInput!) { createBooking(input: $input) { id customer { id name email phone } } }`,
				echoes: "alice.asecret@tenant-a.example",
				check: func(t *testing.T, f *isoFixture, r *apptest.Response) {
					// The email is A's customer's; in B it is a new customer
					// that knows nothing of A's (name, phone).
					var out struct {
						CreateBooking struct {
							ID       string
							Customer *schedCustomer
						}
					}
					r.Decode(t, &out)
					if c := out.CreateBooking.Customer; c == nil || c.Name != nil || c.Phone != nil {
						t.Fatalf("B's booking with A's customer's email: %s", r.Raw)
					}
				}},
		},
		"updateBooking": {
			{name: "updateBooking", vars: id("booking"),
				op: `mutation($id: ID!) { updateBooking(id: $id, input: {message: "pwned", status: CONFIRMED}) { id status message } }`},
			{name: "updateBooking: reschedule B's booking to A's slot", vars: func(f *isoFixture, ids isoIDs) map[string]any {
				return map[string]any{"id": f.bBooking, "input": map[string]any{"timeSlotId": ids.Slot}}
			}, op: gqlUpdateBooking},
		},
		"cancelBooking": {{name: "cancelBooking", vars: id("booking"), op: `mutation($id: ID!) { cancelBooking(id: $id, reason: "pwned") { id status } }`}},
		"deleteBooking": {{name: "deleteBooking", vars: id("booking"), op: `mutation($id: ID!) { deleteBooking(id: $id) }`}},
		"updateBookingCustomer": {
			{name: "updateBookingCustomer", vars: id("booking"),
				op: `mutation($id: ID!) { updateBookingCustomer(bookingId: $id, input: {name: "pwned", email: "pwned@tenant-b.example"}) { id name email phone } }`},
			{name: "updateBookingCustomer with A's customer's email", vars: func(f *isoFixture, _ isoIDs) map[string]any {
				return map[string]any{"id": f.bBooking}
			}, op: `mutation($id: ID!) { updateBookingCustomer(bookingId: $id, input: {email: "carol.asecret@tenant-a.example"}) { id name email phone } }`,
				echoes: "carol.asecret@tenant-a.example",
				check: func(t *testing.T, f *isoFixture, r *apptest.Response) {
					// Emails are unique per account: A's customer is no obstacle.
					var out struct{ UpdateBookingCustomer schedCustomer }
					r.Decode(t, &out)
					if c := out.UpdateBookingCustomer; c.Email == nil || *c.Email != "carol.asecret@tenant-a.example" || c.Name != nil {
						t.Fatalf("updateBookingCustomer: %s", r.Raw)
					}
				}},
		},
		"createApiKey": {{name: "createApiKey", vars: none,
			op: `mutation { createApiKey(input: {name: "B key"}) { secret apiKey { id name } } }`,
			check: func(t *testing.T, f *isoFixture, r *apptest.Response) {
				var out struct {
					CreateAPIKey lcCreated `json:"createApiKey"`
				}
				r.Decode(t, &out)
				wantOK(t, f.e, out.CreateAPIKey.Secret, "tenant-b")
				for _, k := range lcKeys(t, f.e, f.keyA) {
					if k.ID == out.CreateAPIKey.APIKey.ID {
						t.Fatalf("A lists the key B created")
					}
				}
			}}},
		"revokeApiKey": {{name: "revokeApiKey", vars: id("key"), op: `mutation($id: ID!) { revokeApiKey(id: $id) { id name revokedAt } }`}},
		"rollApiKey": {{name: "rollApiKey", vars: id("key"),
			op: `mutation($id: ID!) { rollApiKey(id: $id, expiresIn: 0) { secret apiKey { id name } } }`}},

		// Webhooks.
		"webhook": {{name: "webhook", vars: id("webhook"), op: gqlWebhook}},
		"webhooks": {{name: "webhooks", vars: none, op: `{ webhooks(first: 50) { totalCount nodes { id url description } } }`,
			check: func(t *testing.T, f *isoFixture, r *apptest.Response) {
				var out struct {
					Webhooks struct {
						TotalCount int
						Nodes      []struct{ ID string }
					}
				}
				r.Decode(t, &out)
				if out.Webhooks.TotalCount != len(out.Webhooks.Nodes) || len(out.Webhooks.Nodes) == 0 {
					t.Fatalf("B's webhooks: %s", r.Raw)
				}
				for _, w := range out.Webhooks.Nodes {
					if w.ID == f.a.Webhook {
						t.Fatalf("B lists A's webhook: %s", r.Raw)
					}
				}
			}}},
		"webhookDeliveries": {{name: "webhookDeliveries", vars: id("webhook"),
			op: `query($id: ID!) { webhookDeliveries(webhookId: $id, first: 10) { totalCount nodes { id payload } } }`}},
		"createWebhook": {
			{name: "createWebhook for A's service", vars: func(_ *isoFixture, ids isoIDs) map[string]any {
				return map[string]any{"input": map[string]any{"url": "http://127.0.0.1:1/b-hook", "events": []string{"bookings.create"}, "serviceId": ids.Service}}
			}, op: `mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id service { id name } } } }`},
		},
		"updateWebhook": {{name: "updateWebhook", vars: func(_ *isoFixture, ids isoIDs) map[string]any {
			return map[string]any{"id": ids.Webhook, "input": map[string]any{"url": "http://127.0.0.1:1/pwned", "active": false}}
		}, op: gqlUpdateWH}},
		"deleteWebhook":       {{name: "deleteWebhook", vars: id("webhook"), op: gqlDeleteWH}},
		"rotateWebhookSecret": {{name: "rotateWebhookSecret", vars: id("webhook"), op: gqlRotateWH}},
		"testWebhook":         {{name: "testWebhook", vars: id("webhook"), op: gqlTestWH}},

		// Subscriptions.
		"bookingEvents": {{name: "bookingEvents", vars: none, op: `{ viewer { account { name } } }`, check: isoBookingEvents}},
	}
}

// isoBookingEvents subscribes as B over WebSocket: to A's service (refused
// exactly like a service that does not exist), and to all of B's events,
// which must not include A's booking changes.
func isoBookingEvents(t *testing.T, f *isoFixture, _ *apptest.Response) {
	c := wsDial(t, f.e.Server.URL, bearer(f.keyB), nil)
	c.ack()
	answer := func(id, service string) any {
		c.subscribe(id, subBookingEvents, map[string]any{"serviceId": service})
		m := c.next(5 * time.Second)
		if m.ID != id || (m.Type != "next" && m.Type != "error") || !strings.Contains(string(m.Payload), `"errors"`) {
			t.Fatalf("subscription to service %s: %s %s", service, m.Type, m.Payload)
		}
		if m.Type == "next" {
			if done := c.next(5 * time.Second); done.ID != id || done.Type != "complete" {
				t.Fatalf("subscription to service %s: after the error %s %s", service, done.Type, done.Payload)
			}
		}
		return isoNormalize(t, m.Payload, []string{service})
	}
	if a, missing := answer("a", f.a.Service), answer("missing", isoMissing.Service); !reflect.DeepEqual(a, missing) {
		t.Fatalf("B subscribing to A's service: %v; to a missing one: %v", a, missing)
	}
	c.subscribe("all", subBookingEvents, nil)
	waitOpen(t, f.e, 1)

	// A books and deletes (leaving A's data as it was); then B books. B's
	// first event must be its own.
	var aBooking struct{ CreateBooking schedBooking }
	f.e.MustData(f.keyA, gqlCreateBooking, map[string]any{"input": map[string]any{
		"timeSlotId": f.a.Slot, "date": addDays(f.date, 7), "customerEmail": "dora.asecret@tenant-a.example"}}, &aBooking)
	f.e.MustData(f.keyA, `mutation($id: ID!) { deleteBooking(id: $id) }`, map[string]any{"id": aBooking.CreateBooking.ID}, &struct{}{})
	own := mustBook(t, f.e, f.keyB, f.bSlot, addDays(f.date, 7), "erin@tenant-b.example")
	m := c.next(5 * time.Second)
	if m.ID != "all" || m.Type != "next" || !strings.Contains(string(m.Payload), `"id":"`+own.ID+`"`) {
		t.Fatalf("B's first event is not its own booking %s: %s %s", own.ID, m.Type, m.Payload)
	}
	for _, s := range f.aStrings {
		if strings.Contains(strings.ToLower(string(m.Payload)), strings.ToLower(s)) {
			t.Fatalf("B's event contains A's %q: %s", s, m.Payload)
		}
	}
}

// isoSnapshotOp reads everything A owns that B could try to change.
const isoSnapshotOp = `{
	viewer { account { id name plan } }
	services(first: 20) { totalCount nodes { id name description timezone createdAt updatedAt
		timeSlots { id dayOfWeek startTime endTime maxBookings updatedAt } } }
	bookings(first: 20) { totalCount nodes { id date status cancelReason message updatedAt
		timeSlot { id } customer { id name email phone updatedAt } } }
	apiKeys(first: 20) { totalCount nodes { id name prefix domain revokedAt expiresAt scopes allowedCidrs } }
	webhooks(first: 20) { totalCount nodes { id url service { id } events description active updatedAt } }
	auditEvents(first: 20) { totalCount nodes { id action actorKeyPrefix target } }
}`

// isoSnapshot is A's data as A reads it.
func isoSnapshot(t *testing.T, f *isoFixture) string {
	t.Helper()
	r := f.e.Do(f.keyA, isoSnapshotOp, nil)
	if r.Status != http.StatusOK || len(r.Errors) > 0 {
		t.Fatalf("A's snapshot: HTTP %d %s", r.Status, r.Raw)
	}
	return string(r.Data)
}

func isoServiceIDs(t *testing.T, e *apptest.Env, key string) []string {
	t.Helper()
	var out struct {
		Services struct{ Nodes []struct{ ID string } }
	}
	e.MustData(key, `{ services(first: 50) { nodes { id } } }`, nil, &out)
	var ids []string
	for _, s := range out.Services.Nodes {
		ids = append(ids, s.ID)
	}
	return ids
}

// newIsoFixture creates A (a service with two slots, a booking with a
// customer and another with another customer, an extra key, some logged
// requests) and B (its own service,
// slot and booking).
func newIsoFixture(t *testing.T, database *db.DB) *isoFixture {
	t.Helper()
	e := newEnv(t, database, &app.Config{WebhookAllowPrivate: true})
	f := &isoFixture{e: e, keyA: e.Account("tenant-a"), keyB: e.Account("tenant-b")}
	f.date = nextDate(schedNY, time.Monday)

	var svc struct{ CreateService schedService }
	e.MustData(f.keyA, gqlCreateServiceWithSlots, map[string]any{"input": map[string]any{
		"name": "Asecret Yoga Studio", "description": "Asecret description", "timezone": schedNY,
		"timeSlots": []any{slotIn(1, "09:00", "10:00", 5), slotIn(2, "09:00", "10:00", 5)},
	}}, &svc)
	f.a.Service, f.a.Slot = svc.CreateService.ID, svc.CreateService.TimeSlots[0].ID
	var booking struct{ CreateBooking schedBooking }
	e.MustData(f.keyA, gqlCreateBooking, map[string]any{"input": map[string]any{
		"timeSlotId": f.a.Slot, "date": f.date, "customerName": "Alice Asecret",
		"customerEmail": "alice.asecret@tenant-a.example", "customerPhone": "+12025550185", "message": "Asecret note",
	}}, &booking)
	f.a.Booking = booking.CreateBooking.ID
	e.MustData(f.keyA, gqlCreateBooking, map[string]any{"input": map[string]any{
		"timeSlotId": svc.CreateService.TimeSlots[1].ID, "date": nextDate(schedNY, time.Tuesday),
		"customerName": "Carol Asecret", "customerEmail": "carol.asecret@tenant-a.example",
	}}, &booking)
	extra := lcCreateKey(t, e, f.keyA, map[string]any{"name": "Asecret deploy key"})
	f.a.Key, f.aExtraKey = extra.APIKey.ID, extra.Secret
	var adminPrefix string
	f.aAdminKey, adminPrefix = lcSelf(t, e, f.keyA)
	f.aKeyIDs = []string{f.aAdminKey, f.a.Key}
	f.aPrefixes = []string{adminPrefix, extra.APIKey.Prefix}
	// Requests of A with a recognisable client, for the logs and usage.
	for range 40 {
		wantOK(t, e, f.aExtraKey, "tenant-a", "User-Agent: Asecret-agent/1.0", "Origin: https://asecret.example.com")
	}

	// A's webhook points nowhere reachable: its deliveries stay pending.
	aHook, _ := mustCreateWebhook(t, e, f.keyA, map[string]any{"url": "http://127.0.0.1:1/asecret-hook",
		"events": []string{"bookings.create"}, "serviceId": f.a.Service, "description": "Asecret hook"})
	f.a.Webhook = aHook.ID

	b := mustCreateService(t, e, f.keyB, schedNY, slotIn(1, "11:00", "12:00", 5))
	f.bService, f.bSlot = b.ID, b.TimeSlots[0].ID
	f.bBooking = mustBook(t, e, f.keyB, f.bSlot, f.date, "bob@tenant-b.example").ID
	mustCreateWebhook(t, e, f.keyB, map[string]any{"url": "http://127.0.0.1:1/b-hook", "events": []string{"bookings.create"}})
	bID, _ := lcSelf(t, e, f.keyB)
	f.bKeyIDs = []string{bID}
	// Compared case-insensitively; the secret's random part comes last but
	// one, A's key prefixes last.
	f.aStrings = append([]string{"tenant-a", "Asecret", "alice", "carol", "+12025550185", f.aExtraKey[len("sk_rsv_"):]}, f.aPrefixes...)

	// Wait until the logs of both accounts are written, so the apiLogs and
	// usage cases have something to leak.
	isoEventually(t, "A's requests to be logged", func() bool {
		var out struct{ APILogs struct{ TotalCount int } }
		e.MustData(f.keyA, `{ apiLogs(first: 1) { totalCount } }`, nil, &out)
		return out.APILogs.TotalCount >= 40
	})
	isoEventually(t, "B's requests to be logged", func() bool {
		var out struct{ APILogs struct{ TotalCount int } }
		e.MustData(f.keyB, `{ apiLogs(first: 1) { totalCount } }`, nil, &out)
		return out.APILogs.TotalCount >= 1
	})
	return f
}

// isoNormalize decodes a response body and replaces the given ids in error
// messages by "<id>", so that answers about different ids compare equal.
func isoNormalize(t *testing.T, raw []byte, ids []string) any {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("response is not a JSON object: %s", raw)
	}
	var res []*regexp.Regexp
	for _, id := range ids {
		res = append(res, regexp.MustCompile(`\b`+regexp.QuoteMeta(id)+`\b`))
	}
	errs, _ := body["errors"].([]any)
	for _, e := range errs {
		m, _ := e.(map[string]any)
		if msg, ok := m["message"].(string); ok {
			for _, re := range res {
				msg = re.ReplaceAllString(msg, "<id>")
			}
			m["message"] = msg
		}
	}
	return body
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	schema := lcLoadSchema(t)
	cases := isoCases()

	// Every root field has a case, and every case a root field.
	var fields []string
	for _, root := range lcRootTypes(schema) {
		for _, name := range lcRootFields(root) {
			fields = append(fields, name)
			if len(cases[name]) == 0 {
				t.Errorf("%s.%s has no tenant isolation case: add one to isoCases", root.Name, name)
			}
		}
	}
	for name := range cases {
		if !slices.Contains(fields, name) {
			t.Errorf("isoCases has a case for %q, which is not a root field of the schema", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	sort.Strings(fields)

	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		f := newIsoFixture(t, database)

		// The running server serves the root fields of the schema files.
		var intro struct {
			Schema struct {
				QueryType, MutationType, SubscriptionType *struct{ Fields []struct{ Name string } }
			} `json:"__schema"`
		}
		f.e.MustData(f.keyB, `{ __schema { queryType { fields { name } } mutationType { fields { name } } subscriptionType { fields { name } } } }`, nil, &intro)
		var served []string
		for _, typ := range []*struct{ Fields []struct{ Name string } }{intro.Schema.QueryType, intro.Schema.MutationType, intro.Schema.SubscriptionType} {
			if typ != nil {
				for _, fd := range typ.Fields {
					served = append(served, fd.Name)
				}
			}
		}
		sort.Strings(served)
		if !reflect.DeepEqual(served, fields) {
			t.Fatalf("the server's root fields %v differ from the schema files' %v (regenerate?)", served, fields)
		}

		before := isoSnapshot(t, f)
		for _, s := range f.aStrings[:len(f.aStrings)-len(f.aPrefixes)-1] {
			if !strings.Contains(strings.ToLower(before), strings.ToLower(s)) {
				t.Fatalf("fixture: A's data does not contain %q, so its absence proves nothing", s)
			}
		}
		normalizeIDs := []string{f.a.Service, f.a.Slot, f.a.Booking, f.a.Key, f.a.Webhook, isoMissing.Service}

		for _, name := range fields {
			for _, c := range cases[name] {
				t.Run(c.name, func(t *testing.T) {
					r := f.e.Do(f.keyB, c.op, c.vars(f, f.a))
					if r.Status >= 500 {
						t.Fatalf("HTTP %d: %s", r.Status, r.Raw)
					}
					body := strings.ToLower(string(r.Raw))
					if c.echoes != "" {
						body = strings.ReplaceAll(body, strings.ToLower(c.echoes), "<echo>")
					}
					for _, s := range f.aStrings {
						if strings.Contains(body, strings.ToLower(s)) {
							t.Fatalf("B's answer contains A's %q: %s", s, r.Raw)
						}
					}
					if c.check != nil {
						c.check(t, f, r)
					} else {
						missing := f.e.Do(f.keyB, c.op, c.vars(f, isoMissing))
						got, want := isoNormalize(t, r.Raw, normalizeIDs), isoNormalize(t, missing.Raw, normalizeIDs)
						if r.Status != missing.Status || !reflect.DeepEqual(got, want) {
							t.Fatalf("B on A's ids is answered differently from B on ids that do not exist:\n"+
								"A's ids:      HTTP %d %s\nnonexistent:  HTTP %d %s", r.Status, r.Raw, missing.Status, missing.Raw)
						}
					}
					if after := isoSnapshot(t, f); after != before {
						t.Fatalf("A's data changed after B's %s:\nbefore %s\nafter  %s", c.name, before, after)
					}
				})
			}
		}
		// A's extra key survived B's revoke and roll attempts.
		wantOK(t, f.e, f.aExtraKey, "tenant-a")
	})
}
