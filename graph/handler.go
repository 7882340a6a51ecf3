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

// MaxBatch is the most operations one batched request (a JSON array) may hold.
const MaxBatch = 10

// Options tune the GraphQL handler.
type Options struct {
	// Limits bound each operation; zero values take DefaultLimits.
	Limits Limits
	// NoIntrospection turns off introspection and "Did you mean …" suggestions.
	NoIntrospection bool
	// Subscriptions, when set, serves subscriptions over WebSocket and SSE.
	Subscriptions *Subscriptions
}

// NewHandler serves GraphQL over HTTP (POST with JSON, GET for queries, POST
// with a JSON array for a batch) for requests that the auth middleware has
// already authenticated, with automatic persisted queries.
func NewHandler(r *Resolver, log *slog.Logger, opts Options) http.Handler {
	limits := opts.Limits
	if limits.MaxCost == 0 {
		limits.MaxCost = DefaultLimits.MaxCost
	}
	if limits.MaxDepth == 0 {
		limits.MaxDepth = DefaultLimits.MaxDepth
	}
	if limits.MaxAliases == 0 {
		limits.MaxAliases = DefaultLimits.MaxAliases
	}
	srv := handler.New(NewExecutableSchema(Config{Resolvers: r, Directives: r.directives()}))
	if opts.Subscriptions != nil {
		// Before POST, which would take an SSE request (POST with JSON).
		ws, sse := opts.Subscriptions.transports(r)
		srv.AddTransport(ws)
		srv.AddTransport(sse)
	}
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	present := PresentError(log)
	if opts.NoIntrospection {
		srv.SetDisableSuggestion(true)
		srv.Use(noIntrospection{})
		present = withoutSuggestions(present)
	} else {
		srv.Use(extension.Introspection{})
	}
	persistedQueries := lru.New[string](1000)
	srv.Use(extension.AutomaticPersistedQuery{Cache: persistedQueries})
	srv.Use(limitsExtension{limits})
	srv.AroundResponses(addCostExtension)
	srv.AroundOperations(subscriptionLoaders(r.DB))
	srv.SetErrorPresenter(present)
	srv.SetRecoverFunc(func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return fmt.Errorf("panic: %v", p)
	})
	serve := func(w http.ResponseWriter, req *http.Request) {
		ctx := req.Context()
		if c := caller.From(ctx); c != nil { // WebSocket connections get theirs on connection_init
			ctx = WithLoaders(ctx, r.DB, c.AccountID())
		}
		srv.ServeHTTP(w, req.WithContext(withCostHolder(ctx)))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.Method {
		case http.MethodPost:
			body, ok := readPost(w, req)
			if !ok {
				return
			}
			if batch := bytes.TrimLeft(body, " \t\r\n"); len(batch) > 0 && batch[0] == '[' {
				serveBatch(w, req, batch, serve)
				return
			}
			if !checkParams(w, body) {
				return
			}
			if opts.Subscriptions != nil && strings.Contains(req.Header.Get("Accept"), "text/event-stream") {
				keepStreaming(w)
			}
		case http.MethodGet:
			if opts.Subscriptions != nil && IsWebSocket(req) {
				serveWebSocket(w, req, serve)
				return
			}
			if !checkGet(w, req) {
				return
			}
			if isMutation(req, persistedQueries) {
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
		serve(w, req)
	})
}

