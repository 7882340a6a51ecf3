package auth

import (
	"net"
	"net/url"
	"strings"

	"github.com/reservekit/reservekit/db"
)

// NormalizeDomain checks a key's domain restriction: a host name such as
// app.example.com, or *.example.com for any subdomain. Empty means none.
func NormalizeDomain(d string) (*string, error) {
	d = strings.ToLower(strings.TrimSpace(d))
	if d == "" {
		return nil, nil
	}
	host := strings.TrimPrefix(d, "*.")
	bad := db.Errorf(db.CodeInvalidFieldFormat, "domain", "domain must be a host name such as app.example.com or *.example.com")
	if strings.ContainsAny(host, "/:*@ ") || strings.HasPrefix(host, ".") || strings.HasSuffix(host, ".") || host == "" || len(host) > 253 {
		return nil, bad
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return nil, bad
		}
	}
	return &d, nil
}

// requestHost is the host of the request's Origin header, else of its
// Referer, lower-cased and without port; "" when neither parses.
func requestHost(origin, referer string) string {
	raw := origin
	if raw == "" || raw == "null" {
		raw = referer
	}
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	host := u.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.Trim(host, "[]"))
}

// DomainAllows reports whether a key restricted to domain accepts host.
func DomainAllows(domain, host string) bool {
	if host == "" {
		return false
	}
	if suffix, ok := strings.CutPrefix(domain, "*."); ok {
		// At least one non-empty label before the suffix: not ".example.com".
		return len(host) > len(suffix)+1 && strings.HasSuffix(host, "."+suffix) && host[len(host)-len(suffix)-2] != '.'
	}
	return host == domain
}
