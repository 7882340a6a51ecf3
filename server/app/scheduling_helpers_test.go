package app_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/app/apptest"
)

// Shared helpers of the scheduling tests (time slots, availability,
// bookings, concurrency). Names carry a "sched"/"gql" flavour so they do not
// collide with helpers other test files of the package define.

// schedNY is the timezone most scheduling tests use (it has DST).
const schedNY = "America/New_York"

// GraphQL documents used by several scheduling tests.
const (
	slotFields    = `id serviceId dayOfWeek startTime endTime maxBookings`
	bookingFields = `id date status cancelReason message timeSlot { id } service { id } customer { id name email phone }`

	gqlCreateServiceWithSlots = `mutation($input: CreateServiceInput!) {
		createService(input: $input) { id timezone timeSlots { ` + slotFields + ` } } }`
	gqlServiceSlots = `query($id: ID!) { service(id: $id) { id timeSlots { ` + slotFields + ` } } }`
	gqlUpsertSlots  = `mutation($serviceId: ID!, $slots: [TimeSlotInput!]!) {
		upsertTimeSlots(serviceId: $serviceId, timeSlots: $slots) { ` + slotFields + ` } }`
	gqlCreateBooking = `mutation($input: CreateBookingInput!) { createBooking(input: $input) { ` + bookingFields + ` } }`
	gqlUpdateBooking = `mutation($id: ID!, $input: UpdateBookingInput!) { updateBooking(id: $id, input: $input) { ` + bookingFields + ` } }`
	gqlCancelBooking = `mutation($id: ID!, $reason: String!) { cancelBooking(id: $id, reason: $reason) { ` + bookingFields + ` } }`
	gqlBooking       = `query($id: ID!) { booking(id: $id) { ` + bookingFields + ` } }`
	gqlAvailability  = `query($serviceId: ID!, $from: Date!, $to: Date!) {
		availability(serviceId: $serviceId, from: $from, to: $to) {
			date timeSlot { id dayOfWeek startTime } startsAt endsAt capacity booked remaining } }`
	gqlServiceCount = `{ services(first: 1) { totalCount } }`
)

// schedSlot is a TimeSlot as the API returns it.
type schedSlot struct {
	ID          string
	ServiceID   string
	DayOfWeek   int
	StartTime   string
	EndTime     string
	MaxBookings int
}

// schedService is a service with its slots.
type schedService struct {
	ID        string
	Timezone  string
	TimeSlots []schedSlot
}

type schedCustomer struct {
	ID    string
	Name  *string
	Email *string
	Phone *string
}

// schedBooking is a Booking as bookingFields selects it.
type schedBooking struct {
	ID           string
	Date         string
	Status       string
	CancelReason *string
	Message      *string
	TimeSlot     struct{ ID string }
	Service      struct{ ID string }
	Customer     *schedCustomer
}

// schedOccurrence is one AvailableSlot.
type schedOccurrence struct {
	Date     string
	TimeSlot struct {
		ID        string
		DayOfWeek int
		StartTime string
	}
	StartsAt  string
	EndsAt    string
	Capacity  int
	Booked    int
	Remaining int
}

// slotIn is a TimeSlotInput without id.
func slotIn(day int, start, end string, maxBookings int) map[string]any {
	return map[string]any{"dayOfWeek": day, "startTime": start, "endTime": end, "maxBookings": maxBookings}
}

// slotUpd is a TimeSlotInput that updates the slot id.
func slotUpd(id string, day int, start, end string, maxBookings int) map[string]any {
	m := slotIn(day, start, end, maxBookings)
	m["id"] = id
	return m
}

// newSchedEnv starts a server on database and returns it with a key of a
// fresh account.
func newSchedEnv(t *testing.T, database *db.DB) (*apptest.Env, string) {
	t.Helper()
	e := apptest.New(t, database, nil)
	return e, e.Account("sched-" + t.Name())
}

