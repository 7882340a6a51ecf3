package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/app/apptest"
	"github.com/reservekit/reservekit/server/ratelimit"
)

// prodGet GETs path from the server without a key.
func prodGet(t *testing.T, e *apptest.Env, path string) (int, http.Header, string) {
	t.Helper()
	res, body := rawGet(t, e, path)
	return res.StatusCode, res.Header, string(body)
}

// prodReady checks /readyz answers status with {"status":…} and, for 503, reason.
func prodReady(t *testing.T, e *apptest.Env, status int, reason string) {
	t.Helper()
	code, header, body := prodGet(t, e, "/readyz")
	var v struct{ Status, Reason string }
	if err := json.Unmarshal([]byte(body), &v); err != nil || !strings.HasPrefix(header.Get("Content-Type"), "application/json") {
		t.Fatalf("/readyz body %q (Content-Type %q): %v", body, header.Get("Content-Type"), err)
	}
	want := "ok"
	if status != http.StatusOK {
		want = "unavailable"
	}
	if code != status || v.Status != want || v.Reason != reason {
		t.Fatalf("/readyz: HTTP %d %s, want %d status %q reason %q", code, body, status, want, reason)
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	t.Run("database closed", func(t *testing.T) {
		t.Parallel()
		database := dbtest.Open(t, dbtest.SQLite)
		e := newEnv(t, database, nil)
		prodReady(t, e, http.StatusOK, "")
		if code, _, body := prodGet(t, e, "/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz: HTTP %d %s", code, body)
		}
		if err := database.Close(); err != nil {
			t.Fatal(err)
		}
		prodReady(t, e, http.StatusServiceUnavailable, "database unreachable")
	})

	t.Run("migrations not applied", func(t *testing.T) {
		t.Parallel()
		database := dbtest.Open(t, dbtest.SQLite)
		e := newEnv(t, database, nil)
		prodReady(t, e, http.StatusOK, "")
		// As if the binary were newer than the database: its last migration
		// is not recorded as applied.
		if _, err := database.ExecContext(context.Background(),
			"DELETE FROM bun_migrations WHERE id = (SELECT MAX(id) FROM bun_migrations)"); err != nil {
			t.Fatal(err)
		}
		prodReady(t, e, http.StatusServiceUnavailable, "migrations not applied")
	})

	t.Run("draining", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil)
		prodReady(t, e, http.StatusOK, "")
		// Serve the same app on a second listener and stop it: from then on
		// the app is shutting down, which /readyz reports on every listener.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- e.App.Serve(ctx, ln) }()
		res, err := http.Get("http://" + ln.Addr().String() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("/readyz on the served listener: HTTP %d", res.StatusCode)
		}
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Serve did not return after its context was cancelled")
		}
		prodReady(t, e, http.StatusServiceUnavailable, "shutting down")
		// Liveness is not readiness: the process is still alive.
		if code, _, body := prodGet(t, e, "/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz while draining: HTTP %d %s", code, body)
		}
	})

	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, dbtest.Open(t, dbtest.Postgres), nil)
		prodReady(t, e, http.StatusOK, "")
	})
}

