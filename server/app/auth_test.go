package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/app/apptest"
	"github.com/reservekit/reservekit/server/auth"
)

// secretRE matches a full secret key anywhere (logs, bodies).
var secretRE = regexp.MustCompile(`sk_rsv_[0-9A-Za-z]{38}`)

// newEnv starts a server like apptest.New and, when the test ends, fails it
// if any secret key was written to the server's logs.
func newEnv(t *testing.T, database *db.DB, cfg *app.Config) *apptest.Env {
	t.Helper()
	e := apptest.New(t, database, cfg)
	t.Cleanup(func() {
		if s := secretRE.FindString(e.Logs()); s != "" {
			t.Errorf("a secret key (%s…) appears in the server logs", s[:len(auth.Prefix)+4])
		}
	})
	return e
}

// wantHTTPError checks a failure answered outside GraphQL execution: its
// status and that the body is exactly
// {"errors":[{"message":…,"extensions":{"code":…, …}}]}.
func wantHTTPError(t *testing.T, r *apptest.Response, status int, code, message string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(r.Raw, &body); err != nil {
		t.Fatalf("body is not a JSON object: %s", r.Raw)
	}
	if len(body) != 1 || body["errors"] == nil {
		t.Fatalf("body must hold only \"errors\": %s", r.Raw)
	}
	var errs []map[string]json.RawMessage
	if err := json.Unmarshal(body["errors"], &errs); err != nil || len(errs) != 1 {
		t.Fatalf("errors must be a list of one error: %s", r.Raw)
	}
	var msg string
	if err := json.Unmarshal(errs[0]["message"], &msg); err != nil {
		t.Fatalf("errors[0].message is not a string: %s", r.Raw)
	}
	if msg != message {
		t.Errorf("message %q, want %q", msg, message)
	}
	if r.Code() != code {
		t.Errorf("extensions.code %q, want %q: %s", r.Code(), code, r.Raw)
	}
}

const viewerQuery = `{ viewer { account { name } apiKey { id } } }`

type viewerData struct {
	Viewer struct {
		Account struct{ Name string }
		APIKey  struct{ ID string } `json:"apiKey"`
	}
}

// wantOK checks that key authenticates as account name.
func wantOK(t *testing.T, e *apptest.Env, key, account string, headers ...string) {
	t.Helper()
	r := e.Do(key, viewerQuery, nil, headers...)
	if r.Status != http.StatusOK {
		t.Fatalf("HTTP %d, want 200: %s", r.Status, r.Raw)
	}
	var v viewerData
	r.Decode(t, &v)
	if v.Viewer.Account.Name != account {
		t.Fatalf("authenticated as %q, want %q", v.Viewer.Account.Name, account)
	}
}

