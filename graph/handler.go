package graph

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/caller"
	"github.com/reservekit/reservekit/server/respond"
)

// NewHandler serves GraphQL over HTTP (POST with JSON, GET for queries) for
// requests that the auth middleware has already authenticated.
func NewHandler(r *Resolver, log *slog.Logger) http.Handler {
	srv := handler.New(NewExecutableSchema(Config{Resolvers: r}))
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.SetErrorPresenter(PresentError(log))
	srv.SetRecoverFunc(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return fmt.Errorf("panic: %v", p)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.Method {
		case http.MethodPost:
		case http.MethodGet:
			if isMutation(req) {
				w.Header().Set("Allow", "POST")
				respond.Error(w, http.StatusMethodNotAllowed, db.CodeInvalidRequest,
					"Mutations must be sent with POST", nil)
				return
			}
		default:
			w.Header().Set("Allow", "GET, POST")
			respond.Error(w, http.StatusMethodNotAllowed, db.CodeInvalidRequest,
				"GraphQL requests use GET (queries) or POST", nil)
			return
		}
		c := caller.From(req.Context())
		ctx := WithLoaders(req.Context(), r.DB, c.AccountID())
		srv.ServeHTTP(w, req.WithContext(ctx))
	})
}

// isMutation reports whether a GET request asks for a mutation, which the
// GraphQL-over-HTTP specification answers with 405.
func isMutation(req *http.Request) bool {
	q := req.URL.Query()
	doc, err := parser.ParseQuery(&ast.Source{Input: q.Get("query")})
	if err != nil {
		return false // the executor reports the parse error
	}
	name := q.Get("operationName")
	for _, op := range doc.Operations {
		if (name == "" || op.Name == name) && op.Operation != ast.Query {
			return true
		}
	}
	return false
}