// mustCreateService creates a service in tz with the given slots (from
// slotIn) and returns it with its slots ordered as the API orders them.
func mustCreateService(t *testing.T, e *apptest.Env, key, tz string, slots ...map[string]any) schedService {
	t.Helper()
	if slots == nil {
		slots = []map[string]any{}
	}
	var out struct{ CreateService schedService }
	e.MustData(key, gqlCreateServiceWithSlots, map[string]any{"input": map[string]any{
		"name": "Service " + tz, "timezone": tz, "timeSlots": slots,
	}}, &out)
	if len(out.CreateService.TimeSlots) != len(slots) {
		t.Fatalf("createService returned %d slots, want %d", len(out.CreateService.TimeSlots), len(slots))
	}
	return out.CreateService
}

// serviceSlots reads Service.timeSlots.
func serviceSlots(t *testing.T, e *apptest.Env, key, serviceID string) []schedSlot {
	t.Helper()
	var out struct{ Service *schedService }
	e.MustData(key, gqlServiceSlots, map[string]any{"id": serviceID}, &out)
	if out.Service == nil {
		t.Fatalf("service %s not found", serviceID)
	}
	return out.Service.TimeSlots
}

// serviceCount is the account's number of services.
func serviceCount(t *testing.T, e *apptest.Env, key string) int {
	t.Helper()
	var out struct{ Services struct{ TotalCount int } }
	e.MustData(key, gqlServiceCount, nil, &out)
	return out.Services.TotalCount
}

// bookingInput builds a CreateBookingInput with an email customer.
func bookingInput(slotID, date, email string) map[string]any {
	in := map[string]any{"timeSlotId": slotID, "date": date}
	if email != "" {
		in["customerEmail"] = email
	}
	return in
}

// doCreateBooking runs createBooking with input.
func doCreateBooking(e *apptest.Env, key string, input map[string]any) *apptest.Response {
	return e.Do(key, gqlCreateBooking, map[string]any{"input": input})
}

// mustBook books slotID on date for email and returns the booking.
func mustBook(t *testing.T, e *apptest.Env, key, slotID, date, email string) schedBooking {
	t.Helper()
	var out struct{ CreateBooking schedBooking }
	e.MustData(key, gqlCreateBooking, map[string]any{"input": bookingInput(slotID, date, email)}, &out)
	return out.CreateBooking
}

// mustCancel cancels a booking.
func mustCancel(t *testing.T, e *apptest.Env, key, id string) schedBooking {
	t.Helper()
	var out struct{ CancelBooking schedBooking }
	e.MustData(key, gqlCancelBooking, map[string]any{"id": id, "reason": "test"}, &out)
	return out.CancelBooking
}

// getBooking reads booking(id); nil when the API answers null.
func getBooking(t *testing.T, e *apptest.Env, key, id string) *schedBooking {
	t.Helper()
	var out struct{ Booking *schedBooking }
	e.MustData(key, gqlBooking, map[string]any{"id": id}, &out)
	return out.Booking
}

// availability runs the availability query.
func availability(t *testing.T, e *apptest.Env, key, serviceID, from, to string) []schedOccurrence {
	t.Helper()
	var out struct{ Availability []schedOccurrence }
	e.MustData(key, gqlAvailability, map[string]any{"serviceId": serviceID, "from": from, "to": to}, &out)
	return out.Availability
}

// occurrenceOf finds the occurrence of slotID on date in an availability answer.
func occurrenceOf(t *testing.T, occ []schedOccurrence, slotID, date string) schedOccurrence {
	t.Helper()
	for _, o := range occ {
		if o.TimeSlot.ID == slotID && o.Date == date {
			return o
		}
	}
	t.Fatalf("no occurrence of slot %s on %s in %+v", slotID, date, occ)
	return schedOccurrence{}
}

// wantError asserts that r failed with code and, when field is not "",
// extensions.field; with no data for the failing field.
func wantError(t *testing.T, r *apptest.Response, code, field string) {
	t.Helper()
	if len(r.Errors) == 0 {
		t.Fatalf("want error %s (field %q), got success: %s", code, field, r.Raw)
	}
	if r.Code() != code {
		t.Fatalf("want code %s, got %q: %s", code, r.Code(), r.Raw)
	}
	if field != "" && r.Field() != field {
		t.Fatalf("want field %q, got %q: %s", field, r.Field(), r.Raw)
	}
	if r.Status != http.StatusOK && r.Status != http.StatusBadRequest && r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("unexpected HTTP status %d: %s", r.Status, r.Raw)
	}
}

