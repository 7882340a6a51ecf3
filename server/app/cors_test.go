package app_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app/apptest"
)

// lcHeaderList splits a comma-separated header into lower-case tokens.
func lcHeaderList(h http.Header, name string) []string {
	var out []string
	for _, v := range h.Values(name) {
		for _, item := range strings.Split(v, ",") {
			if item = strings.ToLower(strings.TrimSpace(item)); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

// lcPreflight sends a CORS preflight for POST /graphql from origin.
func lcPreflight(t *testing.T, e *apptest.Env, origin, requestHeaders string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodOptions, e.Server.URL+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", requestHeaders)
	res, err := e.Server.Client().Do(req)
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

func TestCORSPreflight(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		for _, origin := range []string{"https://app.example.com", "https://evil.example.net", "http://localhost:3000"} {
			res, body := lcPreflight(t, e, origin, "authorization,content-type,idempotency-key")
			if res.StatusCode != http.StatusNoContent || len(body) != 0 {
				t.Fatalf("preflight from %s: HTTP %d %q, want 204 with no body (and no key needed)", origin, res.StatusCode, body)
			}
			if got := res.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != origin {
				t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, origin)
			}
			allowed := lcHeaderList(res.Header, "Access-Control-Allow-Headers")
			for _, h := range []string{"authorization", "content-type", "idempotency-key"} {
				if !slices.Contains(allowed, h) {
					t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, h)
				}
			}
			if methods := lcHeaderList(res.Header, "Access-Control-Allow-Methods"); !slices.Contains(methods, "post") {
				t.Errorf("Access-Control-Allow-Methods %q lacks POST", methods)
			}
			if vary := lcHeaderList(res.Header, "Vary"); !slices.Contains(vary, "origin") {
				t.Errorf("Vary %q lacks Origin: caches would serve one origin's answer to another", vary)
			}
			if got := res.Header.Get("Access-Control-Allow-Origin"); got == "*" {
				t.Errorf("wildcard origin")
			}
		}
	})
}

func TestCORSOnRequests(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		key := e.Account("acme")
		const origin = "https://dashboard.example.org"

		r := e.Do(key, viewerQuery, nil, "Origin: "+origin)
		if r.Status != http.StatusOK || len(r.Errors) > 0 {
			t.Fatalf("POST with Origin: HTTP %d %s", r.Status, r.Raw)
		}
		if got := r.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != origin {
			t.Fatalf("Access-Control-Allow-Origin %q, want %q", got, origin)
		}
		exposed := lcHeaderList(r.Header, "Access-Control-Expose-Headers")
		for _, h := range []string{"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "ratelimit", "ratelimit-policy",
			"retry-after", "x-request-id", "idempotent-replayed"} {
			if !slices.Contains(exposed, h) {
				t.Errorf("Access-Control-Expose-Headers %q lacks %s", exposed, h)
			}
		}
		// The exposed headers are really there.
		if r.Header.Get("X-RateLimit-Remaining") == "" || r.Header.Get("X-RateLimit-Limit") == "" {
			t.Errorf("rate limit headers missing: %v", r.Header)
		}

		// Failures carry the CORS headers too, so a browser can read them.
		r = e.Do("", viewerQuery, nil, "Origin: "+origin)
		wantHTTPError(t, r, http.StatusUnauthorized, "authentication_required", "Authorization header is missing")
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("401: Access-Control-Allow-Origin %q, want %q", got, origin)
		}

		// Without Origin, no CORS headers.
		r = e.Do(key, viewerQuery, nil)
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("no Origin: Access-Control-Allow-Origin %q", got)
		}
	})
}

func TestCORSDoesNotBypassDomainRestriction(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		domain := "app.example.com"
		rate, burst := 1000, 1000
		key := e.AccountWith("restricted", db.PlanGrowth, db.AccountLimits{Rate: &rate, Burst: &burst}, &domain)
		const evil = "https://evil.example.net"

		// The preflight succeeds for any origin (it carries no key)...
		res, _ := lcPreflight(t, e, evil, "authorization,content-type")
		if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != evil {
			t.Fatalf("preflight from %s: HTTP %d, Allow-Origin %q", evil, res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
		}
		// ...but the request itself is refused, CORS headers or not.
		for _, headers := range [][]string{
			{"Origin: " + evil},
			{"Origin: " + evil, "Access-Control-Request-Method: POST"},
			{"Origin: " + evil, "Referer: https://app.example.com/"},
		} {
			r := e.Do(key, viewerQuery, nil, headers...)
			wantHTTPError(t, r, http.StatusForbidden, "origin_not_allowed", "Origin does not match API key domain")
			if got := r.Header.Get("Access-Control-Allow-Origin"); got != evil {
				t.Errorf("403: Access-Control-Allow-Origin %q, want %q (the browser may read the refusal)", got, evil)
			}
			if strings.Contains(string(r.Raw), "restricted") {
				t.Fatalf("refused request returned account data: %s", r.Raw)
			}
		}
		wantOK(t, e, key, "restricted", "Origin: https://app.example.com")
	})
}
