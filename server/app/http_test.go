package app_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/app/apptest"
)

// request builds a request to the test server with key (none when "").
func request(t *testing.T, e *apptest.Env, method, path string, body io.Reader, key string, headers ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, e.Server.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Set(name, strings.TrimSpace(value))
	}
	return req
}

// getQuery sends a GraphQL query as GET /graphql?query=….
func getQuery(t *testing.T, e *apptest.Env, key, query string, headers ...string) *apptest.Response {
	t.Helper()
	return e.Send(request(t, e, http.MethodGet, "/graphql?"+url.Values{"query": {query}}.Encode(), nil, key, headers...))
}

// rawGet performs a GET without expecting JSON.
func rawGet(t *testing.T, e *apptest.Env, path string) (*http.Response, []byte) {
	t.Helper()
	res, err := e.Server.Client().Get(e.Server.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func TestGraphQLOverHTTP(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		key := e.Account("acme")

		t.Run("GET query", func(t *testing.T) {
			r := getQuery(t, e, key, `{viewer{account{name}}}`)
			var v struct {
				Viewer struct{ Account struct{ Name string } }
			}
			if r.Status != http.StatusOK {
				t.Fatalf("HTTP %d: %s", r.Status, r.Raw)
			}
			r.Decode(t, &v)
			if v.Viewer.Account.Name != "acme" {
				t.Fatalf("GET returned %s", r.Raw)
			}
			if r.Header.Get("X-RateLimit-Limit") == "" || r.Header.Get("X-Request-Id") == "" {
				t.Errorf("GET response lacks X-RateLimit-Limit or X-Request-Id: %v", r.Header)
			}
		})

		t.Run("GET query with variables and operation name", func(t *testing.T) {
			q := url.Values{
				"query":         {`query A { viewer { account { name } } } query B($id: ID!) { service(id: $id) { id } }`},
				"operationName": {"B"},
				"variables":     {`{"id":"12345"}`},
			}
			r := e.Send(request(t, e, http.MethodGet, "/graphql?"+q.Encode(), nil, key))
			if r.Status != http.StatusOK || len(r.Errors) > 0 || string(r.Data) != `{"service":null}` {
				t.Fatalf("HTTP %d: %s", r.Status, r.Raw)
			}
		})

		t.Run("GET mutation refused", func(t *testing.T) {
			for _, q := range []url.Values{
				{"query": {`mutation { createService(input: {name: "Yoga", timezone: "UTC"}) { id } }`}},
				{"query": {`query Q { viewer { account { name } } } mutation M { createService(input: {name: "Yoga", timezone: "UTC"}) { id } }`}, "operationName": {"M"}},
			} {
				r := e.Send(request(t, e, http.MethodGet, "/graphql?"+q.Encode(), nil, key))
				wantHTTPError(t, r, http.StatusMethodNotAllowed, db.CodeInvalidRequest, "Mutations must be sent with POST")
				if got := r.Header.Get("Allow"); got != "POST" {
					t.Errorf("Allow %q, want POST", got)
				}
			}
			var n struct{ Services struct{ TotalCount int } }
			e.MustData(key, `{ services { totalCount } }`, nil, &n)
			if n.Services.TotalCount != 0 {
				t.Fatalf("a mutation sent with GET was executed: %d services", n.Services.TotalCount)
			}
		})

		t.Run("content negotiation", func(t *testing.T) {
			for _, c := range []struct{ accept, want string }{
				{"application/graphql-response+json", "application/graphql-response+json"},
				{"application/graphql-response+json, application/json;q=0.9", "application/graphql-response+json"},
				{"application/json", "application/json"},
				{"", "application/json"},
			} {
				var headers []string
				if c.accept != "" {
					headers = append(headers, "Accept: "+c.accept)
				}
				post := e.Do(key, `{ viewer { account { name } } }`, nil, headers...)
				get := getQuery(t, e, key, `{ viewer { account { name } } }`, headers...)
				for method, r := range map[string]*apptest.Response{"POST": post, "GET": get} {
					if r.Status != http.StatusOK || len(r.Errors) > 0 {
						t.Fatalf("%s Accept %q: HTTP %d %s", method, c.accept, r.Status, r.Raw)
					}
					if got := r.Header.Get("Content-Type"); !strings.HasPrefix(got, c.want) {
						t.Errorf("%s Accept %q: Content-Type %q, want %s", method, c.accept, got, c.want)
					}
				}
			}
		})

		t.Run("not a GraphQL request", func(t *testing.T) {
			for name, body := range map[string]string{
				"text":                  "hello",
				"empty":                 "",
				"empty batch":           `[]`,
				"batch of non-requests": `[{"query":"{ viewer { account { name } } }"},{"nope":1}]`,
				"JSON string":           `"{ viewer { account { name } } }"`,
				"no query":              `{"variables":{}}`,
				"empty query":           `{"query":""}`,
				"query not string":      `{"query":5}`,
				"truncated JSON":        `{"query":"{ viewer { account { name } } }"`,
			} {
				req := request(t, e, http.MethodPost, "/graphql", strings.NewReader(body), key, "Content-Type: application/json")
				r := e.Send(req)
				if r.Status != http.StatusBadRequest {
					t.Errorf("%s: HTTP %d, want 400: %s", name, r.Status, r.Raw)
					continue
				}
				if r.Code() != db.CodeInvalidRequest {
					t.Errorf("%s: code %q, want %s: %s", name, r.Code(), db.CodeInvalidRequest, r.Raw)
				}
			}
			for name, q := range map[string]string{
				"GET without query":       "",
				"GET with empty query":    "?query=",
				"GET with bad variables":  "?" + url.Values{"query": {`{ viewer { account { name } } }`}, "variables": {"[1]"}}.Encode(),
				"GET with bad extensions": "?" + url.Values{"query": {`{ viewer { account { name } } }`}, "extensions": {"x"}}.Encode(),
			} {
				r := e.Send(request(t, e, http.MethodGet, "/graphql"+q, nil, key))
				if r.Status != http.StatusBadRequest || r.Code() != db.CodeInvalidRequest {
					t.Errorf("%s: HTTP %d %s", name, r.Status, r.Raw)
				}
			}
			// Bodies are never echoed back.
			req := request(t, e, http.MethodPost, "/graphql", strings.NewReader("secret-looking-body "+key), key, "Content-Type: application/json")
			if r := e.Send(req); r.Status != http.StatusBadRequest || bytes.Contains(r.Raw, []byte(key)) {
				t.Errorf("HTTP %d: %s", r.Status, r.Raw)
			}
		})

		t.Run("not JSON", func(t *testing.T) {
			req := request(t, e, http.MethodPost, "/graphql", strings.NewReader(`{ viewer { account { name } } }`), key, "Content-Type: text/plain")
			r := e.Send(req)
			if r.Status != http.StatusUnsupportedMediaType || r.Code() != db.CodeInvalidRequest {
				t.Fatalf("text/plain body: HTTP %d %s", r.Status, r.Raw)
			}
		})

		t.Run("other methods", func(t *testing.T) {
			for _, m := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
				body, _ := json.Marshal(map[string]any{"query": `{ viewer { account { name } } }`})
				r := e.Send(request(t, e, m, "/graphql", bytes.NewReader(body), key, "Content-Type: application/json"))
				wantHTTPError(t, r, http.StatusMethodNotAllowed, db.CodeInvalidRequest, "GraphQL requests use GET (queries) or POST")
				if got := r.Header.Get("Allow"); got != "GET, POST" {
					t.Errorf("%s: Allow %q, want \"GET, POST\"", m, got)
				}
			}
		})

		t.Run("body limit", func(t *testing.T) {
			// A valid request just over 1 MiB: the padding is a long comment.
			big := []byte(`{"query":"{ viewer { account { name } } } #` + strings.Repeat("x", app.MaxBodyBytes) + `"}`)
			r := e.Send(request(t, e, http.MethodPost, "/graphql", bytes.NewReader(big), key, "Content-Type: application/json"))
			wantHTTPError(t, r, http.StatusRequestEntityTooLarge, db.CodeInvalidRequest, "Request body is larger than 1 MiB")

			// The same without a Content-Length (chunked).
			req := request(t, e, http.MethodPost, "/graphql", io.MultiReader(bytes.NewReader(big)), key, "Content-Type: application/json")
			req.ContentLength = -1
			r = e.Send(req)
			wantHTTPError(t, r, http.StatusRequestEntityTooLarge, db.CodeInvalidRequest, "Request body is larger than 1 MiB")

			// Without a key, the size is refused before authentication.
			r = e.Send(request(t, e, http.MethodPost, "/graphql", bytes.NewReader(big), "", "Content-Type: application/json"))
			if r.Status != http.StatusRequestEntityTooLarge {
				t.Errorf("unauthenticated large body: HTTP %d", r.Status)
			}

			// Just under the limit is served.
			fits := []byte(`{"query":"{ viewer { account { name } } } #` + strings.Repeat("x", app.MaxBodyBytes-100) + `"}`)
			r = e.Send(request(t, e, http.MethodPost, "/graphql", bytes.NewReader(fits), key, "Content-Type: application/json"))
			if r.Status != http.StatusOK || len(r.Errors) > 0 {
				t.Fatalf("body under 1 MiB: HTTP %d %.300s", r.Status, r.Raw)
			}
		})
	})
}

func TestHTTPEndpoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil)

	t.Run("healthz", func(t *testing.T) {
		res, body := rawGet(t, e, "/healthz")
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("healthz: HTTP %d %s", res.StatusCode, body)
		}
		var h map[string]string
		if err := json.Unmarshal(body, &h); err != nil || h["status"] != "ok" {
			t.Fatalf("healthz body %s", body)
		}
	})

	t.Run("playground", func(t *testing.T) {
		res, body := rawGet(t, e, "/")
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("/: HTTP %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
		}
		page := string(body)
		if !strings.Contains(strings.ToLower(page), "graphiql") || !strings.Contains(page, "/graphql") {
			t.Fatalf("/ is not the GraphiQL playground for /graphql: %.500s", page)
		}
		if secretRE.MatchString(page) {
			t.Fatal("the playground page embeds a real key")
		}
	})

	t.Run("unknown path", func(t *testing.T) {
		for _, p := range []string{"/nope", "/graphql/extra", "/v1/services"} {
			r := e.Send(request(t, e, http.MethodGet, p, nil, ""))
			wantHTTPError(t, r, http.StatusNotFound, db.CodeResourceNotFound, "Not found: the API is at /graphql")
		}
	})
}

func TestHealthzDatabaseDown(t *testing.T) {
	t.Parallel()
	database := dbtest.Open(t, dbtest.SQLite)
	e := newEnv(t, database, nil)
	if res, body := rawGet(t, e, "/healthz"); res.StatusCode != http.StatusOK {
		t.Fatalf("healthz before close: HTTP %d %s", res.StatusCode, body)
	}
	if err := database.Close(); err != nil {
		t.Fatal(err)
	}
	res, body := rawGet(t, e, "/healthz")
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("healthz with a closed database: HTTP %d %s", res.StatusCode, body)
	}
	var h map[string]string
	if err := json.Unmarshal(body, &h); err != nil || h["status"] != "unavailable" {
		t.Fatalf("healthz body %s", body)
	}
}
