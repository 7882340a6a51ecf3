package idempotency_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/caller"
	"github.com/reservekit/reservekit/server/idempotency"
)

var quiet = slog.New(slog.DiscardHandler)

// idemServer serves next behind the middleware (with Wait) and, in front
// of it, a stand-in for the auth middleware that makes every request come
// from account, plus a recoverer like the app's.
func idemServer(t *testing.T, database *db.DB, account *db.Account, wait time.Duration, next http.Handler) *httptest.Server {
	t.Helper()
	m := idempotency.New(database, quiet)
	m.Wait = wait
	inner := m.Handler(next)
	c := &caller.Caller{Account: account, Key: &db.APIKey{ID: 1, AccountID: account.ID, Prefix: "sk_rsv_test"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, `{"errors":[{"message":"Internal error","extensions":{"code":"internal_error"}}]}`)
			}
		}()
		inner.ServeHTTP(w, r.WithContext(caller.With(r.Context(), c)))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// idemAccount creates an account (idempotency_keys references accounts).
func idemAccount(t *testing.T, database *db.DB, name string) *db.Account {
	t.Helper()
	a, err := database.CreateAccount(context.Background(), name, db.PlanGrowth, db.AccountLimits{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type idemResponse struct {
	status int
	header http.Header
	body   string
	err    error
}

// code is the extensions.code of the first error of a JSON error body.
func (r idemResponse) code() string {
	var v struct {
		Errors []struct {
			Extensions struct{ Code string }
		}
	}
	if json.Unmarshal([]byte(r.body), &v) != nil || len(v.Errors) == 0 {
		return ""
	}
	return v.Errors[0].Extensions.Code
}

func (r idemResponse) replayed() bool { return r.header.Get("Idempotent-Replayed") == "true" }

// idemPost POSTs body with an Idempotency-Key (none when key is "").
func idemPost(srv *httptest.Server, key, body string) idemResponse {
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/graphql", strings.NewReader(body))
	if err != nil {
		return idemResponse{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set(idempotency.Header, key)
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		return idemResponse{err: err}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return idemResponse{status: res.StatusCode, header: res.Header, body: string(raw), err: err}
}

func mustPost(t *testing.T, srv *httptest.Server, key, body string) idemResponse {
	t.Helper()
	r := idemPost(srv, key, body)
	if r.err != nil {
		t.Fatalf("POST: %v", r.err)
	}
	return r
}

func TestConcurrentRepeatIsInUse(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		var runs atomic.Int64
		started := make(chan struct{}, 10)
		release := make(chan struct{})
		srv := idemServer(t, database, idemAccount(t, database, "acme"), 100*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := runs.Add(1)
			started <- struct{}{}
			<-release
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"data":{"run":`+itoa(n)+`}}`)
		}))
		const body = `{"query":"mutation { slow }"}`

		first := make(chan idemResponse, 1)
		go func() { first <- idemPost(srv, "slow-key", body) }()
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the first request never reached the handler")
		}

		// A repeat waits Wait (100 ms) for the first, then gives up.
		begin := time.Now()
		r := mustPost(t, srv, "slow-key", body)
		if r.status != http.StatusConflict || r.code() != "idempotency_key_in_use" || r.replayed() {
			t.Errorf("repeat while the first runs: HTTP %d %s (replayed %v), want 409 idempotency_key_in_use",
				r.status, r.body, r.replayed())
		}
		if waited := time.Since(begin); waited > 5*time.Second {
			t.Errorf("the repeat waited %v with Wait = 100ms", waited)
		}
		// A different body with the key is refused as a reuse, running or not.
		if r := mustPost(t, srv, "slow-key", `{"query":"mutation { other }"}`); r.status != http.StatusUnprocessableEntity || r.code() != "idempotency_key_reused" {
			t.Errorf("different body while the first runs: HTTP %d %s, want 422 idempotency_key_reused", r.status, r.body)
		}
		if n := runs.Load(); n != 1 {
			t.Fatalf("the handler ran %d times while the first request was running, want 1", n)
		}

		close(release)
		var f idemResponse
		select {
		case f = <-first:
		case <-time.After(10 * time.Second):
			t.Fatal("the first request did not finish after its handler was released")
		}
		if f.err != nil || f.status != http.StatusOK || f.body != `{"data":{"run":1}}` || f.replayed() {
			t.Fatalf("first request: HTTP %d %q err %v replayed %v", f.status, f.body, f.err, f.replayed())
		}

		// Now that it is done, a repeat gets the stored response.
		r = mustPost(t, srv, "slow-key", body)
		if r.status != http.StatusOK || r.body != f.body || !r.replayed() {
			t.Fatalf("repeat after the first finished: HTTP %d %q replayed %v, want the stored %q", r.status, r.body, r.replayed(), f.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("replay Content-Type %q", ct)
		}
		if n := runs.Load(); n != 1 {
			t.Fatalf("the handler ran %d times, want 1", n)
		}
	})
}

func TestPanicReleasesClaim(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		var runs atomic.Int64
		srv := idemServer(t, database, idemAccount(t, database, "acme"), 100*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if runs.Add(1) == 1 {
				panic("boom")
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"data":{"ok":true}}`)
		}))
		const body = `{"query":"mutation { flaky }"}`

		if r := mustPost(t, srv, "flaky-key", body); r.status != http.StatusInternalServerError {
			t.Fatalf("panicking request: HTTP %d %s, want 500", r.status, r.body)
		}
		// The claim is released: the retry runs (it neither waits into a
		// 409 nor replays the failure).
		r := mustPost(t, srv, "flaky-key", body)
		if r.status != http.StatusOK || r.body != `{"data":{"ok":true}}` || r.replayed() {
			t.Fatalf("retry after a panic: HTTP %d %s replayed %v, want a fresh 200", r.status, r.body, r.replayed())
		}
		if n := runs.Load(); n != 2 {
			t.Fatalf("handler ran %d times, want 2", n)
		}
		if r := mustPost(t, srv, "flaky-key", body); r.status != http.StatusOK || !r.replayed() || runs.Load() != 2 {
			t.Fatalf("third request: HTTP %d replayed %v, handler runs %d; want a replay", r.status, r.replayed(), runs.Load())
		}
	})
}

