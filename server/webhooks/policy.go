package webhooks

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/reservekit/reservekit/db"
)

// Policy says which addresses webhooks may reach. By default only public
// unicast addresses: never loopback, private (RFC 1918, fc00::/7),
// link-local (169.254.0.0/16 with the 169.254.169.254 metadata service,
// fe80::/10), unspecified, multicast, shared CGNAT space (100.64.0.0/10),
// other reserved ranges, nor IPv4-mapped or NAT64 forms of those.
//
// The policy is enforced when the connection is dialled, on the address
// actually dialled, so a host that resolved to a public address when the
// webhook was saved and to a private one later (DNS rebinding) is still
// refused. CheckURL checks the host when the webhook is saved, for a clear
// error early.
type Policy struct {
	// AllowPrivate turns the address checks off (development, tests, or
	// receivers on a private network on purpose).
	AllowPrivate bool
}

// refused are the ranges refused besides those netip classifies.
var refused = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

// nat64 is the well-known NAT64 prefix, which embeds an IPv4 address.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Allowed reports whether the policy lets webhooks connect to ip.
func (p Policy) Allowed(ip netip.Addr) bool {
	if p.AllowPrivate {
		return true
	}
	ip = ip.Unmap().WithZone("")
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() ||
		ip.IsLinkLocalUnicast() || ip.IsMulticast() {
		return false
	}
	for _, r := range refused {
		if r.Contains(ip) {
			return false
		}
	}
	return true
}

// addrError refuses a dial to an address the policy does not allow.
type addrError struct{ ip netip.Addr }

func (e *addrError) Error() string { return "address " + e.ip.String() + " is not allowed" }

// control is the dialer's Control hook: it runs after name resolution, on
// the exact address about to be connected.
func (p Policy) control(_, address string, _ syscall.RawConn) error {
	if p.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &addrError{}
	}
	if ip := ap.Addr().Unmap().WithZone(""); !p.Allowed(ip) {
		return &addrError{ip: ip}
	}
	return nil
}

// dialer returns a net.Dialer that enforces the policy.
func (p Policy) dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: p.control}
}

// resolveTimeout bounds CheckURL's DNS lookup.
const resolveTimeout = 5 * time.Second

// CheckURL checks a webhook URL when it is saved: its syntax
// (db.CheckWebhookURL), then, unless the policy allows private addresses,
// that its host (a literal IP, or every address the name resolves to now)
// is allowed. Refusals are *db.Error on field "url".
func (p Policy) CheckURL(ctx context.Context, rawURL string) error {
	u, err := db.CheckWebhookURL(rawURL)
	if err != nil || p.AllowPrivate {
		return err
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if !p.Allowed(ip) {
			return db.Errorf(db.CodeInvalidFieldFormat, "url",
				"url host %s is not allowed: webhooks cannot reach loopback, private, link-local or reserved addresses", host)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", strings.TrimSuffix(host, "."))
	if err != nil || len(addrs) == 0 {
		return db.Errorf(db.CodeInvalidFieldFormat, "url", "url host %q could not be resolved", host)
	}
	for _, ip := range addrs {
		if !p.Allowed(ip) {
			return db.Errorf(db.CodeInvalidFieldFormat, "url",
				"url host %q resolves to %s, which webhooks cannot reach (loopback, private, link-local or reserved address)",
				host, ip.Unmap())
		}
	}
	return nil
}
