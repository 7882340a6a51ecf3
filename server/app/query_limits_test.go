package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/graph"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/app/apptest"
)

// Query cost, depth, alias and batch limits (graph/limits.go,
// graph/handler.go). Helpers of this file, quota_test.go, apilogs_test.go
// and replicas_test.go start with "usage" so they do not collide with the
// package's other helpers.

// usageResponse is one GraphQL response with its extensions.
type usageResponse struct {
	Data       json.RawMessage `json:"data"`
	Errors     []apptest.Error `json:"errors"`
	Extensions map[string]any  `json:"extensions"`
}

// usageCode is the extensions.code of the first error, or "".
func (r usageResponse) usageCode() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// usageDecode decodes a raw single-operation response with its extensions.
func usageDecode(t *testing.T, raw []byte) usageResponse {
	t.Helper()
	var out usageResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response is not a JSON object: %s", raw)
	}
	return out
}

// usageRequestedCost reads extensions.cost.requested, failing when absent.
func usageRequestedCost(t *testing.T, raw []byte) int {
	t.Helper()
	r := usageDecode(t, raw)
	cost, ok := r.Extensions["cost"].(map[string]any)
	if !ok {
		t.Fatalf("no extensions.cost in %s", raw)
	}
	n, ok := cost["requested"].(float64)
	if !ok {
		t.Fatalf("extensions.cost.requested missing or not a number in %s", raw)
	}
	return int(n)
}

// usageErrorExt reads an integer extension of the first error.
func usageErrorExt(t *testing.T, r *apptest.Response, name string) int {
	t.Helper()
	if len(r.Errors) == 0 {
		t.Fatalf("no errors in %s", r.Raw)
	}
	n, ok := r.Errors[0].Extensions[name].(float64)
	if !ok {
		t.Fatalf("errors[0].extensions.%s missing or not a number in %s", name, r.Raw)
	}
	return int(n)
}

// usageWantRefused checks that an operation was refused by a limit before
// execution: the code, no data, and the named extensions.
func usageWantRefused(t *testing.T, r *apptest.Response, code string, ext map[string]int) {
	t.Helper()
	if r.Code() != code {
		t.Fatalf("code %q, want %q (HTTP %d): %s", r.Code(), code, r.Status, r.Raw)
	}
	if len(r.Errors) != 1 {
		t.Errorf("%d errors, want 1: %s", len(r.Errors), r.Raw)
	}
	if d := strings.TrimSpace(string(r.Data)); d != "" && d != "null" {
		t.Errorf("a refused operation returned data %s", d)
	}
	for name, want := range ext {
		if got := usageErrorExt(t, r, name); got != want {
			t.Errorf("extensions.%s = %d, want %d: %s", name, got, want, r.Raw)
		}
	}
}

// usagePost sends body (any JSON) to /graphql with key and headers
// ("Name: value") and returns the status and the raw response.
func usagePost(t *testing.T, e *apptest.Env, key string, body any, headers ...string) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, e.Server.URL+"/graphql", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Set(name, strings.TrimSpace(value))
	}
	res, err := e.Server.Client().Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, raw
}

// usageOp is one GraphQL request of a batch.
func usageOp(query string, vars map[string]any) map[string]any {
	op := map[string]any{"query": query}
	if vars != nil {
		op["variables"] = vars
	}
	return op
}

// usageBatch posts ops as a JSON array and decodes the array of responses.
func usageBatch(t *testing.T, e *apptest.Env, key string, ops []map[string]any) []usageResponse {
	t.Helper()
	status, raw := usagePost(t, e, key, ops)
	if status != http.StatusOK {
		t.Fatalf("batch of %d: HTTP %d: %s", len(ops), status, raw)
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		t.Fatalf("batch response is not a JSON array: %s", raw)
	}
	if len(parts) != len(ops) {
		t.Fatalf("batch of %d answered with %d responses: %s", len(ops), len(parts), raw)
	}
	out := make([]usageResponse, len(parts))
	for i, p := range parts {
		out[i] = usageDecode(t, p)
		if _, ok := out[i].Extensions["cost"]; !ok {
			t.Errorf("batch response %d has no extensions.cost: %s", i, p)
		}
	}
	return out
}

