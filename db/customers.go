package db

import (
	"context"
	"database/sql"
	"net/mail"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/uptrace/bun"
)

// CustomerInput carries optional customer fields; nil leaves a field as is.
type CustomerInput struct {
	Name  *string
	Email *string
	Phone *string
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// normalize trims the fields, lower-cases the email, drops empty strings and
// checks formats. prefix names the fields in errors ("customer" → customerEmail).
func (in *CustomerInput) normalize(prefix string) error {
	field := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + strings.ToUpper(name[:1]) + name[1:]
	}
	clean := func(p **string) {
		if *p != nil {
			v := strings.TrimSpace(**p)
			if v == "" {
				*p = nil
				return
			}
			*p = &v
		}
	}
	clean(&in.Name)
	clean(&in.Email)
	clean(&in.Phone)
	if in.Name != nil && utf8.RuneCountInString(*in.Name) > maxNameLen {
		return Errorf(CodeInvalidFieldFormat, field("name"), "%s must be at most %d characters", field("name"), maxNameLen)
	}
	if in.Email != nil {
		addr, err := mail.ParseAddress(*in.Email)
		if err != nil || addr.Address != *in.Email || !strings.Contains(addr.Address[strings.LastIndex(addr.Address, "@")+1:], ".") || len(*in.Email) > 254 {
			return Errorf(CodeInvalidFieldFormat, field("email"), "%s must be a valid email address", field("email"))
		}
		lower := strings.ToLower(*in.Email)
		in.Email = &lower
	}
	if in.Phone != nil && !e164.MatchString(*in.Phone) {
		return Errorf(CodeInvalidFieldFormat, field("phone"), "%s must be an E.164 phone number such as +12025550185", field("phone"))
	}
	return nil
}

// resolveCustomer finds the account's customer by email (else phone) or
// creates one; it fills in fields the stored customer lacks. It returns nil
// when no customer field is given.
func resolveCustomer(ctx context.Context, tx bun.Tx, accountID int64, in CustomerInput) (*Customer, error) {
	if in.Name == nil && in.Email == nil && in.Phone == nil {
		return nil, nil
	}
	c := new(Customer)
	err := sql.ErrNoRows // no email or phone to match on: always a new customer
	switch {
	case in.Email != nil:
		err = tx.NewSelect().Model(c).Where("account_id = ? AND email = ?", accountID, *in.Email).Scan(ctx)
	case in.Phone != nil:
		err = tx.NewSelect().Model(c).Where("account_id = ? AND phone = ?", accountID, *in.Phone).OrderExpr("id ASC").Limit(1).Scan(ctx)
	}
	t := now()
	if isNoRows(err) {
		c = &Customer{AccountID: accountID, Name: in.Name, Email: in.Email, Phone: in.Phone, CreatedAt: t, UpdatedAt: t}
		if in.Email == nil {
			_, err = tx.NewInsert().Model(c).Exec(ctx)
			return c, err
		}
		// A concurrent booking may be creating the same new customer: the
		// unique (account_id, email) index makes this insert wait for it and
		// then do nothing, and the customer it committed is used instead of
		// failing with a unique violation.
		res, insErr := tx.NewInsert().Model(c).On("CONFLICT (account_id, email) DO NOTHING").Exec(ctx)
		if insErr != nil {
			return nil, insErr
		}
		if n, rowsErr := res.RowsAffected(); rowsErr != nil || n == 1 {
			return c, rowsErr
		}
		c = new(Customer)
		err = tx.NewSelect().Model(c).Where("account_id = ? AND email = ?", accountID, *in.Email).Scan(ctx)
	}
	if err != nil {
		return nil, err
	}
	changed := false
	if c.Name == nil && in.Name != nil {
		c.Name, changed = in.Name, true
	}
	if c.Phone == nil && in.Phone != nil {
		c.Phone, changed = in.Phone, true
	}
	if changed {
		c.UpdatedAt = t
		_, err = tx.NewUpdate().Model(c).Column("name", "phone", "updated_at").WherePK().Exec(ctx)
	}
	return c, err
}

