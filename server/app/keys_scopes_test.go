package app_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app/apptest"
	"github.com/reservekit/reservekit/server/auth"
)

// lcLoadSchema parses the schema files the server is generated from.
func lcLoadSchema(t *testing.T) *ast.Schema {
	t.Helper()
	files, err := filepath.Glob("../../schema/*.graphqls")
	if err != nil || len(files) == 0 {
		t.Fatalf("no schema files in ../../schema (%v)", err)
	}
	var sources []*ast.Source
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, &ast.Source{Name: f, Input: string(b)})
	}
	schema, err := gqlparser.LoadSchema(sources...)
	if err != nil {
		t.Fatalf("load schema: %v", err)
	}
	return schema
}

// lcRootTypes are the schema's root operation types that exist.
func lcRootTypes(schema *ast.Schema) []*ast.Definition {
	var out []*ast.Definition
	for _, d := range []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

// lcRootFields are the names of the fields of a root type (without the
// introspection fields).
func lcRootFields(d *ast.Definition) []string {
	var out []string
	for _, f := range d.Fields {
		if !strings.HasPrefix(f.Name, "__") {
			out = append(out, f.Name)
		}
	}
	return out
}

func TestSchemaRootFieldsDeclareScopes(t *testing.T) {
	t.Parallel()
	schema := lcLoadSchema(t)
	if schema.Query == nil || schema.Mutation == nil {
		t.Fatal("schema has no Query or Mutation")
	}
	for _, name := range []string{"hasScope", "public"} {
		d := schema.Directives[name]
		if d == nil || !slices.Contains(d.Locations, ast.LocationFieldDefinition) {
			t.Fatalf("directive @%s is not declared on FIELD_DEFINITION", name)
		}
	}

	checked := 0
	for _, root := range lcRootTypes(schema) {
		for _, f := range root.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			checked++
			scoped, public := f.Directives.ForName("hasScope") != nil, f.Directives.ForName("public") != nil
			switch {
			case !scoped && !public:
				t.Errorf("%s.%s has neither @hasScope nor @public: any key could call it", root.Name, f.Name)
			case scoped && public:
				t.Errorf("%s.%s has both @hasScope and @public", root.Name, f.Name)
			}
			if n := len(f.Directives.ForNames("hasScope")); n > 1 {
				t.Errorf("%s.%s has %d @hasScope directives", root.Name, f.Name, n)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d root fields checked; the schema did not load as expected", checked)
	}

	// Every scope named anywhere in the schema is one the keys can carry.
	used := map[string]bool{}
	names := make([]string, 0, len(schema.Types))
	for name := range schema.Types {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, f := range schema.Types[name].Fields {
			for _, d := range f.Directives.ForNames("hasScope") {
				arg := d.Arguments.ForName("scope")
				if arg == nil || arg.Value == nil || arg.Value.Kind != ast.StringValue {
					t.Errorf("%s.%s: @hasScope without a literal scope string", name, f.Name)
					continue
				}
				if !slices.Contains(auth.Scopes, arg.Value.Raw) {
					t.Errorf("%s.%s: @hasScope(scope: %q) is not one of auth.Scopes %v", name, f.Name, arg.Value.Raw, auth.Scopes)
				}
				used[arg.Value.Raw] = true
			}
		}
	}
	for _, sc := range auth.Scopes {
		if !used[sc] {
			t.Logf("note: scope %s guards no field of the schema", sc)
		}
	}
}

// lcDenied checks that r failed with insufficient_scope naming scope (and
// the field), with no data for the field.
func lcDenied(t *testing.T, r *apptest.Response, scope, field string) {
	t.Helper()
	if r.Code() != auth.CodeInsufficientScope {
		t.Fatalf("want insufficient_scope for %s, got %q: %s", field, r.Code(), r.Raw)
	}
	msg := r.Errors[0].Message
	if !strings.Contains(msg, scope) || !strings.Contains(msg, field) {
		t.Fatalf("message %q does not name the scope %s and the field %s", msg, scope, field)
	}
	if got := errStatus(r); got != http.StatusForbidden {
		t.Errorf("extensions.status %d, want 403: %s", got, r.Raw)
	}
}

const lcBookingsOp = `{ bookings(first: 10) { totalCount nodes { id status service { id name } customer { email } } } }`

func TestScopesEnforced(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		svc := mustCreateService(t, e, admin, schedNY, slotIn(1, "09:00", "10:00", 5))
		date := nextDate(schedNY, time.Monday)
		booking := mustBook(t, e, admin, svc.TimeSlots[0].ID, date, "ann@example.com")
		reader := lcCreateKey(t, e, admin, map[string]any{"name": "reader", "scopes": []string{"bookings:read"}})
		keysBefore := len(lcKeys(t, e, admin))

		// Reading bookings is allowed.
		var page struct {
			Bookings struct {
				TotalCount int
				Nodes      []struct{ ID string }
			}
		}
		e.MustData(reader.Secret, lcBookingsOp, nil, &page)
		if page.Bookings.TotalCount != 1 || len(page.Bookings.Nodes) != 1 || page.Bookings.Nodes[0].ID != booking.ID {
			t.Fatalf("bookings:read key reads %+v, want booking %s", page.Bookings, booking.ID)
		}
		if got := getBooking(t, e, reader.Secret, booking.ID); got == nil || got.ID != booking.ID {
			t.Fatalf("booking(id) with bookings:read: %+v", got)
		}
		wantOK(t, e, reader.Secret, "acme") // viewer is @public

		// Writing is not.
		r := doCreateBooking(e, reader.Secret, bookingInput(svc.TimeSlots[0].ID, date, "bob@example.com"))
		lcDenied(t, r, "bookings:write", "createBooking")
		if string(r.Data) != "null" {
			t.Fatalf("denied mutation returned data %s", r.Data)
		}
		e.MustData(admin, lcBookingsOp, nil, &page)
		if page.Bookings.TotalCount != 1 {
			t.Fatalf("denied createBooking created a booking: %d bookings", page.Bookings.TotalCount)
		}

		r = e.Do(reader.Secret, createService, map[string]any{"input": map[string]any{"name": "Sneaky", "timezone": "UTC"}})
		lcDenied(t, r, "services:write", "createService")
		if n := serviceCount(t, e, admin); n != 1 {
			t.Fatalf("denied createService created a service: %d services", n)
		}

		r = e.Do(reader.Secret, lcCreateKeyOp, map[string]any{"input": map[string]any{"name": "escalate"}})
		lcDenied(t, r, "keys:manage", "createApiKey")
		if secretRE.Match(r.Raw) {
			t.Fatalf("denied createApiKey returned a secret: %s", r.Raw)
		}
		if n := len(lcKeys(t, e, admin)); n != keysBefore {
			t.Fatalf("denied createApiKey created a key: %d keys, want %d", n, keysBefore)
		}
		lcDenied(t, e.Do(reader.Secret, `mutation($id: ID!) { cancelBooking(id: $id, reason: "x") { id } }`,
			map[string]any{"id": booking.ID}), "bookings:write", "cancelBooking")
		if got := getBooking(t, e, admin, booking.ID); got == nil || got.Status != "PENDING" {
			t.Fatalf("denied cancelBooking changed the booking: %+v", got)
		}
		lcDenied(t, e.Do(reader.Secret, `{ services { totalCount } }`, nil), "services:read", "services")
		lcDenied(t, e.Do(reader.Secret, `{ auditEvents { totalCount } }`, nil), "logs:read", "auditEvents")
		lcDenied(t, e.Do(reader.Secret, `{ apiKeys { totalCount } }`, nil), "keys:manage", "apiKeys")

		// Each refusal is in the audit trail, newest first, naming the key.
		events := lcAudit(t, e, admin)
		want := []string{"keys:manage for apiKeys", "logs:read for auditEvents", "services:read for services",
			"bookings:write for cancelBooking", "keys:manage for createApiKey", "services:write for createService",
			"bookings:write for createBooking"}
		var denied []string
		for _, ev := range events {
			if ev.Action == db.AuditScopeDenied {
				denied = append(denied, ev.Target)
				if ev.ActorKeyPrefix != reader.APIKey.Prefix {
					t.Errorf("scope.denied actor %q, want %q", ev.ActorKeyPrefix, reader.APIKey.Prefix)
				}
			}
		}
		if !slices.Equal(denied, want) {
			t.Fatalf("scope.denied targets %q, want %q", denied, want)
		}
	})
}

