// Package graph serves the GraphQL schema: gqlgen's generated executor, thin
// resolvers that call db, error mapping, dataloaders and scalars.
package graph

//go:generate go run github.com/99designs/gqlgen generate

import (
	"context"
	"log/slog"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/graph/model"
	"github.com/reservekit/reservekit/server/auth"
	"github.com/reservekit/reservekit/server/caller"
	"github.com/reservekit/reservekit/server/events"
	"github.com/reservekit/reservekit/server/secretbox"
)

// Resolver is the root resolver; it holds the dependencies resolvers share.
type Resolver struct {
	DB *db.DB
	// Keys issues, rolls and revokes keys; it owns the key format and the
	// verification cache that revocations must reach.
	Keys *auth.Verifier
	// Secrets seals webhook signing secrets for storage.
	Secrets *secretbox.Box
	// Webhooks checks webhook URLs and sends test deliveries.
	Webhooks WebhookSender
	// Events feeds the bookingEvents subscriptions.
	Events *events.Broker
	// Log receives what resolvers log besides errors they return.
	Log *slog.Logger
}

// WebhookSender is what the webhook resolvers need from the dispatcher.
type WebhookSender interface {
	// CheckURL refuses a URL whose host is not allowed (private, loopback,
	// link-local or metadata addresses unless allowed), as a *db.Error.
	CheckURL(ctx context.Context, rawURL string) error
	// DeliverNow makes one attempt of a delivery that the caller has
	// leased, and records it.
	DeliverNow(ctx context.Context, d *db.Delivery) error
}

// account is the tenant of the request; the auth middleware guarantees a
// caller before any resolver runs.
func account(ctx context.Context) int64 { return caller.From(ctx).AccountID() }

// actor is the calling key, for the audit trail.
func actor(ctx context.Context) *db.Actor { return caller.From(ctx).Actor() }

// nullIfNotFound turns "not found" of a nullable lookup into null.
func nullIfNotFound[T any](v *T, err error) (*T, error) {
	switch db.ErrorCode(err) {
	case db.CodeServiceNotFound, db.CodeBookingNotFound, db.CodeTimeSlotNotFound, db.CodeWebhookNotFound:
		return nil, nil
	}
	return v, err
}

func slotInput(ts *model.TimeSlotInput) db.TimeSlotInput {
	return db.TimeSlotInput{
		ID: ts.ID, DayOfWeek: ts.DayOfWeek, StartMinute: ts.StartTime,
		EndMinute: ts.EndTime, MaxBookings: ts.MaxBookings,
	}
}
