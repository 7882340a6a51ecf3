package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/auth"
)

const (
	slotsPerService = 5
	// seedWeeks is how many weeks ahead the seeded bookings reach.
	seedWeeks = 12
	// contendedWeek and firstFreeWeek place the createBooking scenarios on
	// occurrences no seeded booking uses.
	contendedWeek = seedWeeks + 2
	firstFreeWeek = seedWeeks + 4
	seedBatch     = 1000
)

// zones of the seeded services, in turn: real zones, so that every request
// resolves one as production would.
var zones = []string{"America/New_York", "Europe/Paris", "Asia/Tokyo", "UTC"}

// fixture is what the scenarios need from the seeded database.
type fixture struct {
	key       string
	accountID int64
	services  []*db.Service
	// slots[i][j] is slot j of services[i].
	slots [][]*db.TimeSlot
	// base is the first day occurrences are placed on (UTC midnight, two
	// days ahead so no occurrence has started in any zone).
	base time.Time
}

// occurrenceDate is the date of slot ts in week w after f.base.
func (f *fixture) occurrenceDate(ts *db.TimeSlot, week int) string {
	shift := (ts.DayOfWeek - int(f.base.Weekday()) + 7) % 7
	return f.base.AddDate(0, 0, shift+7*week).Format(db.DateLayout)
}

// slotAt numbers all slots: k in [0, services*slotsPerService) spreads
// consecutive k over services first.
func (f *fixture) slotAt(k int) *db.TimeSlot {
	n := len(f.services)
	return f.slots[k%n][(k/n)%slotsPerService]
}

func (f *fixture) slotCount() int { return len(f.services) * slotsPerService }

// loadOccurrence is a row of slot_occurrences (the db package keeps its own
// model unexported).
type loadOccurrence struct {
	bun.BaseModel `bun:"table:slot_occurrences"`

	TimeSlotID int64  `bun:",pk"`
	Date       string `bun:",pk"`
	Booked     int
}

// seed creates one account without practical rate limits (plan growth, so
// no monthly quota), a key, services with five slots each on distinct
// weekdays and times, and bookings of distinct customers spread over the
// next weeks. Accounts, keys and services go through the db package's own
// functions; customers, bookings and occurrence counters are bulk-inserted
// (in one transaction) with counters that match the bookings.
func seed(ctx context.Context, database *db.DB, services, bookings int) (*fixture, error) {
	huge := 1_000_000_000
	acct, err := database.CreateAccount(ctx, "loadtest", db.PlanGrowth, db.AccountLimits{Rate: &huge, Burst: &huge})
	if err != nil {
		return nil, err
	}
	_, secret, err := auth.Issue(ctx, database, acct.ID, nil, auth.KeySpec{Name: "loadtest"})
	if err != nil {
		return nil, err
	}
	f := &fixture{key: secret, accountID: acct.ID, base: time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 2)}
	for i := 0; i < services; i++ {
		inputs := make([]db.TimeSlotInput, slotsPerService)
		for j := range inputs {
			start := 8*60 + j*120 // 08:00, 10:00, … 16:00
			inputs[j] = db.TimeSlotInput{DayOfWeek: (i + j) % 7, StartMinute: start, EndMinute: start + 60, MaxBookings: 1_000_000}
		}
		name, tz := fmt.Sprintf("Service %d", i+1), zones[i%len(zones)]
		s, err := database.CreateService(ctx, acct.ID, db.ServiceInput{Name: &name, Timezone: &tz}, inputs)
		if err != nil {
			return nil, err
		}
		f.services = append(f.services, s)
	}
	ids := make([]int64, len(f.services))
	index := map[int64]int{}
	for i, s := range f.services {
		ids[i] = s.ID
		index[s.ID] = i
		f.slots = append(f.slots, nil)
	}
	all, err := database.TimeSlotsByServices(ctx, acct.ID, ids)
	if err != nil {
		return nil, err
	}
	for _, ts := range all {
		i := index[ts.ServiceID]
		f.slots[i] = append(f.slots[i], ts)
	}
	for i := range f.slots {
		if len(f.slots[i]) != slotsPerService {
			return nil, fmt.Errorf("service %d has %d slots", f.services[i].ID, len(f.slots[i]))
		}
		// TimeSlotsByServices orders by weekday; put them back in creation
		// order (each slot of a service has its own start time).
		slices.SortFunc(f.slots[i], func(a, b *db.TimeSlot) int { return a.StartMinute - b.StartMinute })
	}
	return f, database.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return seedBookings(ctx, tx, f, bookings)
	})
}

