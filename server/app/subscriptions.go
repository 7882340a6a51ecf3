package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/reservekit/reservekit/graph"
	"github.com/reservekit/reservekit/server/auth"
	"github.com/reservekit/reservekit/server/caller"
)

// keyRecheck is how often a long-lived connection (WebSocket, SSE stream)
// checks its key again: a revoked or expired key ends it within this time
// (a revocation through this instance or, on Postgres, any instance evicts
// the key from the cache, so the check reaches the database).
var keyRecheck = 2 * time.Second

// subscriptions authenticates WebSocket connections, which carry their key
// in connection_init rather than in a header, with the checks and errors of
// the HTTP chain, and counts each connection as a request against the
// account's rate limit and monthly quota (admit, the chain's limiters).
func (a *App) subscriptions(authn *auth.Middleware, admit http.Handler) *graph.Subscriptions {
	return &graph.Subscriptions{
		Init: func(r *http.Request, payload map[string]any) (context.Context, func(context.Context) error, error) {
			authorization := transport.InitPayload(payload).Authorization()
			c, authErr := authn.AuthenticateWith(r, authorization)
			if authErr != nil {
				return r.Context(), nil, authErr
			}
			ctx := caller.With(r.Context(), c)
			if err := admitted(admit, r.WithContext(ctx)); err != nil {
				return ctx, nil, err
			}
			watch := func(ctx context.Context) error {
				return watchKey(ctx, func() *auth.Error { return authn.Recheck(r, authorization) })
			}
			return ctx, watch, nil
		},
	}
}

// admitted runs a request through admit (rate limit, quota, API log) and
// returns its refusal, if any, as an *auth.Error.
func admitted(admit http.Handler, r *http.Request) error {
	passed := false
	rec := httptest.NewRecorder()
	r = r.Clone(r.Context())
	r.Header = r.Header.Clone()
	r.Header.Del("Upgrade") // the limiters must not see a hijackable upgrade
	admit.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), admittedKey{}, &passed)))
	if passed {
		return nil
	}
	var body struct {
		Errors []struct {
			Message    string         `json:"message"`
			Extensions map[string]any `json:"extensions"`
		} `json:"errors"`
	}
	e := &auth.Error{Status: rec.Code, Code: "internal_error", Message: "Internal error"}
	if json.Unmarshal(rec.Body.Bytes(), &body) == nil && len(body.Errors) > 0 {
		e.Message = body.Errors[0].Message
		if code, ok := body.Errors[0].Extensions["code"].(string); ok {
			e.Code = code
		}
	}
	return e
}

type admittedKey struct{}

// admit is the end of the chain a WebSocket connection is admitted through.
var admit = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if p, ok := r.Context().Value(admittedKey{}).(*bool); ok {
		*p = true
	}
	w.WriteHeader(http.StatusSwitchingProtocols)
})

// watchKey returns nil when ctx ends, or the first failed recheck.
func watchKey(ctx context.Context, recheck func() *auth.Error) error {
	t := time.NewTicker(keyRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := recheck(); err != nil {
				return err
			}
		}
	}
}

// watchStreams ends an SSE stream whose key stops being valid (revoked,
// expired) as WebSocket connections are ended.
func watchStreams(authn *auth.Middleware) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost || !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
				next.ServeHTTP(w, r)
				return
			}
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			authorization := r.Header.Get("Authorization")
			go func() {
				if watchKey(ctx, func() *auth.Error { return authn.Recheck(r, authorization) }) != nil {
					cancel()
				}
			}()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}
