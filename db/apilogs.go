package db

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/uptrace/bun"
)

// apiLogChunk is the most rows one INSERT carries; it keeps statements a
// reasonable size on both dialects.
const apiLogChunk = 500

// apiLogPruneBatch is how many rows one DELETE of PruneAPILogs removes, so
// pruning never holds long locks or builds a huge transaction.
const apiLogPruneBatch = 5000

// Longest ranges Usage accepts per bucket size.
const (
	maxHourlyRange = 31 * 24 * time.Hour
	maxDailyRange  = 366 * 24 * time.Hour
)

// InsertAPILogs writes logs with one multi-row INSERT per 500 rows (one
// statement for a typical batch). It sets each log's ID and normalizes
// OccurredAt to UTC microseconds (now when zero).
func (db *DB) InsertAPILogs(ctx context.Context, logs []*APILog) error {
	for _, l := range logs {
		if l.OccurredAt.IsZero() {
			l.OccurredAt = now()
		} else {
			l.OccurredAt = l.OccurredAt.UTC().Truncate(time.Microsecond)
		}
	}
	for len(logs) > 0 {
		n := min(len(logs), apiLogChunk)
		chunk := logs[:n]
		if _, err := db.NewInsert().Model(&chunk).Exec(ctx); err != nil {
			return err
		}
		logs = logs[n:]
	}
	return nil
}

// APILogFilter selects an account's logs. From is inclusive and To exclusive;
// nil fields do not filter. First and AfterID page newest first by id.
type APILogFilter struct {
	From, To      *time.Time
	Status        *int
	APIKeyID      *int64
	OperationName *string
	First         int
	AfterID       int64
}

func (f APILogFilter) apply(q *bun.SelectQuery, accountID int64) *bun.SelectQuery {
	q = q.Where("account_id = ?", accountID)
	if f.From != nil {
		q = q.Where("occurred_at >= ?", f.From.UTC())
	}
	if f.To != nil {
		q = q.Where("occurred_at < ?", f.To.UTC())
	}
	if f.Status != nil {
		q = q.Where("status = ?", *f.Status)
	}
	if f.APIKeyID != nil {
		q = q.Where("api_key_id = ?", *f.APIKeyID)
	}
	if f.OperationName != nil {
		q = q.Where("operation_name = ?", *f.OperationName)
	}
	return q
}

// ListAPILogs returns up to First+1 of an account's logs older than AfterID,
// newest (highest id) first.
func (db *DB) ListAPILogs(ctx context.Context, accountID int64, f APILogFilter) ([]*APILog, error) {
	var out []*APILog
	q := f.apply(db.NewSelect().Model(&out), accountID).OrderExpr("id DESC").Limit(int64(f.First + 1))
	if f.AfterID > 0 {
		q = q.Where("id < ?", f.AfterID)
	}
	return out, q.Scan(ctx)
}

// CountAPILogs counts the logs a filter selects (ignoring paging).
func (db *DB) CountAPILogs(ctx context.Context, accountID int64, f APILogFilter) (int, error) {
	n, err := f.apply(db.NewSelect().Model((*APILog)(nil)), accountID).Count(ctx)
	return int(n), err
}

// UsageBucket sums the requests of one UTC hour or day. Errors are requests
// with status >= 400 or any error code. P50 and P95 are duration percentiles
// with linear interpolation (Postgres percentile_cont); zero when empty.
type UsageBucket struct {
	Start    time.Time
	Requests int
	Errors   int
	P50, P95 time.Duration
}

// Usage summarizes an account's requests in [from, to) per bucket, which is
// time.Hour or 24*time.Hour. Buckets are aligned to UTC hours or days and
// every bucket from the one holding from up to to is returned, in order,
// including empty ones (so the first and last may cover only part of their
// span). Ranges longer than 31 days hourly or 366 days daily are refused.
func (db *DB) Usage(ctx context.Context, accountID int64, from, to time.Time, bucket time.Duration) ([]UsageBucket, error) {
	from, to = from.UTC(), to.UTC()
	var maxRange time.Duration
	switch bucket {
	case time.Hour:
		maxRange = maxHourlyRange
	case 24 * time.Hour:
		maxRange = maxDailyRange
	default:
		return nil, Errorf(CodeInvalidRequest, "bucket", "bucket must be an hour or a day")
	}
	if !to.After(from) {
		return nil, Errorf(CodeInvalidRequest, "to", "to must be after from")
	}
	if to.Sub(from) > maxRange {
		return nil, Errorf(CodeInvalidRequest, "to", "range must not exceed %d days for this bucket size", int(maxRange/(24*time.Hour)))
	}
	var found []UsageBucket
	var err error
	if db.postgres {
		found, err = db.usagePostgres(ctx, accountID, from, to, bucket)
	} else {
		found, err = db.usageInGo(ctx, accountID, from, to, bucket)
	}
	if err != nil {
		return nil, err
	}
	return fillBuckets(found, from, to, bucket), nil
}

