package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/auth"
)

var secretRE = regexp.MustCompile(`sk_rsv_[0-9A-Za-z]{38}`)

// cliEnv runs commands against one database.
type cliEnv struct {
	t   *testing.T
	env map[string]string
}

func newCLI(t *testing.T, databaseURL string) *cliEnv {
	return &cliEnv{t: t, env: map[string]string{"DATABASE_URL": databaseURL}}
}

func sqliteCLI(t *testing.T) *cliEnv {
	return newCLI(t, "sqlite:"+filepath.Join(t.TempDir(), "x.db"))
}

// run executes one command line and returns its exit code and output.
func (c *cliEnv) run(args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut, func(k string) string { return c.env[k] })
	if s := secretRE.FindString(errOut.String()); s != "" {
		c.t.Errorf("%v: a secret key (%s…) appears in the logs or errors on stderr", args, s[:len(auth.Prefix)+4])
	}
	return code, out.String(), errOut.String()
}

// ok runs a command that must succeed and returns its stdout.
func (c *cliEnv) ok(args ...string) string {
	c.t.Helper()
	code, out, errOut := c.run(args...)
	if code != 0 {
		c.t.Fatalf("%v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// fails runs a command that must fail with one error line on stderr and
// nothing on stdout; it returns that line.
func (c *cliEnv) fails(args ...string) string {
	c.t.Helper()
	code, out, errOut := c.run(args...)
	if code == 0 {
		c.t.Fatalf("%v: exit 0, want failure\nstdout: %s\nstderr: %s", args, out, errOut)
	}
	if out != "" {
		c.t.Errorf("%v: failure wrote to stdout: %q", args, out)
	}
	lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "error: ") {
		c.t.Errorf("%v: stderr is not one \"error: …\" line: %q", args, errOut)
	}
	return lines[len(lines)-1]
}

// open opens the CLI's database directly, for checking what commands did.
func (c *cliEnv) open() *db.DB {
	c.t.Helper()
	database, err := db.Open(context.Background(), c.env["DATABASE_URL"])
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { database.Close() })
	return database
}

// listed returns the rows of `keys list` (header excluded) as fields.
func listed(t *testing.T, out string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "PREFIX") || !strings.Contains(lines[0], "REVOKED") {
		t.Fatalf("keys list has no header: %q", out)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

func TestCLIKeys(t *testing.T) {
	t.Parallel()
	c := sqliteCLI(t)

	out := c.ok("keys", "create", "--account", "acme")
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("keys create printed more than one line: %q", out)
	}
	secret := strings.TrimSuffix(out, "\n")
	if !auth.WellFormed(secret) || !secretRE.MatchString(secret) {
		t.Fatalf("keys create printed %q, not a secret key", out)
	}

	// The key works: its hash is stored, for an account created on the way.
	database := c.open()
	k, a, err := database.APIKeyByHash(context.Background(), auth.Hash(secret))
	if err != nil {
		t.Fatalf("the printed key is not stored: %v", err)
	}
	if a.Name != "acme" || a.Plan != db.PlanStarter || k.Name != "API key" || k.Domain != nil || k.RevokedAt != nil {
		t.Fatalf("key %+v of account %+v", k, a)
	}

	// More keys for the same account, with a label and a domain.
	second := strings.TrimSpace(c.ok("keys", "create", "--name", "ci", "--domain", "*.Example.com", "--account", "acme"))
	if !auth.WellFormed(second) || second == secret {
		t.Fatalf("second key %q", second)
	}
	k2, a2, err := database.APIKeyByHash(context.Background(), auth.Hash(second))
	if err != nil || a2.ID != a.ID || k2.Name != "ci" || k2.Domain == nil || *k2.Domain != "*.example.com" {
		t.Fatalf("second key %+v of %+v: %v", k2, a2, err)
	}
	if n, _ := database.CountAccounts(context.Background()); n != 1 {
		t.Fatalf("%d accounts, want 1", n)
	}

	// --plan applies to a new account only, and is checked either way.
	if line := c.fails("keys", "create", "--account", "acme", "--plan", "growth"); !strings.Contains(line, "accounts update") {
		t.Errorf("--plan on an existing account: %q", line)
	}
	if line := c.fails("keys", "create", "--account", "newco", "--plan", "bogus"); !strings.Contains(line, "--plan") {
		t.Errorf("bad --plan: %q", line)
	}
	if line := c.fails("keys", "list", "--account", "acme", "extra"); !strings.Contains(line, `"extra"`) {
		t.Errorf("keys list with an extra argument: %q", line)
	}

	list := c.ok("keys", "list", "--account", "acme")
	if secretRE.MatchString(list) || strings.Contains(list, secret[len(auth.Prefix)+8:]) || strings.Contains(list, second[len(auth.Prefix)+8:]) {
		t.Fatalf("keys list shows a secret: %s", list)
	}
	rows := listed(t, list)
	if len(rows) != 2 {
		t.Fatalf("keys list has %d rows, want 2: %s", len(rows), list)
	}
	if rows[0][0] != strconv.FormatInt(k.ID, 10) || !strings.Contains(list, auth.DisplayPrefix(secret)) ||
		!strings.Contains(list, auth.DisplayPrefix(second)) || !strings.Contains(list, "*.example.com") {
		t.Fatalf("keys list lacks ids, prefixes or domain: %s", list)
	}
	for _, r := range rows {
		if r[len(r)-1] != "-" {
			t.Fatalf("unrevoked key shows as revoked: %s", list)
		}
	}

	revoked := c.ok("keys", "revoke", strconv.FormatInt(k.ID, 10))
	if !strings.Contains(revoked, "revoked") || !strings.Contains(revoked, auth.DisplayPrefix(secret)) || secretRE.MatchString(revoked) {
		t.Fatalf("keys revoke printed %q", revoked)
	}
	k, _, err = database.APIKeyByHash(context.Background(), auth.Hash(secret))
	if err != nil || k.RevokedAt == nil {
		t.Fatalf("key not revoked: %+v %v", k, err)
	}
	rows = listed(t, c.ok("keys", "list", "--account", "acme"))
	if r := rows[0]; r[len(r)-1] == "-" {
		t.Fatalf("revoked key not shown as revoked: %v", rows)
	}
	if r := rows[1]; r[len(r)-1] != "-" {
		t.Fatalf("the other key shows as revoked: %v", rows)
	}
	// Revoking twice is harmless; unknown and bad ids fail.
	c.ok("keys", "revoke", strconv.FormatInt(k.ID, 10))
	c.fails("keys", "revoke", "999")
	c.fails("keys", "revoke", "abc")
	c.fails("keys", "revoke", "0")
	c.fails("keys", "revoke")

	// Errors.
	c.fails("keys", "create")
	c.fails("keys", "create", "--account", "acme", "extra")
	c.fails("keys", "create", "--account", "acme", "--domain", "https://x.example.com")
	c.fails("keys", "create", "--account", "newco", "--plan", "platinum")
	c.fails("keys", "list", "--account", "nobody")
	c.fails("keys", "list")
	c.fails("keys", "create", "--account", "acme", "--bogus")
}

func TestCLIKeysListPages(t *testing.T) {
	t.Parallel()
	c := sqliteCLI(t)
	c.ok("accounts", "create", "many")
	database := c.open()
	a, err := database.AccountByName(context.Background(), "many")
	if err != nil {
		t.Fatal(err)
	}
	// More keys than one page of the list command.
	const n = 205
	for i := range n {
		if _, _, err := auth.Issue(context.Background(), database, a.ID, nil, auth.KeySpec{Name: "k" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	rows := listed(t, c.ok("keys", "list", "--account", "many"))
	if len(rows) != n {
		t.Fatalf("keys list shows %d keys, want %d", len(rows), n)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r[0]] {
			t.Fatalf("key %s listed twice", r[0])
		}
		seen[r[0]] = true
	}
}

func TestCLIAccounts(t *testing.T) {
	t.Parallel()
	c := sqliteCLI(t)
	out := c.ok("accounts", "create", "acme", "--plan", "developer", "--rate", "5", "--burst", "10")
	if !strings.Contains(out, `"acme"`) || !strings.Contains(out, "developer") || strings.Count(out, "\n") != 1 {
		t.Fatalf("accounts create printed %q", out)
	}
	database := c.open()
	a, err := database.AccountByName(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if a.Plan != db.PlanDeveloper || a.Rate == nil || *a.Rate != 5 || a.Burst == nil || *a.Burst != 10 || a.MonthlyQuota != nil {
		t.Fatalf("account %+v", a)
	}

	// Flags before the name, and the defaults.
	c.ok("accounts", "create", "--monthly-quota", "1000", "beta")
	b, err := database.AccountByName(context.Background(), "beta")
	if err != nil || b.Plan != db.PlanStarter || b.Rate != nil || b.Burst != nil || b.MonthlyQuota == nil || *b.MonthlyQuota != 1000 {
		t.Fatalf("account %+v: %v", b, err)
	}

	line := c.fails("accounts", "create", "acme")
	if !strings.Contains(line, "acme") || !strings.Contains(line, "exists") {
		t.Errorf("duplicate account error %q", line)
	}
	c.fails("accounts", "create", " acme ")
	c.fails("accounts", "create", "gold", "--plan", "gold")
	c.fails("accounts", "create", "rate-only", "--rate", "5")
	c.fails("accounts", "create", "zero", "--rate", "0", "--burst", "10")
	c.fails("accounts", "create", "neg", "--monthly-quota", "-1")
	c.fails("accounts", "create", "nan", "--rate", "many", "--burst", "10")
	c.fails("accounts", "create")
	c.fails("accounts", "create", "a", "b")
	if n, _ := database.CountAccounts(context.Background()); n != 2 {
		t.Fatalf("%d accounts after failed creations, want 2", n)
	}
}

func TestCLIHelpAndUnknown(t *testing.T) {
	t.Parallel()
	c := sqliteCLI(t)
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"},
		{"serve", "--help"}, {"migrate", "--help"},
		{"accounts", "--help"}, {"accounts", "create", "--help"},
		{"keys", "--help"}, {"keys", "create", "--help"}, {"keys", "list", "-h"}, {"keys", "revoke", "--help"},
	} {
		code, out, errOut := c.run(args...)
		if code != 0 || !strings.Contains(out, "Usage") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	// The help of a command lists its flags.
	if _, out, _ := c.run("keys", "create", "--help"); !strings.Contains(out, "-domain") || !strings.Contains(out, "-account") {
		t.Errorf("keys create --help: %q", out)
	}
	for _, args := range [][]string{{"frobnicate"}, {"keys"}, {"keys", "delete"}, {"accounts"}, {"accounts", "delete", "x"}, {"keys", "--help", "x"}, {"migrate", "extra"}, {"migrate", "--bogus"}, {"serve", "extra"}} {
		c.fails(args...)
	}
}

func TestCLIMigrate(t *testing.T) {
	t.Parallel()
	c := sqliteCLI(t)
	for range 2 { // idempotent
		if out := c.ok("migrate"); out != "" {
			t.Fatalf("migrate wrote to stdout: %q", out)
		}
	}
	database := c.open()
	if n, err := database.CountAccounts(context.Background()); err != nil || n != 0 {
		t.Fatalf("after migrate: %d accounts, %v", n, err)
	}

	bad := newCLI(t, "mysql://localhost/x")
	line := bad.fails("migrate")
	if !strings.Contains(line, "DATABASE_URL") {
		t.Errorf("bad DATABASE_URL error %q", line)
	}
}

func TestCLIPostgres(t *testing.T) {
	t.Parallel()
	base := dbtest.PostgresURL(t)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "cli_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		cleanup, err := sql.Open("pgx", base)
		if err == nil {
			_, _ = cleanup.Exec("DROP SCHEMA " + schema + " CASCADE")
			cleanup.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()

	c := newCLI(t, u.String())
	c.ok("migrate")
	c.ok("accounts", "create", "acme", "--plan", "growth")
	c.fails("accounts", "create", "acme")
	secret := strings.TrimSpace(c.ok("keys", "create", "--account", "acme"))
	if !auth.WellFormed(secret) {
		t.Fatalf("keys create printed %q", secret)
	}
	list := c.ok("keys", "list", "--account", "acme")
	if secretRE.MatchString(list) || !strings.Contains(list, auth.DisplayPrefix(secret)) {
		t.Fatalf("keys list: %s", list)
	}
	k, _, err := c.open().APIKeyByHash(context.Background(), auth.Hash(secret))
	if err != nil {
		t.Fatal(err)
	}
	c.ok("keys", "revoke", strconv.FormatInt(k.ID, 10))
	if rows := listed(t, c.ok("keys", "list", "--account", "acme")); len(rows) != 1 || rows[0][len(rows[0])-1] == "-" {
		t.Fatalf("revoked key: %v", rows)
	}
}

func TestCLIAccountsUpdate(t *testing.T) {
	t.Parallel()
	c := sqliteCLI(t)
	c.ok("accounts", "create", "shop", "--plan", "starter")
	c.ok("accounts", "update", "shop", "--plan", "developer", "--monthly-quota", "1234", "--rate", "7", "--burst", "14")
	a, err := c.open().AccountByName(context.Background(), "shop")
	if err != nil {
		t.Fatal(err)
	}
	if a.Plan != db.PlanDeveloper || a.MonthlyQuota == nil || *a.MonthlyQuota != 1234 ||
		a.Rate == nil || *a.Rate != 7 || a.Burst == nil || *a.Burst != 14 {
		t.Fatalf("after update: %+v", a)
	}
	c.ok("accounts", "update", "shop", "--monthly-quota", "99")
	a, _ = c.open().AccountByName(context.Background(), "shop")
	if a.Plan != db.PlanDeveloper || *a.MonthlyQuota != 99 || *a.Rate != 7 {
		t.Fatalf("a partial update changed other fields: %+v", a)
	}
	c.fails("accounts", "update", "nobody", "--monthly-quota", "5")
	c.fails("accounts", "update", "shop", "--plan", "platinum")
	c.fails("accounts", "update", "shop", "--rate", "5")
	c.fails("accounts", "update", "shop", "--monthly-quota", "0")
}

func TestParseRetention(t *testing.T) {
	for raw, want := range map[string]time.Duration{"": 0, "30d": 30 * 24 * time.Hour, "1d": 24 * time.Hour, "720h": 720 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := parseRetention(raw); err != nil || got != want {
			t.Errorf("parseRetention(%q) = %v, %v; want %v", raw, got, err, want)
		}
	}
	for _, raw := range []string{"abc", "0d", "-3d", "d", "10m", "1.5d", "30 d"} {
		if _, err := parseRetention(raw); err == nil {
			t.Errorf("parseRetention(%q) accepted", raw)
		}
	}
}

func TestServeRefusesBadConfiguration(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"PORT":              {"PORT": "eighty"},
		"API_LOG_RETENTION": {"API_LOG_RETENTION": "forever"},
	} {
		t.Run(name, func(t *testing.T) {
			c := sqliteCLI(t)
			for k, v := range env {
				c.env[k] = v
			}
			if line := c.fails("serve"); !strings.Contains(line, name) {
				t.Errorf("error %q does not name %s", line, name)
			}
		})
	}
}
