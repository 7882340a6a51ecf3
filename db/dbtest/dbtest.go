// Package dbtest gives tests a fresh, migrated database on each dialect:
// SQLite always, Postgres when TEST_POSTGRES_URL is set. Under CI=true a
// missing or unreachable Postgres fails the test instead of skipping it.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/reservekit/reservekit/db"
)

// Dialects that tests run on.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// testPostgresConns bounds each test database's pool.
const testPostgresConns = 5

// Each runs fn as a subtest on every dialect, each with a fresh database.
func Each(t *testing.T, fn func(t *testing.T, database *db.DB)) {
	t.Helper()
	for _, dialect := range []string{SQLite, Postgres} {
		t.Run(dialect, func(t *testing.T) {
			fn(t, Open(t, dialect))
		})
	}
}

// Open returns a fresh migrated database of the dialect, closed and removed
// when the test ends.
func Open(t testing.TB, dialect string) *db.DB {
	t.Helper()
	ctx := context.Background()
	var rawURL string
	switch dialect {
	case SQLite:
		rawURL = "sqlite:" + filepath.Join(t.TempDir(), "test.db")
	case Postgres:
		rawURL = postgresSchema(t)
	default:
		t.Fatalf("unknown dialect %q", dialect)
	}
	database, err := db.Open(ctx, rawURL)
	if err != nil {
		t.Fatalf("open %s: %v", dialect, err)
	}
	if dialect == Postgres {
		// Tests of several packages run at once, each with its own pool,
		// and parallel subtests wait for their turn with their database
		// open: the production pool of 20 would exhaust max_connections
		// (100), and so would idle connections kept by every waiting test.
		database.DB.DB.SetMaxOpenConns(testPostgresConns)
		database.DB.DB.SetMaxIdleConns(1)
	}
	t.Cleanup(func() { database.Close() })
	if err := database.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", dialect, err)
	}
	return database
}

// PostgresURL returns TEST_POSTGRES_URL, skipping the test when it is unset
// (failing it under CI=true).
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TEST_POSTGRES_URL is not set but CI=true: Postgres tests must run in CI")
		}
		t.Skip("Postgres tests skipped: set TEST_POSTGRES_URL=postgres://… to run them")
	}
	return base
}

// postgresSchema creates a schema of its own for the test and returns a URL
// whose search_path points at it; the schema is dropped afterwards.
func postgresSchema(t testing.TB) string {
	t.Helper()
	base := PostgresURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if err := adminExec(base, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("postgres unreachable at TEST_POSTGRES_URL: %v", err)
	}
	t.Cleanup(func() {
		if err := adminExec(base, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// adminExec runs one statement on a connection of its own, closed at once
// (tests waiting for their turn hold no connection for it).
func adminExec(url, stmt string) error {
	admin, err := sql.Open("pgx", url)
	if err != nil {
		return err
	}
	defer admin.Close()
	_, err = admin.Exec(stmt)
	return err
}