const usageCreateService = `mutation($input: CreateServiceInput!) { createService(input: $input) { id name timeSlots { id } } }`

// usageAliasedCreates is a mutation creating n services, each aliased.
func usageAliasedCreates(n int) string {
	var b strings.Builder
	b.WriteString("mutation {")
	for i := range n {
		fmt.Fprintf(&b, ` s%d: createService(input: {name: "Aliased %d", timezone: "UTC"}) { id }`, i, i)
	}
	b.WriteString(" }")
	return b.String()
}

// usageDeepQuery is a query whose fields nest exactly depth levels deep:
// service { bookings { nodes { service { bookings { nodes { … } } } } } },
// with first: 1 on every connection so the cost stays low.
func usageDeepQuery(depth int) string {
	cycle := []string{"service(id: $id)", "bookings(first: 1)", "nodes"}
	var open, close strings.Builder
	last := ""
	for i := range depth {
		name := cycle[i%3]
		if i > 0 && name == "service(id: $id)" {
			name = "service"
		}
		open.WriteString(name + " { ")
		close.WriteString(" }")
		last = name
	}
	leaf := "id"
	if strings.HasPrefix(last, "bookings") {
		leaf = "totalCount"
	}
	return "query($id: ID!) { " + open.String() + leaf + close.String() + " }"
}

// usageAliases is a query with n aliased root fields.
func usageAliases(n int) string {
	return "{ " + usageAliasList("a", n, "viewer { account { name } }") + " }"
}

// usageAliasList is n selections of field aliased prefix0, prefix1, ….
func usageAliasList(prefix string, n int, field string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("%s%d: %s", prefix, i, field)
	}
	return strings.Join(parts, " ")
}

// usageIntrospectionQuery is GraphiQL's introspection query
// (graphql-js getIntrospectionQuery with descriptions, specifiedByURL,
// isRepeatable, schema description and input value deprecation), with its
// TypeRef fragment nesting ofType ten levels deep.
const usageIntrospectionQuery = `
    query IntrospectionQuery {
      __schema {
        description
        queryType { name kind }
        mutationType { name kind }
        subscriptionType { name kind }
        types {
          ...FullType
        }
        directives {
          name
          description
          isRepeatable
          locations
          args(includeDeprecated: true) {
            ...InputValue
          }
        }
      }
    }

    fragment FullType on __Type {
      kind
      name
      description
      specifiedByURL
      fields(includeDeprecated: true) {
        name
        description
        args(includeDeprecated: true) {
          ...InputValue
        }
        type {
          ...TypeRef
        }
        isDeprecated
        deprecationReason
      }
      inputFields(includeDeprecated: true) {
        ...InputValue
      }
      interfaces {
        ...TypeRef
      }
      enumValues(includeDeprecated: true) {
        name
        description
        isDeprecated
        deprecationReason
      }
      possibleTypes {
        ...TypeRef
      }
    }

    fragment InputValue on __InputValue {
      name
      description
      type { ...TypeRef }
      defaultValue
      isDeprecated
      deprecationReason
    }

    fragment TypeRef on __Type {
      kind
      name
      ofType {
        kind
        name
        ofType {
          kind
          name
          ofType {
            kind
            name
            ofType {
              kind
              name
              ofType {
                kind
                name
                ofType {
                  kind
                  name
                  ofType {
                    kind
                    name
                    ofType {
                      kind
                      name
                      ofType {
                        kind
                        name
                        ofType {
                          kind
                          name
                        }
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
`

// usageLimitsFixture starts a server with cfg and an account holding a
// service (with one slot) and a booking.
func usageLimitsFixture(t *testing.T, database *db.DB, cfg *app.Config) (e *apptest.Env, key string, s schedService) {
	t.Helper()
	e = newEnv(t, database, cfg)
	key = e.Account("limits")
	s = mustCreateService(t, e, key, "UTC", slotIn(int(time.Monday), "09:00", "10:00", 5))
	mustBook(t, e, key, s.TimeSlots[0].ID, nextDate("UTC", time.Monday), "fixture@example.com")
	return e, key, s
}