// prodSample is one sample of the Prometheus text format.
type prodSample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	prodSampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$`)
	prodLabelRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// prodMetrics scrapes path of e and parses the samples, failing on any
// line that is not a comment or a sample.
func prodMetrics(t *testing.T, e *apptest.Env) []prodSample {
	t.Helper()
	code, header, body := prodGet(t, e, "/metrics")
	if code != http.StatusOK || !strings.HasPrefix(header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: HTTP %d Content-Type %q", code, header.Get("Content-Type"))
	}
	return prodParseMetrics(t, body)
}

func prodParseMetrics(t *testing.T, text string) []prodSample {
	t.Helper()
	var out []prodSample
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := prodSampleRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("not a Prometheus sample: %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("sample value in %q: %v", line, err)
		}
		s := prodSample{name: m[1], labels: map[string]string{}, value: v}
		for _, l := range prodLabelRE.FindAllStringSubmatch(m[2], -1) {
			s.labels[l[1]] = l[2]
		}
		out = append(out, s)
	}
	return out
}

// prodFind returns the samples named name whose labels include want.
func prodFind(samples []prodSample, name string, want map[string]string) []prodSample {
	var out []prodSample
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

func prodValue(t *testing.T, samples []prodSample, name string, labels map[string]string) float64 {
	t.Helper()
	found := prodFind(samples, name, labels)
	if len(found) != 1 {
		t.Fatalf("%d samples %s%v, want 1", len(found), name, labels)
	}
	return found[0].value
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		key := e.Account("acme")
		for range 3 {
			wantOK(t, e, key, "acme")
		}
		var created struct{ CreateService struct{ ID string } }
		e.MustData(key, `mutation { createService(input: {name: "Yoga", timezone: "UTC"}) { id } }`, nil, &created)
		// A request refused by GraphQL validation (HTTP 422).
		if r := e.Do(key, `{ viewer { nope } }`, nil); r.Status == http.StatusOK {
			t.Fatalf("invalid query: HTTP %d", r.Status)
		}
		// A starter account (burst 10) is refused by the rate limit.
		starter := e.AccountWith("starter", db.PlanStarter, db.AccountLimits{}, nil)
		limited := 0
		for range 15 {
			if r := e.Do(starter, viewerQuery, nil); r.Status == http.StatusTooManyRequests {
				if r.Code() != "rate_limit_exceeded" {
					t.Fatalf("429 with %s", r.Raw)
				}
				limited++
			}
		}
		if limited == 0 {
			t.Fatal("15 quick requests of a starter account were never refused")
		}
		// Unauthenticated requests are not API requests.
		if r := e.Do("", viewerQuery, nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("no key: HTTP %d", r.Status)
		}

		samples := prodMetrics(t, e) // no key needed
		if got := prodValue(t, samples, "reservekit_requests_total", map[string]string{"operation": "viewer", "status": "200"}); got != 3+15-float64(limited) {
			t.Errorf(`reservekit_requests_total{operation="viewer",status="200"} = %v, want %v`, got, 3+15-limited)
		}
		if got := prodValue(t, samples, "reservekit_requests_total", map[string]string{"operation": "createService", "status": "200"}); got != 1 {
			t.Errorf(`reservekit_requests_total{operation="createService",status="200"} = %v, want 1`, got)
		}
		var total, with429 float64
		for _, s := range prodFind(samples, "reservekit_requests_total", nil) {
			if s.labels["operation"] == "" || s.labels["status"] == "" {
				t.Errorf("reservekit_requests_total without operation or status: %v", s.labels)
			}
			if _, err := strconv.Atoi(s.labels["status"]); err != nil {
				t.Errorf("status label %q is not an HTTP status", s.labels["status"])
			}
			total += s.value
			if s.labels["status"] == "429" {
				with429 += s.value
			}
		}
		if want := float64(3 + 1 + 1 + 15); total != want {
			t.Errorf("reservekit_requests_total sums to %v, want %v authenticated requests", total, want)
		}
		if with429 != float64(limited) {
			t.Errorf("requests with status 429: %v, want %d", with429, limited)
		}
		if got := prodValue(t, samples, "reservekit_refused_total", map[string]string{"code": "rate_limit_exceeded"}); got != float64(limited) {
			t.Errorf(`reservekit_refused_total{code="rate_limit_exceeded"} = %v, want %d`, got, limited)
		}

		buckets := prodFind(samples, "reservekit_request_duration_seconds_bucket", map[string]string{"operation": "viewer"})
		if len(buckets) < 2 {
			t.Fatalf("reservekit_request_duration_seconds_bucket{operation=\"viewer\"}: %d buckets", len(buckets))
		}
		inf := prodValue(t, samples, "reservekit_request_duration_seconds_bucket", map[string]string{"operation": "viewer", "le": "+Inf"})
		count := prodValue(t, samples, "reservekit_request_duration_seconds_count", map[string]string{"operation": "viewer"})
		if inf != count || count < 3 {
			t.Errorf("viewer latency: +Inf bucket %v, count %v", inf, count)
		}
		if sum := prodValue(t, samples, "reservekit_request_duration_seconds_sum", map[string]string{"operation": "viewer"}); sum <= 0 || sum > 60*count {
			t.Errorf("viewer latency sum %v for %v requests", sum, count)
		}

		// Database pool statistics.
		for _, name := range []string{"go_sql_max_open_connections", "go_sql_open_connections", "go_sql_in_use_connections", "go_sql_idle_connections", "go_sql_wait_count_total"} {
			found := prodFind(samples, name, map[string]string{"db_name": "reservekit"})
			if len(found) != 1 {
				t.Errorf("%s{db_name=\"reservekit\"}: %d samples", name, len(found))
			}
		}
		if got := prodValue(t, samples, "go_sql_max_open_connections", map[string]string{"db_name": "reservekit"}); got < 1 {
			t.Errorf("go_sql_max_open_connections = %v", got)
		}
		if got := prodValue(t, samples, "reservekit_api_log_dropped_total", nil); got != 0 {
			t.Errorf("reservekit_api_log_dropped_total = %v", got)
		}
		// Without Redis there is no fallback counter.
		if found := prodFind(samples, "reservekit_ratelimit_redis_fallbacks_total", nil); len(found) != 0 {
			t.Errorf("redis fallbacks reported without Redis: %v", found)
		}
	})
}

func TestMetricsElsewhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), &app.Config{MetricsElsewhere: true})
	key := e.Account("acme")
	wantOK(t, e, key, "acme")
	if code, _, body := prodGet(t, e, "/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics on the API's router with METRICS_ADDR: HTTP %d %.200s", code, body)
	}
	srv := httptest.NewServer(e.App.Metrics.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	samples := prodParseMetrics(t, string(body))
	if got := prodValue(t, samples, "reservekit_requests_total", map[string]string{"operation": "viewer", "status": "200"}); got != 1 {
		t.Fatalf("reservekit_requests_total on the metrics listener: %v", got)
	}
}

// prodLogLine is one "request" line of the text logs.
type prodLogLine map[string]string

var prodLogAttrRE = regexp.MustCompile(`([a-zA-Z_]+)=("(?:[^"\\]|\\.)*"|\S*)`)

