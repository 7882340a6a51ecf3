// Package caller carries the authenticated caller (account and API key) in a
// request's context, from the auth middleware to the resolvers.
package caller

import (
	"context"
	"net/netip"

	"github.com/reservekit/reservekit/db"
)

// Caller is who made a request. A Caller is shared by every request made
// with the same key while it is cached: treat it as read-only.
type Caller struct {
	Account *db.Account
	Key     *db.APIKey
	// Networks are the key's AllowedCIDRs, parsed.
	Networks []netip.Prefix
}

// AccountID is the tenant every query of this request is scoped to.
func (c *Caller) AccountID() int64 { return c.Account.ID }

// HasScope reports whether the key may use scope (a key without scopes may
// use every scope).
func (c *Caller) HasScope(scope string) bool {
	return len(c.Key.Scopes) == 0 || c.Key.Scopes.Contains(scope)
}

// Actor names the key for the audit trail.
func (c *Caller) Actor() *db.Actor {
	return &db.Actor{KeyID: c.Key.ID, Prefix: c.Key.Prefix}
}

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
