package ratelimit

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Status is the caller's rate-limit and quota position during a request,
// for the rateLimit query.
type Status struct {
	Limit          int
	Remaining      int
	ResetAt        time.Time
	MonthlyQuota   int64 // 0: unlimited
	MonthlyUsed    int64
	MonthlyResetAt time.Time
}

type statusKey struct{}

// StatusFrom returns the request's Status, or nil outside the limiter.
func StatusFrom(ctx context.Context) *Status {
	s, _ := ctx.Value(statusKey{}).(*Status)
	return s
}

// fromHeaders reads back what httprate decided (it reports through headers).
func (s *Status) fromHeaders(h http.Header) {
	s.Limit, _ = strconv.Atoi(h.Get("X-RateLimit-Limit"))
	s.Remaining, _ = strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	s.Remaining = max(s.Remaining, 0)
	if reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
		s.ResetAt = time.Unix(reset, 0).UTC()
	}
}

// setBurstHeaders adds the IETF draft headers (draft-ietf-httpapi-ratelimit-
// headers) for the request rate: the policy and the remaining quota units.
func setBurstHeaders(w http.ResponseWriter, l Limits, s *Status) {
	window := max(int(l.Window().Seconds()+0.999), 1)
	w.Header().Set("RateLimit-Policy", fmt.Sprintf(`"burst";q=%d;w=%d`, l.Burst, window))
	reset := max(int(time.Until(s.ResetAt).Seconds()+0.999), 0)
	w.Header().Set("RateLimit", fmt.Sprintf(`"burst";r=%d;t=%d`, s.Remaining, reset))
}

// setMonthlyHeaders adds the monthly quota to the IETF draft headers.
func setMonthlyHeaders(w http.ResponseWriter, quota, used int64, reset, now time.Time) {
	monthSeconds := int64(reset.Sub(reset.AddDate(0, -1, 0)).Seconds())
	w.Header().Add("RateLimit-Policy", fmt.Sprintf(`"monthly";q=%d;w=%d`, quota, monthSeconds))
	w.Header().Add("RateLimit", fmt.Sprintf(`"monthly";r=%d;t=%d`, max(quota-used, 0), int64(reset.Sub(now).Seconds())))
}