func TestQueryCostValues(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e, key, s := usageLimitsFixture(t, database, nil)
		id := map[string]any{"id": s.ID}
		cases := []struct {
			name  string
			query string
			vars  map[string]any
			want  int
		}{
			{"connection nodes, first 5", `{ services(first: 5) { nodes { id } } }`, nil, 1 + 5*1},
			{"connection, default first 20", `{ services { nodes { id name } } }`, nil, 1 + 20*1},
			{"first from a variable", `query($n: Int) { services(first: $n) { totalCount nodes { id } } }`, map[string]any{"n": 7}, 1 + 7*1},
			{"edges and pageInfo", `{ services(first: 3) { edges { cursor node { id timeSlots { id } } } pageInfo { hasNextPage } } }`, nil,
				1 + 3*(1+1) + 1},
			{"nested bookings", `{ bookings(first: 10) { totalCount nodes { id date service { id name } timeSlot { id startTime } customer { id email } } } }`, nil,
				1 + 10*(1+1+1+1)},
			{"connection in a connection", `{ services(first: 2) { nodes { id bookings(first: 3) { nodes { id } } } } }`, nil,
				1 + 2*(1+(1+3*1))},
			{"plain list of objects", `query($id: ID!) { service(id: $id) { id timeSlots { id service { id } } } }`, id,
				1 + (1 + 10*1)}, // lists weigh 10,
			{"fragment", `{ services(first: 2) { ...Page } } fragment Page on ServiceConnection { nodes { id } }`, nil, 1 + 2*1},
			{"objects", `{ viewer { account { name } apiKey { id } } }`, nil, 1 + 1 + 1},
			{"scalars and introspection are free", `{ __typename }`, nil, 0},
			{"mutation", usageCreateService, map[string]any{"input": map[string]any{"name": "Costed", "timezone": "UTC"}},
				10 + 1 + 1}, // each mutation root field +10
			{"two mutation root fields", usageAliasedCreates(2), nil, 2 * (10 + 1)},
		}
		for _, c := range cases {
			r := e.Do(key, c.query, c.vars)
			if r.Status != http.StatusOK || len(r.Errors) > 0 {
				t.Errorf("%s: HTTP %d: %s", c.name, r.Status, r.Raw)
				continue
			}
			if got := usageRequestedCost(t, r.Raw); got != c.want {
				t.Errorf("%s: extensions.cost.requested = %d, want %d", c.name, got, c.want)
			}
		}

		// Failed operations carry their cost too.
		r := e.Do(key, `query($id: ID!) { service(id: $id) { id } booking(id: "999999") { id } big: services(first: 101) { nodes { id } } }`, id)
		if len(r.Errors) == 0 {
			t.Fatalf("services(first: 101) did not fail: %s", r.Raw)
		}
		if got := usageRequestedCost(t, r.Raw); got != 1+1+(1+101) {
			t.Errorf("failed operation: cost %d, want %d: %s", got, 1+1+(1+101), r.Raw)
		}
	})
}

func TestQueryFirstOver100Refused(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e, key, _ := usageLimitsFixture(t, database, nil)
		r := e.Do(key, `{ services(first: 101) { nodes { id } } }`, nil)
		if r.Code() != db.CodeInvalidFieldFormat || r.Field() != "first" {
			t.Fatalf("first: 101: code %q field %q, want %s on first: %s", r.Code(), r.Field(), db.CodeInvalidFieldFormat, r.Raw)
		}
		r = e.Do(key, `{ bookings(first: 500) { nodes { id } } }`, nil)
		if r.Code() != db.CodeInvalidFieldFormat || r.Field() != "first" {
			t.Fatalf("bookings(first: 500): code %q field %q: %s", r.Code(), r.Field(), r.Raw)
		}
		if r := e.Do(key, `{ services(first: 100) { nodes { id } } }`, nil); len(r.Errors) > 0 {
			t.Fatalf("first: 100 refused: %s", r.Raw)
		}
	})
}

