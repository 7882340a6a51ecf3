package db

import (
	"time"

	"github.com/uptrace/bun"
)

// Plan is an account's pricing plan; it decides the default rate limits.
type Plan string

// The plans ReserveKit publishes.
const (
	PlanStarter   Plan = "starter"
	PlanDeveloper Plan = "developer"
	PlanGrowth    Plan = "growth"
)

// Valid reports whether p is a known plan.
func (p Plan) Valid() bool {
	return p == PlanStarter || p == PlanDeveloper || p == PlanGrowth
}

// Account owns every other record. Rate, Burst and MonthlyQuota override the
// plan's numbers when set.
type Account struct {
	bun.BaseModel `bun:"table:accounts"`

	ID           int64 `bun:",pk,autoincrement"`
	Name         string
	Plan         Plan
	Rate         *int
	Burst        *int
	MonthlyQuota *int64
	CreatedAt    time.Time
}

// APIKey is a secret key of an account. Only the SHA-256 hash of the secret
// is stored; Prefix is a short, non-secret part for display.
type APIKey struct {
	bun.BaseModel `bun:"table:api_keys"`

	ID         int64 `bun:",pk,autoincrement"`
	AccountID  int64
	Name       string
	Prefix     string
	Hash       string
	Domain     *string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
	// ExpiresAt, when set, is when the key stops working.
	ExpiresAt *time.Time
	// Scopes limit what the key may do; empty means everything.
	Scopes StringList
	// AllowedCIDRs, when not empty, are the networks requests must come from.
	AllowedCIDRs StringList `bun:"allowed_cidrs"`
}

// Service is something customers can book.
type Service struct {
	bun.BaseModel `bun:"table:services"`

	ID          int64 `bun:",pk,autoincrement"`
	AccountID   int64
	Name        string
	Description string
	Timezone    string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TimeSlot is a weekly recurring window of a service. Times are minutes since
// local midnight in the service's timezone; DayOfWeek 0 is Sunday.
type TimeSlot struct {
	bun.BaseModel `bun:"table:time_slots"`

	ID          int64 `bun:",pk,autoincrement"`
	AccountID   int64
	ServiceID   int64
	DayOfWeek   int
	StartMinute int
	EndMinute   int
	MaxBookings int
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// BookingStatus is where a booking is in its life.
type BookingStatus string

// Booking statuses: pending → confirmed → cancelled, pending → cancelled.
const (
	StatusPending   BookingStatus = "pending"
	StatusConfirmed BookingStatus = "confirmed"
	StatusCancelled BookingStatus = "cancelled"
)

// Booking is one customer's place in one occurrence (time slot + date).
// StartMinute copies the slot's start so lists can be ordered by index.
type Booking struct {
	bun.BaseModel `bun:"table:bookings"`

	ID           int64 `bun:",pk,autoincrement"`
	AccountID    int64
	ServiceID    int64
	TimeSlotID   int64
	Date         string
	StartMinute  int
	Status       BookingStatus
	CancelReason *string
	Message      *string
	CustomerID   *int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Customer is a person who books; per account, matched by email when given.
type Customer struct {
	bun.BaseModel `bun:"table:customers"`

	ID        int64 `bun:",pk,autoincrement"`
	AccountID int64
	Name      *string
	Email     *string
	Phone     *string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// occurrence counts the non-cancelled bookings of one slot on one date; the
// guarded upsert on this row is what makes overbooking impossible.
type occurrence struct {
	bun.BaseModel `bun:"table:slot_occurrences"`

	TimeSlotID int64  `bun:",pk"`
	Date       string `bun:",pk"`
	Booked     int
}
