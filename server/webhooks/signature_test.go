package webhooks_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/reservekit/reservekit/server/webhooks"
)

func TestNewSecret(t *testing.T) {
	a, b := webhooks.NewSecret(), webhooks.NewSecret()
	if !regexp.MustCompile(`^whsec_[0-9a-f]{48}$`).MatchString(a) {
		t.Fatalf("secret %q has the wrong shape", a)
	}
	if a == b {
		t.Fatal("two secrets are equal")
	}
}

func TestSignVerify(t *testing.T) {
	secret := webhooks.NewSecret()
	body := []byte(`{"event_type":"bookings.create","bookings":[],"timestamp":"2026-01-01T00:00:00Z"}`)
	at := time.Unix(1_800_000_000, 0)
	header := webhooks.Sign(secret, at, body)
	if !regexp.MustCompile(`^t=1800000000,v1=[0-9a-f]{64}$`).MatchString(header) {
		t.Fatalf("header %q has the wrong shape", header)
	}
	if err := webhooks.Verify(secret, header, body, at.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("Verify of a fresh signature: %v", err)
	}
	other := webhooks.Sign(webhooks.NewSecret(), at, body)
	rotated := header + "," + other[strings.Index(other, "v1="):] // a second v1 (e.g. during a secret roll)
	for _, tc := range []struct {
		name   string
		secret string
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"ok with two v1", secret, rotated, body, at, nil},
		{"ok with spaces", secret, strings.ReplaceAll(header, ",", ", "), body, at, nil},
		{"tampered body", secret, header, append([]byte(nil), append(body, ' ')...), at, webhooks.ErrBadSignature},
		{"wrong secret", webhooks.NewSecret(), header, body, at, webhooks.ErrBadSignature},
		{"too old", secret, header, body, at.Add(6 * time.Minute), webhooks.ErrStaleSignature},
		{"from the future", secret, header, body, at.Add(-6 * time.Minute), webhooks.ErrStaleSignature},
		{"empty", secret, "", body, at, webhooks.ErrMalformedSignature},
		{"no v1", secret, "t=1800000000", body, at, webhooks.ErrMalformedSignature},
		{"no t", secret, header[strings.Index(header, "v1="):], body, at, webhooks.ErrMalformedSignature},
		{"two t", secret, "t=1," + header, body, at, webhooks.ErrMalformedSignature},
		{"bad hex", secret, "t=1800000000,v1=zz", body, at, webhooks.ErrMalformedSignature},
		{"bad t", secret, "t=soon,v1=00", body, at, webhooks.ErrMalformedSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := webhooks.Verify(tc.secret, tc.header, tc.body, tc.now, 5*time.Minute)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	// A zero tolerance means DefaultTolerance, not "any age".
	if err := webhooks.Verify(secret, header, body, at.Add(time.Hour), 0); !errors.Is(err, webhooks.ErrStaleSignature) {
		t.Fatalf("Verify with tolerance 0 an hour later = %v, want ErrStaleSignature", err)
	}
}