func TestQueryOverMaxCostRefused(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e, key, _ := usageLimitsFixture(t, database, nil)

		// 1 + 100 × (1 + (1 + 100 × 1)) = 10 201 > 1000.
		q := `{ services(first: 100) { nodes { id bookings(first: 100) { nodes { id } } } } }`
		r := e.Do(key, q, nil)
		usageWantRefused(t, r, "query_too_complex", map[string]int{"cost": 10201, "maxCost": 1000})
		if !strings.Contains(r.Errors[0].Message, "10201") || !strings.Contains(r.Errors[0].Message, "1000") {
			t.Errorf("message %q does not give the cost and the maximum", r.Errors[0].Message)
		}
		if got := usageRequestedCost(t, r.Raw); got != 10201 {
			t.Errorf("refused operation: extensions.cost.requested = %d, want 10201", got)
		}

		// Exactly at the limit passes, one above is refused.
		at := "{ " + usageAliasList("s", 10, "services(first: 99) { totalCount nodes { id } }") + " }"
		if r := e.Do(key, at, nil); len(r.Errors) > 0 || usageRequestedCost(t, r.Raw) != 1000 {
			t.Fatalf("an operation costing 1000 (the maximum): %s", r.Raw)
		}
		r = e.Do(key, "{ "+usageAliasList("s", 10, "services(first: 100) { nodes { id } }")+" }", nil)
		usageWantRefused(t, r, "query_too_complex", map[string]int{"cost": 1010, "maxCost": 1000})
	})
}

// A refused mutation runs no resolver: none of its services is created.
func TestQueryOverMaxCostRunsNoResolver(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, &app.Config{GraphQL: graph.Limits{MaxCost: 50}})
		key := e.Account("limits")

		// 5 × (10 + 1) = 55 > 50.
		r := e.Do(key, usageAliasedCreates(5), nil)
		usageWantRefused(t, r, "query_too_complex", map[string]int{"cost": 55, "maxCost": 50})
		if n := serviceTotal(t, e, key); n != 0 {
			t.Fatalf("a refused mutation created %d services", n)
		}
		// 4 × 11 = 44 runs all four.
		if r := e.Do(key, usageAliasedCreates(4), nil); len(r.Errors) > 0 {
			t.Fatalf("mutation costing 44: %s", r.Raw)
		}
		if n := serviceTotal(t, e, key); n != 4 {
			t.Fatalf("%d services after a mutation creating 4", n)
		}
	})
}

func TestQueryCustomMaxCost(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dbtest.Open(t, dbtest.SQLite), &app.Config{GraphQL: graph.Limits{MaxCost: 10}})
	key := e.Account("limits")
	if r := e.Do(key, `{ services(first: 9) { nodes { id } } }`, nil); len(r.Errors) > 0 || usageRequestedCost(t, r.Raw) != 10 {
		t.Fatalf("cost 10 under a maximum of 10: %s", r.Raw)
	}
	r := e.Do(key, `{ services(first: 10) { nodes { id } } }`, nil)
	usageWantRefused(t, r, "query_too_complex", map[string]int{"cost": 11, "maxCost": 10})
	// The default first (20) counts when first is not given.
	r = e.Do(key, `{ services { nodes { id } } }`, nil)
	usageWantRefused(t, r, "query_too_complex", map[string]int{"cost": 21, "maxCost": 10})
}

