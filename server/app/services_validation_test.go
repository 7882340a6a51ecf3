package app_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app/apptest"
)

func TestServiceValidation(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		key := e.Account("acme")

		cases := []struct {
			name        string
			input       map[string]any
			code, field string
		}{
			{"missing name", map[string]any{"timezone": "UTC"}, db.CodeMissingRequiredField, "name"},
			{"null name", map[string]any{"name": nil, "timezone": "UTC"}, db.CodeMissingRequiredField, "name"},
			{"empty name", map[string]any{"name": "", "timezone": "UTC"}, db.CodeMissingRequiredField, "name"},
			{"blank name", map[string]any{"name": " \t ", "timezone": "UTC"}, db.CodeMissingRequiredField, "name"},
			{"name of 201 characters", map[string]any{"name": strings.Repeat("a", 201), "timezone": "UTC"}, db.CodeInvalidFieldFormat, "name"},
			{"name of 201 runes", map[string]any{"name": strings.Repeat("é", 201), "timezone": "UTC"}, db.CodeInvalidFieldFormat, "name"},
			{"description of 5001 characters", map[string]any{"name": "Yoga", "timezone": "UTC", "description": strings.Repeat("d", 5001)}, db.CodeInvalidFieldFormat, "description"},
			{"missing timezone", map[string]any{"name": "Yoga"}, db.CodeMissingRequiredField, "timezone"},
			{"empty timezone", map[string]any{"name": "Yoga", "timezone": ""}, db.CodeMissingRequiredField, "timezone"},
			{"unknown timezone", map[string]any{"name": "Yoga", "timezone": "Mars/Base"}, db.CodeInvalidFieldFormat, "timezone"},
			{"Local timezone", map[string]any{"name": "Yoga", "timezone": "Local"}, db.CodeInvalidFieldFormat, "timezone"},
			{"offset timezone", map[string]any{"name": "Yoga", "timezone": "+02:00"}, db.CodeInvalidFieldFormat, "timezone"},
			{"path timezone", map[string]any{"name": "Yoga", "timezone": "../../etc/passwd"}, db.CodeInvalidFieldFormat, "timezone"},
		}
		for _, c := range cases {
			t.Run("create/"+c.name, func(t *testing.T) {
				r := e.Do(key, createService, map[string]any{"input": c.input})
				if r.Code() != c.code || r.Field() != c.field {
					t.Fatalf("code %q field %q, want %q %q: %.300s", r.Code(), r.Field(), c.code, c.field, r.Raw)
				}
				if r.Errors[0].Message == "" || string(r.Data) != "null" {
					t.Fatalf("error without message or with data: %.300s", r.Raw)
				}
			})
		}
		if n := serviceTotal(t, e, key); n != 0 {
			t.Fatalf("%d services created by invalid input", n)
		}

		// The limits themselves are accepted.
		var ok struct{ CreateService service }
		e.MustData(key, createService, map[string]any{"input": map[string]any{
			"name": strings.Repeat("é", 200), "timezone": " Asia/Kolkata ", "description": strings.Repeat("d", 5000),
		}}, &ok)
		if s := ok.CreateService; len([]rune(s.Name)) != 200 || s.Timezone != "Asia/Kolkata" || len(s.Description) != 5000 {
			t.Fatalf("created %+v", s)
		}
		id := ok.CreateService.ID

		updates := []struct {
			name        string
			input       map[string]any
			code, field string
		}{
			{"empty name", map[string]any{"name": ""}, db.CodeInvalidFieldFormat, "name"},
			{"name of 201 characters", map[string]any{"name": strings.Repeat("b", 201)}, db.CodeInvalidFieldFormat, "name"},
			{"unknown timezone", map[string]any{"timezone": "Mars/Base"}, db.CodeInvalidFieldFormat, "timezone"},
			{"Local timezone", map[string]any{"timezone": "Local"}, db.CodeInvalidFieldFormat, "timezone"},
			{"empty timezone", map[string]any{"timezone": ""}, db.CodeInvalidFieldFormat, "timezone"},
		}
		for _, c := range updates {
			t.Run("update/"+c.name, func(t *testing.T) {
				r := e.Do(key, `mutation($id: ID!, $input: UpdateServiceInput!) { updateService(id: $id, input: $input) { id } }`,
					map[string]any{"id": id, "input": c.input})
				if r.Code() != c.code || r.Field() != c.field {
					t.Fatalf("code %q field %q, want %q %q: %.300s", r.Code(), r.Field(), c.code, c.field, r.Raw)
				}
			})
		}
		// Failed updates changed nothing.
		var got struct{ Service *service }
		e.MustData(key, `query($id: ID!) { service(id: $id) { id name description timezone } }`, map[string]any{"id": id}, &got)
		if got.Service == nil || got.Service.Name != ok.CreateService.Name || got.Service.Timezone != "Asia/Kolkata" {
			t.Fatalf("service after failed updates: %+v", got.Service)
		}

		t.Run("bad IDs", func(t *testing.T) {
			ops := map[string]string{
				"service":       `query($id: ID!) { service(id: $id) { id } }`,
				"updateService": `mutation($id: ID!) { updateService(id: $id, input: {name: "X"}) { id } }`,
				"deleteService": `mutation($id: ID!) { deleteService(id: $id) }`,
			}
			for op, q := range ops {
				for _, bad := range []any{"abc", "0", "-1", "1.5", "", "99999999999999999999", " 1"} {
					r := e.Do(key, q, map[string]any{"id": bad})
					if r.Code() != db.CodeInvalidFieldFormat {
						t.Errorf("%s(id: %q): code %q: %.300s", op, bad, r.Code(), r.Raw)
					}
				}
			}
			// An inline literal too.
			if r := e.Do(key, `{ service(id: "abc") { id } }`, nil); r.Code() != db.CodeInvalidFieldFormat {
				t.Errorf("inline id: %.300s", r.Raw)
			}
			// A well-formed id that does not exist.
			var none struct{ Service *service }
			e.MustData(key, `{ service(id: "987654") { id } }`, nil, &none)
			if none.Service != nil {
				t.Errorf("service 987654 = %+v", none.Service)
			}
			for _, q := range []string{ops["updateService"], ops["deleteService"]} {
				if r := e.Do(key, q, map[string]any{"id": "987654"}); r.Code() != db.CodeServiceNotFound || r.Field() != "id" {
					t.Errorf("missing id: want %s on field id: %.300s", db.CodeServiceNotFound, r.Raw)
				}
			}
		})
	})
}