// prodRequestLines parses the "request" lines of the server's text logs.
func prodRequestLines(t *testing.T, logs string) []prodLogLine {
	t.Helper()
	var out []prodLogLine
	for line := range strings.SplitSeq(logs, "\n") {
		attrs := prodLogLine{}
		for _, m := range prodLogAttrRE.FindAllStringSubmatch(line, -1) {
			v := m[2]
			if strings.HasPrefix(v, `"`) {
				u, err := strconv.Unquote(v)
				if err != nil {
					t.Fatalf("log value %s: %v", v, err)
				}
				v = u
			}
			attrs[m[1]] = v
		}
		if attrs["msg"] == "request" {
			out = append(out, attrs)
		}
	}
	return out
}

func TestRequestLogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil)
	key := e.Account("acme")
	s := mustCreateService(t, e, key, "UTC", slotIn(1, "09:00", "10:00", 5))
	const (
		email   = "ops-private-4711@example.com"
		name    = "Zebulon Quixote-Private"
		phone   = "+12025550123"
		message = "ops secret message 9f8e7d"
		badMail = "ops-not-an-email-5532"
	)
	r := e.Do(key, gqlCreateBooking, map[string]any{"input": map[string]any{
		"timeSlotId": s.TimeSlots[0].ID, "date": nextDate("UTC", time.Monday),
		"customerEmail": email, "customerName": name, "customerPhone": phone, "message": message,
	}})
	if r.Status != http.StatusOK || len(r.Errors) > 0 {
		t.Fatalf("createBooking: HTTP %d %s", r.Status, r.Raw)
	}
	// A value that fails validation is not logged either.
	bad := e.Do(key, gqlCreateBooking, map[string]any{"input": map[string]any{
		"timeSlotId": s.TimeSlots[0].ID, "date": nextDate("UTC", time.Monday), "customerEmail": badMail,
	}})
	if len(bad.Errors) == 0 {
		t.Fatalf("invalid email accepted: %s", bad.Raw)
	}
	unauth := e.Do("", viewerQuery, nil)
	_, health, _ := prodGet(t, e, "/healthz")

	lines := prodRequestLines(t, e.Logs())
	for _, c := range []struct {
		what   string
		r      *apptest.Response
		header http.Header
		method string
		path   string
		status int
	}{
		{"createBooking", r, r.Header, http.MethodPost, "/graphql", http.StatusOK},
		{"invalid createBooking", bad, bad.Header, http.MethodPost, "/graphql", bad.Status},
		{"unauthenticated", unauth, unauth.Header, http.MethodPost, "/graphql", http.StatusUnauthorized},
		{"healthz", nil, health, http.MethodGet, "/healthz", http.StatusOK},
	} {
		id := c.header.Get("X-Request-Id")
		if id == "" {
			t.Errorf("%s: no X-Request-Id header", c.what)
			continue
		}
		var found []prodLogLine
		for _, l := range lines {
			if l["request_id"] == id {
				found = append(found, l)
			}
		}
		if len(found) != 1 {
			t.Errorf("%s: %d request lines with request_id %q, want 1", c.what, len(found), id)
			continue
		}
		l := found[0]
		if l["method"] != c.method || l["path"] != c.path || l["status"] != strconv.Itoa(c.status) || l["level"] != "INFO" {
			t.Errorf("%s: logged %v, want method %s path %s status %d", c.what, l, c.method, c.path, c.status)
		}
		if d, err := strconv.ParseFloat(l["duration_ms"], 64); err != nil || d < 0 || d > 60_000 {
			t.Errorf("%s: duration_ms %q", c.what, l["duration_ms"])
		}
	}
	// Two different requests have different ids.
	if r.Header.Get("X-Request-Id") == bad.Header.Get("X-Request-Id") {
		t.Error("two requests share an X-Request-Id")
	}
	logs := e.Logs()
	for _, v := range []string{email, "ops-private-4711", name, "Quixote", phone, message, badMail, key} {
		if strings.Contains(logs, v) {
			t.Errorf("the logs hold %q from the request:\n%s", v, logs)
		}
	}
}

