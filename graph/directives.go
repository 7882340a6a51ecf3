package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/auth"
	"github.com/reservekit/reservekit/server/caller"
)

// directives enforces API-key scopes declared in the schema.
func (r *Resolver) directives() DirectiveRoot {
	return DirectiveRoot{
		HasScope: r.hasScope,
		Public: func(ctx context.Context, _ any, next graphql.Resolver) (any, error) {
			return next(ctx)
		},
	}
}

// hasScope refuses a field the key's scopes do not cover, and records the
// refusal in the audit trail.
func (r *Resolver) hasScope(ctx context.Context, _ any, next graphql.Resolver, scope string) (any, error) {
	c := caller.From(ctx)
	if c.HasScope(scope) {
		return next(ctx)
	}
	field := graphql.GetFieldContext(ctx).Field.Name
	if err := r.DB.RecordAudit(ctx, c.AccountID(), c.Actor(), db.AuditScopeDenied, scope+" for "+field); err != nil {
		return nil, err
	}
	return nil, &db.Error{Code: auth.CodeInsufficientScope, Status: 403,
		Message: "this API key lacks the scope " + scope + " needed for " + field}
}
