package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app/apptest"
)

// prodBody is the JSON body e.Do sends for an operation.
func prodBody(t testing.TB, query string, vars map[string]any) []byte {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// prodPost POSTs a raw body to /graphql; unlike e.Do it never calls
// t.Fatal, so goroutines may use it.
func prodPost(e *apptest.Env, key string, body []byte, headers ...string) (*apptest.Response, error) {
	req, err := http.NewRequest(http.MethodPost, e.Server.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Set(name, strings.TrimSpace(value))
	}
	res, err := e.Server.Client().Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	out := &apptest.Response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	var decoded struct {
		Data   json.RawMessage `json:"data"`
		Errors []apptest.Error `json:"errors"`
	}
	if err := json.Unmarshal(raw, &decoded); err != nil {
		return out, fmt.Errorf("response is not JSON (HTTP %d): %q", res.StatusCode, raw)
	}
	out.Data, out.Errors = decoded.Data, decoded.Errors
	return out, nil
}

func prodMustPost(t *testing.T, e *apptest.Env, key string, body []byte, headers ...string) *apptest.Response {
	t.Helper()
	r, err := prodPost(e, key, body, headers...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func prodReplayed(r *apptest.Response) bool { return r.Header.Get("Idempotent-Replayed") == "true" }

// prodBookingID is data.createBooking.id of a response, or "".
func prodBookingID(r *apptest.Response) string {
	var v struct{ CreateBooking struct{ ID string } }
	if len(r.Errors) > 0 || json.Unmarshal(r.Data, &v) != nil {
		return ""
	}
	return v.CreateBooking.ID
}

// prodBookingCount is the account's number of bookings.
func prodBookingCount(t *testing.T, e *apptest.Env, key string) int {
	t.Helper()
	var out struct{ Bookings struct{ TotalCount int } }
	e.MustData(key, `{ bookings { totalCount } }`, nil, &out)
	return out.Bookings.TotalCount
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		key := e.Account("acme")
		// Room for many bookings and no customer email, so that running a
		// createBooking twice would succeed twice instead of failing as a
		// duplicate: only the middleware keeps the count at one.
		s := mustCreateService(t, e, key, "UTC", slotIn(1, "09:00", "10:00", 100))
		monday := nextDate("UTC", time.Monday)
		book := func(name string) []byte {
			return prodBody(t, gqlCreateBooking, map[string]any{"input": map[string]any{
				"timeSlotId": s.TimeSlots[0].ID, "date": monday, "customerName": name,
			}})
		}

		t.Run("concurrent repeats run once", func(t *testing.T) {
			before := prodBookingCount(t, e, key)
			body := book("Concurrent")
			const n = 20
			type result struct {
				r   *apptest.Response
				err error
			}
			results := make(chan result, n)
			start := make(chan struct{})
			for range n {
				go func() {
					<-start
					r, err := prodPost(e, key, body, "Idempotency-Key: concurrent-1")
					results <- result{r, err}
				}()
			}
			close(start)
			ids := map[string]int{}
			fresh, replays, inUse := 0, 0, 0
			for range n {
				res := <-results
				if res.err != nil {
					t.Fatalf("request: %v", res.err)
				}
				r := res.r
				switch {
				case r.Status == http.StatusConflict && r.Code() == "idempotency_key_in_use":
					inUse++ // waited longer than Middleware.Wait
				case r.Status != http.StatusOK || prodBookingID(r) == "":
					t.Errorf("HTTP %d %s", r.Status, r.Raw)
				case prodReplayed(r):
					replays++
					ids[prodBookingID(r)]++
				default:
					fresh++
					ids[prodBookingID(r)]++
				}
			}
			if fresh != 1 || len(ids) != 1 {
				t.Fatalf("%d responses were not replays (want 1) and they named %d bookings (want 1): %v", fresh, len(ids), ids)
			}
			if inUse > 0 {
				t.Logf("%d of %d repeats waited past Middleware.Wait (409 idempotency_key_in_use)", inUse, n)
			}
			if replays+fresh+inUse != n || replays < n/2 {
				t.Fatalf("%d replays, %d in use, %d fresh of %d", replays, inUse, fresh, n)
			}
			if got := prodBookingCount(t, e, key) - before; got != 1 {
				t.Fatalf("%d concurrent requests with one Idempotency-Key created %d bookings, want 1", n, got)
			}
			var stored db.IdempotentRequest
			if err := database.NewSelect().Model(&stored).Where("key = ?", "concurrent-1").Scan(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !stored.Done || stored.Status != http.StatusOK || !strings.Contains(stored.Body, `"createBooking"`) {
				t.Fatalf("stored request: done %v status %d body %s", stored.Done, stored.Status, stored.Body)
			}
			if ttl := stored.ExpiresAt.Sub(stored.CreatedAt); ttl != 24*time.Hour {
				t.Errorf("stored for %v, want 24h", ttl)
			}
		})

		t.Run("sequential repeat replays", func(t *testing.T) {
			before := prodBookingCount(t, e, key)
			body := book("Sequential")
			first := prodMustPost(t, e, key, body, "Idempotency-Key: seq-1")
			if first.Status != http.StatusOK || prodBookingID(first) == "" || prodReplayed(first) {
				t.Fatalf("first: HTTP %d replayed %v %s", first.Status, prodReplayed(first), first.Raw)
			}
			for i := range 2 {
				again := prodMustPost(t, e, key, body, "Idempotency-Key: seq-1")
				if again.Status != http.StatusOK || !prodReplayed(again) || !bytes.Equal(again.Raw, first.Raw) {
					t.Fatalf("repeat %d: HTTP %d replayed %v\n got %s\nwant %s", i, again.Status, prodReplayed(again), again.Raw, first.Raw)
				}
				if ct, want := again.Header.Get("Content-Type"), first.Header.Get("Content-Type"); ct != want {
					t.Errorf("replay Content-Type %q, first %q", ct, want)
				}
				if again.Header.Get("X-Request-Id") == "" || again.Header.Get("X-Request-Id") == first.Header.Get("X-Request-Id") {
					t.Errorf("replay X-Request-Id %q (first %q): a replay is a request of its own",
						again.Header.Get("X-Request-Id"), first.Header.Get("X-Request-Id"))
				}
			}
			// Without the header the same body runs again.
			if r := prodMustPost(t, e, key, body); r.Status != http.StatusOK || prodReplayed(r) || prodBookingID(r) == prodBookingID(first) {
				t.Fatalf("no key: HTTP %d replayed %v %s", r.Status, prodReplayed(r), r.Raw)
			}
			if got := prodBookingCount(t, e, key) - before; got != 2 {
				t.Fatalf("created %d bookings, want 2 (one with the key, one without)", got)
			}
		})

		t.Run("different body refused", func(t *testing.T) {
			first := prodMustPost(t, e, key, book("Reuse A"), "Idempotency-Key: reuse-1")
			if first.Status != http.StatusOK || prodBookingID(first) == "" {
				t.Fatalf("first: HTTP %d %s", first.Status, first.Raw)
			}
			before := prodBookingCount(t, e, key)
			r := prodMustPost(t, e, key, book("Reuse B"), "Idempotency-Key: reuse-1")
			wantHTTPError(t, r, http.StatusUnprocessableEntity, "idempotency_key_reused",
				"This Idempotency-Key was used with a different request body")
			if prodReplayed(r) {
				t.Error("a refused reuse carries Idempotent-Replayed")
			}
			if got := prodBookingCount(t, e, key); got != before {
				t.Fatalf("the refused request created %d bookings", got-before)
			}
			// The original is still replayed.
			if r := prodMustPost(t, e, key, book("Reuse A"), "Idempotency-Key: reuse-1"); !prodReplayed(r) || !bytes.Equal(r.Raw, first.Raw) {
				t.Fatalf("original after a reuse: replayed %v %s", prodReplayed(r), r.Raw)
			}
		})

		t.Run("key length", func(t *testing.T) {
			before := prodBookingCount(t, e, key)
			r := prodMustPost(t, e, key, book("Long key"), "Idempotency-Key: "+strings.Repeat("x", 256))
			if r.Status != http.StatusBadRequest || r.Code() != db.CodeInvalidFieldFormat {
				t.Fatalf("256-character key: HTTP %d %s, want 400 %s", r.Status, r.Raw, db.CodeInvalidFieldFormat)
			}
			if got := prodBookingCount(t, e, key); got != before {
				t.Fatal("a request with a too long Idempotency-Key was executed")
			}
			k255 := strings.Repeat("y", 255)
			first := prodMustPost(t, e, key, book("Long key"), "Idempotency-Key: "+k255)
			again := prodMustPost(t, e, key, book("Long key"), "Idempotency-Key: "+k255)
			if first.Status != http.StatusOK || prodReplayed(first) || !prodReplayed(again) || !bytes.Equal(first.Raw, again.Raw) {
				t.Fatalf("255-character key: HTTP %d/%d replayed %v/%v", first.Status, again.Status, prodReplayed(first), prodReplayed(again))
			}
		})

		t.Run("keys are per account", func(t *testing.T) {
			other := e.Account("other")
			// The very same body from two accounts: a global key would hand
			// the second account the first one's service.
			body := prodBody(t, `mutation($input: CreateServiceInput!) { createService(input: $input) { id name } }`,
				map[string]any{"input": map[string]any{"name": "Same body", "timezone": "UTC"}})
			a := prodMustPost(t, e, key, body, "Idempotency-Key: shared-key")
			b := prodMustPost(t, e, other, body, "Idempotency-Key: shared-key")
			if a.Status != http.StatusOK || b.Status != http.StatusOK || len(a.Errors)+len(b.Errors) > 0 {
				t.Fatalf("HTTP %d %s / HTTP %d %s", a.Status, a.Raw, b.Status, b.Raw)
			}
			if prodReplayed(b) || bytes.Equal(a.Raw, b.Raw) {
				t.Fatalf("the other account got a replay of the first's response: %s", b.Raw)
			}
			if serviceCount(t, e, other) != 1 {
				t.Fatal("the other account's request did not run")
			}
			// Each account's repeat replays its own response.
			if r := prodMustPost(t, e, other, body, "Idempotency-Key: shared-key"); !prodReplayed(r) || !bytes.Equal(r.Raw, b.Raw) {
				t.Fatalf("other account's repeat: replayed %v %s", prodReplayed(r), r.Raw)
			}
			if r := prodMustPost(t, e, key, body, "Idempotency-Key: shared-key"); !prodReplayed(r) || !bytes.Equal(r.Raw, a.Raw) {
				t.Fatalf("first account's repeat: replayed %v %s", prodReplayed(r), r.Raw)
			}
		})

		t.Run("createApiKey secret redacted", func(t *testing.T) {
			keysBefore := prodKeyCount(t, e, key)
			body := prodBody(t, `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id name } } }`,
				map[string]any{"input": map[string]any{"name": "idempotent"}})
			first := prodMustPost(t, e, key, body, "Idempotency-Key: new-key-1")
			var created struct {
				CreateApiKey struct {
					Secret string
					APIKey struct{ ID string } `json:"apiKey"`
				}
			}
			first.Decode(t, &created)
			secret := created.CreateApiKey.Secret
			if !secretRE.MatchString(secret) || prodReplayed(first) {
				t.Fatalf("first createApiKey: replayed %v secret %q", prodReplayed(first), secret)
			}
			replay := prodMustPost(t, e, key, body, "Idempotency-Key: new-key-1")
			if replay.Status != http.StatusOK || !prodReplayed(replay) {
				t.Fatalf("replay: HTTP %d replayed %v %s", replay.Status, prodReplayed(replay), replay.Raw)
			}
			if strings.Contains(string(replay.Raw), secret) || secretRE.Match(replay.Raw) {
				t.Fatalf("the replay shows the secret: %s", replay.Raw)
			}
			var replayed struct {
				CreateApiKey struct {
					Secret string
					APIKey struct{ ID string } `json:"apiKey"`
				}
			}
			replay.Decode(t, &replayed)
			if replayed.CreateApiKey.Secret != "sk_rsv_REDACTED" || replayed.CreateApiKey.APIKey.ID != created.CreateApiKey.APIKey.ID {
				t.Fatalf("replayed secret %q key %q, want sk_rsv_REDACTED and key %s",
					replayed.CreateApiKey.Secret, replayed.CreateApiKey.APIKey.ID, created.CreateApiKey.APIKey.ID)
			}
			if got := prodKeyCount(t, e, key) - keysBefore; got != 1 {
				t.Fatalf("createApiKey sent twice with one Idempotency-Key created %d keys", got)
			}
			// Nothing stored holds a secret.
			var bodies []string
			if err := database.NewSelect().Table("idempotency_keys").Column("body").Scan(context.Background(), &bodies); err != nil {
				t.Fatal(err)
			}
			if len(bodies) == 0 {
				t.Fatal("no stored responses")
			}
			redacted := 0
			for _, b := range bodies {
				if strings.Contains(b, secret) || secretRE.MatchString(b) {
					t.Fatalf("idempotency_keys holds a secret: %s", b)
				}
				for _, m := range prodAnySecretRE.FindAllString(b, -1) {
					if m != "sk_rsv_REDACTED" {
						t.Fatalf("idempotency_keys holds %q", m)
					}
					redacted++
				}
			}
			if redacted != 1 {
				t.Fatalf("%d redacted secrets stored, want 1", redacted)
			}
			// The key itself works: the secret was only withheld from storage.
			wantOK(t, e, secret, "acme")
		})
	})
}

// prodAnySecretRE matches the prefix of any secret with some characters after it.
var prodAnySecretRE = regexp.MustCompile(`(sk_rsv_|whsec_)[0-9A-Za-z]+`)

// prodKeyCount is the account's number of API keys.
func prodKeyCount(t *testing.T, e *apptest.Env, key string) int {
	t.Helper()
	var out struct {
		APIKeys struct{ TotalCount int } `json:"apiKeys"`
	}
	e.MustData(key, `{ apiKeys(first: 100) { totalCount } }`, nil, &out)
	return out.APIKeys.TotalCount
}
