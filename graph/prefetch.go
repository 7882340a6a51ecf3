package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/reservekit/reservekit/db"
)

// Lists prefetch the children their selection asks for and prime the
// loaders with them, so nested resolvers answer from memory without waiting
// for a batch window. Nested lists without prefetching still batch through
// the loaders.

// selectedOnNodes returns the field names selected on the items of the
// connection being resolved: under nodes { … } and edges { node { … } }.
func selectedOnNodes(ctx context.Context) map[string]bool {
	opCtx := graphql.GetOperationContext(ctx)
	out := map[string]bool{}
	collect := func(set ast.SelectionSet) {
		for _, f := range graphql.CollectFields(opCtx, set, nil) {
			out[f.Name] = true
		}
	}
	for _, f := range graphql.CollectFields(opCtx, graphql.GetFieldContext(ctx).Field.Selections, nil) {
		switch f.Name {
		case "nodes":
			collect(f.Selections)
		case "edges":
			for _, e := range graphql.CollectFields(opCtx, f.Selections, nil) {
				if e.Name == "node" {
					collect(e.Selections)
				}
			}
		}
	}
	return out
}

func distinct[T any](rows []T, id func(T) (int64, bool)) []int64 {
	seen := map[int64]bool{}
	var out []int64
	for _, r := range rows {
		if v, ok := id(r); ok && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// prefetchBookingChildren loads the services, slots and customers of a page
// of bookings, one statement each, when the query selects them.
func (r *Resolver) prefetchBookingChildren(ctx context.Context, accountID int64, rows []*db.Booking) error {
	want := selectedOnNodes(ctx)
	l := loadersFrom(ctx)
	if want["service"] {
		ids := distinct(rows, func(b *db.Booking) (int64, bool) { return b.ServiceID, true })
		services, err := r.DB.ServicesByIDs(ctx, accountID, ids)
		if err != nil {
			return err
		}
		for _, s := range services {
			l.service.Prime(s.ID, s)
		}
	}
	if want["timeSlot"] {
		ids := distinct(rows, func(b *db.Booking) (int64, bool) { return b.TimeSlotID, true })
		slots, err := r.DB.TimeSlotsByIDs(ctx, accountID, ids)
		if err != nil {
			return err
		}
		for _, ts := range slots {
			l.timeSlot.Prime(ts.ID, ts)
		}
	}
	if want["customer"] {
		ids := distinct(rows, func(b *db.Booking) (int64, bool) {
			if b.CustomerID == nil {
				return 0, false
			}
			return *b.CustomerID, true
		})
		if len(ids) > 0 {
			customers, err := r.DB.CustomersByIDs(ctx, accountID, ids)
			if err != nil {
				return err
			}
			for _, c := range customers {
				l.customer.Prime(c.ID, c)
			}
		}
	}
	return nil
}

// prefetchServiceSlots loads the time slots of a page of services in one
// statement when the query selects them.
func (r *Resolver) prefetchServiceSlots(ctx context.Context, accountID int64, rows []*db.Service) error {
	if !selectedOnNodes(ctx)["timeSlots"] || len(rows) == 0 {
		return nil
	}
	ids := distinct(rows, func(s *db.Service) (int64, bool) { return s.ID, true })
	slots, err := r.DB.TimeSlotsByServices(ctx, accountID, ids)
	if err != nil {
		return err
	}
	byService := make(map[int64][]*db.TimeSlot, len(ids))
	for _, id := range ids {
		byService[id] = []*db.TimeSlot{}
	}
	for _, ts := range slots {
		byService[ts.ServiceID] = append(byService[ts.ServiceID], ts)
	}
	l := loadersFrom(ctx)
	for id, s := range byService {
		l.slotsOf.Prime(id, s)
	}
	return nil
}