// seedBookings inserts bookings of distinct customers: booking i goes to
// occurrence i mod (slots × seedWeeks), so every occurrence of the next
// seedWeeks weeks holds a few. One in ten is cancelled (and not counted).
func seedBookings(ctx context.Context, tx bun.Tx, f *fixture, n int) error {
	type occKey struct {
		slot int64
		date string
	}
	booked := map[occKey]int{}
	occurrences := f.slotCount() * seedWeeks
	t := time.Now().UTC().Truncate(time.Microsecond)
	for start := 0; start < n; start += seedBatch {
		end := min(start+seedBatch, n)
		customers := make([]*db.Customer, 0, end-start)
		for i := start; i < end; i++ {
			name, email := fmt.Sprintf("Customer %d", i+1), fmt.Sprintf("seed-%d@example.com", i+1)
			customers = append(customers, &db.Customer{AccountID: f.accountID, Name: &name, Email: &email, CreatedAt: t, UpdatedAt: t})
		}
		if _, err := tx.NewInsert().Model(&customers).Exec(ctx); err != nil {
			return fmt.Errorf("insert customers: %w", err)
		}
		rows := make([]*db.Booking, 0, end-start)
		for i := start; i < end; i++ {
			o := i % occurrences
			ts := f.slotAt(o % f.slotCount())
			date := f.occurrenceDate(ts, o/f.slotCount())
			b := &db.Booking{
				AccountID: f.accountID, ServiceID: ts.ServiceID, TimeSlotID: ts.ID, Date: date,
				StartMinute: ts.StartMinute, Status: db.StatusPending, CustomerID: &customers[i-start].ID,
				CreatedAt: t, UpdatedAt: t,
			}
			switch {
			case i%10 == 9:
				reason := "seeded cancellation"
				b.Status, b.CancelReason = db.StatusCancelled, &reason
			case i%3 == 0:
				b.Status = db.StatusConfirmed
			}
			if b.Status != db.StatusCancelled {
				booked[occKey{ts.ID, date}]++
			}
			rows = append(rows, b)
		}
		if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
			return fmt.Errorf("insert bookings: %w", err)
		}
	}
	counters := make([]loadOccurrence, 0, len(booked))
	for k, v := range booked {
		counters = append(counters, loadOccurrence{TimeSlotID: k.slot, Date: k.date, Booked: v})
	}
	for start := 0; start < len(counters); start += seedBatch {
		batch := counters[start:min(start+seedBatch, len(counters))]
		if _, err := tx.NewInsert().Model(&batch).Exec(ctx); err != nil {
			return fmt.Errorf("insert occurrence counters: %w", err)
		}
	}
	return nil
}

// checkCounters verifies that every occurrence counter equals the number of
// non-cancelled bookings of its occurrence.
func checkCounters(ctx context.Context, database *db.DB) error {
	type row struct {
		TimeSlotID int64
		Date       string
		N          int
	}
	var fromBookings, fromCounters []row
	if err := database.NewRaw(`SELECT time_slot_id, date, COUNT(*) AS n FROM bookings WHERE status <> 'cancelled'
GROUP BY time_slot_id, date`).Scan(ctx, &fromBookings); err != nil {
		return err
	}
	if err := database.NewRaw(`SELECT time_slot_id, date, booked AS n FROM slot_occurrences WHERE booked > 0`).
		Scan(ctx, &fromCounters); err != nil {
		return err
	}
	type key struct {
		slot int64
		date string
	}
	want := make(map[key]int, len(fromBookings))
	for _, r := range fromBookings {
		want[key{r.TimeSlotID, r.Date}] = r.N
	}
	if len(fromCounters) != len(want) {
		return fmt.Errorf("occurrence counters inconsistent: %d occurrences have bookings, %d counters are positive", len(want), len(fromCounters))
	}
	for _, r := range fromCounters {
		if want[key{r.TimeSlotID, r.Date}] != r.N {
			return fmt.Errorf("occurrence counter of slot %d on %s is %d, but it has %d bookings",
				r.TimeSlotID, r.Date, r.N, want[key{r.TimeSlotID, r.Date}])
		}
	}
	return nil
}
