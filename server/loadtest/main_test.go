package main

import (
	"testing"
	"time"

	"github.com/reservekit/reservekit/db/dbtest"
)

// A short run of every scenario on each dialect: the harness seeds, serves,
// drives and checks the occurrence counters without an error.
func TestHarnessRuns(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			o := options{dialect: dialect, duration: 150 * time.Millisecond, concurrency: 2, services: 2, bookings: 40}
			if dialect == dbtest.Postgres {
				o.postgresURL = dbtest.PostgresURL(t)
			}
			if err := run(o); err != nil {
				t.Fatal(err)
			}
		})
	}
}
