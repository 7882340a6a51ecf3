package apilog_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/apilog"
)

var quiet = slog.New(slog.DiscardHandler)

// insertCounter counts INSERT statements into api_logs.
type insertCounter struct{ n atomic.Int64 }

func (c *insertCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (c *insertCounter) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if e.Operation() == "INSERT" && strings.Contains(e.Query, "api_logs") {
		c.n.Add(1)
	}
}

func account(t testing.TB, database *db.DB) int64 {
	t.Helper()
	a, err := database.CreateAccount(context.Background(), "acme", db.PlanStarter, db.AccountLimits{})
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

func entry(accountID int64) *db.APILog {
	return &db.APILog{AccountID: accountID, APIKeyID: 1, APIKeyPrefix: "rk_test_abcd", OccurredAt: time.Now(),
		OperationName: "Services", OperationType: "query", RootFields: db.StringList{"services"}, Cost: 3,
		Status: 200, DurationUS: 850, ClientIP: "203.0.113.7", UserAgent: "bench/1"}
}

func stored(t *testing.T, database *db.DB, accountID int64) int {
	t.Helper()
	n, err := database.CountAPILogs(context.Background(), accountID, db.APILogFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// start runs w until the returned stop function cancels it and waits.
func start(w *apilog.Writer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func TestRecordNeverBlocks(t *testing.T) {
	database := dbtest.Open(t, dbtest.SQLite)
	a := account(t, database)
	w := apilog.New(database, 5, time.Hour, quiet)
	returned := make(chan struct{})
	go func() {
		for range 8 {
			w.Record(entry(a))
		}
		w.Record(nil) // ignored
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("Record blocked on a full buffer")
	}
	if got := w.Dropped(); got != 3 {
		t.Fatalf("Dropped() = %d, want 3", got)
	}
	start(w)()
	if w.Written() != 5 || stored(t, database, a) != 5 {
		t.Fatalf("written %d, stored %d; want the 5 buffered", w.Written(), stored(t, database, a))
	}
}

func TestWriterBatches(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		a := account(t, database)
		counter := &insertCounter{}
		database.AddQueryHook(counter)
		const n = 2000
		w := apilog.New(database, n, time.Hour, quiet)
		for range n {
			w.Record(entry(a))
		}
		stop := start(w)
		waitFor(t, func() bool { return w.Written() == n })
		stop()
		if got, want := counter.n.Load(), int64(n/apilog.BatchSize); got != want {
			t.Errorf("%d entries took %d INSERTs, want %d", n, got, want)
		}
		if got := stored(t, database, a); got != n {
			t.Errorf("stored %d, want %d", got, n)
		}
	})
}

func TestWriterFlushesPeriodically(t *testing.T) {
	database := dbtest.Open(t, dbtest.SQLite)
	a := account(t, database)
	w := apilog.New(database, 100, 20*time.Millisecond, quiet)
	defer start(w)()
	for range 3 {
		w.Record(entry(a))
	}
	waitFor(t, func() bool { return w.Written() == 3 })
}

func TestWriterFlushesOnCancel(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		a := account(t, database)
		w := apilog.New(database, 5000, time.Hour, quiet)
		stop := start(w)
		const n = 1234
		for range n {
			w.Record(entry(a))
		}
		stop()
		if w.Written() != n || w.Dropped() != 0 || w.Failed() != 0 {
			t.Fatalf("written %d dropped %d failed %d, want %d written", w.Written(), w.Dropped(), w.Failed(), n)
		}
		if got := stored(t, database, a); got != n {
			t.Fatalf("stored %d after Run returned, want %d", got, n)
		}
	})
}

func TestRunPruner(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		a := account(t, database)
		old, fresh := entry(a), entry(a)
		old.OccurredAt = time.Now().Add(-31 * 24 * time.Hour)
		if err := database.InsertAPILogs(context.Background(), []*db.APILog{old, fresh}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { apilog.RunPruner(ctx, database, 0, time.Hour, quiet); close(done) }()
		waitFor(t, func() bool { return stored(t, database, a) == 1 })
		cancel()
		<-done
		left, err := database.ListAPILogs(context.Background(), a, db.APILogFilter{First: 5})
		if err != nil || len(left) != 1 || left[0].ID != fresh.ID {
			t.Fatalf("left %v, %v; want only the fresh entry", left, err)
		}
	})
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkWriterPostgres measures how many entries per second one Writer
// stores on Postgres: each iteration records 100k entries as fast as it can
// and waits until they are written.
func BenchmarkWriterPostgres(b *testing.B) {
	database := dbtest.Open(b, dbtest.Postgres)
	a := account(b, database)
	const perOp = 100_000
	w := apilog.New(database, 2*perOp, apilog.DefaultFlushEvery, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		target := int64(i+1) * perOp
		for range perOp {
			w.Record(entry(a))
		}
		for w.Written()+w.Failed()+w.Dropped() < target {
			time.Sleep(time.Millisecond)
		}
	}
	b.StopTimer()
	if w.Failed() != 0 || w.Dropped() != 0 {
		b.Fatalf("failed %d, dropped %d", w.Failed(), w.Dropped())
	}
	b.ReportMetric(float64(w.Written())/b.Elapsed().Seconds(), "entries/s")
}
