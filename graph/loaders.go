package graph

import (
	"context"
	"time"

	"github.com/vikstrous/dataloadgen"

	"github.com/reservekit/reservekit/db"
)

// loaderWait is how long a loader collects keys before it queries. gqlgen
// starts the nested resolvers of a list's items together, so a short wait
// already catches all of them; the library's 16 ms default would be a
// latency floor per nesting level.
const loaderWait = time.Millisecond

// loaders batch the nested fields of one request into one query per field.
type loaders struct {
	service    *dataloadgen.Loader[int64, *db.Service]
	timeSlot   *dataloadgen.Loader[int64, *db.TimeSlot]
	customer   *dataloadgen.Loader[int64, *db.Customer]
	slotsOf    *dataloadgen.Loader[int64, []*db.TimeSlot]
	bookingsOf *dataloadgen.Loader[serviceBookingsKey, []*db.Booking]
}

// serviceBookingsKey asks for a page of one service's bookings; services
// asked with the same filter are loaded together.
type serviceBookingsKey struct {
	serviceID int64
	filter    bookingsFilterKey
}

type bookingsFilterKey struct {
	status   db.BookingStatus
	from, to string
	first    int
	after    db.BookingCursor
}

func (k bookingsFilterKey) filter() db.BookingFilter {
	f := db.BookingFilter{First: k.first}
	if k.status != "" {
		f.Status = &k.status
	}
	if k.from != "" {
		f.From = &k.from
	}
	if k.to != "" {
		f.To = &k.to
	}
	if k.after.ID != 0 {
		f.After = &k.after
	}
	return f
}

func byID[T any](rows []T, id func(T) int64) map[int64]T {
	m := make(map[int64]T, len(rows))
	for _, r := range rows {
		m[id(r)] = r
	}
	return m
}

func newLoaders(database *db.DB, accountID int64) *loaders {
	wait := dataloadgen.WithWait(loaderWait)
	return &loaders{
		service: dataloadgen.NewMappedLoader(func(ctx context.Context, ids []int64) (map[int64]*db.Service, error) {
			rows, err := database.ServicesByIDs(ctx, accountID, ids)
			return byID(rows, func(s *db.Service) int64 { return s.ID }), err
		}, wait),
		timeSlot: dataloadgen.NewMappedLoader(func(ctx context.Context, ids []int64) (map[int64]*db.TimeSlot, error) {
			rows, err := database.TimeSlotsByIDs(ctx, accountID, ids)
			return byID(rows, func(s *db.TimeSlot) int64 { return s.ID }), err
		}, wait),
		customer: dataloadgen.NewMappedLoader(func(ctx context.Context, ids []int64) (map[int64]*db.Customer, error) {
			rows, err := database.CustomersByIDs(ctx, accountID, ids)
			return byID(rows, func(c *db.Customer) int64 { return c.ID }), err
		}, wait),
		slotsOf: dataloadgen.NewMappedLoader(func(ctx context.Context, ids []int64) (map[int64][]*db.TimeSlot, error) {
			rows, err := database.TimeSlotsByServices(ctx, accountID, ids)
			out := make(map[int64][]*db.TimeSlot, len(ids))
			for _, id := range ids {
				out[id] = []*db.TimeSlot{}
			}
			for _, ts := range rows {
				out[ts.ServiceID] = append(out[ts.ServiceID], ts)
			}
			return out, err
		}, wait),
		bookingsOf: dataloadgen.NewMappedLoader(func(ctx context.Context, keys []serviceBookingsKey) (map[serviceBookingsKey][]*db.Booking, error) {
			out := make(map[serviceBookingsKey][]*db.Booking, len(keys))
			groups := map[bookingsFilterKey][]int64{}
			for _, k := range keys {
				groups[k.filter] = append(groups[k.filter], k.serviceID)
				out[k] = []*db.Booking{}
			}
			for fk, ids := range groups {
				rows, err := database.ListBookingsForServices(ctx, accountID, ids, fk.filter())
				if err != nil {
					return nil, err
				}
				for _, b := range rows {
					k := serviceBookingsKey{b.ServiceID, fk}
					out[k] = append(out[k], b)
				}
			}
			return out, nil
		}, wait),
	}
}

type loadersKey struct{}

// WithLoaders gives a request its own loaders, scoped to the caller's account.
func WithLoaders(ctx context.Context, database *db.DB, accountID int64) context.Context {
	return context.WithValue(ctx, loadersKey{}, newLoaders(database, accountID))
}

func loadersFrom(ctx context.Context) *loaders {
	return ctx.Value(loadersKey{}).(*loaders)
}