func TestQueryDepthLimit(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e, key, s := usageLimitsFixture(t, database, nil)
		vars := map[string]any{"id": s.ID}
		for depth := 1; depth <= 10; depth++ {
			r := e.Do(key, usageDeepQuery(depth), vars)
			if r.Status != http.StatusOK || len(r.Errors) > 0 {
				t.Fatalf("depth %d refused: %s\n%s", depth, r.Raw, usageDeepQuery(depth))
			}
		}
		// The depth-10 query really reaches the bottom: service → booking →
		// service → booking → service → booking(s).
		var deep struct {
			Service struct {
				Bookings struct {
					Nodes []struct {
						Service struct {
							Bookings struct {
								Nodes []struct {
									Service struct {
										Bookings struct{ Nodes []struct{ ID string } }
									}
								}
							}
						}
					}
				}
			}
		}
		e.MustData(key, usageDeepQuery(9), vars, &deep)
		if n := deep.Service.Bookings.Nodes; len(n) != 1 || len(n[0].Service.Bookings.Nodes) != 1 ||
			len(n[0].Service.Bookings.Nodes[0].Service.Bookings.Nodes) != 1 {
			t.Fatalf("depth-9 query did not resolve every level: %+v", deep)
		}

		for _, depth := range []int{11, 12, 20} {
			r := e.Do(key, usageDeepQuery(depth), vars)
			usageWantRefused(t, r, "query_too_deep", map[string]int{"depth": depth, "maxDepth": 10})
		}

		// A custom maximum.
		e4 := newEnv(t, database, &app.Config{GraphQL: graph.Limits{MaxDepth: 4}})
		key4 := e4.Account("shallow-" + t.Name())
		if r := e4.Do(key4, usageDeepQuery(4), map[string]any{"id": "1"}); len(r.Errors) > 0 {
			t.Fatalf("depth 4 under a maximum of 4: %s", r.Raw)
		}
		usageWantRefused(t, e4.Do(key4, usageDeepQuery(5), map[string]any{"id": "1"}), "query_too_deep",
			map[string]int{"depth": 5, "maxDepth": 4})
	})
}

// GraphiQL's introspection query nests ofType far deeper than MaxDepth; it
// is not counted, so the playground works — even with a tiny MaxDepth.
func TestIntrospectionQueryAllowed(t *testing.T) {
	t.Parallel()
	for _, maxDepth := range []int{0, 2} {
		e := newEnv(t, dbtest.Open(t, dbtest.SQLite), &app.Config{GraphQL: graph.Limits{MaxDepth: maxDepth}})
		key := e.Account("graphiql")
		r := e.Do(key, usageIntrospectionQuery, nil)
		var out struct {
			Schema struct {
				QueryType    struct{ Name string }
				MutationType struct{ Name string }
				Types        []struct{ Name string }
			} `json:"__schema"`
		}
		if r.Status != http.StatusOK {
			t.Fatalf("MaxDepth %d: introspection HTTP %d: %s", maxDepth, r.Status, r.Raw)
		}
		r.Decode(t, &out)
		if out.Schema.QueryType.Name != "Query" || out.Schema.MutationType.Name != "Mutation" || len(out.Schema.Types) < 20 {
			t.Fatalf("MaxDepth %d: introspection returned query %q mutation %q and %d types",
				maxDepth, out.Schema.QueryType.Name, out.Schema.MutationType.Name, len(out.Schema.Types))
		}
		if got := usageRequestedCost(t, r.Raw); got != 0 {
			t.Errorf("introspection cost %d, want 0", got)
		}
		if maxDepth == 2 { // the tiny maximum is in force for the schema's own fields
			usageWantRefused(t, e.Do(key, usageDeepQuery(3), map[string]any{"id": "1"}), "query_too_deep",
				map[string]int{"depth": 3, "maxDepth": 2})
		}
	}
}

func TestQueryAliasLimit(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		key := e.Account("aliases")
		r := e.Do(key, usageAliases(30), nil)
		if r.Status != http.StatusOK || len(r.Errors) > 0 {
			t.Fatalf("30 aliases refused: %s", r.Raw)
		}
		var data map[string]json.RawMessage
		r.Decode(t, &data)
		if len(data) != 30 {
			t.Fatalf("30 aliases answered %d fields", len(data))
		}
		usageWantRefused(t, e.Do(key, usageAliases(31), nil), "too_many_aliases", map[string]int{"aliases": 31, "maxAliases": 30})

		// Aliases count wherever they are, fragments included.
		r = e.Do(key, `{ viewer { `+usageAliasList("a", 20, "__typename")+` } ...More }
			fragment More on Query { `+usageAliasList("b", 11, "__typename")+` }`, nil)
		usageWantRefused(t, r, "too_many_aliases", map[string]int{"aliases": 31, "maxAliases": 30})

		// A custom maximum.
		e5 := newEnv(t, database, &app.Config{GraphQL: graph.Limits{MaxAliases: 5}})
		key5 := e5.Account("few")
		if r := e5.Do(key5, usageAliases(5), nil); len(r.Errors) > 0 {
			t.Fatalf("5 aliases under a maximum of 5: %s", r.Raw)
		}
		usageWantRefused(t, e5.Do(key5, usageAliases(6), nil), "too_many_aliases", map[string]int{"aliases": 6, "maxAliases": 5})
	})
}

