package redact

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

const key = "sk_rsv_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z7aB0cD"

func TestSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"Bearer " + key:                   "Bearer sk_rsv_REDACTED",
		"whsec_0123456789abcdef and more": "whsec_REDACTED and more",
		"sk_rsv_short":                    "sk_rsv_short", // not a secret: too short
		"nothing here":                    "nothing here",
	} {
		if got := Secrets(in); got != want {
			t.Errorf("Secrets(%q) = %q, want %q", in, got, want)
		}
	}
}

// Whatever carries a secret into a log line, the line holds none: the
// message, strings, errors, panic values, groups, attributes added with With.
func TestHandlerRedacts(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		var h slog.Handler = slog.NewTextHandler(&buf, nil)
		if format == "json" {
			h = slog.NewJSONHandler(&buf, nil)
		}
		log := slog.New(NewHandler(h)).With("header", "Bearer "+key)
		log.Error("auth failed for "+key,
			"err", errors.New("invalid key "+key),
			"panic", any(struct{ S string }{key}),
			slog.Group("req", slog.String("authorization", key), slog.Int("status", 401)),
			"count", 3)
		out := buf.String()
		if strings.Contains(out, key[len("sk_rsv_"):]) || strings.Count(out, "sk_rsv_REDACTED") != 5 {
			t.Fatalf("%s: %s", format, out)
		}
		if !strings.Contains(out, "401") || !strings.Contains(out, "3") {
			t.Fatalf("%s: other values lost: %s", format, out)
		}
	}
}

func TestNewHandlerDoesNotWrapTwice(t *testing.T) {
	h := NewHandler(slog.NewTextHandler(&bytes.Buffer{}, nil))
	if NewHandler(h) != h {
		t.Fatal("a redacting handler was wrapped again")
	}
}