func TestScopeServicesReadCannotReadBookings(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		svc := mustCreateService(t, e, admin, schedNY, slotIn(1, "09:00", "10:00", 5))
		booking := mustBook(t, e, admin, svc.TimeSlots[0].ID, nextDate(schedNY, time.Monday), "ann@example.com")
		k := lcCreateKey(t, e, admin, map[string]any{"scopes": []string{"services:read"}})

		var services struct {
			Services struct{ Nodes []struct{ ID, Name string } }
		}
		e.MustData(k.Secret, `{ services { nodes { id name } } }`, nil, &services)
		if len(services.Services.Nodes) != 1 || services.Services.Nodes[0].ID != svc.ID {
			t.Fatalf("services:read key reads %+v", services.Services.Nodes)
		}
		avail := availability(t, e, k.Secret, svc.ID, localToday(schedNY).Format(db.DateLayout),
			localToday(schedNY).AddDate(0, 0, 20).Format(db.DateLayout))
		if len(avail) == 0 {
			t.Fatal("services:read key reads no availability")
		}

		for name, op := range map[string]string{
			"services": `{ services(first: 2) { nodes { id bookings(first: 2) { totalCount nodes { id customer { email } } } } } }`,
			"service":  `query($id: ID!) { service(id: $id) { id bookings(first: 5) { totalCount nodes { id customer { email } } } } }`,
		} {
			r := e.Do(k.Secret, op, map[string]any{"id": svc.ID})
			lcDenied(t, r, "bookings:read", "bookings")
			if strings.Contains(string(r.Raw), "ann@example.com") || strings.Contains(string(r.Raw), `"id":"`+booking.ID+`"`) {
				t.Fatalf("%s: bookings leaked through Service.bookings: %s", name, r.Raw)
			}
		}
		lcDenied(t, e.Do(k.Secret, gqlBooking, map[string]any{"id": booking.ID}), "bookings:read", "booking")
		lcDenied(t, e.Do(k.Secret, lcBookingsOp, nil), "bookings:read", "bookings")
	})
}

