package auth

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/caller"
)

// Scopes a key may carry. A key without scopes has all of them.
var Scopes = []string{
	"services:read", "services:write", "bookings:read", "bookings:write",
	"webhooks:manage", "keys:manage", "logs:read",
}

// KeySpec describes a key to create.
type KeySpec struct {
	Name         string
	Domain       *string
	Scopes       []string
	AllowedCIDRs []string
	ExpiresAt    *time.Time
}

// validate normalizes the spec and checks that by (nil: the command line)
// may grant it: a key can never create a key with more scopes than it has.
func (s *KeySpec) validate(by *caller.Caller, now time.Time) (db.NewAPIKey, error) {
	var out db.NewAPIKey
	out.Name = strings.TrimSpace(s.Name)
	if out.Name == "" {
		out.Name = "API key"
	}
	if len(out.Name) > 200 {
		return out, db.Errorf(db.CodeInvalidFieldFormat, "name", "name must be at most 200 characters")
	}
	if s.Domain != nil {
		d, err := NormalizeDomain(*s.Domain)
		if err != nil {
			return out, err
		}
		out.Domain = d
	}
	for i, sc := range s.Scopes {
		sc = strings.TrimSpace(sc)
		if !db.StringList(Scopes).Contains(sc) {
			return out, db.Errorf(db.CodeInvalidFieldFormat, "scopes", "scopes[%d]: unknown scope %q (known: %s)", i, sc, strings.Join(Scopes, ", "))
		}
		if !out.Scopes.Contains(sc) {
			out.Scopes = append(out.Scopes, sc)
		}
	}
	if by != nil && len(by.Key.Scopes) > 0 && len(out.Scopes) == 0 {
		out.Scopes = append(out.Scopes, by.Key.Scopes...) // default: the caller's own scopes
	}
	if err := mayGrant(by, out.Scopes); err != nil {
		return out, err
	}
	for i, cidr := range s.AllowedCIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(cidr))
		if err != nil {
			return out, db.Errorf(db.CodeInvalidFieldFormat, "allowedCidrs", "allowedCidrs[%d]: %q is not a CIDR such as 203.0.113.0/24 or 2001:db8::/32", i, cidr)
		}
		out.AllowedCIDRs = append(out.AllowedCIDRs, p.Masked().String())
	}
	if s.ExpiresAt != nil {
		if !s.ExpiresAt.After(now) {
			return out, db.Errorf(db.CodeInvalidFieldFormat, "expiresAt", "expiresAt must be in the future")
		}
		t := s.ExpiresAt.UTC()
		out.ExpiresAt = &t
	}
	return out, nil
}

// mayGrant checks that by (nil: the command line) holds every scope of a
// key it creates or rolls; a key without scopes has them all.
func mayGrant(by *caller.Caller, scopes db.StringList) error {
	if by == nil || len(by.Key.Scopes) == 0 {
		return nil
	}
	if len(scopes) == 0 {
		return &db.Error{Code: CodeInsufficientScope, Field: "scopes", Status: 403,
			Message: "this API key has scopes and cannot grant full access"}
	}
	for _, sc := range scopes {
		if !by.HasScope(sc) {
			return &db.Error{Code: CodeInsufficientScope, Field: "scopes", Status: 403,
				Message: "this API key cannot grant the scope " + sc + " it does not have"}
		}
	}
	return nil
}

// CodeInsufficientScope is the error code of a field the key's scopes do not cover.
const CodeInsufficientScope = "insufficient_scope"

// Issue creates a key for an account on behalf of by (nil: the command
// line) and returns it with its secret, which exists nowhere else afterwards.
func Issue(ctx context.Context, database *db.DB, accountID int64, by *caller.Caller, spec KeySpec) (*db.APIKey, string, error) {
	in, err := spec.validate(by, time.Now())
	if err != nil {
		return nil, "", err
	}
	secret := NewSecret()
	in.Prefix, in.Hash = DisplayPrefix(secret), Hash(secret)
	var actor *db.Actor
	if by != nil {
		actor = by.Actor()
	}
	key, err := database.CreateAPIKey(ctx, accountID, actor, in)
	if err != nil {
		return nil, "", err
	}
	return key, secret, nil
}

// Issue creates a key for the caller's account (see the package function).
func (v *Verifier) Issue(ctx context.Context, by *caller.Caller, spec KeySpec) (*db.APIKey, string, error) {
	return Issue(ctx, v.db, by.AccountID(), by, spec)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
