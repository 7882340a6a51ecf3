package db

import (
	"context"
	"github.com/uptrace/bun"
	"strings"
)

// AccountLimits are optional overrides of an account's plan.
type AccountLimits struct {
	Rate         *int
	Burst        *int
	MonthlyQuota *int64
}

// CreateAccount creates an account with a unique name.
func (db *DB) CreateAccount(ctx context.Context, name string, plan Plan, limits AccountLimits) (*Account, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, Errorf(CodeMissingRequiredField, "name", "account name is required")
	}
	if !plan.Valid() {
		return nil, Errorf(CodeInvalidFieldFormat, "plan", "plan must be one of starter, developer, growth")
	}
	if err := validateLimits(limits); err != nil {
		return nil, err
	}
	a := &Account{Name: name, Plan: plan, Rate: limits.Rate, Burst: limits.Burst, MonthlyQuota: limits.MonthlyQuota, CreatedAt: now()}
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		exists, err := tx.NewSelect().Model((*Account)(nil)).Where("name = ?", name).Exists(ctx)
		if err != nil {
			return err
		}
		if exists {
			return Errorf(CodeInvalidRequest, "name", "account %q already exists", name)
		}
		_, err = tx.NewInsert().Model(a).Exec(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func validateLimits(l AccountLimits) error {
	if (l.Rate == nil) != (l.Burst == nil) {
		return Errorf(CodeInvalidRequest, "rate", "rate and burst must be set together")
	}
	if l.Rate != nil && (*l.Rate < 1 || *l.Burst < 1) {
		return Errorf(CodeInvalidFieldFormat, "rate", "rate and burst must be at least 1")
	}
	if l.MonthlyQuota != nil && *l.MonthlyQuota < 1 {
		return Errorf(CodeInvalidFieldFormat, "monthlyQuota", "monthly quota must be at least 1")
	}
	return nil
}

// AccountByName finds an account by its name.
func (db *DB) AccountByName(ctx context.Context, name string) (*Account, error) {
	a := new(Account)
	err := db.NewSelect().Model(a).Where("name = ?", strings.TrimSpace(name)).Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeAccountNotFound, "account", "account %q does not exist", name)
	}
	return a, err
}

// AccountByID finds an account by id.
func (db *DB) AccountByID(ctx context.Context, id int64) (*Account, error) {
	a := new(Account)
	err := db.NewSelect().Model(a).Where("id = ?", id).Scan(ctx)
	if isNoRows(err) {
		return nil, Errorf(CodeAccountNotFound, "account", "account %d does not exist", id)
	}
	return a, err
}

// CountAccounts returns how many accounts exist.
func (db *DB) CountAccounts(ctx context.Context) (int, error) {
	n, err := db.NewSelect().Model((*Account)(nil)).Count(ctx)
	return int(n), err
}

// UpdateAccount changes an account's plan and limits; nil fields stay.
func (db *DB) UpdateAccount(ctx context.Context, name string, plan *Plan, limits AccountLimits) (*Account, error) {
	if plan != nil && !plan.Valid() {
		return nil, Errorf(CodeInvalidFieldFormat, "plan", "plan must be one of starter, developer, growth")
	}
	if err := validateLimits(limits); err != nil {
		return nil, err
	}
	var a *Account
	err := db.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		a = new(Account)
		if err := tx.NewSelect().Model(a).Where("name = ?", strings.TrimSpace(name)).Scan(ctx); err != nil {
			if isNoRows(err) {
				return Errorf(CodeAccountNotFound, "account", "account %q does not exist", name)
			}
			return err
		}
		if plan != nil {
			a.Plan = *plan
		}
		if limits.Rate != nil {
			a.Rate, a.Burst = limits.Rate, limits.Burst
		}
		if limits.MonthlyQuota != nil {
			a.MonthlyQuota = limits.MonthlyQuota
		}
		_, err := tx.NewUpdate().Model(a).Column("plan", "rate", "burst", "monthly_quota").WherePK().Exec(ctx)
		return err
	})
	return a, err
}