func TestIntrospectionSwitch(t *testing.T) {
	t.Parallel()
	const (
		schemaQuery = `{ __schema { types { name } } }`
		typeQuery   = `{ __type(name: "Booking") { name fields { name } } }`
		misspelled  = `{ viewr { account { name } } }`
	)
	t.Run("on", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil)
		key := e.Account("acme")
		var out struct {
			Schema struct{ Types []struct{ Name string } } `json:"__schema"`
		}
		e.MustData(key, schemaQuery, nil, &out)
		if len(out.Schema.Types) < 10 {
			t.Fatalf("introspection returned %d types", len(out.Schema.Types))
		}
		r := e.Do(key, misspelled, nil)
		if len(r.Errors) == 0 || !strings.Contains(string(r.Raw), `Did you mean \"viewer\"`) {
			t.Fatalf("misspelled field with introspection on: HTTP %d %s, want a suggestion of viewer", r.Status, r.Raw)
		}
	})
	t.Run("off", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, dbtest.Open(t, dbtest.SQLite), &app.Config{NoIntrospection: true})
		key := e.Account("acme")
		for _, q := range []string{schemaQuery, typeQuery, `query { viewer { account { name } } __typename __schema { queryType { name } } }`} {
			r := e.Do(key, q, nil)
			if len(r.Errors) == 0 || r.Status == http.StatusOK && strings.Contains(string(r.Data), `"name"`) {
				t.Fatalf("%s with introspection off: HTTP %d %s", q, r.Status, r.Raw)
			}
			if strings.Contains(string(r.Raw), "Booking") || strings.Contains(string(r.Raw), "queryType\":{") {
				t.Fatalf("%s with introspection off leaks the schema: %s", q, r.Raw)
			}
			// A refusal is the client's doing, not a server fault to log and alert on.
			if r.Code() == "internal_error" {
				t.Errorf("%s with introspection off is answered as an internal error: %s", q, r.Raw)
			}
		}
		r := e.Do(key, misspelled, nil)
		if len(r.Errors) == 0 {
			t.Fatalf("misspelled field accepted: %s", r.Raw)
		}
		if strings.Contains(string(r.Raw), "Did you mean") || strings.Contains(string(r.Raw), `"viewer"`) {
			t.Fatalf("misspelled field with introspection off suggests: %s", r.Raw)
		}
		// Misspelled arguments, types and enum values give no hints either:
		// they would reveal the schema just the same.
		for _, q := range []string{
			`{ services(frist: 1) { totalCount } }`,
			`query($x: Strng) { viewer { account { name } } }`,
			`{ bookings(status: CONFIRMD) { totalCount } }`,
		} {
			r := e.Do(key, q, nil)
			if len(r.Errors) == 0 || strings.Contains(string(r.Raw), "Did you mean") {
				t.Errorf("%s with introspection off: %s", q, r.Raw)
			}
		}
		// Ordinary queries, including __typename, still work.
		var out struct {
			Typename string `json:"__typename"`
			Viewer   struct{ Account struct{ Name string } }
		}
		e.MustData(key, `{ __typename viewer { account { name } } }`, nil, &out)
		if out.Typename != "Query" || out.Viewer.Account.Name != "acme" {
			t.Fatalf("ordinary query with introspection off: %+v", out)
		}
	})
}

