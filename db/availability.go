package db

import (
	"context"
	"time"

	"github.com/uptrace/bun"
)

// MaxAvailabilityDays is the longest range availability answers, in days.
const MaxAvailabilityDays = 92

// Occurrence is one concrete, bookable occurrence of a slot on a date.
type Occurrence struct {
	Date     string
	TimeSlot *TimeSlot
	StartsAt time.Time
	EndsAt   time.Time
	Capacity int
	Booked   int
}

// Remaining is how many more bookings the occurrence takes.
func (o *Occurrence) Remaining() int { return max(o.Capacity-o.Booked, 0) }

// Availability lists the occurrences of a service's slots from..to
// (inclusive) that have not started yet, in three statements whatever the range.
func (db *DB) Availability(ctx context.Context, accountID, serviceID int64, from, to string) ([]*Occurrence, error) {
	fromDate, err := ParseDate("from", from)
	if err != nil {
		return nil, err
	}
	toDate, err := ParseDate("to", to)
	if err != nil {
		return nil, err
	}
	if toDate.Before(fromDate) {
		return nil, Errorf(CodeInvalidRequest, "to", "to must not be before from")
	}
	if days := int(toDate.Sub(fromDate).Hours()/24) + 1; days > MaxAvailabilityDays {
		return nil, Errorf(CodeInvalidRequest, "to", "the range covers %d days; at most %d are allowed", days, MaxAvailabilityDays)
	}
	s, err := db.Service(ctx, accountID, serviceID)
	if err != nil {
		return nil, err
	}
	loc, err := LoadLocation(s.Timezone)
	if err != nil {
		return nil, err
	}
	var slots []*TimeSlot
	if err := db.NewSelect().Model(&slots).Where("service_id = ?", s.ID).
		OrderExpr("day_of_week ASC, start_minute ASC").Scan(ctx); err != nil {
		return nil, err
	}
	if len(slots) == 0 {
		return []*Occurrence{}, nil
	}
	ids := make([]int64, len(slots))
	for i, ts := range slots {
		ids[i] = ts.ID
	}
	var counts []occurrence
	if err := db.NewSelect().Model(&counts).
		Where("time_slot_id IN (?) AND date >= ? AND date <= ?", bun.In(ids), from, to).Scan(ctx); err != nil {
		return nil, err
	}
	type key struct {
		slot int64
		date string
	}
	booked := make(map[key]int, len(counts))
	for _, c := range counts {
		booked[key{c.TimeSlotID, c.Date}] = c.Booked
	}
	nowT := time.Now()
	out := []*Occurrence{}
	for d := fromDate; !d.After(toDate); d = d.AddDate(0, 0, 1) {
		date := d.Format(DateLayout)
		for _, ts := range slots {
			if ts.DayOfWeek != int(d.Weekday()) {
				continue
			}
			start := OccurrenceStart(d, ts.StartMinute, loc)
			if !start.After(nowT) {
				continue
			}
			out = append(out, &Occurrence{
				Date: date, TimeSlot: ts, StartsAt: start.UTC(),
				EndsAt:   OccurrenceStart(d, ts.EndMinute, loc).UTC(),
				Capacity: ts.MaxBookings, Booked: booked[key{ts.ID, date}],
			})
		}
	}
	return out, nil
}
