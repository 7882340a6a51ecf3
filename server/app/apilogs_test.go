package app_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/db/dbtest"
	"github.com/reservekit/reservekit/server/app"
	"github.com/reservekit/reservekit/server/app/apptest"
	"github.com/reservekit/reservekit/server/auth"
)

// API logs (server/apilog) and the apiLogs and usage queries.

const usageLogFields = `id occurredAt apiKeyId apiKeyPrefix operationName operationType rootFields cost status errorCodes durationMs clientIp origin userAgent`

const usageLogsQuery = `query Logs($first: Int, $after: String, $from: DateTime, $to: DateTime, $status: Int, $apiKeyId: ID, $operationName: String) {
	apiLogs(first: $first, after: $after, from: $from, to: $to, status: $status, apiKeyId: $apiKeyId, operationName: $operationName) {
		totalCount pageInfo { hasNextPage endCursor } nodes { ` + usageLogFields + ` } } }`

const usageUsageQuery = `query Usage($from: DateTime!, $to: DateTime!, $g: UsageGranularity!) {
	usage(from: $from, to: $to, granularity: $g) { start requests errors p50Ms p95Ms } }`

// usageLog is one ApiLog.
type usageLog struct {
	ID            string
	OccurredAt    time.Time
	APIKeyID      string `json:"apiKeyId"`
	APIKeyPrefix  string `json:"apiKeyPrefix"`
	OperationName string
	OperationType string
	RootFields    []string
	Cost          int
	Status        int
	ErrorCodes    []string
	DurationMs    float64
	ClientIP      string `json:"clientIp"`
	Origin        string
	UserAgent     string
}

type usageLogPage struct {
	TotalCount int
	PageInfo   struct {
		HasNextPage bool
		EndCursor   *string
	}
	Nodes []usageLog
}

type usageBucket struct {
	Start        time.Time
	Requests     int
	Errors       int
	P50Ms, P95Ms float64
}

// usageLogs runs apiLogs with the given arguments (nil values omitted).
func usageLogs(t *testing.T, e *apptest.Env, key string, args map[string]any) usageLogPage {
	t.Helper()
	vars := map[string]any{}
	for k, v := range args {
		if v != nil {
			vars[k] = v
		}
	}
	var out struct {
		APILogs usageLogPage `json:"apiLogs"`
	}
	e.MustData(key, usageLogsQuery, vars, &out)
	return out.APILogs
}

