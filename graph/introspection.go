package graph

import (
	"context"
	"regexp"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// noIntrospection refuses operations that select __schema or __type, with a
// client error (gqlgen's own refusal is a plain resolver error, which would
// be reported as an internal error).
type noIntrospection struct{}

var (
	_ graphql.HandlerExtension        = noIntrospection{}
	_ graphql.OperationContextMutator = noIntrospection{}
)

func (noIntrospection) ExtensionName() string                   { return "ReserveKitNoIntrospection" }
func (noIntrospection) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext refuses the operation if it introspects the schema.
func (noIntrospection) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	w := walker{vars: rc.Variables, doc: rc.Doc}
	for _, f := range w.fields(rc.Operation.SelectionSet) {
		if f.Name == "__schema" || f.Name == "__type" {
			return &gqlerror.Error{
				Message:    "Introspection is disabled on this server",
				Extensions: map[string]any{"code": "introspection_disabled", "field": f.Name},
			}
		}
	}
	return nil
}

// suggestion is the hint gqlparser appends to validation messages; it names
// fields, arguments, types and enum values of the schema.
var suggestion = regexp.MustCompile(`\s*Did you mean [^?]*\?$`)

// withoutSuggestions drops "Did you mean …?" hints from errors, which would
// reveal the schema when introspection is off. (gqlgen's own switch only
// covers field names.)
func withoutSuggestions(present graphql.ErrorPresenterFunc) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		e := present(ctx, err)
		e.Message = suggestion.ReplaceAllString(e.Message, "")
		return e
	}
}
