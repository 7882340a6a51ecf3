package db_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
)

var logBase = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func newAccount(t *testing.T, database *db.DB, name string) int64 {
	t.Helper()
	a, err := database.CreateAccount(context.Background(), name, db.PlanStarter, db.AccountLimits{})
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

func insertLogs(t *testing.T, database *db.DB, logs ...*db.APILog) {
	t.Helper()
	if err := database.InsertAPILogs(context.Background(), logs); err != nil {
		t.Fatal(err)
	}
}

// logAt is a successful request of account at base+offset that took us µs.
func logAt(account int64, offset time.Duration, us int64) *db.APILog {
	return &db.APILog{AccountID: account, APIKeyID: 1, APIKeyPrefix: "rk_test_abc", OccurredAt: logBase.Add(offset),
		OperationName: "Op", OperationType: "query", Status: 200, DurationUS: us}
}

func ids(logs []*db.APILog) []int64 {
	out := make([]int64, len(logs))
	for i, l := range logs {
		out[i] = l.ID
	}
	return out
}

func TestInsertAPILogs(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		ctx := context.Background()
		a, b := newAccount(t, database, "a"), newAccount(t, database, "b")
		full := &db.APILog{AccountID: a, APIKeyID: 7, APIKeyPrefix: "rk_live_x", OccurredAt: logBase.Add(1500 * time.Microsecond),
			OperationName: "ListServices", OperationType: "query", RootFields: db.StringList{"services", "me"}, Cost: 12,
			Status: 200, ErrorCodes: db.StringList{"time_slot_full"}, DurationUS: 1234, ClientIP: "203.0.113.9",
			Origin: "https://shop.example", UserAgent: "curl/8"}
		bare := &db.APILog{AccountID: a, APIKeyID: 7, APIKeyPrefix: "rk_live_x", Status: 401}
		other := logAt(b, 0, 5)
		insertLogs(t, database, full, bare, other)
		if full.ID == 0 || bare.ID <= full.ID || bare.OccurredAt.IsZero() {
			t.Fatalf("ids/time not set: %d %d %v", full.ID, bare.ID, bare.OccurredAt)
		}

		got, err := database.ListAPILogs(ctx, a, db.APILogFilter{First: 10})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids(got)) != fmt.Sprint([]int64{bare.ID, full.ID}) {
			t.Fatalf("list = %v, want newest first without other account", ids(got))
		}
		g := got[1]
		g.OccurredAt = g.OccurredAt.UTC()
		if !g.OccurredAt.Equal(full.OccurredAt) {
			t.Errorf("occurredAt = %v, want %v", g.OccurredAt, full.OccurredAt)
		}
		g.OccurredAt = full.OccurredAt
		if fmt.Sprintf("%+v", *g) != fmt.Sprintf("%+v", *full) {
			t.Errorf("round trip:\n got %+v\nwant %+v", *g, *full)
		}
		if len(got[0].RootFields) != 0 || len(got[0].ErrorCodes) != 0 {
			t.Errorf("empty lists read back as %q %q", got[0].RootFields, got[0].ErrorCodes)
		}
		if n, err := database.CountAPILogs(ctx, b, db.APILogFilter{}); err != nil || n != 1 {
			t.Errorf("count b = %d, %v; want 1", n, err)
		}
	})
}

func TestInsertAPILogsChunks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		a := newAccount(t, database, "a")
		logs := make([]*db.APILog, 1234)
		for i := range logs {
			logs[i] = logAt(a, time.Duration(i)*time.Second, int64(i))
		}
		insertLogs(t, database, logs...)
		if n, err := database.CountAPILogs(context.Background(), a, db.APILogFilter{}); err != nil || n != len(logs) {
			t.Fatalf("count = %d, %v; want %d", n, err, len(logs))
		}
	})
}