// usageWaitLogs polls apiLogs (filtered by args, with a page of at least
// want) until it holds want entries: the writer stores them asynchronously.
func usageWaitLogs(t *testing.T, e *apptest.Env, key string, args map[string]any, want int) usageLogPage {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Nodes, not totalCount: the count is a second statement, which
		// may already see entries written after the nodes were read.
		page := usageLogs(t, e, key, args)
		if len(page.Nodes) >= want {
			if len(page.Nodes) > want || page.TotalCount != want {
				t.Fatalf("apiLogs %v holds %d entries (totalCount %d), want %d: %+v", args, len(page.Nodes), page.TotalCount, want, page.Nodes)
			}
			return page
		}
		if time.Now().After(deadline) {
			t.Fatalf("apiLogs %v holds %d entries after 5 s, want %d", args, len(page.Nodes), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// usageDoPatiently runs an operation, waiting while the account is
// throttled (429), and fails unless it is then answered with 200.
func usageDoPatiently(t *testing.T, e *apptest.Env, key, query string, vars map[string]any) *apptest.Response {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.Do(key, query, vars)
		if r.Status == http.StatusOK {
			return r
		}
		if r.Status != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("HTTP %d: %s", r.Status, r.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// usageIssue creates a key of an account directly (as the command line
// does) and returns its id and secret.
func usageIssue(t *testing.T, e *apptest.Env, accountID int64, name string, scopes ...string) (string, string) {
	t.Helper()
	k, secret, err := auth.Issue(context.Background(), e.DB, accountID, nil, auth.KeySpec{Name: name, Scopes: scopes})
	if err != nil {
		t.Fatalf("issue key: %v", err)
	}
	return apptest.ID(k.ID), secret
}

// usageTableText returns every value of every row of table as text.
func usageTableText(t *testing.T, database *db.DB, table string) string {
	t.Helper()
	rows, err := database.QueryContext(context.Background(), "SELECT * FROM "+table)
	if err != nil {
		t.Fatalf("select %s: %v", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	n := 0
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if raw, ok := v.([]byte); ok {
				v = string(raw)
			}
			fmt.Fprintf(&b, "%s=%v\t", cols[i], v)
		}
		b.WriteString("\n")
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("%s is empty", table)
	}
	return b.String()
}

func TestAPILogs(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, &app.Config{LogFlush: 20 * time.Millisecond})
		key := e.Account("logs")
		accountID := usageAccountID(t, database, "logs")
		readerID, reader := usageIssue(t, e, accountID, "reader", "logs:read")
		headers := []string{"User-Agent: usage-logs-test/1.0", "Origin: https://dash.example.com"}
		const email = "secret.customer.7f3a@example.com"
		began := time.Now().UTC()

		// The requests to find in the logs, oldest first.
		var who struct {
			Viewer struct {
				APIKey struct{ ID, Prefix string } `json:"apiKey"`
			}
		}
		r := e.Do(key, `query Who { viewer { apiKey { id prefix } } }`, nil, headers...)
		r.Decode(t, &who)
		keyID, prefix := who.Viewer.APIKey.ID, who.Viewer.APIKey.Prefix
		if !strings.HasPrefix(key, prefix) || len(prefix) >= len(key)/2 {
			t.Fatalf("prefix %q of key", prefix)
		}
		if r := e.Do(key, `query ListServices { services(first: 5) { nodes { id } } }`, nil, headers...); len(r.Errors) > 0 {
			t.Fatalf("ListServices: %s", r.Raw)
		}
		var created struct{ CreateService schedService }
		r = e.Do(key, `mutation CreateService($input: CreateServiceInput!) { createService(input: $input) { id timezone timeSlots { id } } }`,
			map[string]any{"input": map[string]any{"name": "Logged", "timezone": "UTC",
				"timeSlots": []any{slotIn(int(time.Tuesday), "09:00", "10:00", 3)}}}, headers...)
		r.Decode(t, &created)
		slot := created.CreateService.TimeSlots[0].ID
		booking := map[string]any{"timeSlotId": slot, "date": nextDate("UTC", time.Tuesday),
			"customerEmail": email, "customerName": "Ada Secret", "message": "private note 91c2"}
		if r := e.Do(key, `mutation Book($input: CreateBookingInput!) { createBooking(input: $input) { id customer { email } } }`,
			map[string]any{"input": booking}, headers...); len(r.Errors) > 0 || !strings.Contains(string(r.Data), email) {
			t.Fatalf("Book: %s", r.Raw)
		}
		booking["timeSlotId"] = "999999"
		if r := e.Do(key, `mutation BookMissing($input: CreateBookingInput!) { createBooking(input: $input) { id } }`,
			map[string]any{"input": booking}, headers...); r.Code() != db.CodeTimeSlotNotFound {
			t.Fatalf("BookMissing: %s", r.Raw)
		}
		if r := e.Do(key, `{ __typename }`, nil, headers...); r.Status != http.StatusOK {
			t.Fatalf("anonymous: %s", r.Raw)
		}
		// A batch: one entry for the HTTP request, naming both operations
		// (the second chosen by operationName among two).
		if status, raw := usagePost(t, e, key, []map[string]any{
			{"query": `mutation C { createService(input: {name: "Batched", timezone: "UTC"}) { id } }`},
			{"query": `query A { __typename } query B { viewer { account { name } } }`, "operationName": "B"},
		}, headers...); status != http.StatusOK || strings.Contains(string(raw), "errors") {
			t.Fatalf("batch: HTTP %d %s", status, raw)
		}

		type want struct {
			name, typ  string
			rootFields []string
			cost       int
			errorCodes []string
		}
		wants := []want{ // newest first
			{"C,B", "mutation,query", []string{"createService", "viewer"}, 10 + 1 + 1 + 1, nil},
			{"", "query", nil, 0, nil},
			{"BookMissing", "mutation", []string{"createBooking"}, 10 + 1, []string{db.CodeTimeSlotNotFound}},
			{"Book", "mutation", []string{"createBooking"}, 10 + 1 + 1, nil},
			{"CreateService", "mutation", []string{"createService"}, 10 + 1 + 1, nil},
			{"ListServices", "query", []string{"services"}, 1 + 5, nil},
			{"Who", "query", []string{"viewer"}, 1 + 1, nil},
		}
		page := usageWaitLogs(t, e, reader, map[string]any{"apiKeyId": keyID, "first": 100}, len(wants))
		logs := page.Nodes
		if len(logs) != len(wants) || page.PageInfo.HasNextPage {
			t.Fatalf("%d logs (hasNextPage %v), want %d", len(logs), page.PageInfo.HasNextPage, len(wants))
		}
		ended := time.Now().UTC()
		for i, l := range logs {
			w := wants[i]
			if l.OperationName != w.name || l.OperationType != w.typ || !slices.Equal(l.RootFields, w.rootFields) ||
				l.Cost != w.cost || l.Status != http.StatusOK || !slices.Equal(l.ErrorCodes, w.errorCodes) {
				t.Errorf("log %d: %+v, want %+v with status 200", i, l, w)
			}
			if l.APIKeyID != keyID || l.APIKeyPrefix != prefix || l.UserAgent != "usage-logs-test/1.0" ||
				l.Origin != "https://dash.example.com" || l.ClientIP != "127.0.0.1" || l.DurationMs <= 0 {
				t.Errorf("log %d (%s): key %s/%s, user agent %q, origin %q, client %q, duration %v ms",
					i, l.OperationName, l.APIKeyID, l.APIKeyPrefix, l.UserAgent, l.Origin, l.ClientIP, l.DurationMs)
			}
			if l.OccurredAt.Before(began.Add(-time.Second)) || l.OccurredAt.After(ended) {
				t.Errorf("log %d: occurredAt %s not between %s and %s", i, l.OccurredAt, began, ended)
			}
			if i > 0 && (mustInt64(t, l.ID) >= mustInt64(t, logs[i-1].ID) || l.OccurredAt.After(logs[i-1].OccurredAt)) {
				t.Errorf("logs not newest first: %s (%s) after %s (%s)", l.ID, l.OccurredAt, logs[i-1].ID, logs[i-1].OccurredAt)
			}
		}

		// Paging walks the same list.
		var paged []usageLog
		var after any
		for range 10 {
			p := usageLogs(t, e, reader, map[string]any{"apiKeyId": keyID, "first": 2, "after": after})
			paged = append(paged, p.Nodes...)
			if !p.PageInfo.HasNextPage {
				break
			}
			after = *p.PageInfo.EndCursor
		}
		if len(paged) != len(logs) {
			t.Fatalf("paging returned %d logs, want %d", len(paged), len(logs))
		}
		for i := range paged {
			if paged[i].ID != logs[i].ID {
				t.Fatalf("page order differs at %d: %s vs %s", i, paged[i].ID, logs[i].ID)
			}
		}

		// Filters.
		if p := usageLogs(t, e, reader, map[string]any{"apiKeyId": keyID, "status": 200}); p.TotalCount != len(wants) {
			t.Errorf("status 200: %d logs, want %d", p.TotalCount, len(wants))
		}
		if p := usageLogs(t, e, reader, map[string]any{"apiKeyId": keyID, "status": 429}); p.TotalCount != 0 {
			t.Errorf("status 429: %d logs, want 0", p.TotalCount)
		}
		if p := usageLogs(t, e, reader, map[string]any{"operationName": "Book"}); p.TotalCount != 1 || p.Nodes[0].ID != logs[3].ID {
			t.Errorf("operationName Book: %+v", p.Nodes)
		}
		if p := usageLogs(t, e, reader, map[string]any{"operationName": "Nope"}); p.TotalCount != 0 {
			t.Errorf("operationName Nope: %d logs", p.TotalCount)
		}
		from, to := logs[5].OccurredAt, logs[2].OccurredAt // ListServices inclusive … BookMissing exclusive
		var inRange []string
		for _, l := range logs {
			if !l.OccurredAt.Before(from) && l.OccurredAt.Before(to) {
				inRange = append(inRange, l.ID)
			}
		}
		p := usageLogs(t, e, reader, map[string]any{"apiKeyId": keyID, "from": from.Format(time.RFC3339Nano), "to": to.Format(time.RFC3339Nano)})
		var gotRange []string
		for _, l := range p.Nodes {
			gotRange = append(gotRange, l.ID)
		}
		if !slices.Equal(gotRange, inRange) || len(inRange) < 3 {
			t.Errorf("from %s to %s: %v, want %v", from, to, gotRange, inRange)
		}
		// The reader's own requests are logged under its key, apart.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if p = usageLogs(t, e, reader, map[string]any{"apiKeyId": readerID, "first": 100}); p.TotalCount > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the reader's requests were not logged")
			}
		}
		for _, l := range p.Nodes {
			if l.APIKeyID != readerID || l.OperationName != "Logs" || !slices.Equal(l.RootFields, []string{"apiLogs"}) {
				t.Errorf("reader log %+v", l)
			}
		}
		// The unfiltered list holds both keys.
		if all := usageLogs(t, e, reader, map[string]any{"first": 100}); all.TotalCount < len(wants)+1 {
			t.Errorf("unfiltered: %d logs", all.TotalCount)
		}

		// usage: every request up to the last of the seven (the reader's
		// polling came later), with the one error.
		until := logs[0].OccurredAt.Add(time.Microsecond)
		hour := logs[len(logs)-1].OccurredAt.Truncate(time.Hour)
		for _, g := range []string{"HOUR", "DAY"} {
			var u struct{ Usage []usageBucket }
			e.MustData(reader, usageUsageQuery, map[string]any{"from": hour.Format(time.RFC3339Nano), "to": until.Format(time.RFC3339Nano), "g": g}, &u)
			requests, errs := 0, 0
			for _, b := range u.Usage {
				requests += b.Requests
				errs += b.Errors
				if b.Requests > 0 && (b.P50Ms <= 0 || b.P95Ms < b.P50Ms) {
					t.Errorf("%s bucket %s: p50 %v p95 %v", g, b.Start, b.P50Ms, b.P95Ms)
				}
			}
			if requests != len(wants) || errs != 1 {
				t.Errorf("usage %s: %d requests and %d errors in %+v, want %d and 1", g, requests, errs, u.Usage, len(wants))
			}
			if g == "HOUR" && (len(u.Usage) == 0 || !u.Usage[0].Start.Equal(hour)) {
				t.Errorf("hourly usage starts %+v, want the hour %s", u.Usage, hour)
			}
		}

		// Neither the customer's details nor any secret is stored.
		text := usageTableText(t, database, "api_logs")
		secretPart := strings.TrimPrefix(key, prefix)
		for _, s := range []string{email, "Ada Secret", "private note 91c2", key, secretPart, reader, strings.TrimPrefix(reader, auth.DisplayPrefix(reader))} {
			if strings.Contains(text, s) {
				t.Errorf("api_logs holds %q:\n%s", s, text)
			}
		}
		if !strings.Contains(text, prefix) {
			t.Errorf("api_logs does not hold the key prefix %s (scan broken?)", prefix)
		}
	})
}

