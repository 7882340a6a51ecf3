package auth

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/httprate"

	"github.com/reservekit/reservekit/server/caller"
	"github.com/reservekit/reservekit/server/respond"
)

// Middleware authenticates every request before it reaches GraphQL.
type Middleware struct {
	verifier *Verifier
	failures *httprate.RateLimiter
	maxFails int
	logErr   func(r *http.Request, err error)
}

// NewMiddleware limits authentication failures to maxFails per client IP per
// window, so keys cannot be guessed at speed.
func NewMiddleware(v *Verifier, maxFails int, window time.Duration, logErr func(*http.Request, error)) *Middleware {
	return &Middleware{
		verifier: v,
		failures: httprate.NewRateLimiter(maxFails, window, httprate.WithResponseHeaders(httprate.ResponseHeaders{})),
		maxFails: maxFails,
		logErr:   logErr,
	}
}

// Handler wraps next: it answers auth failures itself and passes
// authenticated requests on with the caller in their context.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := clientIP(r)
		if _, rate, err := m.failures.Status(ip); err == nil && rate >= float64(m.maxFails) {
			m.tooManyFailures(w)
			return
		}
		c, err := m.authenticate(r)
		if err != nil {
			var authErr *Error
			if !asAuthError(err, &authErr) {
				m.logErr(r, err)
				respond.Error(w, http.StatusInternalServerError, "internal_error", "Internal error", nil)
				return
			}
			if m.failures.OnLimit(w, r, ip) {
				m.tooManyFailures(w)
				return
			}
			respond.Error(w, authErr.Status, authErr.Code, authErr.Message, nil)
			return
		}
		next.ServeHTTP(w, r.WithContext(caller.With(r.Context(), c)))
	})
}

func (m *Middleware) authenticate(r *http.Request) (*caller.Caller, error) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return nil, ErrMissing
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, ErrMalformed
	}
	c, err := m.verifier.Verify(r.Context(), strings.TrimSpace(token))
	if err != nil {
		return nil, err
	}
	if d := c.Key.Domain; d != nil && !DomainAllows(*d, requestHost(r.Header.Get("Origin"), r.Header.Get("Referer"))) {
		return nil, ErrOrigin
	}
	return c, nil
}

func (m *Middleware) tooManyFailures(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "60")
	respond.Error(w, http.StatusTooManyRequests, "rate_limit_exceeded",
		"Too many failed authentication attempts. Try again in 60 seconds.", map[string]any{"retryAfter": 60})
}

func asAuthError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

// clientIP is the address of the connection's peer.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return httprate.CanonicalizeIP(host)
}
