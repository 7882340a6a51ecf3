package auth

import (
	"context"
	"strings"

	"github.com/reservekit/reservekit/db"
)

// Issue creates a key for an account and returns it with its secret, which
// exists nowhere else afterwards.
func Issue(ctx context.Context, database *db.DB, accountID int64, name string, domain *string) (*db.APIKey, string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		name = "API key"
	}
	if len(name) > 200 {
		return nil, "", db.Errorf(db.CodeInvalidFieldFormat, "name", "name must be at most 200 characters")
	}
	if domain != nil {
		d, err := NormalizeDomain(*domain)
		if err != nil {
			return nil, "", err
		}
		domain = d
	}
	secret := NewSecret()
	key, err := database.CreateAPIKey(ctx, accountID, db.NewAPIKey{
		Name: name, Domain: domain, Prefix: DisplayPrefix(secret), Hash: Hash(secret),
	})
	if err != nil {
		return nil, "", err
	}
	return key, secret, nil
}

// Issue creates a key for an account (see the package function Issue).
func (v *Verifier) Issue(ctx context.Context, accountID int64, name string, domain *string) (*db.APIKey, string, error) {
	return Issue(ctx, v.db, accountID, name, domain)
}
