package auth

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	proxies, err := ParseCIDRs("10.0.0.0/8, 2001:db8:f::/48, 192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		remote  string
		xff     []string // X-Forwarded-For header values, in order
		trusted []netip.Prefix
		want    string // "" for the zero Addr
	}{
		{name: "peer", remote: "198.51.100.4:5123", want: "198.51.100.4"},
		{name: "peer without port", remote: "198.51.100.4", want: "198.51.100.4"},
		{name: "IPv6 peer", remote: "[2001:db8::5]:443", want: "2001:db8::5"},
		{name: "IPv4-mapped peer", remote: "[::ffff:198.51.100.4]:80", want: "198.51.100.4"},
		{name: "unparsable peer", remote: "pipe", want: ""},
		{name: "empty peer", remote: "", want: ""},

		{name: "no trusted proxies: header ignored", remote: "198.51.100.4:1", xff: []string{"203.0.113.7"}, want: "198.51.100.4"},
		{name: "untrusted peer: header ignored", remote: "198.51.100.4:1", xff: []string{"203.0.113.7"}, trusted: proxies, want: "198.51.100.4"},
		{name: "trusted peer", remote: "10.0.0.2:1", xff: []string{"203.0.113.7"}, trusted: proxies, want: "203.0.113.7"},
		{name: "trusted bare-address proxy", remote: "192.0.2.10:1", xff: []string{"203.0.113.7"}, trusted: proxies, want: "203.0.113.7"},
		{name: "neighbour of bare-address proxy", remote: "192.0.2.11:1", xff: []string{"203.0.113.7"}, trusted: proxies, want: "192.0.2.11"},
		{name: "trusted IPv6 peer", remote: "[2001:db8:f::1]:1", xff: []string{"2001:db8:1::9"}, trusted: proxies, want: "2001:db8:1::9"},
		{name: "IPv4-mapped trusted peer", remote: "[::ffff:10.0.0.2]:1", xff: []string{"203.0.113.7"}, trusted: proxies, want: "203.0.113.7"},
		{name: "IPv4-mapped hop", remote: "10.0.0.2:1", xff: []string{"::ffff:203.0.113.7"}, trusted: proxies, want: "203.0.113.7"},
		{name: "spoofed left entries ignored", remote: "10.0.0.2:1", xff: []string{"1.2.3.4, 203.0.113.7"}, trusted: proxies, want: "203.0.113.7"},
		{name: "chain of trusted proxies", remote: "10.0.0.2:1", xff: []string{"1.2.3.4, 203.0.113.7, 10.9.9.9, 10.0.0.5"}, trusted: proxies, want: "203.0.113.7"},
		{name: "several headers", remote: "10.0.0.2:1", xff: []string{"1.2.3.4", "203.0.113.7"}, trusted: proxies, want: "203.0.113.7"},
		{name: "several headers, last trusted", remote: "10.0.0.2:1", xff: []string{"1.2.3.4, 203.0.113.7", "10.0.0.3"}, trusted: proxies, want: "203.0.113.7"},
		{name: "spaces", remote: "10.0.0.2:1", xff: []string{"  203.0.113.7  ,10.0.0.3 "}, trusted: proxies, want: "203.0.113.7"},
		{name: "all hops trusted", remote: "10.0.0.2:1", xff: []string{"10.0.0.9, 10.0.0.5"}, trusted: proxies, want: "10.0.0.9"},
		{name: "empty header", remote: "10.0.0.2:1", xff: []string{""}, trusted: proxies, want: "10.0.0.2"},
		{name: "no header", remote: "10.0.0.2:1", trusted: proxies, want: "10.0.0.2"},
		// An entry that does not parse ends the walk: what is left of it is
		// not trusted, so the last address known good is used.
		{name: "garbage right-most", remote: "10.0.0.2:1", xff: []string{"203.0.113.7, garbage"}, trusted: proxies, want: "10.0.0.2"},
		{name: "garbage behind client", remote: "10.0.0.2:1", xff: []string{"garbage, 203.0.113.7"}, trusted: proxies, want: "203.0.113.7"},
		{name: "garbage after trusted hop", remote: "10.0.0.2:1", xff: []string{"1.2.3.4, garbage, 10.0.0.3"}, trusted: proxies, want: "10.0.0.3"},
		{name: "hop with port", remote: "10.0.0.2:1", xff: []string{"203.0.113.7:4444"}, trusted: proxies, want: "10.0.0.2"},
		{name: "hop with brackets", remote: "10.0.0.2:1", xff: []string{"[2001:db8::7]"}, trusted: proxies, want: "10.0.0.2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r, err := http.NewRequest(http.MethodPost, "http://api.example.com/graphql", nil)
			if err != nil {
				t.Fatal(err)
			}
			r.RemoteAddr = c.remote
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := ClientAddr(r, c.trusted)
			if c.want == "" {
				if got.IsValid() {
					t.Fatalf("ClientAddr = %s, want the zero Addr", got)
				}
				return
			}
			if want := netip.MustParseAddr(c.want); got != want {
				t.Fatalf("ClientAddr(RemoteAddr %q, X-Forwarded-For %q) = %s, want %s", c.remote, c.xff, got, want)
			}
		})
	}
}

func TestParseCIDRs(t *testing.T) {
	t.Parallel()
	got, err := ParseCIDRs(" 10.1.2.3/8, ,192.0.2.1, ::ffff:192.0.2.2, 2001:db8::1/32,::1 ")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.1/32", "192.0.2.2/32", "2001:db8::/32", "::1/128"}
	if len(got) != len(want) {
		t.Fatalf("ParseCIDRs = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("ParseCIDRs[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	if got, err := ParseCIDRs(""); err != nil || len(got) != 0 {
		t.Errorf("ParseCIDRs(\"\") = %v, %v", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1, nope", "10.0.0.0/8/8"} {
		if _, err := ParseCIDRs(bad); err == nil {
			t.Errorf("ParseCIDRs(%q) accepted", bad)
		}
	}
}