// A starter account's throttled requests are logged with their 429.
func TestAPILogsRateLimited(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, &app.Config{LogFlush: 20 * time.Millisecond})
		key := e.AccountWith("throttled", db.PlanStarter, db.AccountLimits{}, nil)
		accountID := usageAccountID(t, database, "throttled")
		codes := map[int]int{}
		for range 12 {
			codes[e.Do(key, `query Burst { viewer { account { name } } }`, nil, "User-Agent: burst/2").Status]++
		}
		if codes[http.StatusOK] != 10 || codes[http.StatusTooManyRequests] != 2 {
			t.Fatalf("statuses %v, want 10×200 and 2×429", codes)
		}

		// In the table: 12 entries, the 429s with their code and no operation.
		status := http.StatusTooManyRequests
		var limited []*db.APILog
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, err := database.CountAPILogs(context.Background(), accountID, db.APILogFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if n >= 12 {
				if n != 12 {
					t.Fatalf("%d logs, want 12", n)
				}
				if limited, err = database.ListAPILogs(context.Background(), accountID, db.APILogFilter{Status: &status, First: 100}); err != nil {
					t.Fatal(err)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d logs after 5 s, want 12", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(limited) != 2 {
			t.Fatalf("%d logs with status 429, want 2", len(limited))
		}
		for _, l := range limited {
			if !slices.Equal([]string(l.ErrorCodes), []string{"rate_limit_exceeded"}) || l.OperationName != "" || l.Cost != 0 ||
				l.APIKeyPrefix != auth.DisplayPrefix(key) || l.UserAgent != "burst/2" || l.ClientIP != "127.0.0.1" {
				t.Errorf("429 log %+v", l)
			}
		}

		// Through the API, once the window lets the account in again.
		var out struct {
			APILogs usageLogPage `json:"apiLogs"`
		}
		usageDoPatiently(t, e, key, usageLogsQuery, map[string]any{"status": 429, "first": 100}).Decode(t, &out)
		page := out.APILogs
		if page.TotalCount < 2 {
			t.Fatalf("apiLogs(status: 429): %d logs, want at least 2", page.TotalCount)
		}
		for _, l := range page.Nodes {
			if l.Status != 429 || !slices.Equal(l.ErrorCodes, []string{"rate_limit_exceeded"}) || l.OperationName != "" || l.OperationType != "" {
				t.Errorf("apiLogs(status: 429) entry %+v", l)
			}
		}
		usageDoPatiently(t, e, key, usageLogsQuery, map[string]any{"operationName": "Burst"}).Decode(t, &out)
		if out.APILogs.TotalCount != 10 {
			t.Errorf("operationName Burst: %d logs, want the 10 admitted", out.APILogs.TotalCount)
		}
	})
}