func TestScopedKeyCreatesOnlyNarrowerKeys(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		managerScopes := []string{"keys:manage", "services:read"}
		manager := lcCreateKey(t, e, admin, map[string]any{"name": "manager", "scopes": managerScopes})
		keys := len(lcKeys(t, e, admin))

		for _, scopes := range [][]string{{"bookings:read"}, {"keys:manage", "bookings:write"}, {"services:read", "logs:read"}} {
			r := e.Do(manager.Secret, lcCreateKeyOp, map[string]any{"input": map[string]any{"scopes": scopes}})
			if r.Code() != auth.CodeInsufficientScope || r.Field() != "scopes" {
				t.Fatalf("scopes %v from a %v key: %s", scopes, managerScopes, r.Raw)
			}
			if secretRE.Match(r.Raw) {
				t.Fatalf("refused createApiKey returned a secret: %s", r.Raw)
			}
		}
		if n := len(lcKeys(t, e, admin)); n != keys {
			t.Fatalf("refused creations created keys: %d, want %d", n, keys)
		}

		// No scopes given: the new key has the caller's scopes, not full access.
		for name, input := range map[string]map[string]any{
			"scopes omitted": {"name": "inherits"},
			"scopes null":    {"name": "inherits", "scopes": nil},
			"scopes empty":   {"name": "inherits", "scopes": []string{}},
		} {
			r := e.Do(manager.Secret, lcCreateKeyOp, map[string]any{"input": input})
			if len(r.Errors) > 0 {
				if r.Code() != auth.CodeInsufficientScope && r.Code() != db.CodeInvalidFieldFormat {
					t.Fatalf("%s: %s", name, r.Raw)
				}
				continue // refusing is as good as narrowing
			}
			var out struct {
				CreateAPIKey lcCreated `json:"createApiKey"`
			}
			r.Decode(t, &out)
			if !slices.Equal(out.CreateAPIKey.APIKey.Scopes, managerScopes) {
				t.Fatalf("%s: created key has scopes %q, want the caller's %q", name, out.CreateAPIKey.APIKey.Scopes, managerScopes)
			}
			created := out.CreateAPIKey.Secret
			lcDenied(t, e.Do(created, createService, map[string]any{"input": map[string]any{"name": "x", "timezone": "UTC"}}),
				"services:write", "createService")
			var list struct{ Services struct{ TotalCount int } }
			e.MustData(created, `{ services { totalCount } }`, nil, &list)
		}

		// A narrower key is fine, and it cannot manage keys itself.
		narrow := lcCreateKey(t, e, manager.Secret, map[string]any{"scopes": []string{" services:read ", "services:read"}})
		if !slices.Equal(narrow.APIKey.Scopes, []string{"services:read"}) {
			t.Fatalf("narrow key scopes %q", narrow.APIKey.Scopes)
		}
		lcDenied(t, e.Do(narrow.Secret, lcCreateKeyOp, map[string]any{"input": map[string]any{}}), "keys:manage", "createApiKey")

		// Unknown scopes are refused, even for a full-access key.
		for _, bad := range []string{"bookings:delete", "admin", "", "SERVICES:READ", "services:*"} {
			r := e.Do(admin, lcCreateKeyOp, map[string]any{"input": map[string]any{"scopes": []string{"services:read", bad}}})
			wantError(t, r, db.CodeInvalidFieldFormat, "scopes")
			if !strings.Contains(r.Errors[0].Message, "unknown scope") || secretRE.Match(r.Raw) {
				t.Fatalf("scope %q: %s", bad, r.Raw)
			}
		}
	})
}