func TestStoredResponseRedactsSecrets(t *testing.T) {
	t.Parallel()
	database := dbtest.Open(t, dbtest.SQLite)
	account := idemAccount(t, database, "acme")
	const secret = "sk_rsv_0123456789abcdefghijABCDEFGHIJ0123456789"
	const hook = "whsec_0123456789abcdefABCDEF"
	srv := idemServer(t, database, account, 100*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{"secret":"`+secret+`","webhook":"`+hook+`"}}`)
	}))
	first := mustPost(t, srv, "k", `{"query":"mutation { s }"}`)
	if !strings.Contains(first.body, secret) || !strings.Contains(first.body, hook) {
		t.Fatalf("the first response must carry the secrets: %s", first.body)
	}
	replay := mustPost(t, srv, "k", `{"query":"mutation { s }"}`)
	want := `{"data":{"secret":"sk_rsv_REDACTED","webhook":"whsec_REDACTED"}}`
	if !replay.replayed() || replay.body != want {
		t.Fatalf("replay %q (replayed %v), want %q", replay.body, replay.replayed(), want)
	}
	stored, err := database.IdempotencyKey(context.Background(), account.ID, "k")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored.Body, secret) || strings.Contains(stored.Body, hook) {
		t.Fatalf("stored body holds a secret: %s", stored.Body)
	}
}

func TestPassThroughAndKeyChecks(t *testing.T) {
	t.Parallel()
	database := dbtest.Open(t, dbtest.SQLite)
	account := idemAccount(t, database, "acme")
	var runs atomic.Int64
	srv := idemServer(t, database, account, 100*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{}}`)
	}))
	const body = `{"query":"mutation { m }"}`

	// Without a key every request runs.
	for range 2 {
		if r := mustPost(t, srv, "", body); r.status != http.StatusOK || r.replayed() {
			t.Fatalf("no key: HTTP %d replayed %v", r.status, r.replayed())
		}
	}
	// GET is not idempotency-checked.
	for range 2 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/graphql?query=%7Bx%7D", nil)
		req.Header.Set(idempotency.Header, "get-key")
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.Header.Get("Idempotent-Replayed") != "" {
			t.Fatal("a GET was replayed")
		}
	}
	if n := runs.Load(); n != 4 {
		t.Fatalf("handler ran %d times, want 4", n)
	}
	// 255 characters is fine, 256 is refused before running.
	if r := mustPost(t, srv, strings.Repeat("k", 255), body); r.status != http.StatusOK {
		t.Fatalf("255-character key: HTTP %d %s", r.status, r.body)
	}
	if r := mustPost(t, srv, strings.Repeat("k", 256), body); r.status != http.StatusBadRequest || r.code() != db.CodeInvalidFieldFormat {
		t.Fatalf("256-character key: HTTP %d %s, want 400 %s", r.status, r.body, db.CodeInvalidFieldFormat)
	}
	if n := runs.Load(); n != 5 {
		t.Fatalf("handler ran %d times, want 5", n)
	}
	if _, err := database.IdempotencyKey(context.Background(), account.ID, strings.Repeat("k", 256)); db.ErrorCode(err) != db.CodeResourceNotFound {
		t.Fatalf("a refused key was stored (err %v)", err)
	}
}

func TestConcurrentSameKeyRunsOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		var runs atomic.Int64
		srv := idemServer(t, database, idemAccount(t, database, "acme"), 100*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := runs.Add(1)
			time.Sleep(20 * time.Millisecond)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"data":{"run":`+itoa(n)+`}}`)
		}))
		const n = 16
		out := make(chan idemResponse, n)
		start := make(chan struct{})
		for range n {
			go func() {
				<-start
				out <- idemPost(srv, "burst", `{"query":"mutation { once }"}`)
			}()
		}
		close(start)
		statuses := map[int]int{}
		fresh := 0
		for range n {
			r := <-out
			if r.err != nil {
				t.Fatalf("POST: %v", r.err)
			}
			statuses[r.status]++
			switch {
			case r.status == http.StatusOK && r.body != `{"data":{"run":1}}`:
				t.Errorf("response %q, want run 1's", r.body)
			case r.status == http.StatusOK && !r.replayed():
				fresh++
			case r.status == http.StatusConflict && r.code() != "idempotency_key_in_use":
				t.Errorf("409 with %s", r.body)
			case r.status != http.StatusOK && r.status != http.StatusConflict:
				t.Errorf("HTTP %d %s", r.status, r.body)
			}
		}
		if got := runs.Load(); got != 1 || fresh != 1 {
			t.Fatalf("handler ran %d times and %d responses were not replays; want 1 and 1 (statuses %v)", got, fresh, statuses)
		}
		t.Logf("statuses with Wait = 100ms: %v", statuses)
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestReuseRefusedWithoutWaiting: a different body with a key whose first
// request still runs is a client error that waiting cannot change, so it is
// answered at once rather than after Wait.
func TestReuseRefusedWithoutWaiting(t *testing.T) {
	t.Parallel()
	database := dbtest.Open(t, dbtest.SQLite)
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := idemServer(t, database, idemAccount(t, database, "acme"), time.Minute, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		_, _ = io.WriteString(w, `{"data":{}}`)
	}))
	first := make(chan idemResponse, 1)
	go func() { first <- idemPost(srv, "k", `{"query":"mutation { a }"}`) }()
	<-started
	begin := time.Now()
	r := mustPost(t, srv, "k", `{"query":"mutation { b }"}`)
	waited := time.Since(begin)
	close(release)
	if r.status != http.StatusUnprocessableEntity || r.code() != "idempotency_key_reused" {
		t.Fatalf("different body: HTTP %d %s, want 422 idempotency_key_reused", r.status, r.body)
	}
	if waited > 20*time.Second {
		t.Fatalf("the reuse was refused only after %v (Wait is 1 minute): it waited for the first request", waited)
	}
	if f := <-first; f.err != nil || f.status != http.StatusOK {
		t.Fatalf("first request: HTTP %d err %v", f.status, f.err)
	}
}

// Queries, subscriptions over SSE and batches without a mutation are not
// stored: they run every time. Batches with one, and documents the
// middleware cannot read, are.
func TestOnlyMutationsAreStored(t *testing.T) {
	t.Parallel()
	database := dbtest.Open(t, dbtest.SQLite)
	account := idemAccount(t, database, "acme")
	var runs atomic.Int64
	srv := idemServer(t, database, account, 100*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{}}`)
	}))
	for _, tc := range []struct {
		name, body string
		stored     bool
	}{
		{"query", `{"query":"{ viewer { account { id } } }"}`, false},
		{"named query among a mutation", `{"query":"query Q { a } mutation M { b }","operationName":"Q"}`, false},
		{"named mutation among a query", `{"query":"query Q { a } mutation M { b }","operationName":"M"}`, true},
		{"anonymous mutation", `{"query":"mutation { b }"}`, true},
		{"batch of queries", `[{"query":"{ a }"},{"query":"{ b }"}]`, false},
		{"batch with a mutation", `[{"query":"{ a }"},{"query":"mutation { b }"}]`, true},
		{"persisted query by hash", `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}`, true},
		{"syntax error", `{"query":"mutation {"}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runs.Load()
			key := "k-" + tc.name
			first, second := mustPost(t, srv, key, tc.body), mustPost(t, srv, key, tc.body)
			if first.replayed() || second.replayed() != tc.stored {
				t.Fatalf("replayed: first %v, second %v; want false, %v", first.replayed(), second.replayed(), tc.stored)
			}
			want := int64(2)
			if tc.stored {
				want = 1
			}
			if n := runs.Load() - before; n != want {
				t.Fatalf("ran %d times, want %d", n, want)
			}
		})
	}
}

// The same Idempotency-Key and body from a key with other scopes is a
// different request: it is refused, and the stored response not shown.
func TestScopesArePartOfTheRequest(t *testing.T) {
	t.Parallel()
	database := dbtest.Open(t, dbtest.SQLite)
	account := idemAccount(t, database, "acme")
	m := idempotency.New(database, quiet)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{"secretThing":42}}`)
	})
	full := &caller.Caller{Account: account, Key: &db.APIKey{ID: 1, AccountID: account.ID}}
	reader := &caller.Caller{Account: account, Key: &db.APIKey{ID: 2, AccountID: account.ID, Scopes: db.StringList{"services:read"}}}
	post := func(c *caller.Caller) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"mutation { m }"}`))
		r.Header.Set(idempotency.Header, "shared")
		w := httptest.NewRecorder()
		m.Handler(next).ServeHTTP(w, r.WithContext(caller.With(r.Context(), c)))
		return w
	}
	if w := post(full); w.Code != http.StatusOK {
		t.Fatalf("first: HTTP %d", w.Code)
	}
	w := post(reader)
	if w.Code != http.StatusUnprocessableEntity || strings.Contains(w.Body.String(), "secretThing") {
		t.Fatalf("other scopes: HTTP %d %s, want 422 without the stored response", w.Code, w.Body)
	}
	if w := post(full); w.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("same key again: not replayed (HTTP %d)", w.Code)
	}
}

// An SSE subscription with an Idempotency-Key streams as without one.
func TestEventStreamPassesThrough(t *testing.T) {
	t.Parallel()
	database := dbtest.Open(t, dbtest.SQLite)
	account := idemAccount(t, database, "acme")
	m := idempotency.New(database, quiet)
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			http.Error(w, "streaming unsupported", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "event: next\ndata: {}\n\n")
	})
	c := &caller.Caller{Account: account, Key: &db.APIKey{ID: 1, AccountID: account.ID}}
	for range 2 {
		r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"subscription { s }"}`))
		r.Header.Set(idempotency.Header, "stream")
		r.Header.Set("Accept", "text/event-stream")
		w := httptest.NewRecorder()
		m.Handler(next).ServeHTTP(w, r.WithContext(caller.With(r.Context(), c)))
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/event-stream" || w.Header().Get("Idempotent-Replayed") != "" {
			t.Fatalf("HTTP %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
		}
	}
}