// apiLogs and usage need logs:read, and show only the caller's account.
func TestAPILogsScopesAndAccounts(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, &app.Config{LogFlush: 20 * time.Millisecond})
		key := e.Account("mine")
		accountID := usageAccountID(t, database, "mine")
		_, narrow := usageIssue(t, e, accountID, "narrow", "services:read")
		for range 3 {
			e.Do(key, `query Mine { services { totalCount } }`, nil)
		}
		var keyID string
		{
			var v struct {
				Viewer struct {
					APIKey struct{ ID string } `json:"apiKey"`
				}
			}
			e.MustData(key, `{ viewer { apiKey { id } } }`, nil, &v)
			keyID = v.Viewer.APIKey.ID
		}
		usageWaitLogs(t, e, key, map[string]any{"operationName": "Mine"}, 3)

		// A key without logs:read.
		r := e.Do(narrow, usageLogsQuery, nil)
		if r.Code() != auth.CodeInsufficientScope {
			t.Fatalf("apiLogs without logs:read: %s", r.Raw)
		}
		now := time.Now().UTC()
		r = e.Do(narrow, usageUsageQuery, map[string]any{"from": now.Add(-time.Hour).Format(time.RFC3339), "to": now.Format(time.RFC3339), "g": "HOUR"})
		if r.Code() != auth.CodeInsufficientScope {
			t.Fatalf("usage without logs:read: %s", r.Raw)
		}
		// Its services:read still works.
		if r := e.Do(narrow, `{ services { totalCount } }`, nil); len(r.Errors) > 0 {
			t.Fatalf("services with services:read: %s", r.Raw)
		}

		// Another account sees nothing of this one.
		other := e.Account("other")
		p := usageLogs(t, e, other, map[string]any{"first": 100})
		for _, l := range p.Nodes {
			if l.APIKeyID == keyID || l.OperationName == "Mine" {
				t.Errorf("another account sees %+v", l)
			}
		}
		if p := usageLogs(t, e, other, map[string]any{"apiKeyId": keyID}); p.TotalCount != 0 {
			t.Errorf("another account filtering by this key's id sees %d logs", p.TotalCount)
		}
		if p := usageLogs(t, e, other, map[string]any{"operationName": "Mine"}); p.TotalCount != 0 {
			t.Errorf("another account sees %d Mine logs", p.TotalCount)
		}
		var u struct{ Usage []usageBucket }
		e.MustData(other, usageUsageQuery, map[string]any{"from": now.Add(-2 * time.Hour).Format(time.RFC3339), "to": now.Add(time.Hour).Format(time.RFC3339), "g": "HOUR"}, &u)
		total := 0
		for _, b := range u.Usage {
			total += b.Requests
		}
		if total > 3 { // at most its own three requests above
			t.Errorf("another account's usage counts %d requests", total)
		}
	})
}

// With the default settings a request shows in apiLogs within two seconds.
func TestAPILogsVisibleSoonByDefault(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, database *db.DB) {
		t.Parallel()
		e := newEnv(t, database, nil)
		key := e.Account("acme")
		start := time.Now()
		e.MustData(key, `query Probe { viewer { account { name } } }`, nil, &struct{}{})
		for {
			page := usageLogs(t, e, key, map[string]any{"operationName": "Probe"})
			if len(page.Nodes) == 1 {
				t.Logf("logged request visible after %v", time.Since(start).Round(time.Millisecond))
				return
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("the request is not in apiLogs 2 s later")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