func serviceTotal(t *testing.T, e *apptest.Env, key string) int {
	t.Helper()
	var n struct{ Services struct{ TotalCount int } }
	e.MustData(key, `{ services { totalCount } }`, nil, &n)
	return n.Services.TotalCount
}

const listServices = `query($first: Int, $after: String) {
	services(first: $first, after: $after) {
		totalCount
		pageInfo { hasNextPage endCursor }
		edges { cursor node { id name } }
		nodes { id name }
	}
}`

type servicePage struct {
	Services struct {
		TotalCount int
		PageInfo   struct {
			HasNextPage bool
			EndCursor   *string
		}
		Edges []struct {
			Cursor string
			Node   service
		}
		Nodes []service
	}
}

func TestServicesPagination(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		key := e.Account("acme")
		other := e.Account("other")
		e.MustData(other, createService, map[string]any{"input": map[string]any{"name": "Not mine", "timezone": "UTC"}}, &struct{}{})

		var created []string
		for i := range 25 {
			var out struct{ CreateService service }
			e.MustData(key, createService, map[string]any{"input": map[string]any{
				"name": fmt.Sprintf("Service %02d", i), "timezone": "UTC",
			}}, &out)
			created = append(created, out.CreateService.ID)
		}

		var seen []string
		var after any
		wantSizes := []int{10, 10, 5}
		for page, size := range wantSizes {
			var p servicePage
			r := e.Do(key, listServices, map[string]any{"first": 10, "after": after})
			r.Decode(t, &p)
			c := p.Services
			if c.TotalCount != 25 {
				t.Fatalf("page %d: totalCount %d, want 25", page+1, c.TotalCount)
			}
			if len(c.Nodes) != size || len(c.Edges) != size {
				t.Fatalf("page %d: %d nodes, %d edges, want %d", page+1, len(c.Nodes), len(c.Edges), size)
			}
			if last := page == len(wantSizes)-1; c.PageInfo.HasNextPage == last {
				t.Fatalf("page %d: hasNextPage %v", page+1, c.PageInfo.HasNextPage)
			}
			cursors := map[string]bool{}
			for i, n := range c.Nodes {
				if c.Edges[i].Node.ID != n.ID || c.Edges[i].Cursor == "" || cursors[c.Edges[i].Cursor] {
					t.Fatalf("page %d: edge %d (%+v) does not match node %+v or repeats a cursor", page+1, i, c.Edges[i], n)
				}
				cursors[c.Edges[i].Cursor] = true
				if want := fmt.Sprintf("Service %02d", len(seen)); n.Name != want {
					t.Fatalf("page %d: item %d is %q, want %q (oldest first)", page+1, i, n.Name, want)
				}
				seen = append(seen, n.ID)
			}
			if c.PageInfo.EndCursor == nil || *c.PageInfo.EndCursor != c.Edges[size-1].Cursor {
				t.Fatalf("page %d: endCursor %v is not the last edge's cursor", page+1, c.PageInfo.EndCursor)
			}
			after = *c.PageInfo.EndCursor
		}
		if strings.Join(seen, ",") != strings.Join(created, ",") {
			t.Fatalf("pages returned %v, created %v", seen, created)
		}

		// After the last item: an empty page.
		var end servicePage
		e.Do(key, listServices, map[string]any{"first": 10, "after": after}).Decode(t, &end)
		if len(end.Services.Nodes) != 0 || end.Services.PageInfo.HasNextPage || end.Services.PageInfo.EndCursor != nil || end.Services.TotalCount != 25 {
			t.Fatalf("page after the end: %+v", end.Services)
		}

		// An edge cursor from the middle continues right after that edge.
		var mid servicePage
		e.Do(key, listServices, map[string]any{"first": 3}).Decode(t, &mid)
		var cont servicePage
		e.Do(key, listServices, map[string]any{"first": 2, "after": mid.Services.Edges[1].Cursor}).Decode(t, &cont)
		if len(cont.Services.Nodes) != 2 || cont.Services.Nodes[0].ID != created[2] || cont.Services.Nodes[1].ID != created[3] {
			t.Fatalf("after the 2nd edge: %+v", cont.Services.Nodes)
		}

		// Defaults and bounds of first.
		var def servicePage
		e.Do(key, listServices, nil).Decode(t, &def)
		if len(def.Services.Nodes) != 20 || !def.Services.PageInfo.HasNextPage {
			t.Fatalf("default page: %d nodes, hasNextPage %v", len(def.Services.Nodes), def.Services.PageInfo.HasNextPage)
		}
		var all servicePage
		e.Do(key, listServices, map[string]any{"first": 100}).Decode(t, &all)
		if len(all.Services.Nodes) != 25 || all.Services.PageInfo.HasNextPage {
			t.Fatalf("first 100: %d nodes, hasNextPage %v", len(all.Services.Nodes), all.Services.PageInfo.HasNextPage)
		}
		for _, first := range []int{0, 101, -1} {
			r := e.Do(key, listServices, map[string]any{"first": first})
			if r.Code() != db.CodeInvalidFieldFormat || r.Field() != "first" {
				t.Errorf("first %d: %.300s", first, r.Raw)
			}
		}

		// Cursors that this API did not hand out.
		enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
		for _, bad := range []string{"garbage", "", "!!!", enc("v1:abc"), enc("v2:" + created[0]), enc(created[0]), after.(string) + "!"} {
			r := e.Do(key, listServices, map[string]any{"first": 10, "after": bad})
			if r.Code() != db.CodeInvalidFieldFormat || r.Field() != "after" {
				t.Errorf("after %q: %.300s", bad, r.Raw)
			}
		}
	})
}

