// Package reqinfo carries what the GraphQL layer learns about a request
// (operation, root fields, cost, error codes) back to the HTTP middleware
// that records usage and API logs.
package reqinfo

import (
	"context"
	"sync"
)

// Info describes the operations of one HTTP request (several for a batch).
type Info struct {
	mu            sync.Mutex
	operationName []string
	operationType []string
	rootFields    []string
	cost          int
	errorCodes    []string
}

// Operation records one executed (or refused) operation.
func (i *Info) Operation(name, typ string, rootFields []string, cost int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.operationName = append(i.operationName, name)
	i.operationType = append(i.operationType, typ)
	i.rootFields = append(i.rootFields, rootFields...)
	i.cost += cost
}

// Error records the code of an error returned to the client.
func (i *Info) Error(code string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, c := range i.errorCodes {
		if c == code {
			return
		}
	}
	i.errorCodes = append(i.errorCodes, code)
}

// Snapshot is a copy of an Info's contents.
type Snapshot struct {
	OperationName, OperationType string
	RootFields, ErrorCodes       []string
	Cost                         int
}

// Snapshot returns the collected facts; several operations are joined by ",".
func (i *Info) Snapshot() Snapshot {
	i.mu.Lock()
	defer i.mu.Unlock()
	return Snapshot{
		OperationName: join(i.operationName), OperationType: join(i.operationType),
		RootFields: append([]string(nil), i.rootFields...), ErrorCodes: append([]string(nil), i.errorCodes...),
		Cost: i.cost,
	}
}

func join(parts []string) string {
	out := ""
	for k, p := range parts {
		if k > 0 {
			out += ","
		}
		out += p
	}
	return out
}

type ctxKey struct{}

// New returns ctx carrying a fresh Info.
func New(ctx context.Context) (context.Context, *Info) {
	i := &Info{}
	return context.WithValue(ctx, ctxKey{}, i), i
}

// From returns the Info of ctx, or nil.
func From(ctx context.Context) *Info {
	i, _ := ctx.Value(ctxKey{}).(*Info)
	return i
}
