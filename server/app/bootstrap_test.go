package app_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/auth"
)

// The first start on an empty database creates the account "default" on
// plan growth and prints its key once, with the line that says to store
// it; later starts print nothing.
func TestBootstrap(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		ctx := context.Background()
		var first bytes.Buffer
		if err := app.Bootstrap(ctx, database, &first, "http://localhost:8080"); err != nil {
			t.Fatal(err)
		}
		secrets := regexp.MustCompile(`sk_rsv_[0-9A-Za-z]{38}`).FindAllString(first.String(), -1)
		if len(secrets) == 0 || !strings.Contains(first.String(), "Store it now") {
			t.Fatalf("first start printed:\n%s", first.String())
		}
		for _, s := range secrets[1:] {
			if s != secrets[0] {
				t.Fatalf("two different keys printed: %v", secrets)
			}
		}
		key, account, err := database.APIKeyByHash(ctx, auth.Hash(secrets[0]))
		if err != nil || account.Name != "default" || account.Plan != db.PlanGrowth || key.RevokedAt != nil {
			t.Fatalf("printed key %+v of account %+v: %v", key, account, err)
		}
		var second bytes.Buffer
		if err := app.Bootstrap(ctx, database, &second, "http://localhost:8080"); err != nil {
			t.Fatal(err)
		}
		if second.Len() != 0 {
			t.Fatalf("second start printed %q", second.String())
		}
		if n, _ := database.CountAccounts(ctx); n != 1 {
			t.Fatalf("%d accounts after two starts, want 1", n)
		}
	})
}
