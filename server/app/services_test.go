package app_test

import (
	"testing"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app/apptest"
)

const createService = `mutation($input: CreateServiceInput!) { createService(input: $input) { id name description timezone } }`

type service struct {
	ID, Name, Description, Timezone string
}

func TestServicesCRUD(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		e := apptest.New(t, database, nil)
		key := e.Account("acme")

		var created struct{ CreateService service }
		e.MustData(key, createService, map[string]any{"input": map[string]any{
			"name": "  Yoga  ", "description": "Morning class", "timezone": "America/New_York",
		}}, &created)
		s := created.CreateService
		if s.Name != "Yoga" || s.Description != "Morning class" || s.Timezone != "America/New_York" {
			t.Fatalf("created %+v", s)
		}

		var got struct{ Service *service }
		e.MustData(key, `query($id: ID!) { service(id: $id) { id name } }`, map[string]any{"id": s.ID}, &got)
		if got.Service == nil || got.Service.ID != s.ID {
			t.Fatalf("service(id) = %+v", got.Service)
		}

		var updated struct{ UpdateService service }
		e.MustData(key, `mutation($id: ID!) { updateService(id: $id, input: {name: "Pilates", timezone: "Europe/Paris"}) { id name description timezone } }`,
			map[string]any{"id": s.ID}, &updated)
		if u := updated.UpdateService; u.Name != "Pilates" || u.Timezone != "Europe/Paris" || u.Description != "Morning class" {
			t.Fatalf("updated %+v", u)
		}

		var deleted struct{ DeleteService string }
		e.MustData(key, `mutation($id: ID!) { deleteService(id: $id) }`, map[string]any{"id": s.ID}, &deleted)
		if deleted.DeleteService != s.ID {
			t.Fatalf("deleteService returned %q", deleted.DeleteService)
		}
		e.MustData(key, `query($id: ID!) { service(id: $id) { id } }`, map[string]any{"id": s.ID}, &got)
		if got.Service != nil {
			t.Fatalf("deleted service still readable: %+v", got.Service)
		}
		r := e.Do(key, `mutation($id: ID!) { deleteService(id: $id) }`, map[string]any{"id": s.ID})
		if r.Code() != db.CodeServiceNotFound {
			t.Fatalf("second delete: %s", r.Raw)
		}
	})
}
