package auth

import (
	"fmt"
	"math"
	"net/http"

	"github.com/go-chi/httprate"

	"github.com/reservekit/reservekit/server/caller"
)

// ErrInternal is an authentication that failed for a reason of the server's
// (logged, not shown).
var ErrInternal = &Error{http.StatusInternalServerError, "internal_error", "Internal error"}

// AuthenticateWith authenticates a request whose credentials did not come in
// its Authorization header but another way (a WebSocket's connection_init
// payload): authorization is what that header would hold. The checks, the
// errors and the per-IP failure limit are those of Handler; the client
// address, Origin and Referer are the request's. A failure is always an
// *Error (internal failures are logged and answered as ErrInternal).
func (m *Middleware) AuthenticateWith(r *http.Request, authorization string) (*caller.Caller, *Error) {
	addr := ClientAddr(r, m.proxies)
	ip := httprate.CanonicalizeIP(addr.String())
	if _, rate, err := m.failures.Status(ip); err == nil && rate >= float64(m.maxFails) {
		return nil, m.failuresError()
	}
	c, err := m.authenticate(withAuthorization(r, authorization), addr)
	if err == nil {
		return c, nil
	}
	var authErr *Error
	if !asAuthError(err, &authErr) {
		m.logErr(r, err)
		return nil, ErrInternal
	}
	if m.failures.OnLimit(headerOnly{http.Header{}}, r, ip) {
		return nil, m.failuresError()
	}
	return nil, authErr
}

// Recheck verifies again credentials that AuthenticateWith accepted, for a
// long-lived connection: a key revoked, expired or restricted since fails.
// It does not count against the failure limit.
func (m *Middleware) Recheck(r *http.Request, authorization string) *Error {
	_, err := m.authenticate(withAuthorization(r, authorization), ClientAddr(r, m.proxies))
	if err == nil {
		return nil
	}
	var authErr *Error
	if !asAuthError(err, &authErr) {
		m.logErr(r, err)
		return ErrInternal
	}
	return authErr
}

func (m *Middleware) failuresError() *Error {
	retry := max(1, int(math.Ceil(m.window.Seconds())))
	return &Error{http.StatusTooManyRequests, "rate_limit_exceeded",
		fmt.Sprintf("Too many failed authentication attempts. Try again in %d seconds.", retry)}
}

func withAuthorization(r *http.Request, authorization string) *http.Request {
	r2 := r.Clone(r.Context())
	r2.Header = r.Header.Clone()
	if authorization == "" {
		r2.Header.Del("Authorization")
	} else {
		r2.Header.Set("Authorization", authorization)
	}
	return r2
}

// headerOnly is a ResponseWriter for httprate's bookkeeping, which only sets
// headers.
type headerOnly struct{ h http.Header }

func (w headerOnly) Header() http.Header       { return w.h }
func (headerOnly) Write(p []byte) (int, error) { return len(p), nil }
func (headerOnly) WriteHeader(int)             {}
