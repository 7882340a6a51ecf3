package auth

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var secretFormat = regexp.MustCompile(`^sk_rsv_[0-9A-Za-z]{38}$`)

func TestNewSecret(t *testing.T) {
	t.Parallel()
	const draws = 1000
	seen := make(map[string]bool, draws)
	randoms := make(map[string]bool, draws)
	var charCount [256]int
	for range draws {
		s := NewSecret()
		if len(s) != SecretLen || SecretLen != 45 || !secretFormat.MatchString(s) {
			t.Fatalf("NewSecret() = %q, not sk_rsv_ + 38 base62 characters", s)
		}
		if !WellFormed(s) {
			t.Fatalf("NewSecret() = %q is not WellFormed", s)
		}
		if seen[s] {
			t.Fatalf("NewSecret() repeated %q", s)
		}
		seen[s] = true
		random := s[len(Prefix) : len(Prefix)+randomLen]
		if randoms[random] {
			t.Fatalf("random part repeated: %q", random)
		}
		randoms[random] = true
		for i := 0; i < len(random); i++ {
			charCount[random[i]]++
		}
	}
	// Every base62 character turns up in 32,000 draws (each is expected
	// ~516 times); a generator stuck on a subset would not pass.
	for i := 0; i < len(base62); i++ {
		if charCount[base62[i]] == 0 {
			t.Errorf("character %q never generated", base62[i])
		}
	}
}

func TestWellFormedRejectsOneCharacterChanges(t *testing.T) {
	t.Parallel()
	for range 5 {
		s := NewSecret()
		for i := 0; i < len(s); i++ {
			for j := 0; j < len(base62); j++ {
				c := base62[j]
				if c == s[i] {
					continue
				}
				changed := s[:i] + string(c) + s[i+1:]
				if WellFormed(changed) {
					t.Fatalf("WellFormed accepts %q, %q with character %d changed", changed, s, i)
				}
			}
			// Deletion, duplication and swaps with the next character.
			if WellFormed(s[:i] + s[i+1:]) {
				t.Fatalf("WellFormed accepts %q without character %d", s, i)
			}
			if WellFormed(s[:i] + s[i:i+1] + s[i:]) {
				t.Fatalf("WellFormed accepts %q with character %d doubled", s, i)
			}
			if i+1 < len(s) && s[i] != s[i+1] {
				swapped := s[:i] + string(s[i+1]) + string(s[i]) + s[i+2:]
				if WellFormed(swapped) {
					t.Fatalf("WellFormed accepts %q with characters %d and %d swapped", s, i, i+1)
				}
			}
		}
	}
}

