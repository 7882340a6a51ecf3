package db

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"
)

func TestEventNoticeRoundTrip(t *testing.T) {
	n := EventNotice{ID: 42, AccountID: 7, ServiceID: 3, Deliveries: 2}
	got, err := parseEventNotice(n.String())
	if err != nil || got != n {
		t.Fatalf("parse(%q) = %+v, %v", n.String(), got, err)
	}
	for _, bad := range []string{"", "42", "42,7,3", "42,7,3,x", "1,2,3,4,5"} {
		if _, err := parseEventNotice(bad); err == nil {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	for raw, want := range map[string]string{
		"postgres://u:hunter2@h:5432/db?sslmode=disable": "postgres://u:xxxxx@h:5432/db?sslmode=disable",
		"postgres://u@h/db?password=hunter2&sslmode=off": "postgres://u@h/db?password=xxxxx&sslmode=off",
		"postgresql://h/db": "postgresql://h/db",
	} {
		if got := redact(raw); got != want {
			t.Errorf("redact(%q) = %q, want %q", raw, got, want)
		}
	}
}

// Two transactions that lock two rows in opposite orders deadlock; inTx
// runs the loser again, and both succeed.
func TestInTxRetriesDeadlocks(t *testing.T) {
	base := os.Getenv("TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("TEST_POSTGRES_URL is not set but CI=true")
		}
		t.Skip("set TEST_POSTGRES_URL to run")
	}
	ctx := context.Background()
	admin, err := Open(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	schema := fmt.Sprintf("t_retry_%d", time.Now().UnixNano())
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	defer admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE") //nolint:errcheck
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	database, err := Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer database.Close()
	if _, err := database.ExecContext(ctx, "CREATE TABLE rows (id int PRIMARY KEY, n int); INSERT INTO rows VALUES (1, 0), (2, 0)"); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	ready := make(chan struct{}, 2)
	proceed := make(chan struct{})
	run := func(first, second int) error {
		return database.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
			attempt := calls.Add(1)
			if _, err := tx.ExecContext(ctx, "UPDATE rows SET n = n + 1 WHERE id = ?", first); err != nil {
				return err
			}
			if attempt <= 2 { // the first attempts meet, to deadlock
				ready <- struct{}{}
				<-proceed
			}
			_, err := tx.ExecContext(ctx, "UPDATE rows SET n = n + 1 WHERE id = ?", second)
			return err
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- run(1, 2) }()
	go func() { errs <- run(2, 1) }()
	<-ready
	<-ready
	close(proceed)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a transaction failed despite the retry: %v", err)
		}
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("fn ran %d times, want 3 (one deadlock, one retry)", n)
	}
	var sum int
	if err := database.QueryRowContext(ctx, "SELECT SUM(n) FROM rows").Scan(&sum); err != nil || sum != 4 {
		t.Fatalf("sum %d (%v), want 4: each transaction counted once", sum, err)
	}
}