func TestBatchedRequests(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		key := e.Account("batch")

		// Two queries: two responses, in order, each with data and its cost.
		out := usageBatch(t, e, key, []map[string]any{
			usageOp(`{ viewer { account { name } } }`, nil),
			usageOp(`query($n: Int) { services(first: $n) { totalCount nodes { id } } }`, map[string]any{"n": 4}),
		})
		var viewer viewerData
		if len(out[0].Errors) > 0 || json.Unmarshal(out[0].Data, &viewer) != nil || viewer.Viewer.Account.Name != "batch" {
			t.Fatalf("batch response 0: %+v", out[0])
		}
		if len(out[1].Errors) > 0 || !strings.Contains(string(out[1].Data), `"totalCount":0`) {
			t.Fatalf("batch response 1: data %s errors %+v", out[1].Data, out[1].Errors)
		}
		for i, want := range []int{2, 5} {
			if got := out[i].Extensions["cost"].(map[string]any)["requested"]; got != float64(want) {
				t.Errorf("batch response %d: cost %v, want %d", i, got, want)
			}
		}

		// A mutation and a query that sees its result: run in order.
		out = usageBatch(t, e, key, []map[string]any{
			usageOp(usageCreateService, map[string]any{"input": map[string]any{"name": "Batched", "timezone": "UTC"}}),
			usageOp(`{ services { totalCount nodes { name } } }`, nil),
		})
		if len(out[0].Errors) > 0 || !strings.Contains(string(out[0].Data), `"name":"Batched"`) {
			t.Fatalf("batched mutation: data %s errors %+v", out[0].Data, out[0].Errors)
		}
		if len(out[1].Errors) > 0 || !strings.Contains(string(out[1].Data), `"totalCount":1`) {
			t.Fatalf("query after the batched mutation: data %s errors %+v", out[1].Data, out[1].Errors)
		}

		// Operations fail on their own: one refused by a limit, one with
		// an invalid argument, one fine.
		out = usageBatch(t, e, key, []map[string]any{
			usageOp(usageDeepQuery(11), map[string]any{"id": "1"}),
			usageOp(`{ services(first: 0) { totalCount } }`, nil),
			usageOp(`{ __typename }`, nil),
		})
		if out[0].usageCode() != "query_too_deep" || out[1].usageCode() != db.CodeInvalidFieldFormat || len(out[2].Errors) > 0 {
			t.Fatalf("mixed batch: codes %q %q, third errors %+v", out[0].usageCode(), out[1].usageCode(), out[2].Errors)
		}

		// Ten operations are allowed, eleven are not.
		ops := make([]map[string]any, 0, graph.MaxBatch+1)
		for range graph.MaxBatch {
			ops = append(ops, usageOp(`{ viewer { account { name } } }`, nil))
		}
		if out := usageBatch(t, e, key, ops); len(out) != 10 {
			t.Fatalf("batch of 10 answered %d", len(out))
		}
		ops = append(ops, usageOp(usageCreateService, map[string]any{"input": map[string]any{"name": "Eleventh", "timezone": "UTC"}}))
		status, raw := usagePost(t, e, key, ops)
		if status != http.StatusBadRequest {
			t.Fatalf("batch of 11: HTTP %d, want 400: %s", status, raw)
		}
		if r := usageDecode(t, raw); r.usageCode() != "batch_too_large" {
			t.Fatalf("batch of 11: code %q, want batch_too_large: %s", r.usageCode(), raw)
		}
		if n := serviceTotal(t, e, key); n != 1 {
			t.Fatalf("a refused batch ran its mutation: %d services", n)
		}

		// An empty array is not a batch.
		status, raw = usagePost(t, e, key, []map[string]any{})
		if status != http.StatusBadRequest || usageDecode(t, raw).usageCode() != db.CodeInvalidRequest {
			t.Fatalf("empty batch: HTTP %d %s", status, raw)
		}
	})
}
