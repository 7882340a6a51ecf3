package webhooks

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/reservekit/reservekit/db"
)

// Headers of a delivery.
const (
	HeaderEvent     = "ReserveKit-Event"
	HeaderDelivery  = "ReserveKit-Delivery"
	HeaderSignature = "ReserveKit-Signature"
	UserAgent       = "ReserveKit-Webhooks/1"
)

// Results of an attempt, as metrics count them.
const (
	resultDelivered = "delivered"
	resultRetry     = "retry"
	resultFailed    = "failed"
	resultAbandoned = "abandoned" // no attempt: webhook gone or disabled
)

// snippetLen bounds the response body kept with an attempt.
const snippetLen = 1024

// attempt makes one attempt of a leased delivery and records it. test
// (DeliverNow) sends to a disabled webhook too.
func (d *Dispatcher) attempt(ctx context.Context, dl *db.Delivery, test bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Lease)
	defer cancel()
	w, err := d.db.WebhookByID(ctx, dl.WebhookID)
	if db.ErrorCode(err) == db.CodeWebhookNotFound || (err == nil && !w.Active && !test) {
		return resultAbandoned, d.db.AbandonDelivery(ctx, dl)
	}
	if err != nil {
		return "", err // the lease runs out and the delivery is tried again
	}
	ev, err := d.db.BookingEventByID(ctx, dl.AccountID, dl.EventID)
	if db.ErrorCode(err) == db.CodeResourceNotFound {
		return resultAbandoned, d.db.AbandonDelivery(ctx, dl)
	}
	if err != nil {
		return "", err
	}
	secret, err := d.cfg.Secrets.Open(w.SecretSealed)
	if err != nil {
		// The server's key, not the receiver, is at fault: record nothing
		// and count nothing against the webhook; the lease runs out and
		// the delivery waits for the key to be fixed.
		return "", fmt.Errorf("open signing secret of webhook %d (was the secret key changed?): %w", w.ID, err)
	}

	a, delivered := d.post(ctx, w, ev, dl, secret)
	out := db.DeliveryOutcome{Attempt: a, Delivered: delivered}
	result := resultDelivered
	if !delivered {
		result = resultFailed
		if wait, ok := d.retryDelay(dl.Attempts + 1); ok {
			next := now().Add(wait)
			out.NextAttemptAt, result = &next, resultRetry
		}
	}
	disabled, err := d.db.FinishAttempt(ctx, dl, out)
	if err != nil {
		return "", fmt.Errorf("record attempt: %w", err)
	}
	d.cfg.Metrics.WebhookAttempt(result)
	if disabled {
		d.log.Warn("webhook disabled: consecutive events failed every attempt",
			"webhook_id", w.ID, "account_id", w.AccountID, "host", host(w.URL),
			"failures", db.MaxConsecutiveFailures, "last_error", deref(a.Error))
	}
	return result, nil
}

// post sends the event once and describes the attempt.
func (d *Dispatcher) post(ctx context.Context, w *db.Webhook, ev *db.BookingEvent, dl *db.Delivery, secret string) (db.Attempt, bool) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	start := time.Now()
	a := db.Attempt{AttemptedAt: now()}
	fail := func(msg string) (db.Attempt, bool) {
		a.DurationMs = ms(time.Since(start))
		a.Error = &msg
		return a, false
	}
	body := []byte(ev.Payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fail("invalid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderEvent, ev.EventType)
	req.Header.Set(HeaderDelivery, strconv.FormatInt(dl.ID, 10))
	req.Header.Set(HeaderSignature, Sign(secret, time.Now(), body))
	resp, err := d.client.Do(req)
	if err != nil {
		return fail(describe(ctx, err, d.cfg.Timeout))
	}
	status := resp.StatusCode
	a.HTTPStatus = &status
	head, _ := io.ReadAll(io.LimitReader(resp.Body, snippetLen))
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10) // lets the connection be reused
	resp.Body.Close()
	a.DurationMs = ms(time.Since(start))
	if s := snippet(head); s != "" {
		a.ResponseSnippet = &s
	}
	switch {
	case status >= 200 && status < 300:
		return a, true
	case status >= 300 && status < 400:
		msg := fmt.Sprintf("HTTP %d (redirects are not followed)", status)
		a.Error = &msg
	default:
		msg := fmt.Sprintf("HTTP %d", status)
		a.Error = &msg
	}
	return a, false
}

// describe turns a failed request into a short message without the URL
// (which may carry the receiver's tokens) or anything secret.
func describe(ctx context.Context, err error, timeout time.Duration) string {
	var addr *addrError
	var dns *net.DNSError
	var ne net.Error
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.As(err, &addr):
		return addr.Error()
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout after " + timeout.String()
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "host " + dns.Name + " not found"
		}
		return "DNS lookup of " + dns.Name + " failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before a response"
	case errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &invalid), errors.As(err, &certErr):
		return "TLS certificate not valid for the host"
	case errors.As(err, &recordErr):
		return "TLS handshake failed (is the server speaking HTTPS?)"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = snippet([]byte(msg[:200]))
	}
	return msg
}

// snippet makes the start of a response storable: valid UTF-8 without NUL
// (which Postgres text refuses), a rune cut at the end dropped.
func snippet(b []byte) string {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				b = b[:i]
			}
			break
		}
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func host(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return ""
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
