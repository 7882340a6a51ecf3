package graph

import (
	"context"
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/reservekit/reservekit/server/reqinfo"
)

// Limits bound what one operation may ask for. Its cost is computed before
// any resolver runs: scalar and enum fields are free, an object field costs 1
// plus its children, a connection costs 1 + first × its children (first
// defaults to DefaultPageSize), other lists ListWeight × their children, and
// each mutation field MutationWeight plus its children. Depth counts the
// schema's own fields, not introspection, so GraphiQL's introspection query
// works.
type Limits struct {
	MaxCost    int
	MaxDepth   int
	MaxAliases int
}

// Weights of the cost model.
const (
	MutationWeight = 10
	ListWeight     = 10
)

// DefaultLimits are used when a limit is zero.
var DefaultLimits = Limits{MaxCost: 1000, MaxDepth: 10, MaxAliases: 30}

type limitsExtension struct{ Limits }

var (
	_ graphql.HandlerExtension        = limitsExtension{}
	_ graphql.OperationContextMutator = limitsExtension{}
)

func (limitsExtension) ExtensionName() string                   { return "ReserveKitLimits" }
func (limitsExtension) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext measures the operation, records it for usage and
// logs, and refuses it when it is over a limit. A refused operation runs
// nothing, so it is recorded with cost 0 (the monthly quota then counts the
// request as 1); extensions.cost.requested still reports its computed cost.
func (l limitsExtension) MutateOperationContext(ctx context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	m := measure(rc)
	setCost(ctx, m.cost)
	err := l.check(m)
	if info := reqinfo.From(ctx); info != nil {
		charged := m.cost
		if err != nil {
			charged = 0
		}
		// The operation's own name: rc.OperationName is only the request's
		// optional "operationName" parameter, empty for most clients.
		info.Operation(rc.Operation.Name, string(rc.Operation.Operation), m.rootFields, charged)
	}
	return err
}

// check refuses a measurement over one of the limits.
func (l limitsExtension) check(m measurement) *gqlerror.Error {
	switch {
	case m.cost > l.MaxCost:
		return limitError("query_too_complex", fmt.Sprintf("The operation costs %d; the maximum is %d. Ask for fewer items (first) or fewer fields.", m.cost, l.MaxCost),
			map[string]any{"cost": m.cost, "maxCost": l.MaxCost})
	case m.depth > l.MaxDepth:
		return limitError("query_too_deep", fmt.Sprintf("The operation is %d levels deep; the maximum is %d.", m.depth, l.MaxDepth),
			map[string]any{"depth": m.depth, "maxDepth": l.MaxDepth})
	case m.aliases > l.MaxAliases:
		return limitError("too_many_aliases", fmt.Sprintf("The operation uses %d aliases; the maximum is %d.", m.aliases, l.MaxAliases),
			map[string]any{"aliases": m.aliases, "maxAliases": l.MaxAliases})
	}
	return nil
}

func limitError(code, msg string, ext map[string]any) *gqlerror.Error {
	ext["code"] = code
	return &gqlerror.Error{Message: msg, Extensions: ext}
}

type measurement struct {
	cost, depth, aliases int
	rootFields           []string
}

func measure(rc *graphql.OperationContext) measurement {
	w := walker{vars: rc.Variables, doc: rc.Doc}
	var m measurement
	mutation := rc.Operation.Operation == ast.Mutation
	for _, f := range w.fields(rc.Operation.SelectionSet) {
		if strings.HasPrefix(f.Name, "__") {
			continue
		}
		m.rootFields = append(m.rootFields, f.Name)
		cost := w.cost(f)
		if mutation {
			cost += MutationWeight
		}
		m.cost += cost
		m.depth = max(m.depth, w.depth(f.SelectionSet)+1)
	}
	m.aliases = w.aliases(rc.Operation.SelectionSet, map[string]bool{})
	return m
}

