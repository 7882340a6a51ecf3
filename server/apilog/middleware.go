package apilog

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/server/auth"
	"github.com/reservekit/reservekit/server/caller"
	"github.com/reservekit/reservekit/server/reqinfo"
)

// Middleware records every authenticated request that passes through it
// (including those refused by the rate limits below it) without delaying
// it: the entry is handed to the writer after the response is written.
func (w *Writer) Middleware(trustedProxies []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			c := caller.From(r.Context())
			if c == nil {
				next.ServeHTTP(rw, r)
				return
			}
			ctx, info := reqinfo.New(r.Context())
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(rw, r.ProtoMajor)
			next.ServeHTTP(ww, r.WithContext(ctx))
			snap := info.Snapshot()
			status := ww.Status()
			if status == 0 {
				status = http.StatusOK
			}
			addr := auth.ClientAddr(r, trustedProxies)
			w.Record(&db.APILog{
				AccountID: c.AccountID(), APIKeyID: c.Key.ID, APIKeyPrefix: c.Key.Prefix,
				OccurredAt: start.UTC(), OperationName: snap.OperationName, OperationType: snap.OperationType,
				RootFields: snap.RootFields, Cost: snap.Cost, Status: status, ErrorCodes: snap.ErrorCodes,
				DurationUS: time.Since(start).Microseconds(), ClientIP: addr.String(),
				Origin: truncate(r.Header.Get("Origin"), 200), UserAgent: truncate(r.UserAgent(), 300),
			})
		})
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