// doHeader sends viewerQuery with a raw Authorization header value (none
// when header is "").
func doHeader(t *testing.T, e *apptest.Env, header string) *apptest.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.Server.URL+"/graphql",
		strings.NewReader(`{"query":"{ viewer { account { name } } }"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if header != "" {
		req.Header.Set("Authorization", header)
	}
	return e.Send(req)
}

// changeChar replaces the character at i with another of the same class.
func changeChar(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func TestAuthRejections(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		key := e.Account("acme")
		wantOK(t, e, key, "acme")

		t.Run("missing", func(t *testing.T) {
			r := doHeader(t, e, "")
			wantHTTPError(t, r, http.StatusUnauthorized, "authentication_required", "Authorization header is missing")
			r = e.Do("", viewerQuery, nil)
			wantHTTPError(t, r, http.StatusUnauthorized, "authentication_required", "Authorization header is missing")
		})

		valid := auth.NewSecret()
		if !auth.WellFormed(valid) {
			t.Fatalf("NewSecret %q is not well formed", valid)
		}
		malformed := map[string]string{
			"no scheme":             valid,
			"basic":                 "Basic " + base64.StdEncoding.EncodeToString([]byte("acme:"+valid)),
			"basic x":               "Basic x",
			"bearer alone":          "Bearer",
			"bearer and spaces":     "Bearer    ",
			"other scheme":          "Token " + valid,
			"scheme glued to key":   "Bearer" + valid,
			"public prefix":         "Bearer pk_rsv_" + valid[len(auth.Prefix):],
			"upper-case prefix":     "Bearer SK_RSV_" + valid[len(auth.Prefix):],
			"prefix only":           "Bearer " + auth.Prefix,
			"bad character":         "Bearer " + valid[:20] + "-" + valid[21:],
			"non-ASCII character":   "Bearer " + valid[:20] + "é" + valid[22:],
			"too short":             "Bearer " + valid[:len(valid)-1],
			"too long":              "Bearer " + valid + "A",
			"broken checksum":       "Bearer " + changeChar(valid, len(valid)-1),
			"changed random part":   "Bearer " + changeChar(valid, len(auth.Prefix)+3),
			"two tokens":            "Bearer " + valid + " " + valid,
			"key of another format": "Bearer sk_live_" + strings.Repeat("a", 38),
		}
		for name, header := range malformed {
			t.Run("malformed/"+name, func(t *testing.T) {
				r := doHeader(t, e, header)
				wantHTTPError(t, r, http.StatusUnauthorized, "authorization_header_malformed", "Authorization header is malformed")
			})
		}

		t.Run("unknown key", func(t *testing.T) {
			r := e.Do(auth.NewSecret(), viewerQuery, nil)
			wantHTTPError(t, r, http.StatusUnauthorized, "invalid_api_key", "Invalid API key")
		})

		t.Run("scheme is case-insensitive", func(t *testing.T) {
			r := doHeader(t, e, "bearer "+key)
			if r.Status != http.StatusOK || len(r.Errors) > 0 {
				t.Fatalf("lower-case bearer: HTTP %d %s", r.Status, r.Raw)
			}
		})

		// None of the failures may have cost the valid key anything.
		wantOK(t, e, key, "acme")
	})
}

func TestAuthRevokedKeys(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		other := e.Account("other")

		created := createKey(t, e, admin, map[string]any{"name": "deploy"})
		wantOK(t, e, created.Secret, "acme") // now cached by the verifier

		// Another account cannot revoke it.
		r := e.Do(other, revokeKey, map[string]any{"id": created.APIKey.ID})
		if r.Code() != db.CodeAPIKeyNotFound {
			t.Fatalf("revoke from another account: %s", r.Raw)
		}
		wantOK(t, e, created.Secret, "acme")

		var revoked struct {
			RevokeAPIKey apiKey `json:"revokeApiKey"`
		}
		e.MustData(admin, revokeKey, map[string]any{"id": created.APIKey.ID}, &revoked)
		if revoked.RevokeAPIKey.ID != created.APIKey.ID || revoked.RevokeAPIKey.RevokedAt == nil {
			t.Fatalf("revokeApiKey returned %+v", revoked.RevokeAPIKey)
		}
		r = e.Do(created.Secret, viewerQuery, nil)
		wantHTTPError(t, r, http.StatusUnauthorized, "invalid_api_key", "API key revoked")
		wantOK(t, e, admin, "acme")

		// Revoking again keeps the first time.
		var again struct {
			RevokeAPIKey apiKey `json:"revokeApiKey"`
		}
		e.MustData(admin, revokeKey, map[string]any{"id": created.APIKey.ID}, &again)
		if again.RevokeAPIKey.RevokedAt == nil || *again.RevokeAPIKey.RevokedAt != *revoked.RevokeAPIKey.RevokedAt {
			t.Fatalf("second revoke changed revokedAt: %v → %v", revoked.RevokeAPIKey.RevokedAt, again.RevokeAPIKey.RevokedAt)
		}

		// A key revokes itself; its next request fails.
		var v viewerData
		e.MustData(admin, viewerQuery, nil, &v)
		self := v.Viewer.APIKey.ID
		var selfRevoked struct {
			RevokeAPIKey apiKey `json:"revokeApiKey"`
		}
		e.MustData(admin, revokeKey, map[string]any{"id": self}, &selfRevoked)
		if selfRevoked.RevokeAPIKey.ID != self || selfRevoked.RevokeAPIKey.RevokedAt == nil {
			t.Fatalf("self revoke returned %+v", selfRevoked.RevokeAPIKey)
		}
		r = e.Do(admin, viewerQuery, nil)
		wantHTTPError(t, r, http.StatusUnauthorized, "invalid_api_key", "API key revoked")
		r = e.Do(admin, `mutation { createApiKey(input: {}) { secret } }`, nil)
		wantHTTPError(t, r, http.StatusUnauthorized, "invalid_api_key", "API key revoked")

		// The other account is untouched.
		wantOK(t, e, other, "other")
	})
}

func TestAuthDomainRestriction(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		rate, burst := 1000, 1000
		limits := db.AccountLimits{Rate: &rate, Burst: &burst}
		exact, wildcard := "app.example.com", "*.example.com"
		exactKey := e.AccountWith("exact", db.PlanGrowth, limits, &exact)
		wildKey := e.AccountWith("wild", db.PlanGrowth, limits, &wildcard)
		forbidden := func(t *testing.T, key string, headers ...string) {
			t.Helper()
			r := e.Do(key, viewerQuery, nil, headers...)
			wantHTTPError(t, r, http.StatusForbidden, "origin_not_allowed", "Origin does not match API key domain")
		}

		t.Run("exact", func(t *testing.T) {
			wantOK(t, e, exactKey, "exact", "Origin: https://app.example.com:8443")
			wantOK(t, e, exactKey, "exact", "Origin: https://app.example.com")
			wantOK(t, e, exactKey, "exact", "Origin: HTTPS://APP.EXAMPLE.COM")
			wantOK(t, e, exactKey, "exact", "Referer: https://app.example.com/bookings?x=1")
			wantOK(t, e, exactKey, "exact", "Origin: null", "Referer: https://app.example.com/")
			forbidden(t, exactKey)
			forbidden(t, exactKey, "Origin: https://evil.example.net")
			forbidden(t, exactKey, "Origin: https://sub.app.example.com")
			forbidden(t, exactKey, "Origin: https://example.com")
			forbidden(t, exactKey, "Origin: https://app.example.com.evil.net")
			forbidden(t, exactKey, "Origin: null")
			forbidden(t, exactKey, "Origin: app.example.com") // not a URL
			forbidden(t, exactKey, "Referer: https://evil.example.net/?r=https://app.example.com")
			// Origin wins over Referer.
			forbidden(t, exactKey, "Origin: https://evil.example.net", "Referer: https://app.example.com/")
		})

		t.Run("wildcard", func(t *testing.T) {
			wantOK(t, e, wildKey, "wild", "Origin: https://sub.example.com")
			wantOK(t, e, wildKey, "wild", "Origin: http://a.b.example.com:3000")
			wantOK(t, e, wildKey, "wild", "Referer: https://sub.example.com/page")
			forbidden(t, wildKey, "Origin: https://example.com")
			forbidden(t, wildKey, "Origin: https://evilexample.com")
			forbidden(t, wildKey, "Origin: https://sub.example.com.evil.net")
			forbidden(t, wildKey)
		})

		t.Run("unrestricted key ignores origin", func(t *testing.T) {
			key := e.Account("free")
			wantOK(t, e, key, "free")
			wantOK(t, e, key, "free", "Origin: https://anything.example.org")
		})
	})
}

func TestAuthFailuresLimitedPerIP(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, &app.Config{AuthFailuresPerIP: 5, AuthFailureWindow: time.Minute})
		key := e.Account("acme")
		domain := "app.example.com"
		restricted := e.AccountWith("restricted", db.PlanGrowth, db.AccountLimits{}, &domain)

		// Successful requests do not count.
		for range 8 {
			wantOK(t, e, key, "acme")
		}
		// Five failures of every kind are answered normally...
		wantHTTPError(t, doHeader(t, e, ""), http.StatusUnauthorized, "authentication_required", "Authorization header is missing")
		wantHTTPError(t, doHeader(t, e, "Basic x"), http.StatusUnauthorized, "authorization_header_malformed", "Authorization header is malformed")
		wantHTTPError(t, e.Do(auth.NewSecret(), viewerQuery, nil), http.StatusUnauthorized, "invalid_api_key", "Invalid API key")
		wantHTTPError(t, e.Do(restricted, viewerQuery, nil), http.StatusForbidden, "origin_not_allowed", "Origin does not match API key domain")
		wantOK(t, e, key, "acme")
		wantHTTPError(t, e.Do(auth.NewSecret(), viewerQuery, nil), http.StatusUnauthorized, "invalid_api_key", "Invalid API key")

		// ...after which the IP is refused, valid key or not, so keys cannot be guessed.
		for i, k := range []string{key, auth.NewSecret(), "", key} {
			r := e.Do(k, viewerQuery, nil)
			wantHTTPError(t, r, http.StatusTooManyRequests, "rate_limit_exceeded",
				"Too many failed authentication attempts. Try again in 60 seconds.")
			if got := r.Header.Get("Retry-After"); got != "60" {
				t.Errorf("request %d: Retry-After %q, want 60", i, got)
			}
			if got := r.Errors[0].Extensions["retryAfter"]; got != float64(60) {
				t.Errorf("request %d: retryAfter %v, want 60", i, got)
			}
		}
	})
}

func TestAuthFailureRetryAfterFollowsWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), &app.Config{AuthFailuresPerIP: 2, AuthFailureWindow: 90 * time.Second})
	for range 2 {
		wantHTTPError(t, doHeader(t, e, ""), http.StatusUnauthorized, "authentication_required", "Authorization header is missing")
	}
	r := doHeader(t, e, "")
	wantHTTPError(t, r, http.StatusTooManyRequests, "rate_limit_exceeded",
		"Too many failed authentication attempts. Try again in 90 seconds.")
	if got := r.Header.Get("Retry-After"); got != "90" {
		t.Errorf("Retry-After %q, want 90", got)
	}
}

const revokeKey = `mutation($id: ID!) { revokeApiKey(id: $id) { id name prefix revokedAt } }`

type apiKey struct {
	ID         string
	Name       string
	Prefix     string
	Domain     *string
	Plan       string
	CreatedAt  string
	LastUsedAt *string
	RevokedAt  *string
}

type createdKey struct {
	APIKey apiKey `json:"apiKey"`
	Secret string
}

func createKey(t *testing.T, e *apptest.Env, key string, input map[string]any) createdKey {
	t.Helper()
	var out struct {
		CreateAPIKey createdKey `json:"createApiKey"`
	}
	e.MustData(key, `mutation($input: CreateApiKeyInput!) {
		createApiKey(input: $input) { secret apiKey { id name prefix domain plan createdAt lastUsedAt revokedAt } }
	}`, map[string]any{"input": input}, &out)
	return out.CreateAPIKey
}

const listKeys = `query($first: Int, $after: String) {
	apiKeys(first: $first, after: $after) {
		totalCount
		pageInfo { hasNextPage endCursor }
		edges { cursor node { id } }
		nodes { id name prefix domain plan createdAt lastUsedAt revokedAt }
	}
}`

type keyPage struct {
	APIKeys struct {
		TotalCount int
		PageInfo   struct {
			HasNextPage bool
			EndCursor   *string
		}
		Edges []struct {
			Cursor string
			Node   struct{ ID string }
		}
		Nodes []apiKey
	} `json:"apiKeys"`
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		otherAccount := e.Account("other")

		k := createKey(t, e, admin, map[string]any{"name": "  ci  ", "domain": " App.Example.COM "})
		if !strings.HasPrefix(k.Secret, "sk_rsv_") || len(k.Secret) != 45 || !secretRE.MatchString(k.Secret) || !auth.WellFormed(k.Secret) {
			t.Fatalf("secret %q is not a 45-character sk_rsv_ key", k.Secret)
		}
		if k.APIKey.Name != "ci" || k.APIKey.Domain == nil || *k.APIKey.Domain != "app.example.com" ||
			k.APIKey.Plan != "GROWTH" || k.APIKey.RevokedAt != nil || k.APIKey.LastUsedAt != nil {
			t.Fatalf("created key %+v", k.APIKey)
		}
		if k.APIKey.Prefix != k.Secret[:len(k.APIKey.Prefix)] || len(k.APIKey.Prefix) < len(auth.Prefix)+1 || len(k.APIKey.Prefix) > 16 {
			t.Fatalf("prefix %q is not a short start of the secret", k.APIKey.Prefix)
		}
		wantOK(t, e, k.Secret, "acme", "Origin: https://app.example.com")
		wantHTTPError(t, e.Do(k.Secret, viewerQuery, nil), http.StatusForbidden, "origin_not_allowed", "Origin does not match API key domain")

		def := createKey(t, e, admin, map[string]any{})
		if def.APIKey.Name != "API key" || def.APIKey.Domain != nil {
			t.Fatalf("default key %+v", def.APIKey)
		}
		if def.Secret == k.Secret {
			t.Fatal("two keys share a secret")
		}
		wantOK(t, e, def.Secret, "acme")

		t.Run("invalid input", func(t *testing.T) {
			for _, d := range []string{"https://app.example.com", "app.example.com:8443", "*", "a..b", "user@example.com", "*.*.example.com"} {
				r := e.Do(admin, `mutation($d: String) { createApiKey(input: {domain: $d}) { secret } }`, map[string]any{"d": d})
				if r.Code() != db.CodeInvalidFieldFormat || r.Field() != "domain" {
					t.Errorf("domain %q: %s", d, r.Raw)
				}
				if secretRE.Match(r.Raw) {
					t.Errorf("domain %q: a failed creation returned a secret", d)
				}
			}
			r := e.Do(admin, `mutation($n: String) { createApiKey(input: {name: $n}) { secret } }`, map[string]any{"n": strings.Repeat("n", 201)})
			if r.Code() != db.CodeInvalidFieldFormat || r.Field() != "name" {
				t.Errorf("long name: %s", r.Raw)
			}
			// There is no field through which a secret could be read back.
			r = e.Do(admin, `{ apiKeys { nodes { secret } } }`, nil)
			if r.Code() != db.CodeInvalidRequest {
				t.Errorf("apiKeys { secret }: %s", r.Raw)
			}
		})

		for i := range 3 {
			createKey(t, e, admin, map[string]any{"name": "extra " + strconv.Itoa(i)})
		}
		// admin's own key, k, def and 3 extras: 6 keys.
		const total = 6

		t.Run("list never returns secrets", func(t *testing.T) {
			r := e.Do(admin, listKeys, map[string]any{"first": 100})
			var p keyPage
			r.Decode(t, &p)
			if p.APIKeys.TotalCount != total || len(p.APIKeys.Nodes) != total || p.APIKeys.PageInfo.HasNextPage {
				t.Fatalf("apiKeys: %s", r.Raw)
			}
			if s := secretRE.Find(r.Raw); s != nil {
				t.Fatalf("apiKeys returned a secret: %s", r.Raw)
			}
			for _, secret := range []string{k.Secret, def.Secret, admin} {
				if strings.Contains(string(r.Raw), secret[len(auth.Prefix):]) {
					t.Fatalf("apiKeys contains the random part of a secret: %s", r.Raw)
				}
			}
			var found bool
			for _, n := range p.APIKeys.Nodes {
				if n.ID == k.APIKey.ID {
					found = n.Prefix == k.APIKey.Prefix && n.Name == "ci"
				}
			}
			if !found {
				t.Fatalf("created key missing from apiKeys: %s", r.Raw)
			}
		})

		t.Run("pagination", func(t *testing.T) {
			var ids []string
			var after any
			for page := 1; ; page++ {
				var p keyPage
				e.Do(admin, listKeys, map[string]any{"first": 4, "after": after}).Decode(t, &p)
				c := p.APIKeys
				if c.TotalCount != total {
					t.Fatalf("page %d: totalCount %d, want %d", page, c.TotalCount, total)
				}
				want := min(4, total-len(ids))
				if len(c.Nodes) != want || len(c.Edges) != want {
					t.Fatalf("page %d: %d nodes, %d edges, want %d", page, len(c.Nodes), len(c.Edges), want)
				}
				if c.PageInfo.HasNextPage != (len(ids)+want < total) {
					t.Fatalf("page %d: hasNextPage %v", page, c.PageInfo.HasNextPage)
				}
				for i, n := range c.Nodes {
					if c.Edges[i].Node.ID != n.ID {
						t.Fatalf("edges and nodes disagree")
					}
					ids = append(ids, n.ID)
				}
				if c.PageInfo.EndCursor == nil || *c.PageInfo.EndCursor != c.Edges[len(c.Edges)-1].Cursor {
					t.Fatalf("page %d: endCursor %v is not the last edge's cursor", page, c.PageInfo.EndCursor)
				}
				if !c.PageInfo.HasNextPage {
					if page != 2 {
						t.Fatalf("%d pages, want 2", page)
					}
					break
				}
				after = *c.PageInfo.EndCursor
			}
			seen := map[string]bool{}
			prev := int64(0)
			for _, id := range ids {
				n, err := strconv.ParseInt(id, 10, 64)
				if err != nil || n <= prev || seen[id] {
					t.Fatalf("ids not unique and ascending: %v", ids)
				}
				seen[id], prev = true, n
			}
			for _, bad := range []map[string]any{{"first": 0}, {"first": 101}, {"first": -1}} {
				if r := e.Do(admin, listKeys, bad); r.Code() != db.CodeInvalidFieldFormat || r.Field() != "first" {
					t.Errorf("%v: %s", bad, r.Raw)
				}
			}
			if r := e.Do(admin, listKeys, map[string]any{"after": "garbage"}); r.Code() != db.CodeInvalidFieldFormat || r.Field() != "after" {
				t.Errorf("after garbage: %s", r.Raw)
			}
		})

		t.Run("isolated per account", func(t *testing.T) {
			var p keyPage
			e.Do(otherAccount, listKeys, nil).Decode(t, &p)
			if p.APIKeys.TotalCount != 1 || len(p.APIKeys.Nodes) != 1 {
				t.Fatalf("other account sees %d keys (totalCount %d)", len(p.APIKeys.Nodes), p.APIKeys.TotalCount)
			}
		})

		t.Run("lastUsedAt", func(t *testing.T) {
			fresh := createKey(t, e, admin, map[string]any{"name": "fresh"})
			byID := func() apiKey {
				var p keyPage
				e.Do(admin, listKeys, map[string]any{"first": 100}).Decode(t, &p)
				for _, n := range p.APIKeys.Nodes {
					if n.ID == fresh.APIKey.ID {
						return n
					}
				}
				t.Fatalf("key %s not listed", fresh.APIKey.ID)
				return apiKey{}
			}
			if err := e.App.Verifier.FlushLastUsed(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := byID(); got.LastUsedAt != nil {
				t.Fatalf("unused key has lastUsedAt %s", *got.LastUsedAt)
			}
			for range 3 {
				wantOK(t, e, fresh.Secret, "acme")
			}
			if got := byID(); got.LastUsedAt != nil {
				t.Fatalf("lastUsedAt written before a flush: %s", *got.LastUsedAt)
			}
			if err := e.App.Verifier.FlushLastUsed(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := byID()
			if got.LastUsedAt == nil {
				t.Fatal("lastUsedAt not written by FlushLastUsed")
			}
			used, err := time.Parse(time.RFC3339Nano, *got.LastUsedAt)
			if err != nil {
				t.Fatalf("lastUsedAt %q: %v", *got.LastUsedAt, err)
			}
			createdAt, err := time.Parse(time.RFC3339Nano, got.CreatedAt)
			if err != nil {
				t.Fatalf("createdAt %q: %v", got.CreatedAt, err)
			}
			if used.Before(createdAt) || !strings.HasSuffix(*got.LastUsedAt, "Z") {
				t.Fatalf("lastUsedAt %s is before createdAt %s or not UTC", *got.LastUsedAt, got.CreatedAt)
			}
		})
	})
}

// keyLookups is a bun query hook counting the statements that look a key
// up by its hash: the verification queries.
type keyLookups struct{ n atomic.Int64 }

func (k *keyLookups) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }
func (k *keyLookups) AfterQuery(_ context.Context, ev *bun.QueryEvent) {
	if strings.Contains(ev.Query, "api_keys") && strings.Contains(ev.Query, "hash = '") {
		k.n.Add(1)
	}
}

// A malformed key (a checksum off by one character) is refused without a
// database lookup; a known key is looked up once, then served from the
// cache; an unknown well-formed key is looked up each time.
func TestKeyVerificationQueries(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		lookups := &keyLookups{}
		counted := *database
		counted.DB = database.DB.WithQueryHook(lookups)
		e := newEnv(t, &counted, nil)
		key := e.Account("acme")
		before := lookups.n.Load()
		for range 5 {
			wantOK(t, e, key, "acme")
		}
		if n := lookups.n.Load() - before; n > 1 {
			t.Fatalf("5 requests with a known key made %d key lookups, want at most 1", n)
		}
		last := key[len(key)-1]
		forged := key[:len(key)-1] + string(map[bool]byte{true: 'A', false: 'B'}[last != 'A'])
		before = lookups.n.Load()
		for range 3 {
			wantHTTPError(t, e.Do(forged, viewerQuery, nil), http.StatusUnauthorized, "authorization_header_malformed", "Authorization header is malformed")
		}
		if n := lookups.n.Load() - before; n != 0 {
			t.Fatalf("a key with a bad checksum made %d key lookups, want 0", n)
		}
		before = lookups.n.Load()
		unknown := auth.NewSecret()
		for range 2 {
			wantHTTPError(t, e.Do(unknown, viewerQuery, nil), http.StatusUnauthorized, "invalid_api_key", "Invalid API key")
		}
		if n := lookups.n.Load() - before; n != 2 {
			t.Fatalf("an unknown key made %d key lookups in 2 requests, want 2 (the hook must see them)", n)
		}
	})
}
