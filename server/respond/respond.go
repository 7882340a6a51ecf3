// Package respond writes the GraphQL-shaped error bodies that every failure
// outside GraphQL execution (auth, rate limits, bad requests) answers with.
package respond

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/reservekit/reservekit/server/reqinfo"
)

// Error writes {"errors":[{"message":…,"extensions":{"code":…}}]} with status.
func Error(w http.ResponseWriter, status int, code, message string, extra map[string]any) {
	ext := map[string]any{"code": code}
	for k, v := range extra {
		ext[k] = v
	}
	body, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{"message": message, "extensions": ext}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// RequestError is Error that also records the code for the request's API log.
func RequestError(w http.ResponseWriter, r *http.Request, status int, code, message string, extra map[string]any) {
	if info := reqinfo.From(r.Context()); info != nil {
		info.Error(code)
	}
	Error(w, status, code, message, extra)
}
