// Package apptest runs a real ReserveKit server (router, middleware,
// GraphQL, database) on an httptest listener and talks GraphQL to it, for
// end-to-end tests and benchmarks.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/auth"
)

// Env is a running server on its own database.
type Env struct {
	T      testing.TB
	DB     *db.DB
	App    *app.App
	Server *httptest.Server
	logs   *lockedWriter
}

// New starts a server on database; cfg may tune it (nil for defaults).
func New(t testing.TB, database *db.DB, cfg *app.Config) *Env {
	t.Helper()
	logs := &lockedWriter{w: &bytes.Buffer{}}
	c := app.Config{}
	if cfg != nil {
		c = *cfg
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(logs, nil))
		registry.add(logs)
	}
	a := app.New(database, c)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return &Env{T: t, DB: database, App: a, Server: srv, logs: logs}
}

// Account creates an account with generous rate limits (so tests are not
// throttled unless they mean to be) and returns a key's secret.
func (e *Env) Account(name string) string {
	rate, burst := 100_000, 100_000
	return e.AccountWith(name, db.PlanGrowth, db.AccountLimits{Rate: &rate, Burst: &burst}, nil)
}

// AccountWith creates an account with a plan and limits and returns a key
// (restricted to domain when not nil).
func (e *Env) AccountWith(name string, plan db.Plan, limits db.AccountLimits, domain *string) string {
	e.T.Helper()
	ctx := context.Background()
	a, err := e.DB.CreateAccount(ctx, name, plan, limits)
	if err != nil {
		e.T.Fatalf("create account: %v", err)
	}
	_, secret, err := auth.Issue(ctx, e.DB, a.ID, nil, auth.KeySpec{Name: "test", Domain: domain})
	if err != nil {
		e.T.Fatalf("issue key: %v", err)
	}
	return secret
}

// Response is a decoded GraphQL response with its HTTP envelope.
type Response struct {
	Status int
	Header http.Header
	Data   json.RawMessage
	Errors []Error
	Raw    []byte
}

// Error is one GraphQL error.
type Error struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

// Code is the extensions.code of the first error, or "".
func (r *Response) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// Field is the extensions.field of the first error, or "".
func (r *Response) Field() string {
	if len(r.Errors) == 0 {
		return ""
	}
	f, _ := r.Errors[0].Extensions["field"].(string)
	return f
}

// Decode unmarshals data into v, failing the test on GraphQL errors.
func (r *Response) Decode(t testing.TB, v any) {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors (HTTP %d): %s", r.Status, r.Raw)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decode data %s: %v", r.Data, err)
	}
}

// Do POSTs a GraphQL operation with key (no Authorization header when key
// is ""), adding any extra headers given as "Name: value".
func (e *Env) Do(key, query string, vars map[string]any, headers ...string) *Response {
	e.T.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, e.Server.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		e.T.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Set(name, strings.TrimSpace(value))
	}
	return e.Send(req)
}

// Send performs a request and decodes its GraphQL response.
func (e *Env) Send(req *http.Request) *Response {
	e.T.Helper()
	res, err := e.Server.Client().Do(req)
	if err != nil {
		e.T.Fatalf("request: %v", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.T.Fatalf("read body: %v", err)
	}
	out := &Response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	var decoded struct {
		Data   json.RawMessage `json:"data"`
		Errors []Error         `json:"errors"`
	}
	if err := json.Unmarshal(raw, &decoded); err != nil {
		e.T.Fatalf("response is not JSON (HTTP %d): %q", res.StatusCode, raw)
	}
	out.Data, out.Errors = decoded.Data, decoded.Errors
	return out
}

// MustData runs an operation that must succeed and decodes its data into v.
func (e *Env) MustData(key, query string, vars map[string]any, v any) {
	e.T.Helper()
	r := e.Do(key, query, vars)
	if r.Status != http.StatusOK {
		e.T.Fatalf("HTTP %d: %s", r.Status, r.Raw)
	}
	r.Decode(e.T, v)
}

// ID renders an int64 id as the GraphQL ID string.
func ID(id int64) string { return fmt.Sprint(id) }

// Logs returns what the server has logged so far.
func (e *Env) Logs() string { return e.logs.String() }

// registry keeps the log buffer of every server New started in this test
// binary, so a TestMain can check all of them once every test has run.
var registry logRegistry

type logRegistry struct {
	mu   sync.Mutex
	logs []*lockedWriter
}

func (r *logRegistry) add(l *lockedWriter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, l)
}

// AllLogs returns what every server started by New in this process (with
// the default logger) has logged so far, one server after another, and how
// many such servers there were.
func AllLogs() (logs string, servers int) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	var b strings.Builder
	for _, l := range registry.logs {
		b.WriteString(l.String())
	}
	return b.String(), len(registry.logs)
}