// serveBatch runs each operation of a JSON array as its own request and
// answers with the array of their responses, in order.
func serveBatch(w http.ResponseWriter, req *http.Request, body []byte, serve http.HandlerFunc) {
	var ops []json.RawMessage
	if err := json.Unmarshal(body, &ops); err != nil || len(ops) == 0 {
		respond.Error(w, http.StatusBadRequest, db.CodeInvalidRequest, "A batch must be a non-empty JSON array of GraphQL requests", nil)
		return
	}
	if len(ops) > MaxBatch {
		respond.Error(w, http.StatusBadRequest, "batch_too_large",
			fmt.Sprintf("A batch holds at most %d operations; this one has %d", MaxBatch, len(ops)), nil)
		return
	}
	for _, op := range ops {
		if !validParams(op) {
			respond.Error(w, http.StatusBadRequest, db.CodeInvalidRequest, notGraphQL, nil)
			return
		}
	}
	out := make([]json.RawMessage, len(ops))
	for i, op := range ops {
		sub := req.Clone(req.Context())
		sub.Body = io.NopCloser(bytes.NewReader(op))
		sub.ContentLength = int64(len(op))
		rec := &bufferedResponse{header: http.Header{}}
		serve(rec, sub)
		out[i] = rec.body.Bytes()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// bufferedResponse collects one batched operation's response.
type bufferedResponse struct {
	header http.Header
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(int)             {}

// isMutation reports whether a GET request asks for a mutation, which the
// GraphQL-over-HTTP specification answers with 405.
func isMutation(req *http.Request, persistedQueries *lru.LRU[string]) bool {
	q := req.URL.Query()
	query := q.Get("query")
	if strings.TrimSpace(query) == "" {
		// A persisted query sent by its hash: the one stored under it.
		var ext struct {
			PersistedQuery struct {
				Hash string `json:"sha256Hash"`
			} `json:"persistedQuery"`
		}
		if json.Unmarshal([]byte(q.Get("extensions")), &ext) != nil || ext.PersistedQuery.Hash == "" {
			return false
		}
		stored, ok := persistedQueries.Get(req.Context(), ext.PersistedQuery.Hash)
		if !ok {
			return false // unknown: the executor answers PersistedQueryNotFound
		}
		query = stored
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
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
	"(or an extensions.persistedQuery hash) and, optionally, \"operationName\" (a string), \"variables\" and \"extensions\" (objects)"

// readPost reads a POST body, answering one that is not JSON (415) or too
// large (413). The body is left for gqlgen to read again.
func readPost(w http.ResponseWriter, req *http.Request) ([]byte, bool) {
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		respond.Error(w, http.StatusUnsupportedMediaType, db.CodeInvalidRequest,
			"GraphQL requests sent with POST need Content-Type: application/json", nil)
		return nil, false
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			respond.Error(w, http.StatusRequestEntityTooLarge, db.CodeInvalidRequest, "Request body is larger than 1 MiB", nil)
		} else {
			respond.Error(w, http.StatusBadRequest, db.CodeInvalidRequest, "Could not read the request body", nil)
		}
		return nil, false
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	return body, true
}

// checkParams answers a body that is not a well-formed GraphQL request
// (400) without echoing it, since it may hold secrets.
func checkParams(w http.ResponseWriter, body []byte) bool {
	if !validParams(body) {
		respond.Error(w, http.StatusBadRequest, db.CodeInvalidRequest, notGraphQL, nil)
		return false
	}
	return true
}

func validParams(body []byte) bool {
	var p params
	if json.Unmarshal(body, &p) != nil {
		return false
	}
	return p.Query != nil && strings.TrimSpace(*p.Query) != "" || persisted(p.Extensions)
}

// persisted reports whether request extensions name an automatic persisted
// query, which may stand in for the query text.
func persisted(ext map[string]any) bool {
	_, ok := ext["persistedQuery"].(map[string]any)
	return ok
}

// checkGet answers a GET without a query or with parameters that are not
// JSON objects (400).
func checkGet(w http.ResponseWriter, req *http.Request) bool {
	q, err := url.ParseQuery(req.URL.RawQuery)
	ok := err == nil
	var ext map[string]any
	for _, name := range []string{"variables", "extensions"} {
		if v := q.Get(name); ok && v != "" {
			var m map[string]any
			ok = json.Unmarshal([]byte(v), &m) == nil
			if name == "extensions" {
				ext = m
			}
		}
	}
	ok = ok && (strings.TrimSpace(q.Get("query")) != "" || persisted(ext))
	if !ok {
		respond.Error(w, http.StatusBadRequest, db.CodeInvalidRequest, notGraphQL, nil)
	}
	return ok
}
