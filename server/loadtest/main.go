// Command loadtest measures ReserveKit under load: it seeds a fresh database
// through the db package, starts the real server in-process on 127.0.0.1,
// drives each scenario over HTTP at a fixed concurrency for a fixed time and
// prints a Markdown table (throughput, latency, SQL statements per
// operation) with the machine it ran on.
//
//	go run ./server/loadtest [-db sqlite|postgres] [-duration 10s] [-concurrency 8] [-cpuprofile cpu.out]
//
// The load generator shares the process (and the CPUs) with the server, so
// the numbers are a baseline for comparing builds on one machine, not a
// capacity figure. Requests carry a pprof label "scenario", so one CPU
// profile covering every scenario can be split per scenario:
//
//	go tool pprof -tagfocus scenario=createBooking -top cpu.out
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/reservekit/reservekit/server/app"
)

type options struct {
	dialect     string
	postgresURL string
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	cpuprofile  string
	scenarios   string
	services    int
	bookings    int
	keep        bool
}

func main() {
	var o options
	flag.StringVar(&o.dialect, "db", "sqlite", "database: sqlite (a temporary file) or postgres")
	flag.StringVar(&o.postgresURL, "postgres-url", "postgres://postgres@127.0.0.1:5432/reservekit_load?sslmode=disable",
		"Postgres to load; the database is created if missing (and then dropped at the end), the run uses a fresh schema of its own")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per scenario")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up per scenario")
	flag.IntVar(&o.concurrency, "concurrency", 8, "concurrent clients")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the scenarios (not the seeding) to `file`")
	flag.StringVar(&o.scenarios, "scenarios", "", "comma-separated scenarios to run (default all: "+strings.Join(scenarioNames(), ",")+")")
	flag.IntVar(&o.services, "services", 50, "services to seed (5 weekly slots each)")
	flag.IntVar(&o.bookings, "bookings", 10_000, "bookings to seed")
	flag.BoolVar(&o.keep, "keep", false, "keep the database (SQLite file or Postgres schema) afterwards")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.concurrency < 1 || o.duration <= 0 || o.warmup < 0 {
		return errors.New("-concurrency must be at least 1 and -duration positive")
	}
	if o.services < 2 {
		return errors.New("-services must be at least 2")
	}
	selected, err := selectScenarios(o.scenarios)
	if err != nil {
		return err
	}
	ctx := context.Background()
	machine := describeMachine()
	loadBefore := loadAverage()

	store, err := openStore(ctx, o)
	if err != nil {
		return err
	}
	defer store.cleanup()
	database := store.db

	seedStart := time.Now()
	fx, err := seed(ctx, database, o.services, o.bookings)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := checkCounters(ctx, database); err != nil {
		return fmt.Errorf("after seeding: %w", err)
	}
	if database.IsPostgres() {
		// Autovacuum would analyze the freshly loaded tables within a minute
		// or so; do it now so plans are those of a database in steady state.
		// (SQLite deployments never run ANALYZE, so neither does the test.)
		if _, err := database.ExecContext(ctx, "ANALYZE"); err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
	}
	seedTime := time.Since(seedStart)
	rssAfterSeed := peakRSS()
	fmt.Fprintf(os.Stderr, "seeded %d services, %d slots, %d bookings in %s (%s)\n",
		len(fx.services), len(fx.services)*slotsPerService, o.bookings, seedTime.Round(time.Millisecond), database.Description)

	// The server runs on a copy of the database handle whose statements are
	// counted; seeding above is not.
	counter := &stmtCounter{}
	counted := *database
	counted.DB = database.DB.WithQueryHook(counter)
	a := app.New(&counted, app.Config{Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		a.Close()
		return err
	}
	srv := &http.Server{Handler: labelRequests(a.Handler()), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stopServer := func() {
		shutdownCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
		a.Close()
	}
	baseURL := "http://" + ln.Addr().String() + "/graphql"
	d := newDriver(baseURL, fx.key, o.concurrency)

	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			stopServer()
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			stopServer()
			return err
		}
	}
	var results []*result
	for _, sc := range buildScenarios(fx, selected) {
		fmt.Fprintf(os.Stderr, "%-24s warm-up %s, measuring %s at concurrency %d…\n", sc.name, o.warmup, o.duration, o.concurrency)
		r := d.run(sc, o.warmup, o.duration, counter)
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "%-24s %s\n", sc.name, r.summary())
	}
	if o.cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	stopServer()
	counterErr := checkCounters(ctx, database)
	loadAfter := loadAverage()

	printReport(os.Stdout, report{
		opts: o, machine: machine, dbDescription: store.describe(ctx), seedTime: seedTime,
		results: results, rssAfterSeed: rssAfterSeed, rssPeak: peakRSS(),
		loadBefore: loadBefore, loadAfter: loadAfter, counterErr: counterErr,
		goVersion: runtime.Version(), gomaxprocs: runtime.GOMAXPROCS(0),
	})
	if counterErr != nil {
		return fmt.Errorf("after the scenarios: %w", counterErr)
	}
	return nil
}
