package db

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/uptrace/bun"
)

// ServiceInput carries the fields of a service to create or change; nil
// fields are left as they are on update.
type ServiceInput struct {
	Name        *string
	Description *string
	Timezone    *string
}

const (
	maxNameLen        = 200
	maxDescriptionLen = 5000
)

// validate checks the set fields; on create every required field must be set.
func (in *ServiceInput) validate(create bool) error {
	if in.Name != nil {
		*in.Name = strings.TrimSpace(*in.Name)
	}
	if create && (in.Name == nil || *in.Name == "") {
		return Errorf(CodeMissingRequiredField, "name", "name is required")
	}
	if in.Name != nil {
		if *in.Name == "" {
			return Errorf(CodeInvalidFieldFormat, "name", "name must not be empty")
		}
		if utf8.RuneCountInString(*in.Name) > maxNameLen {
			return Errorf(CodeInvalidFieldFormat, "name", "name must be at most %d characters", maxNameLen)
		}
	}
	if in.Description != nil && utf8.RuneCountInString(*in.Description) > maxDescriptionLen {
		return Errorf(CodeInvalidFieldFormat, "description", "description must be at most %d characters", maxDescriptionLen)
	}
	if create && (in.Timezone == nil || strings.TrimSpace(*in.Timezone) == "") {
		return Errorf(CodeMissingRequiredField, "timezone", "timezone is required")
	}
	if in.Timezone != nil {
		tz := strings.TrimSpace(*in.Timezone)
		if _, err := LoadLocation(tz); err != nil {
			return err
		}
		in.Timezone = &tz
	}
	return nil
}

// LoadLocation resolves an IANA zone name, refusing the empty and "Local"
// names that time.LoadLocation would accept.
func LoadLocation(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, Errorf(CodeInvalidFieldFormat, "timezone", "timezone must be an IANA zone such as America/New_York")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, Errorf(CodeInvalidFieldFormat, "timezone", "timezone %q is not a known IANA zone (e.g. America/New_York)", name)
	}
	return loc, nil
}

// CreateService creates a service together with its time slots, all or nothing.
func (db *DB) CreateService(ctx context.Context, accountID int64, in ServiceInput, slots []TimeSlotInput) (*Service, error) {
	if err := in.validate(true); err != nil {
		return nil, err
	}
	for i := range slots {
		if slots[i].ID != nil {
			return nil, Errorf(CodeInvalidRequest, slotField(i, "id"), "a new service's time slots cannot carry ids")
		}
	}
	t := now()
	s := &Service{AccountID: accountID, Name: *in.Name, Timezone: *in.Timezone, CreatedAt: t, UpdatedAt: t}
	if in.Description != nil {
		s.Description = *in.Description
	}
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewInsert().Model(s).Exec(ctx); err != nil {
			return err
		}
		_, err := upsertSlots(ctx, tx, s, slots)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Service returns a service of the account.
func (db *DB) Service(ctx context.Context, accountID, id int64) (*Service, error) {
	return serviceIn(ctx, db, accountID, id)
}

func serviceIn(ctx context.Context, q bun.IDB, accountID, id int64) (*Service, error) {
	s := new(Service)
	err := q.NewSelect().Model(s).Where("account_id = ? AND id = ?", accountID, id).Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeServiceNotFound, "serviceId", "service %d not found", id)
	}
	return s, err
}

// ServicesByIDs loads services of an account by id (for dataloaders).
func (db *DB) ServicesByIDs(ctx context.Context, accountID int64, ids []int64) ([]*Service, error) {
	var out []*Service
	err := db.NewSelect().Model(&out).Where("account_id = ? AND id IN (?)", accountID, bun.In(ids)).Scan(ctx)
	return out, err
}

// ListServices pages through an account's services, oldest first.
func (db *DB) ListServices(ctx context.Context, accountID int64, page Page) ([]*Service, error) {
	var out []*Service
	q := db.NewSelect().Model(&out).Where("account_id = ?", accountID).OrderExpr("id ASC").Limit(int64(page.First + 1))
	if page.AfterID > 0 {
		q = q.Where("id > ?", page.AfterID)
	}
	return out, q.Scan(ctx)
}

// CountServices counts an account's services.
func (db *DB) CountServices(ctx context.Context, accountID int64) (int, error) {
	n, err := db.NewSelect().Model((*Service)(nil)).Where("account_id = ?", accountID).Count(ctx)
	return int(n), err
}

// UpdateService changes the given fields of a service.
func (db *DB) UpdateService(ctx context.Context, accountID, id int64, in ServiceInput) (*Service, error) {
	if err := in.validate(false); err != nil {
		return nil, err
	}
	var s *Service
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if s, err = lockService(ctx, tx, db.postgres, accountID, id, "id"); err != nil {
			return err
		}
		if in.Name != nil {
			s.Name = *in.Name
		}
		if in.Description != nil {
			s.Description = *in.Description
		}
		if in.Timezone != nil {
			s.Timezone = *in.Timezone
		}
		s.UpdatedAt = now()
		_, err = tx.NewUpdate().Model(s).Column("name", "description", "timezone", "updated_at").WherePK().Exec(ctx)
		return err
	})
	return s, err
}

// DeleteService deletes a service with its slots and bookings (one
// bookings.delete event for them).
func (db *DB) DeleteService(ctx context.Context, accountID, id int64) error {
	var ev *BookingEvent
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		s, err := lockService(ctx, tx, db.postgres, accountID, id, "id")
		if err != nil {
			return err
		}
		if err := lockForCascade(ctx, tx, db.postgres, "service_id = ?", id); err != nil {
			return err
		}
		if ev, err = db.recordCascade(ctx, tx, accountID, id, ""); err != nil {
			return err
		}
		_, err = tx.NewDelete().Model(s).WherePK().Exec(ctx)
		return err
	})
	if err == nil {
		db.published(ev)
	}
	return err
}

// lockService reads a service inside tx and, on Postgres, locks its row so
// that concurrent changes to its slots are serialized (SQLite transactions
// are already serialized by the immediate write lock).
func lockService(ctx context.Context, tx bun.Tx, postgres bool, accountID, id int64, field string) (*Service, error) {
	s := new(Service)
	q := tx.NewSelect().Model(s).Where("account_id = ? AND id = ?", accountID, id)
	if postgres {
		// Not FOR UPDATE: that would also block the foreign-key checks of
		// bookings being inserted, which hold their slot shared, and
		// deadlock with a change of that slot.
		q = q.For("NO KEY UPDATE")
	}
	err := q.Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeServiceNotFound, field, "service %d not found", id)
	}
	return s, err
}
