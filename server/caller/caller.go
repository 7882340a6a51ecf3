// Package caller carries the authenticated caller (account and API key) in a
// request's context, from the auth middleware to the resolvers.
package caller

import (
	"context"

	"github.com/reservekit/reservekit/db"
)

// Caller is who made a request.
type Caller struct {
	Account *db.Account
	Key     *db.APIKey
}

// AccountID is the tenant every query of this request is scoped to.
func (c *Caller) AccountID() int64 { return c.Account.ID }

type ctxKey struct{}

// With returns ctx carrying c.
func With(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// From returns the caller of ctx, or nil for an unauthenticated context.
func From(ctx context.Context) *Caller {
	c, _ := ctx.Value(ctxKey{}).(*Caller)
	return c
}
