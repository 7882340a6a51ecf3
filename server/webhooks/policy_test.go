package webhooks_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/webhooks"
)

func TestPolicyAllowed(t *testing.T) {
	strict := webhooks.Policy{}
	for _, tc := range []struct {
		ip    string
		allow bool
	}{
		{"93.184.216.34", true},
		{"8.8.8.8", true},
		{"2606:4700:4700::1111", true},
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8
		{"127.0.0.1", false},
		{"127.1.2.3", false},
		{"10.0.0.1", false},
		{"172.16.5.4", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false},
		{"100.64.0.1", false},
		{"100.127.255.254", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"198.18.0.1", false},
		{"::1", false},
		{"::", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"ff02::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"::127.0.0.1", false},
		{"64:ff9b::7f00:1", false},    // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", false}, // NAT64 of 169.254.169.254
	} {
		ip := netip.MustParseAddr(tc.ip)
		if got := strict.Allowed(ip); got != tc.allow {
			t.Errorf("Allowed(%s) = %v, want %v", tc.ip, got, tc.allow)
		}
		if !(webhooks.Policy{AllowPrivate: true}).Allowed(ip) {
			t.Errorf("AllowPrivate refused %s", tc.ip)
		}
	}
}

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	strict := webhooks.Policy{}
	for _, raw := range []string{
		"http://127.0.0.1/hook",
		"http://127.0.0.1:8080/hook",
		"https://10.0.0.1/hook",
		"http://169.254.169.254/latest/meta-data/",
		"http://[::1]:9000/hook",
		"http://[::ffff:127.0.0.1]/hook",
		"http://100.64.0.1/hook",
		"http://0.0.0.0/hook",
		"http://localhost/hook",
		"http://localhost:8080/hook",
	} {
		err := strict.CheckURL(ctx, raw)
		var e *db.Error
		if !asDBError(err, &e) || e.Code != db.CodeInvalidFieldFormat || e.Field != "url" {
			t.Errorf("CheckURL(%s) = %v, want invalid_field_format on url", raw, err)
			continue
		}
		if !strings.Contains(e.Message, "not allowed") && !strings.Contains(e.Message, "cannot reach") {
			t.Errorf("CheckURL(%s) message %q does not say why", raw, e.Message)
		}
	}
	// A name that does not resolve is refused clearly (.invalid never resolves).
	err := strict.CheckURL(ctx, "https://no-such-host.invalid/hook")
	var e *db.Error
	if !asDBError(err, &e) || e.Field != "url" || !strings.Contains(e.Message, "could not be resolved") {
		t.Errorf("CheckURL of an unresolvable host = %v", err)
	}
	// Syntax is checked first, with db's messages.
	for _, raw := range []string{"", "ftp://example.com/x", "https://user:pw@example.com/", "/relative"} {
		if err := strict.CheckURL(ctx, raw); db.ErrorCode(err) == "" {
			t.Errorf("CheckURL(%q) = %v, want a db.Error", raw, err)
		}
	}
	// Public literal addresses need no DNS.
	for _, raw := range []string{"https://93.184.216.34/hook", "http://[2606:4700:4700::1111]:8443/x"} {
		if err := strict.CheckURL(ctx, raw); err != nil {
			t.Errorf("CheckURL(%s) = %v, want nil", raw, err)
		}
	}
	// AllowPrivate only checks the syntax.
	lax := webhooks.Policy{AllowPrivate: true}
	for _, raw := range []string{"http://127.0.0.1:8080/hook", "http://localhost/x", "http://10.0.0.1/"} {
		if err := lax.CheckURL(ctx, raw); err != nil {
			t.Errorf("AllowPrivate CheckURL(%s) = %v", raw, err)
		}
	}
}

func asDBError(err error, target **db.Error) bool {
	e, ok := err.(*db.Error)
	*target = e
	return ok
}
