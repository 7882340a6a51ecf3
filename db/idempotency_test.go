package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
)

// A claim lives for its TTL: until then the key is taken, even for another
// body; after it, the key may be claimed afresh, and pruning removes it.
func TestIdempotencyKeyExpiry(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		ctx := context.Background()
		a, err := database.CreateAccount(ctx, "acme", db.PlanGrowth, db.AccountLimits{})
		if err != nil {
			t.Fatal(err)
		}
		const ttl = time.Second
		if claimed, _, err := database.ClaimIdempotencyKey(ctx, a.ID, "k", "hash-1", ttl); err != nil || !claimed {
			t.Fatalf("first claim: %v, %v", claimed, err)
		}
		if err := database.CompleteIdempotencyKey(ctx, a.ID, "k", 200, "application/json", `{"data":{}}`); err != nil {
			t.Fatal(err)
		}
		claimed, existing, err := database.ClaimIdempotencyKey(ctx, a.ID, "k", "hash-2", ttl)
		if err != nil || claimed || existing == nil || existing.RequestHash != "hash-1" || !existing.Done {
			t.Fatalf("claim within the TTL: claimed %v, existing %+v, %v", claimed, existing, err)
		}
		other, err := database.CreateAccount(ctx, "other", db.PlanGrowth, db.AccountLimits{})
		if err != nil {
			t.Fatal(err)
		}
		if claimed, _, err := database.ClaimIdempotencyKey(ctx, other.ID, "k", "hash-1", time.Hour); err != nil || !claimed {
			t.Fatalf("the same key of another account: %v, %v", claimed, err)
		}

		time.Sleep(ttl + 50*time.Millisecond)
		if n, err := database.PruneIdempotencyKeys(ctx); err != nil || n != 1 {
			t.Fatalf("pruned %d (%v), want the 1 expired claim", n, err)
		}
		if _, err := database.IdempotencyKey(ctx, a.ID, "k"); db.ErrorCode(err) != db.CodeResourceNotFound {
			t.Fatalf("pruned claim still there: %v", err)
		}
		if _, err := database.IdempotencyKey(ctx, other.ID, "k"); err != nil {
			t.Fatalf("the other account's live claim was pruned: %v", err)
		}
		if claimed, _, err := database.ClaimIdempotencyKey(ctx, a.ID, "k", "hash-2", ttl); err != nil || !claimed {
			t.Fatalf("claim after expiry: %v, %v", claimed, err)
		}
		// An expired claim is replaced by a new claim even before pruning.
		time.Sleep(ttl + 50*time.Millisecond)
		if claimed, _, err := database.ClaimIdempotencyKey(ctx, a.ID, "k", "hash-3", ttl); err != nil || !claimed {
			t.Fatalf("claim over an expired, unpruned claim: %v, %v", claimed, err)
		}
	})
}
