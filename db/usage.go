package db

import "context"

// AddUsage adds n to an account's request count of a month ("2006-01") and
// returns the new total.
func (db *DB) AddUsage(ctx context.Context, accountID int64, month string, n int64) (int64, error) {
	var total int64
	err := db.NewRaw(`INSERT INTO usage_months (account_id, month, used) VALUES (?, ?, ?)
ON CONFLICT (account_id, month) DO UPDATE SET used = usage_months.used + excluded.used
RETURNING used`, accountID, month, n).Scan(ctx, &total)
	return total, err
}

// UsageOf returns an account's request count of a month.
func (db *DB) UsageOf(ctx context.Context, accountID int64, month string) (int64, error) {
	var used int64
	err := db.NewRaw(`SELECT used FROM usage_months WHERE account_id = ? AND month = ?`, accountID, month).Scan(ctx, &used)
	if isNoRows(err) {
		return 0, nil
	}
	return used, err
}
