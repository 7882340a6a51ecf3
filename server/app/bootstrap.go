package app

import (
	"context"
	"fmt"
	"io"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/auth"
)

// Bootstrap gives an empty database an account "default" (plan growth) and
// one key, printed once to out. It does nothing once any account exists.
func Bootstrap(ctx context.Context, database *db.DB, out io.Writer, baseURL string) error {
	n, err := database.CountAccounts(ctx)
	if err != nil || n > 0 {
		return err
	}
	account, err := database.CreateAccount(ctx, "default", db.PlanGrowth, db.AccountLimits{})
	if err != nil {
		return err
	}
	_, secret, err := auth.Issue(ctx, database, account.ID, nil, auth.KeySpec{Name: "bootstrap"})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, `
================================================================================
 ReserveKit created the account "default" and its first API key:

     %s

 Store it now: it is shown only this once (only its hash is kept).
 Playground: %s/  (set the header  Authorization: Bearer <key>)
 Try it:
   curl -s %s/graphql -H "Authorization: Bearer %s" \
     -H "Content-Type: application/json" -d '{"query":"{ viewer { account { name plan } } }"}'
================================================================================

`, secret, baseURL, baseURL, secret)
	return nil
}
