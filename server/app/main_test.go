package app_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app/apptest"
	"github.com/reservekit/reservekit/server/auth"
)

// TestMain runs the tests, then checks that no server any of them started
// wrote a secret key to its logs.
func TestMain(m *testing.M) {
	code := m.Run()
	logs, servers := apptest.AllLogs()
	if s := secretRE.FindString(logs); s != "" {
		fmt.Fprintf(os.Stderr, "FAIL: a secret key (%s…) appears in the logs of a test server\n", s[:len(auth.Prefix)+4])
		code = 1
	}
	switch {
	case servers == 0:
		// Nothing ran that starts a server (e.g. -run selected none).
	case len(logs) == 0:
		fmt.Fprintf(os.Stderr, "note: %d test servers logged nothing, so the check for secrets in logs proved nothing\n", servers)
	case testing.Verbose():
		fmt.Printf("checked %d bytes of logs of %d test servers: no secret keys\n", len(logs), servers)
	}
	os.Exit(code)
}

// TestServerErrorLogsOmitSecrets makes a server log errors for requests that
// carry secrets (in the Authorization header, in variables, in a query), so
// the check in TestMain has logs to read: with its database gone, the server
// can neither look keys up nor run resolvers nor write lastUsedAt.
func TestServerErrorLogsOmitSecrets(t *testing.T) {
	t.Parallel()
	database := dbtest.Open(t, dbtest.SQLite)
	e := newEnv(t, database, nil)
	cached := e.Account("acme")
	wantOK(t, e, cached, "acme") // cached, so it passes authentication below
	uncached := lcCreateKey(t, e, cached, map[string]any{"name": "never used"}).Secret
	if err := database.Close(); err != nil {
		t.Fatal(err)
	}

	// Authentication fails inside: 500, logged.
	r := e.Do(uncached, viewerQuery, nil, "Origin: https://app.example.com", "Referer: https://app.example.com/?key="+uncached)
	if r.Status != http.StatusInternalServerError || r.Code() != "internal_error" || strings.Contains(string(r.Raw), "sk_rsv_") {
		t.Fatalf("key lookup without a database: HTTP %d %s", r.Status, r.Raw)
	}
	// Resolvers fail: internal errors, logged, with secrets in the variables
	// and in the query text.
	r = e.Do(cached, `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret } }`,
		map[string]any{"input": map[string]any{"name": "copy of " + uncached}})
	if len(r.Errors) == 0 || strings.Contains(string(r.Raw), uncached) {
		t.Fatalf("createApiKey without a database: HTTP %d %s", r.Status, r.Raw)
	}
	r = e.Do(cached, `{ services(first: 1) { nodes { id } } s: service(id: "1") { name } }`+" # "+uncached, nil)
	if len(r.Errors) == 0 {
		t.Fatalf("services without a database: HTTP %d %s", r.Status, r.Raw)
	}
	// A GET request carries its variables in the URL.
	req, err := http.NewRequest(http.MethodGet, e.Server.URL+"/graphql?"+url.Values{
		"query":     {`query($n: String) { services(first: 1) { nodes { name } } }`},
		"variables": {`{"n":"` + uncached + `"}`},
	}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cached)
	if r := e.Send(req); len(r.Errors) == 0 {
		t.Fatalf("GET without a database: HTTP %d %s", r.Status, r.Raw)
	}
	// lastUsedAt cannot be written either.
	if err := e.App.Verifier.FlushLastUsed(context.Background()); err == nil {
		t.Fatal("FlushLastUsed succeeded without a database")
	}
	if e.Logs() == "" {
		t.Fatal("the server logged none of these failures")
	}
	t.Logf("the server logged %d bytes", len(e.Logs()))
}