type walker struct {
	vars map[string]any
	doc  *ast.QueryDocument
}

// fields flattens fragments into the fields they select.
func (w walker) fields(set ast.SelectionSet) []*ast.Field {
	var out []*ast.Field
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			out = append(out, s)
		case *ast.InlineFragment:
			out = append(out, w.fields(s.SelectionSet)...)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				out = append(out, w.fields(s.Definition.SelectionSet)...)
			}
		}
	}
	return out
}

func (w walker) cost(f *ast.Field) int {
	if f.Definition == nil || strings.HasPrefix(f.Name, "__") || len(f.SelectionSet) == 0 {
		return 0 // scalars, enums and introspection are free
	}
	children := 0
	for _, c := range w.fields(f.SelectionSet) {
		children += w.cost(c)
	}
	switch {
	case strings.HasSuffix(f.Definition.Type.Name(), "Connection"):
		first := DefaultPageSize
		if v, ok := f.ArgumentMap(w.vars)["first"]; ok && v != nil {
			if n, ok := toInt(v); ok && n > 0 {
				first = n
			}
		}
		// edges and nodes hold `first` items; each item is an object (1)
		// plus its children. Other fields (pageInfo) are counted once.
		total := 1
		for _, c := range w.fields(f.SelectionSet) {
			switch c.Name {
			case "nodes":
				total += first * w.cost(&ast.Field{Name: c.Name, SelectionSet: c.SelectionSet, Definition: itemDef(c)})
			case "edges":
				for _, e := range w.fields(c.SelectionSet) {
					total += first * w.cost(e)
				}
			default:
				total += w.cost(c)
			}
		}
		return total
	case f.Definition.Type.Elem != nil:
		return 1 + ListWeight*children
	default:
		return 1 + children
	}
}

// itemDef is the definition of one element of a list field, so that it is
// costed as a single object.
func itemDef(f *ast.Field) *ast.FieldDefinition {
	if f.Definition == nil || f.Definition.Type.Elem == nil {
		return f.Definition
	}
	d := *f.Definition
	d.Type = f.Definition.Type.Elem
	return &d
}

func (w walker) depth(set ast.SelectionSet) int {
	d := 0
	for _, f := range w.fields(set) {
		if strings.HasPrefix(f.Name, "__") || len(f.SelectionSet) == 0 {
			continue
		}
		d = max(d, 1+w.depth(f.SelectionSet))
	}
	return d
}

// aliases counts aliased fields, visiting each fragment once.
func (w walker) aliases(set ast.SelectionSet, seen map[string]bool) int {
	n := 0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Alias != "" && s.Alias != s.Name {
				n++
			}
			n += w.aliases(s.SelectionSet, seen)
		case *ast.InlineFragment:
			n += w.aliases(s.SelectionSet, seen)
		case *ast.FragmentSpread:
			if !seen[s.Name] && s.Definition != nil {
				seen[s.Name] = true
				n += w.aliases(s.Definition.SelectionSet, seen)
			}
		}
	}
	return n
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		return int(n), true
	case interface{ Int64() (int64, error) }:
		i, err := n.Int64()
		return int(i), err == nil
	}
	return 0, false
}

type costKey struct{}

type costHolder struct{ cost int }

func withCostHolder(ctx context.Context) context.Context {
	return context.WithValue(ctx, costKey{}, &costHolder{})
}

func setCost(ctx context.Context, cost int) {
	if h, ok := ctx.Value(costKey{}).(*costHolder); ok {
		h.cost = cost
	}
}

// addCostExtension puts the operation's cost in extensions.cost.requested.
func addCostExtension(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil {
		return nil
	}
	if h, ok := ctx.Value(costKey{}).(*costHolder); ok {
		if resp.Extensions == nil {
			resp.Extensions = map[string]any{}
		}
		resp.Extensions["cost"] = map[string]any{"requested": h.cost}
	}
	return resp
}