// CustomersByIDs loads customers of an account by id (for dataloaders).
func (db *DB) CustomersByIDs(ctx context.Context, accountID int64, ids []int64) ([]*Customer, error) {
	var out []*Customer
	err := db.NewSelect().Model(&out).Where("account_id = ? AND id IN (?)", accountID, bun.In(ids)).Scan(ctx)
	return out, err
}

// UpdateBookingCustomer changes the customer of a booking, creating one when
// the booking has none. An email that belongs to another customer is refused.
func (db *DB) UpdateBookingCustomer(ctx context.Context, accountID, bookingID int64, in CustomerInput) (*Customer, error) {
	if err := in.normalize(""); err != nil {
		return nil, err
	}
	var c *Customer
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		b, err := lockBooking(ctx, tx, db.postgres, accountID, bookingID)
		if err != nil {
			return err
		}
		if in.Email != nil {
			other := new(Customer)
			err := tx.NewSelect().Model(other).Where("account_id = ? AND email = ?", accountID, *in.Email).Scan(ctx)
			if err == nil && (b.CustomerID == nil || other.ID != *b.CustomerID) {
				return Errorf(CodeInvalidRequest, "email", "email belongs to another customer of this account")
			}
			if err != nil && !isNoRows(err) {
				return err
			}
		}
		t := now()
		field := "email"
		if in.Email == nil {
			field = "phone"
		}
		if b.CustomerID == nil {
			c = &Customer{AccountID: accountID, Name: in.Name, Email: in.Email, Phone: in.Phone, CreatedAt: t, UpdatedAt: t}
			if _, err := tx.NewInsert().Model(c).Exec(ctx); err != nil {
				return err
			}
			if _, err := tx.NewUpdate().Model(b).Set("customer_id = ?", c.ID).Set("updated_at = ?", t).WherePK().Exec(ctx); err != nil {
				return err
			}
			return checkCustomerBookings(ctx, tx, db.postgres, c, field)
		}
		c = new(Customer)
		if err := tx.NewSelect().Model(c).Where("id = ?", *b.CustomerID).Scan(ctx); err != nil {
			return err
		}
		if in.Name != nil {
			c.Name = in.Name
		}
		if in.Email != nil {
			c.Email = in.Email
		}
		if in.Phone != nil {
			c.Phone = in.Phone
		}
		c.UpdatedAt = t
		if _, err = tx.NewUpdate().Model(c).Column("name", "email", "phone", "updated_at").WherePK().Exec(ctx); err != nil {
			return err
		}
		if in.Email == nil && in.Phone == nil {
			return nil // the name alone makes no duplicate
		}
		return checkCustomerBookings(ctx, tx, db.postgres, c, field)
	})
	return c, err
}

// checkCustomerBookings refuses a change of a customer's email or phone
// (field) that makes it the same customer as the one of another
// non-cancelled booking in an occurrence it holds a booking in. On Postgres
// it first locks those occurrences, in key order, as booking does, so that
// no booking made meanwhile escapes the check.
func checkCustomerBookings(ctx context.Context, tx bun.Tx, postgres bool, c *Customer, field string) error {
	var bs []*Booking
	if err := tx.NewSelect().Model(&bs).Column("id", "time_slot_id", "date").
		Where("account_id = ? AND customer_id = ? AND status <> ?", c.AccountID, c.ID, StatusCancelled).
		OrderExpr("time_slot_id ASC, date ASC").Scan(ctx); err != nil {
		return err
	}
	for _, b := range bs {
		if postgres {
			if _, err := tx.NewRaw("SELECT 1 FROM slot_occurrences WHERE time_slot_id = ? AND date = ? FOR UPDATE",
				b.TimeSlotID, b.Date).Exec(ctx); err != nil {
				return err
			}
		}
		if err := checkDuplicate(ctx, tx, b.TimeSlotID, b.Date, c, b.ID); err != nil {
			if ErrorCode(err) == CodeDuplicateBooking {
				return Errorf(CodeDuplicateBooking, field,
					"with this %s the customer would hold two bookings for time slot %d on %s", field, b.TimeSlotID, b.Date)
			}
			return err
		}
	}
	return nil
}