func TestListAPILogsFilters(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		ctx := context.Background()
		a, b := newAccount(t, database, "a"), newAccount(t, database, "b")
		l0 := logAt(a, 0, 10)
		l1 := logAt(a, time.Minute, 10)
		l1.Status, l1.APIKeyID = 400, 2
		l2 := logAt(a, 2*time.Minute, 10)
		l2.OperationName = "CreateBooking"
		l3 := logAt(a, 3*time.Minute, 10)
		l3.Status, l3.OperationName = 400, "CreateBooking"
		insertLogs(t, database, l0, l1, l2, l3, logAt(b, time.Minute, 10))

		at := func(m int) *time.Time { v := logBase.Add(time.Duration(m) * time.Minute); return &v }
		status := func(s int) *int { return &s }
		key := func(k int64) *int64 { return &k }
		op := func(s string) *string { return &s }
		tests := []struct {
			name string
			f    db.APILogFilter
			want []*db.APILog
		}{
			{"all", db.APILogFilter{}, []*db.APILog{l3, l2, l1, l0}},
			{"from inclusive", db.APILogFilter{From: at(1)}, []*db.APILog{l3, l2, l1}},
			{"to exclusive", db.APILogFilter{To: at(2)}, []*db.APILog{l1, l0}},
			{"from and to", db.APILogFilter{From: at(1), To: at(3)}, []*db.APILog{l2, l1}},
			{"from in another zone", db.APILogFilter{From: ptr(at(2).In(time.FixedZone("X", -5*3600)))}, []*db.APILog{l3, l2}},
			{"status", db.APILogFilter{Status: status(400)}, []*db.APILog{l3, l1}},
			{"api key", db.APILogFilter{APIKeyID: key(2)}, []*db.APILog{l1}},
			{"operation", db.APILogFilter{OperationName: op("CreateBooking")}, []*db.APILog{l3, l2}},
			{"status and operation", db.APILogFilter{Status: status(400), OperationName: op("CreateBooking")}, []*db.APILog{l3}},
			{"nothing", db.APILogFilter{Status: status(503)}, []*db.APILog{}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				f := tc.f
				f.First = 10
				got, err := database.ListAPILogs(ctx, a, f)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(ids(got)) != fmt.Sprint(ids(tc.want)) {
					t.Errorf("list = %v, want %v", ids(got), ids(tc.want))
				}
				n, err := database.CountAPILogs(ctx, a, f)
				if err != nil || n != len(tc.want) {
					t.Errorf("count = %d, %v; want %d", n, err, len(tc.want))
				}
			})
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestListAPILogsPaging(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		ctx := context.Background()
		a, b := newAccount(t, database, "a"), newAccount(t, database, "b")
		var want []int64
		for i := range 7 {
			l := logAt(a, time.Duration(i)*time.Second, 1)
			insertLogs(t, database, l, logAt(b, 0, 1))
			want = append([]int64{l.ID}, want...)
		}
		var got []int64
		f := db.APILogFilter{First: 3}
		for pages := 0; ; pages++ {
			if pages > 3 {
				t.Fatal("paging does not end")
			}
			page, err := database.ListAPILogs(ctx, a, f)
			if err != nil {
				t.Fatal(err)
			}
			more := len(page) > f.First
			if more {
				page = page[:f.First]
			}
			got = append(got, ids(page)...)
			if !more {
				break
			}
			f.AfterID = page[len(page)-1].ID
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("pages = %v, want %v", got, want)
		}
	})
}

func TestUsage(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		ctx := context.Background()
		a, b := newAccount(t, database, "a"), newAccount(t, database, "b")
		var logs []*db.APILog
		// 10:00–11:00: ten requests of 100…1000 µs, three of them errors.
		for i := range 10 {
			l := logAt(a, time.Duration(i)*time.Minute, int64(100*(i+1)))
			switch i {
			case 2:
				l.Status = 500
			case 5:
				l.Status = 404
			case 7:
				l.ErrorCodes = db.StringList{"time_slot_full"}
			}
			logs = append(logs, l)
		}
		// 12:00–13:00: four requests of 1…4 µs.
		for i := range 4 {
			logs = append(logs, logAt(a, 2*time.Hour+time.Duration(i)*time.Second, int64(4-i)))
		}
		logs = append(logs,
			logAt(a, -50*time.Minute, 1),        // 09:10, before from
			logAt(a, 3*time.Hour, 1),            // 13:00, at to (exclusive)
			logAt(b, 30*time.Minute, 99999),     // other account
			logAt(a, 24*time.Hour+time.Hour, 7), // next day
		)
		insertLogs(t, database, logs...)

		hour := func(h int) time.Time { return time.Date(2026, 12, 3, h, 0, 0, 0, time.UTC) }
		got, err := database.Usage(ctx, a, hour(9).Add(30*time.Minute), hour(13), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		want := []db.UsageBucket{
			{Start: hour(9)},
			{Start: hour(10), Requests: 10, Errors: 3, P50: 550 * time.Microsecond, P95: 955 * time.Microsecond},
			{Start: hour(11)},
			{Start: hour(12), Requests: 4, P50: 2500 * time.Nanosecond, P95: 3850 * time.Nanosecond},
		}
		checkBuckets(t, got, want)

		// Daily, given in another zone: aligned to UTC days.
		zone := time.FixedZone("X", 5*3600)
		got, err = database.Usage(ctx, a, hour(0).In(zone), hour(0).Add(48*time.Hour).In(zone), 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		want = []db.UsageBucket{
			{Start: hour(0), Requests: 16, Errors: 3, P50: 250 * time.Microsecond, P95: 925 * time.Microsecond},
			{Start: hour(0).Add(24 * time.Hour), Requests: 1, P50: 7 * time.Microsecond, P95: 7 * time.Microsecond},
		}
		checkBuckets(t, got, want)
	})
}