func TestServicesIsolatedBetweenAccounts(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		a := e.Account("alice")
		b := e.Account("bob")

		var created struct{ CreateService service }
		e.MustData(a, createService, map[string]any{"input": map[string]any{
			"name": "Alice's yoga", "description": "private", "timezone": "Europe/Paris",
		}}, &created)
		id := created.CreateService.ID
		var bobs struct{ CreateService service }
		e.MustData(b, createService, map[string]any{"input": map[string]any{"name": "Bob's gym", "timezone": "UTC"}}, &bobs)

		var got struct{ Service *service }
		e.MustData(b, `query($id: ID!) { service(id: $id) { id name description timezone } }`, map[string]any{"id": id}, &got)
		if got.Service != nil {
			t.Fatalf("bob reads alice's service: %+v", got.Service)
		}

		r := e.Do(b, `mutation($id: ID!) { updateService(id: $id, input: {name: "Hacked", timezone: "UTC"}) { id name } }`, map[string]any{"id": id})
		if r.Code() != db.CodeServiceNotFound || r.Status != http.StatusOK || string(r.Data) != "null" {
			t.Fatalf("bob updates alice's service: %s", r.Raw)
		}
		if strings.Contains(string(r.Raw), "Alice") || strings.Contains(string(r.Raw), "private") {
			t.Fatalf("the error leaks alice's data: %s", r.Raw)
		}
		r = e.Do(b, `mutation($id: ID!) { deleteService(id: $id) }`, map[string]any{"id": id})
		if r.Code() != db.CodeServiceNotFound {
			t.Fatalf("bob deletes alice's service: %s", r.Raw)
		}

		var list servicePage
		e.Do(b, listServices, map[string]any{"first": 100}).Decode(t, &list)
		if list.Services.TotalCount != 1 || len(list.Services.Nodes) != 1 || list.Services.Nodes[0].ID != bobs.CreateService.ID {
			t.Fatalf("bob's services: %+v", list.Services)
		}
		// Bob cannot page into alice's rows with a cursor built from her id.
		before, _ := strconv.ParseInt(id, 10, 64)
		cursor := base64.RawURLEncoding.EncodeToString([]byte("v1:" + strconv.FormatInt(before-1, 10)))
		e.Do(b, listServices, map[string]any{"first": 100, "after": cursor}).Decode(t, &list)
		for _, n := range list.Services.Nodes {
			if n.ID == id {
				t.Fatalf("bob's list includes alice's service via a cursor")
			}
		}

		// Alice's service is untouched.
		e.MustData(a, `query($id: ID!) { service(id: $id) { id name description timezone } }`, map[string]any{"id": id}, &got)
		if got.Service == nil || got.Service.Name != "Alice's yoga" || got.Service.Description != "private" || got.Service.Timezone != "Europe/Paris" {
			t.Fatalf("alice's service after bob's attempts: %+v", got.Service)
		}
		e.Do(a, listServices, map[string]any{"first": 100}).Decode(t, &list)
		if list.Services.TotalCount != 1 || len(list.Services.Nodes) != 1 || list.Services.Nodes[0].ID != id {
			t.Fatalf("alice's services: %+v", list.Services)
		}
		// And alice can still delete it.
		var del struct{ DeleteService string }
		e.MustData(a, `mutation($id: ID!) { deleteService(id: $id) }`, map[string]any{"id": id}, &del)
		if del.DeleteService != id {
			t.Fatalf("deleteService = %q", del.DeleteService)
		}
	})
}
