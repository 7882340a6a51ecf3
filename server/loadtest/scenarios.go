package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/reservekit/reservekit/db"
)

// scenario is one operation driven at a fixed concurrency.
type scenario struct {
	// name identifies it in -scenarios and in the pprof label "scenario".
	name string
	// title is its row in the table.
	title string
	// body is the JSON body of the scenario's n-th request (n from 0, never
	// repeated, warm-up included).
	body func(n int64) []byte
	next atomic.Int64
}

var scenarioTitles = []struct{ name, title string }{
	{"services", "`services(first: 20)` + timeSlots"},
	{"bookings", "`bookings(first: 50)` + customer, service"},
	{"availability", "`availability` (1 service, 30 days)"},
	{"createBooking", "`createBooking` (distinct occurrences)"},
	{"createBookingContended", "`createBooking` (one occurrence, contended)"},
}

func scenarioNames() []string {
	out := make([]string, len(scenarioTitles))
	for i, s := range scenarioTitles {
		out[i] = s.name
	}
	return out
}

func selectScenarios(list string) (map[string]bool, error) {
	out := map[string]bool{}
	if strings.TrimSpace(list) == "" {
		for _, n := range scenarioNames() {
			out[n] = true
		}
		return out, nil
	}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		known := false
		for _, k := range scenarioNames() {
			known = known || k == n
		}
		if !known {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", n, strings.Join(scenarioNames(), ", "))
		}
		out[n] = true
	}
	return out, nil
}

func gqlBody(query string, vars map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		panic(err)
	}
	return b
}

const (
	qServices = `query Services { services(first: 20) { nodes { id name timeSlots { dayOfWeek startTime endTime } } } }`
	qBookings = `query Bookings { bookings(first: 50) { nodes { id date status customer { email } service { name } } } }`
	qAvail    = `query Availability($id: ID!, $from: Date!, $to: Date!) { availability(serviceId: $id, from: $from, to: $to) {
  date startsAt endsAt capacity booked remaining timeSlot { id startTime } } }`
	qCreate = `mutation CreateBooking($in: CreateBookingInput!) { createBooking(input: $in) { id date status } }`
)

// createBody books customer email into slot ts on date.
func createBody(ts *db.TimeSlot, date, email string) []byte {
	return gqlBody(qCreate, map[string]any{"in": map[string]any{
		"timeSlotId": fmt.Sprint(ts.ID), "date": date, "customerEmail": email, "customerName": "Load Test",
	}})
}

func buildScenarios(f *fixture, selected map[string]bool) []*scenario {
	services := gqlBody(qServices, nil)
	bookings := gqlBody(qBookings, nil)
	from := f.base.AddDate(0, 0, -1)
	avail := gqlBody(qAvail, map[string]any{
		"id": fmt.Sprint(f.services[0].ID), "from": from.Format(db.DateLayout), "to": from.AddDate(0, 0, 29).Format(db.DateLayout),
	})
	contendedSlot := f.slots[1][0]
	contendedDate := f.occurrenceDate(contendedSlot, contendedWeek)
	bodies := map[string]func(n int64) []byte{
		"services":     func(int64) []byte { return services },
		"bookings":     func(int64) []byte { return bookings },
		"availability": func(int64) []byte { return avail },
		// Request n books occurrence n (each slot, then the next week): a
		// new occurrence every time, on every service.
		"createBooking": func(n int64) []byte {
			k := int(n % int64(f.slotCount()))
			week := firstFreeWeek + int(n/int64(f.slotCount()))
			ts := f.slotAt(k)
			return createBody(ts, f.occurrenceDate(ts, week), fmt.Sprintf("book-%d@example.com", n))
		},
		// Every request books the same occurrence (capacity 1 000 000).
		"createBookingContended": func(n int64) []byte {
			return createBody(contendedSlot, contendedDate, fmt.Sprintf("contended-%d@example.com", n))
		},
	}
	var out []*scenario
	for _, s := range scenarioTitles {
		if selected[s.name] {
			out = append(out, &scenario{name: s.name, title: s.title, body: bodies[s.name]})
		}
	}
	return out
}
