// Package db owns ReserveKit's storage: connecting to Postgres or SQLite, the
// schema and its migrations, and every query, with the domain rules that need
// the database to hold (tenancy, capacity, duplicates, status transitions).
// Every function takes the account id explicitly so no query can forget the
// tenant.
package db

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/driver/sqliteshim"
	_ "time/tzdata" // services name IANA zones; the image may have none
)

// DefaultURL is used when DATABASE_URL is unset: an SQLite file in the
// working directory.
const DefaultURL = "sqlite:reservekit.db"

// DB is a connection pool with the dialect it speaks.
type DB struct {
	*bun.DB
	postgres bool
	// listenURL opens the dedicated LISTEN connections (Postgres), which
	// stay outside the pool so listeners can never starve queries.
	listenURL string
	// channelSuffix keeps notification channels apart per schema: channels
	// are database-wide, and several deployments (or tests) may share one
	// database in separate schemas.
	channelSuffix string
	// Description says which database is in use, without secrets.
	Description string
	// OnEvent, when set, receives booking events committed on SQLite (see
	// Listen for Postgres).
	OnEvent func(*BookingEvent)
}

// IsPostgres reports whether the database is Postgres (else SQLite).
func (db *DB) IsPostgres() bool { return db.postgres }

// Open connects to the database named by rawURL: postgres:// or
// postgresql:// for Postgres, sqlite:PATH or file:PATH for SQLite.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	if rawURL == "" {
		rawURL = DefaultURL
	}
	var db *DB
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		sqldb, err := sql.Open("pgx", rawURL)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		sqldb.SetMaxOpenConns(20)
		sqldb.SetMaxIdleConns(20)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
		db = &DB{DB: bun.NewDB(sqldb, pgdialect.New()), postgres: true, listenURL: rawURL, Description: "postgres " + redact(rawURL)}
	case strings.HasPrefix(rawURL, "sqlite:"), strings.HasPrefix(rawURL, "file:"):
		path := strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "file:")
		path, _, _ = strings.Cut(path, "?")
		if path == "" {
			return nil, errors.New("DATABASE_URL: sqlite needs a file path, e.g. sqlite:reservekit.db")
		}
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("create database directory: %w", err)
			}
		}
		// WAL lets readers run beside the single writer; immediate transactions
		// take the write lock up front so concurrent writers queue on the busy
		// timeout instead of failing with SQLITE_BUSY halfway through.
		dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
			"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		sqldb, err := sql.Open(sqliteshim.ShimName, dsn)
		if err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		sqldb.SetMaxOpenConns(8)
		sqldb.SetMaxIdleConns(8)
		sqldb.SetConnMaxLifetime(0)
		db = &DB{DB: bun.NewDB(sqldb, sqlitedialect.New()), Description: "sqlite " + path}
	default:
		return nil, fmt.Errorf("DATABASE_URL must start with postgres://, postgresql://, sqlite: or file: (got %q)", scheme(rawURL))
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", db.Description, err)
	}
	if db.postgres {
		var schema string
		if err := db.QueryRowContext(pingCtx, "SELECT current_schema()").Scan(&schema); err != nil {
			db.Close()
			return nil, fmt.Errorf("read current schema of %s: %w", db.Description, err)
		}
		if schema != "public" {
			// A digest, not the name: channel names stop at 63 bytes.
			sum := sha256.Sum256([]byte(schema))
			db.channelSuffix = "_" + hex.EncodeToString(sum[:8])
		}
	}
	return db, nil
}

func scheme(raw string) string {
	if i := strings.Index(raw, ":"); i >= 0 {
		return raw[:i+1]
	}
	return "no scheme"
}

// redact removes the password from a connection URL for logging.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// inTx runs fn in a transaction and commits when it returns nil. On
// Postgres a transaction that lost a deadlock or a serialization conflict
// is run again (up to txAttempts in all): the other one went through, and
// this one may well go through now. fn must therefore set, not accumulate,
// what it hands out.
func (db *DB) inTx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := db.RunInTx(ctx, nil, fn)
		if !db.postgres || attempt == txAttempts || !retryable(err) {
			return err
		}
	}
}

const txAttempts = 3

// isForeignKeyViolation reports a row that refers to one deleted meanwhile
// (Postgres 23503; SQLite reports FOREIGN KEY constraint failed).
func isForeignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23503"
	}
	return err != nil && strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
}

// retryable reports a deadlock (40P01) or serialization failure (40001).
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// now is the time stamp for writes: UTC, to the microsecond both dialects keep.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

func trim(s string) string { return strings.TrimSpace(s) }
