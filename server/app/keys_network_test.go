package app_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/app/apptest"
	"github.com/reservekit/reservekit/server/auth"
)

// lcCIDRKey creates a key restricted to networks and returns its secret.
func lcCIDRKey(t *testing.T, e *apptest.Env, admin string, networks ...string) string {
	t.Helper()
	k := lcCreateKey(t, e, admin, map[string]any{"name": "net", "allowedCidrs": networks})
	if !slices.Equal(k.APIKey.AllowedCidrs, networks) {
		t.Fatalf("allowedCidrs %q stored as %q", networks, k.APIKey.AllowedCidrs)
	}
	return k.Secret
}

func lcWantIPRefused(t *testing.T, e *apptest.Env, key string, headers ...string) {
	t.Helper()
	wantHTTPError(t, e.Do(key, viewerQuery, nil, headers...), http.StatusForbidden, "ip_not_allowed",
		"IP address not allowed for this API key")
}

// lcMustCIDRs parses trusted proxies for app.Config.
func lcMustCIDRs(t *testing.T, list string) []netip.Prefix {
	t.Helper()
	p, err := auth.ParseCIDRs(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeyAllowedCIDRs(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		if host, _, _ := net.SplitHostPort(strings.TrimPrefix(e.Server.URL, "http://")); host != "127.0.0.1" {
			t.Skipf("the test server listens on %s, not 127.0.0.1", host)
		}

		elsewhere := lcCIDRKey(t, e, admin, "10.0.0.0/8")
		lcWantIPRefused(t, e, elsewhere)
		lcWantIPRefused(t, e, elsewhere) // twice: also when cached
		lcWantIPRefused(t, e, lcCIDRKey(t, e, admin, "127.0.0.2/32", "::1/128"))

		loopback := lcCIDRKey(t, e, admin, "127.0.0.0/8")
		wantOK(t, e, loopback, "acme")
		wantOK(t, e, lcCIDRKey(t, e, admin, "10.0.0.0/8", "127.0.0.1/32"), "acme")

		// IPv6 networks are accepted and stored in canonical, masked form.
		v6 := lcCreateKey(t, e, admin, map[string]any{"allowedCidrs": []string{"::1/128", "2001:DB8:0:0:1::/32", " 192.0.2.77/24 "}})
		if want := []string{"::1/128", "2001:db8::/32", "192.0.2.0/24"}; !slices.Equal(v6.APIKey.AllowedCidrs, want) {
			t.Fatalf("allowedCidrs stored as %q, want %q", v6.APIKey.AllowedCidrs, want)
		}
		if got := lcKeyByID(t, e, admin, v6.APIKey.ID).AllowedCidrs; !slices.Equal(got, v6.APIKey.AllowedCidrs) {
			t.Fatalf("apiKeys lists allowedCidrs %q, createApiKey returned %q", got, v6.APIKey.AllowedCidrs)
		}
		lcWantIPRefused(t, e, v6.Secret) // 127.0.0.1 is in none of them

		keys := len(lcKeys(t, e, admin))
		for _, bad := range []string{"10.0.0.0/33", "not-a-cidr", "10.0.0.1", "", "::1/129", "10.0.0.0/8/8", "10.0.0.0 /8", "fe80::1%eth0/64"} {
			r := e.Do(admin, lcCreateKeyOp, map[string]any{"input": map[string]any{"allowedCidrs": []string{"127.0.0.0/8", bad}}})
			wantError(t, r, db.CodeInvalidFieldFormat, "allowedCidrs")
			if !strings.Contains(r.Errors[0].Message, "allowedCidrs[1]") || secretRE.Match(r.Raw) {
				t.Errorf("CIDR %q: %s", bad, r.Raw)
			}
		}
		if n := len(lcKeys(t, e, admin)); n != keys {
			t.Fatalf("refused creations created keys: %d, want %d", n, keys)
		}
	})
}

// TestKeyAllowedCIDRsOverIPv6 talks to the server over the IPv6 loopback.
func TestKeyAllowedCIDRsOverIPv6(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), nil)
	admin := e.Account("acme")
	v4only := lcCIDRKey(t, e, admin, "127.0.0.0/8")
	v6only := lcCIDRKey(t, e, admin, "::1/128")

	srv := httptest.NewUnstartedServer(e.App.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	v6 := *e
	v6.Server = srv
	wantOK(t, &v6, v6only, "acme")
	lcWantIPRefused(t, &v6, v4only)
	// Over IPv4 it is the other way round.
	wantOK(t, e, v4only, "acme")
	lcWantIPRefused(t, e, v6only)
}

func TestKeyAllowedCIDRsBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, &app.Config{TrustedProxies: lcMustCIDRs(t, "127.0.0.1")})
		admin := e.Account("acme")
		docs := lcCIDRKey(t, e, admin, "203.0.113.0/24")
		private := lcCIDRKey(t, e, admin, "10.0.0.0/8")
		loopback := lcCIDRKey(t, e, admin, "127.0.0.0/8")

		wantOK(t, e, docs, "acme", "X-Forwarded-For: 203.0.113.7")
		lcWantIPRefused(t, e, private, "X-Forwarded-For: 203.0.113.7")
		// The right-most address the trusted proxy did not add itself counts,
		// not what the client put in front of it.
		wantOK(t, e, docs, "acme", "X-Forwarded-For: 10.1.2.3, 203.0.113.7")
		lcWantIPRefused(t, e, private, "X-Forwarded-For: 10.1.2.3, 203.0.113.7")
		wantOK(t, e, docs, "acme", "X-Forwarded-For: 203.0.113.7, 127.0.0.1")
		// Without the header the proxy itself is the client.
		lcWantIPRefused(t, e, docs)
		wantOK(t, e, loopback, "acme")
		lcWantIPRefused(t, e, loopback, "X-Forwarded-For: 203.0.113.7")
	})
}

func TestKeyAllowedCIDRsIgnoreForwardedForWithoutTrustedProxies(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		docs := lcCIDRKey(t, e, admin, "203.0.113.0/24")
		loopback := lcCIDRKey(t, e, admin, "127.0.0.0/8")

		for _, xff := range []string{"203.0.113.7", "10.1.2.3, 203.0.113.7", "203.0.113.7, 203.0.113.8"} {
			lcWantIPRefused(t, e, docs, "X-Forwarded-For: "+xff)
			wantOK(t, e, loopback, "acme", "X-Forwarded-For: "+xff)
		}
		// Other proxy headers are not followed either.
		lcWantIPRefused(t, e, docs, "X-Real-Ip: 203.0.113.7", "Forwarded: for=203.0.113.7")
	})
}
