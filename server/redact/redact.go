// Package redact keeps secrets (API keys, webhook signing secrets) out of
// what the server writes: logs, and stored responses that are replayed.
package redact

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
)

// pattern finds API key and webhook secrets: their prefix and at least 8
// characters of the random part.
var pattern = regexp.MustCompile(`(sk_rsv_|whsec_)[0-9A-Za-z]{8,}`)

// Secrets replaces every secret in s by its prefix and "REDACTED".
func Secrets(s string) string {
	if !pattern.MatchString(s) {
		return s
	}
	return pattern.ReplaceAllString(s, "${1}REDACTED")
}

// Handler is a slog.Handler that redacts secrets from the message and from
// every attribute (strings, errors, Stringers, anything printed) before the
// handler it wraps sees them, whatever the code that logs (a panic value, an
// error carrying a header) happened to put there.
type Handler struct{ next slog.Handler }

// NewHandler wraps next (unless it redacts already).
func NewHandler(next slog.Handler) *Handler {
	if h, ok := next.(*Handler); ok {
		return h
	}
	return &Handler{next: next}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Secrets(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = attr(a)
	}
	return &Handler{next: h.next.WithAttrs(clean)}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler { return &Handler{next: h.next.WithGroup(name)} }

func attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Secrets(v.String()))
	case slog.KindGroup:
		group := v.Group()
		clean := make([]any, len(group))
		for i, g := range group {
			clean[i] = attr(g)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, Secrets(x.Error()))
		default:
			return slog.String(a.Key, Secrets(fmt.Sprint(x)))
		}
	default:
		return slog.Attr{Key: a.Key, Value: v}
	}
}
