package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"

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
	srv := handler.New(NewExecutableSchema(Config{Resolvers: r, Directives: r.directives()}))
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
			if !checkPost(w, req) {
				return
			}
		case http.MethodGet:
			if !checkGet(w, req) {
				return
			}
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

// params is the shape of a GraphQL-over-HTTP request.
type params struct {
	Query         *string        `json:"query"`
	OperationName *string        `json:"operationName"`
	Variables     map[string]any `json:"variables"`
	Extensions    map[string]any `json:"extensions"`
}

const notGraphQL = "The request is not a GraphQL request: it needs a JSON object with a non-empty \"query\" string " +
	"and, optionally, \"operationName\" (a string), \"variables\" and \"extensions\" (objects)"

// checkPost answers a POST that is not a well-formed GraphQL request (400),
// not JSON (415) or too large (413), without echoing the body, which may
// hold secrets. On success the body is left for gqlgen to read again.
func checkPost(w http.ResponseWriter, req *http.Request) bool {
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		respond.Error(w, http.StatusUnsupportedMediaType, db.CodeInvalidRequest,
			"GraphQL requests sent with POST need Content-Type: application/json", nil)
		return false
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			respond.Error(w, http.StatusRequestEntityTooLarge, db.CodeInvalidRequest, "Request body is larger than 1 MiB", nil)
		} else {
			respond.Error(w, http.StatusBadRequest, db.CodeInvalidRequest, "Could not read the request body", nil)
		}
		return false
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	var p params
	if err := json.Unmarshal(body, &p); err != nil || p.Query == nil || strings.TrimSpace(*p.Query) == "" {
		respond.Error(w, http.StatusBadRequest, db.CodeInvalidRequest, notGraphQL, nil)
		return false
	}
	return true
}

// checkGet answers a GET without a query or with parameters that are not
// JSON objects (400).
func checkGet(w http.ResponseWriter, req *http.Request) bool {
	q, err := url.ParseQuery(req.URL.RawQuery)
	ok := err == nil && strings.TrimSpace(q.Get("query")) != ""
	for _, name := range []string{"variables", "extensions"} {
		if v := q.Get(name); ok && v != "" {
			var m map[string]any
			ok = json.Unmarshal([]byte(v), &m) == nil
		}
	}
	if !ok {
		respond.Error(w, http.StatusBadRequest, db.CodeInvalidRequest, notGraphQL, nil)
	}
	return ok
}