// usagePostgres groups and computes percentiles in SQL.
func (db *DB) usagePostgres(ctx context.Context, accountID int64, from, to time.Time, bucket time.Duration) ([]UsageBucket, error) {
	unit := "hour"
	if bucket != time.Hour {
		unit = "day"
	}
	var rows []struct {
		Start    time.Time
		Requests int
		Errors   int
		P50, P95 float64
	}
	err := db.NewSelect().Model((*APILog)(nil)).
		ColumnExpr("date_trunc(?, occurred_at AT TIME ZONE 'UTC') AS start", unit).
		ColumnExpr("count(*) AS requests").
		ColumnExpr("count(*) FILTER (WHERE status >= 400 OR error_codes <> '') AS errors").
		ColumnExpr("percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_us) AS p50").
		ColumnExpr("percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_us) AS p95").
		Where("account_id = ? AND occurred_at >= ? AND occurred_at < ?", accountID, from, to).
		GroupExpr("1").OrderExpr("1").Scan(ctx, &rows)
	if err != nil {
		return nil, err
	}
	out := make([]UsageBucket, len(rows))
	for i, r := range rows {
		start := time.Date(r.Start.Year(), r.Start.Month(), r.Start.Day(), r.Start.Hour(), 0, 0, 0, time.UTC)
		out[i] = UsageBucket{Start: start, Requests: r.Requests, Errors: r.Errors,
			P50: microseconds(r.P50), P95: microseconds(r.P95)}
	}
	return out, nil
}

// usageInGo reads the range's rows (SQLite has no percentile function) and
// groups them in Go with the same definition Postgres uses.
func (db *DB) usageInGo(ctx context.Context, accountID int64, from, to time.Time, bucket time.Duration) ([]UsageBucket, error) {
	var rows []struct {
		OccurredAt time.Time
		Status     int
		ErrorCodes string
		DurationUS int64 `bun:"duration_us"`
	}
	err := db.NewSelect().Model((*APILog)(nil)).
		Column("occurred_at", "status", "error_codes", "duration_us").
		Where("account_id = ? AND occurred_at >= ? AND occurred_at < ?", accountID, from, to).
		Scan(ctx, &rows)
	if err != nil {
		return nil, err
	}
	byStart := map[time.Time]*UsageBucket{}
	durations := map[time.Time][]int64{}
	for _, r := range rows {
		start := r.OccurredAt.UTC().Truncate(bucket)
		b := byStart[start]
		if b == nil {
			b = &UsageBucket{Start: start}
			byStart[start] = b
		}
		b.Requests++
		if r.Status >= 400 || r.ErrorCodes != "" {
			b.Errors++
		}
		durations[start] = append(durations[start], r.DurationUS)
	}
	out := make([]UsageBucket, 0, len(byStart))
	for start, b := range byStart {
		d := durations[start]
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		b.P50, b.P95 = microseconds(percentileCont(d, 0.5)), microseconds(percentileCont(d, 0.95))
		out = append(out, *b)
	}
	return out, nil
}

// percentileCont is Postgres's percentile_cont over sorted values: linear
// interpolation between the two nearest ranks.
func percentileCont(sorted []int64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := p * float64(len(sorted)-1)
	lo, hi := math.Floor(pos), math.Ceil(pos)
	a, b := float64(sorted[int(lo)]), float64(sorted[int(hi)])
	return a + (b-a)*(pos-lo)
}

// microseconds converts a (fractional) number of microseconds to a Duration,
// rounded to the nanosecond.
func microseconds(us float64) time.Duration {
	return time.Duration(math.Round(us * float64(time.Microsecond)))
}

// fillBuckets returns every bucket from from's bucket up to to, taking the
// ones found and zero for the rest.
func fillBuckets(found []UsageBucket, from, to time.Time, bucket time.Duration) []UsageBucket {
	byStart := make(map[time.Time]UsageBucket, len(found))
	for _, b := range found {
		byStart[b.Start] = b
	}
	var out []UsageBucket
	for start := from.Truncate(bucket); start.Before(to); start = start.Add(bucket) {
		b, ok := byStart[start]
		if !ok {
			b = UsageBucket{Start: start}
		}
		out = append(out, b)
	}
	return out
}

// PruneAPILogs deletes every log that occurred before the given time, in
// batches, and returns how many it deleted.
func (db *DB) PruneAPILogs(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		batch := db.NewSelect().Model((*APILog)(nil)).Column("id").
			Where("occurred_at < ?", before.UTC()).OrderExpr("id").Limit(apiLogPruneBatch)
		res, err := db.NewDelete().Model((*APILog)(nil)).Where("id IN (?)", batch).Exec(ctx)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < apiLogPruneBatch {
			return total, nil
		}
	}
}