func TestPlaygroundSwitch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), &app.Config{NoPlayground: true})
	code, _, body := prodGet(t, e, "/")
	if code != http.StatusNotFound || strings.Contains(strings.ToLower(body), "graphiql") {
		t.Fatalf("GET / with PLAYGROUND=false: HTTP %d %.200s", code, body)
	}
	// The API itself is unaffected.
	wantOK(t, e, e.Account("acme"), "acme")
	if code, _, _ := prodGet(t, e, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: HTTP %d", code)
	}
}

func TestAutomaticPersistedQueries(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		key := e.Account("acme")
		const query = `query APQ { viewer { account { name } } }`
		sum := sha256.Sum256([]byte(query))
		ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
		post := func(withQuery bool) *apptest.Response {
			t.Helper()
			body := map[string]any{"extensions": ext}
			if withQuery {
				body["query"] = query
			}
			raw, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			return prodMustPost(t, e, key, raw)
		}
		wantData := func(what string, r *apptest.Response) {
			t.Helper()
			if r.Status != http.StatusOK || len(r.Errors) > 0 || string(r.Data) != `{"viewer":{"account":{"name":"acme"}}}` {
				t.Fatalf("%s: HTTP %d %s", what, r.Status, r.Raw)
			}
		}

		r := post(false)
		if len(r.Errors) == 0 || r.Errors[0].Message != "PersistedQueryNotFound" {
			t.Fatalf("unknown hash: HTTP %d %s, want PersistedQueryNotFound", r.Status, r.Raw)
		}
		wantData("hash and query", post(true))
		wantData("hash only, after registering", post(false))

		// GET with the hash only works too.
		extJSON, err := json.Marshal(ext)
		if err != nil {
			t.Fatal(err)
		}
		req := request(t, e, http.MethodGet, "/graphql?"+url.Values{"extensions": {string(extJSON)}}.Encode(), nil, key)
		wantData("GET with the hash only", e.Send(req))

		// A mutation registered by POST cannot then run by its hash over
		// GET: 405, as with its text, and nothing is created.
		const mutation = `mutation { createService(input: {name: "By GET", timezone: "UTC"}) { id } }`
		msum := sha256.Sum256([]byte(mutation))
		mext, _ := json.Marshal(map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(msum[:])}})
		mraw, _ := json.Marshal(map[string]any{"query": mutation, "extensions": json.RawMessage(mext)})
		if r := prodMustPost(t, e, key, mraw); len(r.Errors) > 0 {
			t.Fatalf("registering the mutation: %s", r.Raw)
		}
		r = e.Send(request(t, e, http.MethodGet, "/graphql?"+url.Values{"extensions": {string(mext)}}.Encode(), nil, key))
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "POST" {
			t.Fatalf("persisted mutation over GET: HTTP %d %s, want 405", r.Status, r.Raw)
		}
		var count struct{ Services struct{ TotalCount int } }
		e.MustData(key, `{ services { totalCount } }`, nil, &count)
		if count.Services.TotalCount != 1 {
			t.Fatalf("%d services, want the 1 created by POST", count.Services.TotalCount)
		}

		// A query that does not match its hash is refused.
		wrong := map[string]any{"query": `{ viewer { apiKey { name } } }`, "extensions": ext}
		raw, _ := json.Marshal(wrong)
		if r := prodMustPost(t, e, key, raw); len(r.Errors) == 0 {
			t.Fatalf("query not matching its hash: HTTP %d %s", r.Status, r.Raw)
		}
	})
}

