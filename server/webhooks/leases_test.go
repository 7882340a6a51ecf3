package webhooks_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/webhooks"
)

// TestTwoDispatchersDeliverEachOnce: two dispatchers on one Postgres
// database (each with its own pool, as two instances would have) share the
// work, and in the normal case every delivery reaches the receiver once.
func TestTwoDispatchersDeliverEachOnce(t *testing.T) {
	database := dbtest.Open(t, dbtest.Postgres)
	f := newFixture(t, database)
	other := secondHandle(t, database)
	rc := newReceiver(t, nil)
	w, _ := f.webhook(rc.URL + "/hook")

	a := f.dispatcher(func(c *webhooks.Config) { c.Workers = 2 })
	b := f.dispatcher(func(c *webhooks.Config) { c.Workers = 2; c.DB = other })
	run(t, a)
	run(t, b)

	const events = 200
	for range events {
		f.book()
		a.Wake()
		b.Wake()
	}
	eventually(t, 60*time.Second, "every delivery", func() bool { return f.countStatus(w.ID, db.DeliveryDelivered) == events })

	got := rc.okCounts()
	if len(got) != events {
		t.Fatalf("receiver accepted %d distinct deliveries, want %d", len(got), events)
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("delivery %s accepted %d times", id, n)
		}
	}
	if n := len(rc.got()); n != events {
		t.Errorf("receiver got %d requests for %d deliveries", n, events)
	}
	attempts := 0
	for _, dl := range f.deliveries(w.ID) {
		attempts += len(f.attempts(dl.ID))
	}
	if attempts != events {
		t.Errorf("%d attempts recorded for %d deliveries", attempts, events)
	}
}

// TestExpiredLeaseIsDeliveredAgain: an instance that leased deliveries and
// died (here: leased and never attempted) holds them until the lease
// expires; then another dispatcher delivers them, with the same
// ReserveKit-Delivery id.
func TestExpiredLeaseIsDeliveredAgain(t *testing.T) {
	t.Run(dbtest.Postgres, func(t *testing.T) {
		database := dbtest.Open(t, dbtest.Postgres)
		f := newFixture(t, database)
		rc := newReceiver(t, nil)
		w, _ := f.webhook(rc.URL + "/hook")
		f.book()
		const lease = 1500 * time.Millisecond
		crashed, err := database.LeaseDeliveries(context.Background(), 10, lease)
		if err != nil {
			t.Fatal(err)
		}
		if len(crashed) != 1 {
			t.Fatalf("leased %d deliveries, want 1", len(crashed))
		}
		leasedAt := time.Now()

		d := f.dispatcher(func(c *webhooks.Config) { c.Timeout = 500 * time.Millisecond; c.Lease = lease })
		run(t, d)
		d.Wake()
		time.Sleep(lease / 2)
		if n := len(rc.got()); n != 0 {
			t.Fatalf("a leased delivery was sent %d times before its lease expired", n)
		}
		eventually(t, 10*time.Second, "the delivery after the lease expired", func() bool {
			return f.countStatus(w.ID, db.DeliveryDelivered) == 1
		})
		reqs := rc.got()
		if len(reqs) != 1 {
			t.Fatalf("receiver got %d requests, want 1", len(reqs))
		}
		if waited := reqs[0].at.Sub(leasedAt); waited < lease-50*time.Millisecond {
			t.Errorf("delivered %v after the lease was taken, before it expired (%v)", waited, lease)
		}
		if got, want := reqs[0].header.Get(webhooks.HeaderDelivery), strconv.FormatInt(crashed[0].ID, 10); got != want {
			t.Errorf("%s %q, want %q", webhooks.HeaderDelivery, got, want)
		}
		if reqs[0].header.Get("Content-Type") != "application/json" || reqs[0].header.Get(webhooks.HeaderSignature) == "" {
			t.Errorf("headers %v", reqs[0].header)
		}
	})
}

// TestSQLiteRestartReleasesLeases: on SQLite (one instance) a dispatcher
// that starts finds the leases of a killed predecessor and delivers at once.
func TestSQLiteRestartReleasesLeases(t *testing.T) {
	database := dbtest.Open(t, dbtest.SQLite)
	f := newFixture(t, database)
	rc := newReceiver(t, nil)
	w, _ := f.webhook(rc.URL + "/hook")
	f.book()
	if leased, err := database.LeaseDeliveries(context.Background(), 10, time.Hour); err != nil || len(leased) != 1 {
		t.Fatalf("leased %d deliveries (%v), want 1", len(leased), err)
	}
	run(t, f.dispatcher(nil))
	eventually(t, 10*time.Second, "the delivery", func() bool { return f.countStatus(w.ID, db.DeliveryDelivered) == 1 })
	if n := len(rc.got()); n != 1 {
		t.Fatalf("receiver got %d requests, want 1", n)
	}
}

// BenchmarkDispatcherThroughput measures how many deliveries one
// dispatcher (default workers) sends per second to a fast local receiver,
// from a backlog of b.N pending deliveries.
func BenchmarkDispatcherThroughput(b *testing.B) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		b.Run(dialect, func(b *testing.B) {
			database := dbtest.Open(b, dialect)
			f := newFixture(b, database)
			rc := newReceiver(b, nil)
			w, _ := f.webhook(rc.URL + "/hook")
			for range b.N {
				f.book()
			}
			d := f.dispatcher(func(c *webhooks.Config) { c.Workers = webhooks.DefaultWorkers })
			b.ResetTimer()
			start := time.Now()
			stop := run(b, d)
			eventually(b, 5*time.Minute, "the backlog", func() bool { return f.countStatus(w.ID, db.DeliveryDelivered) == b.N })
			elapsed := time.Since(start)
			b.StopTimer()
			stop()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
		})
	}
}