// TestScopedKeyCannotRollIntoMoreScopes: rollApiKey creates a key too, so a
// key limited to keys:manage must not obtain, by rolling a broader key, a
// secret with scopes it does not have.
func TestScopedKeyCannotRollIntoMoreScopes(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		admin := e.Account("acme")
		adminID, _ := lcSelf(t, e, admin)
		manager := lcCreateKey(t, e, admin, map[string]any{"name": "manager", "scopes": []string{"keys:manage"}})
		writer := lcCreateKey(t, e, admin, map[string]any{"name": "writer", "scopes": []string{"keys:manage", "services:write"}})

		for name, target := range map[string]string{"full-access key": adminID, "services:write key": writer.APIKey.ID} {
			r := lcRoll(e, manager.Secret, target, 604800)
			if len(r.Errors) > 0 {
				if secretRE.Match(r.Raw) {
					t.Errorf("%s: refused roll returned a secret: %s", name, r.Raw)
				}
				continue
			}
			var out struct {
				RollAPIKey lcCreated `json:"rollApiKey"`
			}
			r.Decode(t, &out)
			got := out.RollAPIKey.APIKey.Scopes
			if len(got) == 0 || slices.ContainsFunc(got, func(sc string) bool { return sc != "keys:manage" }) {
				w := e.Do(out.RollAPIKey.Secret, createService, map[string]any{"input": map[string]any{"name": "escalated", "timezone": "UTC"}})
				t.Errorf("a [keys:manage] key rolled the %s and got a secret with scopes %q (empty = full access); "+
					"createService with it: HTTP %d %s", name, got, w.Status, w.Raw)
			}
		}
	})
}