func TestWellFormed(t *testing.T) {
	t.Parallel()
	s := NewSecret()
	random := s[len(Prefix) : len(Prefix)+randomLen]
	cases := map[string]bool{
		s:                                   true,
		"":                                  false,
		Prefix:                              false,
		" " + s:                             false,
		s + " ":                             false,
		s + "\n":                            false,
		strings.ToUpper(s[:7]) + s[7:]:      false,
		"pk_rsv_" + s[7:]:                   false,
		"sk_rsv_" + random + "000000":       checksum([]byte(random)) == "000000",
		"sk_rsv_" + strings.Repeat("0", 38): checksum([]byte(strings.Repeat("0", 32))) == "000000",
		"sk_rsv_" + strings.Repeat("0", 32) + checksum([]byte(strings.Repeat("0", 32))): true,
		s[:20] + "\x00" + s[21:]: false,
		s[:20] + "_" + s[21:]:    false,
	}
	for in, want := range cases {
		if got := WellFormed(in); got != want {
			t.Errorf("WellFormed(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestHashAndDisplayPrefix(t *testing.T) {
	t.Parallel()
	a, b := NewSecret(), NewSecret()
	// SHA-256 of "sk_rsv_" (checked independently with sha256sum).
	if got, want := Hash("sk_rsv_"), "187fa0127ebc325477855d333abd466c96a84236765d4c903e2107e2ff7660c3"; got != want {
		t.Fatalf("Hash(\"sk_rsv_\") = %s, want %s", got, want)
	}
	if Hash(a) != Hash(a) || Hash(a) == Hash(b) || len(Hash(a)) != 64 || strings.Trim(Hash(a), "0123456789abcdef") != "" {
		t.Fatalf("Hash is not a deterministic hex SHA-256: %q %q", Hash(a), Hash(b))
	}
	if strings.Contains(Hash(a), a[len(Prefix):]) {
		t.Fatal("Hash contains the secret")
	}
	p := DisplayPrefix(a)
	if p != a[:13] || !strings.HasPrefix(p, Prefix) {
		t.Fatalf("DisplayPrefix(%q) = %q", a, p)
	}
}

func TestNormalizeDomain(t *testing.T) {
	t.Parallel()
	ok := map[string]string{
		"app.example.com":                "app.example.com",
		" App.Example.COM ":              "app.example.com",
		"*.example.com":                  "*.example.com",
		"localhost":                      "localhost",
		"xn--bcher-kva.ch":               "xn--bcher-kva.ch",
		strings.Repeat("a", 63) + ".com": strings.Repeat("a", 63) + ".com",
	}
	for in, want := range ok {
		got, err := NormalizeDomain(in)
		if err != nil || got == nil || *got != want {
			t.Errorf("NormalizeDomain(%q) = %v, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "   "} {
		if got, err := NormalizeDomain(in); got != nil || err != nil {
			t.Errorf("NormalizeDomain(%q) = %v, %v; want no restriction", in, got, err)
		}
	}
	for _, in := range []string{
		"https://app.example.com", "app.example.com:443", "app.example.com/path", "*", "*.", "*.*.example.com",
		"a..b", ".example.com", "example.com.", "user@example.com", "exa mple.com", "sub.*.example.com",
		strings.Repeat("a", 64) + ".com", strings.Repeat("a.", 127) + "com",
	} {
		if got, err := NormalizeDomain(in); err == nil {
			t.Errorf("NormalizeDomain(%q) = %q, want an error", in, *got)
		}
	}
}

func TestRequestHostAndDomainAllows(t *testing.T) {
	t.Parallel()
	hosts := []struct{ origin, referer, want string }{
		{"https://app.example.com", "", "app.example.com"},
		{"https://APP.example.com:8443", "", "app.example.com"},
		{"", "https://app.example.com/a/b?c=d", "app.example.com"},
		{"null", "https://app.example.com/", "app.example.com"},
		{"https://a.example.com", "https://b.example.com/", "a.example.com"},
		{"http://[::1]:3000", "", "::1"},
		{"", "", ""},
		{"null", "", ""},
		{"app.example.com", "", ""},
		{"/relative", "", ""},
		{"%zz", "", ""},
	}
	for _, h := range hosts {
		if got := requestHost(h.origin, h.referer); got != h.want {
			t.Errorf("requestHost(%q, %q) = %q, want %q", h.origin, h.referer, got, h.want)
		}
	}
	allows := []struct {
		domain, host string
		want         bool
	}{
		{"app.example.com", "app.example.com", true},
		{"app.example.com", "sub.app.example.com", false},
		{"app.example.com", "example.com", false},
		{"app.example.com", "", false},
		{"*.example.com", "sub.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "evilexample.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "a..example.com", false},
		{"*.example.com", "a.example.com", true},
		{"*.example.com", "", false},
		{"", "", false},
	}
	for _, a := range allows {
		if got := DomainAllows(a.domain, a.host); got != a.want {
			t.Errorf("DomainAllows(%q, %q) = %v, want %v", a.domain, a.host, got, a.want)
		}
	}
}

// FuzzAuthorizationHeader feeds arbitrary Authorization, Origin, Referer and
// domain values through the middleware's parsers (ParseAuthorization,
// requestHost, NormalizeDomain, DomainAllows) and checks that nothing panics
// and the results keep their invariants.
func FuzzAuthorizationHeader(f *testing.F) {
	valid := NewSecret()
	seeds := [][4]string{
		{"Bearer " + valid, "https://app.example.com", "", "app.example.com"},
		{"Bearer " + valid, "", "https://sub.example.com/page", "*.example.com"},
		{"bearer " + valid, "null", "", ""},
		{"Basic dXNlcjpwYXNz", "http://[::1]:3000", "", "*.example.com"},
		{"Bearer", "", "", ""},
		{"", "", "", ""},
		{"Bearer sk_rsv_", "https://evilexample.com", "", "*.example.com"},
		{"Bearer sk_rsv_" + strings.Repeat("z", 38), "%zz", "://", "a..b"},
		{"Bearer " + valid[:44] + "\x00", "https://a:b@host:99999", "https://x/", "*."},
		{"Bearer  " + valid + " ", "HTTPS://APP.EXAMPLE.COM:8443", "", " App.Example.com "},
		{"Token é" + valid, "https://[::1", "https://[fe80::1%25en0]:8080/", "*.*"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, header, origin, referer, domain string) {
		// The middleware's parser: a key only from a Bearer header, and
		// then a well-formed one taken from the header.
		token, err := ParseAuthorization(header)
		switch {
		case header == "":
			if err != ErrMissing {
				t.Fatalf("ParseAuthorization(\"\") = %q, %v; want ErrMissing", token, err)
			}
		case err == nil:
			scheme, _, _ := strings.Cut(header, " ")
			if !strings.EqualFold(scheme, "Bearer") || len(token) != SecretLen || !secretFormat.MatchString(token) ||
				!strings.Contains(header, token) || !WellFormed(token) {
				t.Fatalf("ParseAuthorization(%q) accepted %q", header, token)
			}
			if DisplayPrefix(token) != token[:len(Prefix)+displayChars] {
				t.Fatalf("DisplayPrefix(%q)", token)
			}
		case err != ErrMalformed || token != "":
			t.Fatalf("ParseAuthorization(%q) = %q, %v; want ErrMalformed", header, token, err)
		}
		if h := Hash(header); len(h) != 64 || h != Hash(header) {
			t.Fatalf("Hash(%q) = %q", header, h)
		}

		// Header values as net/http would deliver them must also parse.
		req, err := http.NewRequest(http.MethodGet, "http://localhost/graphql", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", header)
		req.Header.Set("Origin", origin)
		req.Header.Set("Referer", referer)

		host := requestHost(req.Header.Get("Origin"), req.Header.Get("Referer"))
		if host != strings.ToLower(host) {
			t.Fatalf("requestHost(%q, %q) = %q is not lower-case", origin, referer, host)
		}
		d, err := NormalizeDomain(domain)
		if err != nil || d == nil {
			return
		}
		if *d != strings.ToLower(*d) || strings.ContainsAny(*d, "/:@ ") {
			t.Fatalf("NormalizeDomain(%q) = %q", domain, *d)
		}
		allowed := DomainAllows(*d, host)
		if host == "" && allowed {
			t.Fatalf("DomainAllows(%q, \"\") = true", *d)
		}
		if suffix, wild := strings.CutPrefix(*d, "*."); wild {
			if allowed && (!strings.HasSuffix(host, "."+suffix) || host == suffix || strings.HasPrefix(host, ".") ||
				strings.HasSuffix(strings.TrimSuffix(host, suffix), "..")) {
				t.Fatalf("DomainAllows(%q, %q) = true", *d, host)
			}
		} else if allowed != (host != "" && host == *d) {
			t.Fatalf("DomainAllows(%q, %q) = %v", *d, host, allowed)
		}
	})
}
