package auth

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
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
	window   time.Duration
	proxies  []netip.Prefix
	logErr   func(r *http.Request, err error)
}

// NewMiddleware limits authentication failures to maxFails per client IP per
// window, so keys cannot be guessed at speed.
// Client addresses are the connection's peer unless the peer is one of the
// trusted proxies, whose X-Forwarded-For is then followed.
func NewMiddleware(v *Verifier, maxFails int, window time.Duration, trustedProxies []netip.Prefix, logErr func(*http.Request, error)) *Middleware {
	return &Middleware{
		verifier: v,
		failures: httprate.NewRateLimiter(maxFails, window, httprate.WithResponseHeaders(httprate.ResponseHeaders{})),
		maxFails: maxFails,
		window:   window,
		proxies:  trustedProxies,
		logErr:   logErr,
	}
}

// Handler wraps next: it answers auth failures itself and passes
// authenticated requests on with the caller in their context.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := ClientAddr(r, m.proxies)
		ip := httprate.CanonicalizeIP(addr.String())
		if _, rate, err := m.failures.Status(ip); err == nil && rate >= float64(m.maxFails) {
			m.tooManyFailures(w)
			return
		}
		c, err := m.authenticate(r, addr)
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

// ParseAuthorization reads an Authorization header value: "Bearer <key>"
// (the scheme in any case) with a well-formed key, checksum included, or
// ErrMissing or ErrMalformed. It touches no database.
func ParseAuthorization(header string) (string, error) {
	if header == "" {
		return "", ErrMissing
	}
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || !WellFormed(token) {
		return "", ErrMalformed
	}
	return token, nil
}

func (m *Middleware) authenticate(r *http.Request, addr netip.Addr) (*caller.Caller, error) {
	token, err := ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return nil, err
	}
	c, err := m.verifier.Verify(r.Context(), token)
	if err != nil {
		return nil, err
	}
	if d := c.Key.Domain; d != nil && !DomainAllows(*d, requestHost(r.Header.Get("Origin"), r.Header.Get("Referer"))) {
		return nil, ErrOrigin
	}
	if len(c.Networks) > 0 && !inAny(addr, c.Networks) {
		return nil, ErrIPNotAllowed
	}
	return c, nil
}

// tooManyFailures answers a client IP over its failure limit; it may retry
// once the failure window has passed.
func (m *Middleware) tooManyFailures(w http.ResponseWriter) {
	retry := max(1, int(math.Ceil(m.window.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	respond.Error(w, http.StatusTooManyRequests, "rate_limit_exceeded",
		fmt.Sprintf("Too many failed authentication attempts. Try again in %d seconds.", retry), map[string]any{"retryAfter": retry})
}

func asAuthError(err error, target **Error) bool {
	e, ok := err.(*Error)
	if ok {
		*target = e
	}
	return ok
}

// ClientAddr is the client's address: the connection's peer, or, when the
// peer is a trusted proxy, the right-most X-Forwarded-For entry that is not
// itself a trusted proxy. The zero Addr when nothing parses.
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	addr := peer.Addr().Unmap()
	if err != nil {
		addr, _ = netip.ParseAddr(r.RemoteAddr)
	}
	if len(trusted) == 0 || !inAny(addr, trusted) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		addr = hop.Unmap()
		if !inAny(addr, trusted) {
			break
		}
	}
	return addr
}

func inAny(addr netip.Addr, networks []netip.Prefix) bool {
	for _, p := range networks {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ParseCIDRs parses a comma-separated list of CIDRs or addresses (a bare
// address means just that host).
func ParseCIDRs(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR or IP address", item)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
