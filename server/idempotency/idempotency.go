// Package idempotency makes retried mutations safe: a POST with an
// Idempotency-Key header that may run a mutation runs once per account and
// key; repeats with the same body (and a key with the same scopes) get the
// stored response (Idempotent-Replayed: true) for 24 hours.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/caller"
	"github.com/reservekit/reservekit/server/redact"
	"github.com/reservekit/reservekit/server/respond"
)

// Header is the request header that carries the client's key.
const Header = "Idempotency-Key"

// Settings of the middleware.
const (
	MaxKeyLen = 255
	TTL       = 24 * time.Hour
	// Wait is how long a repeat waits for the first request to finish
	// before it is answered 409 idempotency_key_in_use.
	Wait = 10 * time.Second
	poll = 20 * time.Millisecond
)

// Middleware stores and replays responses of requests with an Idempotency-Key.
type Middleware struct {
	db  *db.DB
	log *slog.Logger
	// Wait bounds how long a repeat waits for the first request (default Wait).
	Wait time.Duration
}

// New returns the middleware.
func New(database *db.DB, log *slog.Logger) *Middleware {
	return &Middleware{db: database, log: log, Wait: Wait}
}

// Handler wraps next; requests without the header, GETs, requests without
// a mutation and SSE streams pass through.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(Header)
		c := caller.From(r.Context())
		// A stream (a subscription over SSE) cannot be replayed.
		if key == "" || r.Method != http.MethodPost || c == nil || strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) > MaxKeyLen {
			respond.RequestError(w, r, http.StatusBadRequest, db.CodeInvalidFieldFormat,
				"Idempotency-Key must be at most 255 characters", map[string]any{"field": Header})
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			respond.RequestError(w, r, http.StatusRequestEntityTooLarge, db.CodeInvalidRequest, "Request body is larger than 1 MiB", nil)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if !hasMutation(body) {
			next.ServeHTTP(w, r) // queries are safe to repeat as they are
			return
		}
		// The key's scopes are part of what is repeated: a key that may not
		// run the request must not be shown its stored response.
		h := sha256.New()
		h.Write(body)
		for _, s := range slices.Sorted(slices.Values(c.Key.Scopes)) {
			h.Write([]byte{0})
			h.Write([]byte(s))
		}
		hash := hex.EncodeToString(h.Sum(nil))

		claimed, existing, err := m.db.ClaimIdempotencyKey(r.Context(), c.AccountID(), key, hash, TTL)
		if err != nil {
			m.fail(w, r, err)
			return
		}
		if claimed {
			m.runAndStore(w, r, next, c.AccountID(), key)
			return
		}
		deadline := time.Now().Add(m.Wait)
		// A different body is refused at once: waiting cannot change that.
		for existing.RequestHash == hash && !existing.Done && time.Now().Before(deadline) {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(poll):
			}
			if existing, err = m.db.IdempotencyKey(r.Context(), c.AccountID(), key); err != nil {
				if db.ErrorCode(err) == db.CodeResourceNotFound {
					// The first request failed and released the key: claim it again.
					m.Handler(next).ServeHTTP(w, r)
					return
				}
				m.fail(w, r, err)
				return
			}
		}
		switch {
		case existing.RequestHash != hash:
			respond.RequestError(w, r, http.StatusUnprocessableEntity, "idempotency_key_reused",
				"This Idempotency-Key was used with a different request body", nil)
		case !existing.Done:
			respond.RequestError(w, r, http.StatusConflict, "idempotency_key_in_use",
				"A request with this Idempotency-Key is still running; retry later", nil)
		default:
			w.Header().Set("Content-Type", existing.ContentType)
			w.Header().Set("Idempotent-Replayed", "true")
			w.Header().Set("Content-Length", strconv.Itoa(len(existing.Body)))
			w.WriteHeader(existing.Status)
			_, _ = io.WriteString(w, existing.Body)
		}
	})
}

// runAndStore runs the first request with a key, answers it, and stores its
// response; if it panics, the claim is released so a retry can run.
func (m *Middleware) runAndStore(w http.ResponseWriter, r *http.Request, next http.Handler, accountID int64, key string) {
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	completed := false
	defer func() {
		if !completed {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
			defer cancel()
			if err := m.db.ReleaseIdempotencyKey(ctx, accountID, key); err != nil {
				m.log.Error("release idempotency key", "err", err)
			}
		}
	}()
	next.ServeHTTP(rec, r)
	body := redact.Secrets(rec.body.String()) // secrets are never stored: a replay shows them redacted
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := m.db.CompleteIdempotencyKey(ctx, accountID, key, rec.status, w.Header().Get("Content-Type"), body); err != nil {
		m.log.Error("store idempotent response", "err", err)
		return
	}
	completed = true
}

func (m *Middleware) fail(w http.ResponseWriter, r *http.Request, err error) {
	m.log.Error("idempotency", "err", err)
	respond.RequestError(w, r, http.StatusInternalServerError, "internal_error", "Internal error", nil)
}

// hasMutation reports whether a GraphQL-over-HTTP body (one request or a
// batch) may run a mutation. A request whose document it cannot read (a
// persisted query sent by hash, a syntax error) counts as one, so that its
// response is kept like any other.
func hasMutation(body []byte) bool {
	type request struct {
		Query         string `json:"query"`
		OperationName string `json:"operationName"`
	}
	var reqs []request
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
		if json.Unmarshal(body, &reqs) != nil {
			return true
		}
	} else {
		var one request
		if json.Unmarshal(body, &one) != nil {
			return true
		}
		reqs = append(reqs, one)
	}
	for _, req := range reqs {
		doc, err := parser.ParseQuery(&ast.Source{Input: req.Query})
		if req.Query == "" || err != nil {
			return true
		}
		for _, op := range doc.Operations {
			if op.Operation == ast.Mutation && (req.OperationName == "" || op.Name == req.OperationName) {
				return true
			}
		}
	}
	return false
}

// recorder passes a response through while keeping a copy of it.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.body.Write(p)
	return r.ResponseWriter.Write(p)
}

// Flush passes flushes on, so that streaming handlers work behind it.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the writer underneath.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
