package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for the admin connection

	"github.com/reservekit/reservekit/db"
)

// store is the fresh, migrated database of one run and how to remove it.
type store struct {
	db      *db.DB
	cleanup func()
}

// describe names the database and its version.
func (s *store) describe(ctx context.Context) string {
	var version string
	if s.db.IsPostgres() {
		if err := s.db.NewRaw("SHOW server_version").Scan(ctx, &version); err != nil {
			return "Postgres"
		}
		return "Postgres " + version + " on 127.0.0.1 (tables ANALYZEd after seeding)"
	}
	if err := s.db.NewRaw("SELECT sqlite_version()").Scan(ctx, &version); err != nil {
		return "SQLite"
	}
	return "SQLite " + version + " (modernc, file in WAL mode, never ANALYZEd, as in production)"
}

func openStore(ctx context.Context, o options) (*store, error) {
	switch o.dialect {
	case "sqlite":
		return openSQLite(ctx, o.keep)
	case "postgres":
		return openPostgres(ctx, o.postgresURL, o.keep)
	default:
		return nil, fmt.Errorf("-db must be sqlite or postgres (got %q)", o.dialect)
	}
}

func openSQLite(ctx context.Context, keep bool) (*store, error) {
	dir, err := os.MkdirTemp("", "reservekit-load-")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "load.db")
	database, err := db.Open(ctx, "sqlite:"+path)
	if err == nil {
		err = database.Migrate(ctx)
		if err != nil {
			database.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &store{db: database, cleanup: func() {
		database.Close()
		if keep {
			fmt.Fprintln(os.Stderr, "kept", path)
			return
		}
		os.RemoveAll(dir)
	}}, nil
}

// openPostgres creates the database of rawURL when it does not exist, then
// a schema of its own in it (named in search_path), so nothing else in the
// database is touched. The schema is dropped at the end, and the database
// too when this run created it.
func openPostgres(ctx context.Context, rawURL string, keep bool) (*store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("-postgres-url: %w", err)
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" {
		return nil, fmt.Errorf("-postgres-url: load only a local Postgres (got host %q)", h)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if dbName == "" {
		return nil, errors.New("-postgres-url must name a database")
	}
	createdDB := false
	admin, err := sql.Open("pgx", rawURL)
	if err != nil {
		return nil, err
	}
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
			return nil, fmt.Errorf("connect to Postgres: %w", err)
		}
		if err := onMaintenanceDB(ctx, u, "CREATE DATABASE "+quoteIdent(dbName)); err != nil {
			return nil, fmt.Errorf("create database %s: %w", dbName, err)
		}
		createdDB = true
		if admin, err = sql.Open("pgx", rawURL); err != nil {
			return nil, err
		}
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "load_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		return nil, fmt.Errorf("create schema: %w", err)
	}
	dropAll := func() {
		if keep {
			fmt.Fprintf(os.Stderr, "kept schema %s in database %s\n", schema, dbName)
			admin.Close()
			return
		}
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			fmt.Fprintf(os.Stderr, "drop schema %s: %v\n", schema, err)
		}
		admin.Close()
		if createdDB {
			if err := onMaintenanceDB(context.Background(), u, "DROP DATABASE IF EXISTS "+quoteIdent(dbName)); err != nil {
				fmt.Fprintf(os.Stderr, "drop database %s: %v\n", dbName, err)
			}
		}
	}
	q := u.Query()
	q.Set("search_path", schema)
	withSchema := *u
	withSchema.RawQuery = q.Encode()
	database, err := db.Open(ctx, withSchema.String())
	if err == nil {
		if err = database.Migrate(ctx); err != nil {
			database.Close()
		}
	}
	if err != nil {
		dropAll()
		return nil, err
	}
	return &store{db: database, cleanup: func() {
		database.Close()
		dropAll()
	}}, nil
}

// onMaintenanceDB runs one statement on the server's "postgres" database.
func onMaintenanceDB(ctx context.Context, u *url.URL, stmt string) error {
	m := *u
	m.Path = "/postgres"
	conn, err := sql.Open("pgx", m.String())
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.ExecContext(ctx, stmt)
	return err
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