func checkBuckets(t *testing.T, got, want []db.UsageBucket) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d buckets %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		g := got[i]
		if !g.Start.Equal(want[i].Start) || g.Start.Location() != time.UTC {
			t.Errorf("bucket %d start = %v, want %v (UTC)", i, g.Start, want[i].Start)
		}
		g.Start = want[i].Start
		if g != want[i] {
			t.Errorf("bucket %d = %+v, want %+v", i, g, want[i])
		}
	}
}

func TestUsageLimits(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		ctx := context.Background()
		a := newAccount(t, database, "a")
		day := 24 * time.Hour
		tests := []struct {
			name   string
			span   time.Duration
			bucket time.Duration
			field  string // "" when accepted
		}{
			{"31 days hourly", 31 * day, time.Hour, ""},
			{"over 31 days hourly", 31*day + time.Hour, time.Hour, "to"},
			{"366 days daily", 366 * day, day, ""},
			{"over 366 days daily", 367 * day, day, "to"},
			{"empty range", 0, time.Hour, "to"},
			{"reversed range", -time.Hour, time.Hour, "to"},
			{"other bucket", time.Hour, 2 * time.Hour, "bucket"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := database.Usage(ctx, a, logBase, logBase.Add(tc.span), tc.bucket)
				if tc.field == "" {
					if err != nil {
						t.Fatal(err)
					}
					// logBase is 10:00, so a daily range spans one bucket more.
					first := logBase.Truncate(tc.bucket)
					if want := int((logBase.Add(tc.span).Sub(first) + tc.bucket - 1) / tc.bucket); len(got) != want {
						t.Errorf("got %d buckets, want %d", len(got), want)
					}
					return
				}
				var e *db.Error
				if !errors.As(err, &e) || e.Code != db.CodeInvalidRequest || e.Field != tc.field {
					t.Fatalf("err = %#v, want %s on %q", err, db.CodeInvalidRequest, tc.field)
				}
			})
		}
	})
}

func TestPruneAPILogs(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		ctx := context.Background()
		a, b := newAccount(t, database, "a"), newAccount(t, database, "b")
		const old = 5003 // more than one delete batch
		logs := make([]*db.APILog, 0, old+3)
		for i := range old {
			logs = append(logs, logAt([]int64{a, b}[i%2], -time.Duration(i+1)*time.Second, 1))
		}
		keep := []*db.APILog{logAt(a, 0, 1), logAt(b, time.Second, 1), logAt(a, time.Hour, 1)}
		insertLogs(t, database, append(logs, keep...)...)

		n, err := database.PruneAPILogs(ctx, logBase)
		if err != nil || n != old {
			t.Fatalf("pruned %d, %v; want %d", n, err, old)
		}
		left, err := database.ListAPILogs(ctx, a, db.APILogFilter{First: 10})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids(left)) != fmt.Sprint([]int64{keep[2].ID, keep[0].ID}) {
			t.Errorf("left in a = %v", ids(left))
		}
		if n, err := database.PruneAPILogs(ctx, logBase); err != nil || n != 0 {
			t.Errorf("second prune = %d, %v", n, err)
		}
	})
}