// errStatus is extensions.status of the first error (0 when absent).
func errStatus(r *apptest.Response) int {
	if len(r.Errors) == 0 {
		return 0
	}
	f, _ := r.Errors[0].Extensions["status"].(float64)
	return int(f)
}

// localToday is today's date in tz at midnight UTC (a calendar date).
func localToday(tz string) time.Time {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		panic(err)
	}
	y, m, d := time.Now().In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// nextDate returns a YYYY-MM-DD date at least 7 days after today in tz that
// falls on weekday.
func nextDate(tz string, weekday time.Weekday) string {
	d := localToday(tz).AddDate(0, 0, 7)
	for d.Weekday() != weekday {
		d = d.AddDate(0, 0, 1)
	}
	return d.Format(db.DateLayout)
}

// nextDateIn returns the first date at least 7 days after today in tz that
// falls on weekday in month.
func nextDateIn(tz string, weekday time.Weekday, month time.Month) string {
	d := localToday(tz).AddDate(0, 0, 7)
	for d.Weekday() != weekday || d.Month() != month {
		d = d.AddDate(0, 0, 1)
	}
	return d.Format(db.DateLayout)
}

// addDays shifts a YYYY-MM-DD date by n days.
func addDays(date string, n int) string {
	d, err := time.Parse(db.DateLayout, date)
	if err != nil {
		panic(err)
	}
	return d.AddDate(0, 0, n).Format(db.DateLayout)
}

// pastDate returns a date at least 7 days ago that falls on weekday in tz.
func pastDate(tz string, weekday time.Weekday) string {
	d := localToday(tz).AddDate(0, 0, -7)
	for d.Weekday() != weekday {
		d = d.AddDate(0, 0, -1)
	}
	return d.Format(db.DateLayout)
}

// mustInt64 parses a GraphQL ID.
func mustInt64(t testing.TB, id string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(id, &n); err != nil {
		t.Fatalf("id %q: %v", id, err)
	}
	return n
}

// occurrenceCount is the db's counter of non-cancelled bookings of an occurrence.
func occurrenceCount(t testing.TB, database *db.DB, slotID, date string) int {
	t.Helper()
	n, err := database.OccurrenceCount(context.Background(), mustInt64(t, slotID), date)
	if err != nil {
		t.Fatalf("occurrence count: %v", err)
	}
	return n
}

// queryCounter is a bun query hook that counts SQL statements.
type queryCounter struct{ n atomic.Int64 }

var _ bun.QueryHook = (*queryCounter)(nil)

func (c *queryCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (c *queryCounter) AfterQuery(context.Context, *bun.QueryEvent) { c.n.Add(1) }

// Count is how many statements ran so far.
func (c *queryCounter) Count() int64 { return c.n.Load() }

// withQueryCounter returns a copy of database whose statements are counted
// (the pool is shared; the original stays without the hook).
func withQueryCounter(database *db.DB) (*db.DB, *queryCounter) {
	c := &queryCounter{}
	counted := *database
	counted.DB = database.DB.WithQueryHook(c)
	return &counted, c
}

// deref shows an optional string ("<nil>" when absent).
func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// gqlListBookings pages the bookings listing with every filter.
const gqlListBookings = `query($serviceId: ID, $status: BookingStatus, $from: Date, $to: Date, $first: Int, $after: String) {
	bookings(serviceId: $serviceId, status: $status, from: $from, to: $to, first: $first, after: $after) {
		totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id date } } nodes { id } } }`

// bookingPage is one page of a BookingConnection.
type bookingPage struct {
	TotalCount int
	PageInfo   struct {
		HasNextPage bool
		EndCursor   *string
	}
	Edges []struct {
		Cursor string
		Node   struct{ ID, Date string }
	}
	Nodes []struct{ ID string }
}

// ids lists the page's booking ids in order.
func (p bookingPage) ids() []string {
	out := make([]string, len(p.Edges))
	for i, e := range p.Edges {
		out[i] = e.Node.ID
	}
	return out
}