// The gauges and counters of the background parts: pending webhook
// deliveries, open subscriptions, quota refusals.
func TestMetricsOfBackgroundParts(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, &app.Config{WebhookAllowPrivate: true, WebhookRetry: []time.Duration{time.Hour}})
		key := e.Account("acme")
		gauge := func(name string) float64 { return prodValue(t, prodMetrics(t, e), name, nil) }
		eventually := func(what string, ok func() bool) {
			t.Helper()
			for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("timed out waiting for %s", what)
				}
			}
		}
		if q, s := gauge("reservekit_webhook_queue_depth"), gauge("reservekit_subscriptions"); q != 0 || s != 0 {
			t.Fatalf("at start: queue %v, subscriptions %v", q, s)
		}

		// Two bookings for a webhook nobody answers: two deliveries wait.
		mustCreateWebhook(t, e, key, map[string]any{"url": "http://127.0.0.1:1/hook", "events": []string{"bookings.create"}})
		s := mustCreateService(t, e, key, "UTC", slotIn(3, "09:00", "10:00", 10))
		wednesday := nextDate("UTC", time.Wednesday)
		mustBook(t, e, key, s.TimeSlots[0].ID, wednesday, "a@example.com")
		mustBook(t, e, key, s.TimeSlots[0].ID, wednesday, "b@example.com")
		if q := gauge("reservekit_webhook_queue_depth"); q != 2 {
			t.Fatalf("reservekit_webhook_queue_depth = %v, want 2", q)
		}

		// An open subscription counts while it lasts.
		c := wsDial(t, e.Server.URL, bearer(key), nil)
		c.ack()
		c.subscribe("1", subBookingEvents, nil)
		eventually("reservekit_subscriptions = 1", func() bool { return gauge("reservekit_subscriptions") == 1 })
		c.send(wsMsg{ID: "1", Type: "complete"})
		eventually("reservekit_subscriptions = 0", func() bool { return gauge("reservekit_subscriptions") == 0 })

		// A monthly quota of 2: the third request is refused and counted.
		quotaKey, _ := usageQuotaAccount(t, e, "quota-"+t.Name(), 2)
		refused := 0
		for range 4 {
			if r := e.Do(quotaKey, viewerQuery, nil); r.Code() == "api_limit_exceeded" {
				refused++
			}
		}
		if refused == 0 {
			t.Fatal("a quota of 2 refused none of 4 requests")
		}
		if got := prodValue(t, prodMetrics(t, e), "reservekit_refused_total", map[string]string{"code": "api_limit_exceeded"}); got != float64(refused) {
			t.Fatalf(`reservekit_refused_total{code="api_limit_exceeded"} = %v, want %d`, got, refused)
		}
	})
}

// With Redis unreachable, requests are served with in-process counters,
// and /metrics counts every fallback.
func TestMetricsRedisFallbacks(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer client.Close()
	set := ratelimit.NewRedisCounterSet(client, slog.New(slog.DiscardHandler))
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), &app.Config{RateCounters: set.New, RedisFallbacks: set.Fallbacks})
	key := e.Account("acme")
	for range 3 {
		wantOK(t, e, key, "acme")
	}
	got := prodValue(t, prodMetrics(t, e), "reservekit_ratelimit_redis_fallbacks_total", nil)
	if got < 3 || got != float64(set.Fallbacks()) {
		t.Fatalf("reservekit_ratelimit_redis_fallbacks_total = %v after 3 requests with Redis down (counter set: %d)", got, set.Fallbacks())
	}
}
