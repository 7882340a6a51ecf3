package app_test

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app/apptest"
)

// statementCounter counts the SQL statements a database runs.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}
func (c *statementCounter) AfterQuery(context.Context, *bun.QueryEvent) { c.n.Add(1) }

// perfFixture is an account with services, a slot on every weekday of each
// and bookings spread over them, created straight through the db package.
type perfFixture struct {
	env       *apptest.Env
	key       string
	accountID int64
	services  []*db.Service
}

func newPerfFixture(tb testing.TB, database *db.DB, services, bookings int) *perfFixture {
	tb.Helper()
	ctx := context.Background()
	e := apptest.New(tb, database, nil)
	key := e.Account("perf")
	acct, err := database.AccountByName(ctx, "perf")
	if err != nil {
		tb.Fatal(err)
	}
	f := &perfFixture{env: e, key: key, accountID: acct.ID}
	for i := 0; i < services; i++ {
		slots := make([]db.TimeSlotInput, 7)
		for d := range slots {
			slots[d] = db.TimeSlotInput{DayOfWeek: d, StartMinute: 9 * 60, EndMinute: 10 * 60, MaxBookings: 1_000_000}
		}
		name, tz := fmt.Sprintf("Service %d", i), "UTC"
		s, err := database.CreateService(ctx, acct.ID, db.ServiceInput{Name: &name, Timezone: &tz}, slots)
		if err != nil {
			tb.Fatal(err)
		}
		f.services = append(f.services, s)
	}
	start := time.Now().UTC().AddDate(0, 0, 2)
	for i := 0; i < bookings; i++ {
		s := f.services[i%len(f.services)]
		date := start.AddDate(0, 0, (i/len(f.services))%60)
		f.book(tb, s, date, fmt.Sprintf("c%d@example.com", i))
	}
	return f
}

// book creates a booking of service s on date (its slot of that weekday).
func (f *perfFixture) book(tb testing.TB, s *db.Service, date time.Time, email string) *db.Booking {
	tb.Helper()
	ctx := context.Background()
	slots, err := f.env.DB.TimeSlotsByServices(ctx, f.accountID, []int64{s.ID})
	if err != nil {
		tb.Fatal(err)
	}
	slot := slots[int(date.Weekday())]
	b, err := f.env.DB.CreateBooking(ctx, f.accountID, db.BookingInput{
		TimeSlotID: slot.ID, Date: date.Format(db.DateLayout), Customer: db.CustomerInput{Email: &email},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

const nestedBookings = `query($first: Int) { bookings(first: $first) { nodes {
  id date service { name } timeSlot { startTime } customer { email } } } }`

// TestNestedFieldsUseDataloaders checks that the nested fields of a bookings
// page cost the same number of statements for 10 and for 100 bookings.
func TestNestedFieldsUseDataloaders(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		f := newPerfFixture(t, database, 5, 100)
		counter := &statementCounter{}
		database.AddQueryHook(counter)
		count := func(first int) int64 {
			before := counter.n.Load()
			var out struct {
				Bookings struct {
					Nodes []struct {
						Service  struct{ Name string }
						TimeSlot struct{ StartTime string }
						Customer *struct{ Email string }
					}
				}
			}
			f.env.MustData(f.key, nestedBookings, map[string]any{"first": first}, &out)
			if len(out.Bookings.Nodes) != first {
				t.Fatalf("got %d bookings, want %d", len(out.Bookings.Nodes), first)
			}
			for _, n := range out.Bookings.Nodes {
				if n.Service.Name == "" || n.TimeSlot.StartTime != "09:00" || n.Customer == nil || n.Customer.Email == "" {
					t.Fatalf("nested fields not loaded: %+v", n)
				}
			}
			return counter.n.Load() - before
		}
		count(1) // warms the key cache
		small, large := count(10), count(100)
		if small != large {
			t.Fatalf("statements grow with page size: %d for 10 bookings, %d for 100", small, large)
		}
		if large > 4 {
			t.Fatalf("%d statements for a page with three nested fields; want at most 4 (list + 3 loaders)", large)
		}
		t.Logf("%d statements for bookings(first: 100) with service, timeSlot, customer", large)
	})
}

func eachDialect(b *testing.B, fn func(b *testing.B, database *db.DB)) {
	for _, d := range []string{dbtest.SQLite, dbtest.Postgres} {
		b.Run(d, func(b *testing.B) { fn(b, dbtest.Open(b, d)) })
	}
}

// reportLatency runs op b.N times and reports its median and p99 latency.
func reportLatency(b *testing.B, op func()) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		op()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkBookingsNested is bookings(first: 100) with service, timeSlot and
// customer of each, through the full HTTP stack at concurrency 1.
func BenchmarkBookingsNested(b *testing.B) {
	eachDialect(b, func(b *testing.B, database *db.DB) {
		f := newPerfFixture(b, database, 5, 100)
		vars := map[string]any{"first": 100}
		f.env.Do(f.key, nestedBookings, vars)
		reportLatency(b, func() {
			if r := f.env.Do(f.key, nestedBookings, vars); len(r.Errors) > 0 {
				b.Fatal(string(r.Raw))
			}
		})
	})
}

// BenchmarkCreateBooking books distinct customers into open occurrences.
func BenchmarkCreateBooking(b *testing.B) {
	eachDialect(b, func(b *testing.B, database *db.DB) {
		f := newPerfFixture(b, database, 1, 0)
		slots, err := database.TimeSlotsByServices(context.Background(), f.accountID, []int64{f.services[0].ID})
		if err != nil {
			b.Fatal(err)
		}
		date := time.Now().UTC().AddDate(0, 0, 7)
		slot := slots[int(date.Weekday())]
		const q = `mutation($in: CreateBookingInput!) { createBooking(input: $in) { id status } }`
		i := 0
		reportLatency(b, func() {
			i++
			r := f.env.Do(f.key, q, map[string]any{"in": map[string]any{
				"timeSlotId": fmt.Sprint(slot.ID), "date": date.Format(db.DateLayout),
				"customerEmail": fmt.Sprintf("bench%d@example.com", i),
			}})
			if len(r.Errors) > 0 {
				b.Fatal(string(r.Raw))
			}
		})
	})
}

// BenchmarkAvailability30Days lists 30 days of occurrences of a service with
// a slot every day and 100 bookings.
func BenchmarkAvailability30Days(b *testing.B) {
	eachDialect(b, func(b *testing.B, database *db.DB) {
		f := newPerfFixture(b, database, 1, 100)
		from := time.Now().UTC().AddDate(0, 0, 1)
		vars := map[string]any{
			"id": fmt.Sprint(f.services[0].ID), "from": from.Format(db.DateLayout),
			"to": from.AddDate(0, 0, 29).Format(db.DateLayout),
		}
		const q = `query($id: ID!, $from: Date!, $to: Date!) { availability(serviceId: $id, from: $from, to: $to) {
		  date startsAt endsAt capacity booked remaining timeSlot { id } } }`
		reportLatency(b, func() {
			var out struct{ Availability []struct{ Date string } }
			f.env.MustData(f.key, q, vars, &out)
			if len(out.Availability) != 30 {
				b.Fatalf("%d occurrences, want 30", len(out.Availability))
			}
		})
	})
}
