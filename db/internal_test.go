package db

import "testing"

func TestEventNoticeRoundTrip(t *testing.T) {
	n := EventNotice{ID: 42, AccountID: 7, ServiceID: 3, Deliveries: 2}
	got, err := parseEventNotice(n.String())
	if err != nil || got != n {
		t.Fatalf("parse(%q) = %+v, %v", n.String(), got, err)
	}
	for _, bad := range []string{"", "42", "42,7,3", "42,7,3,x", "1,2,3,4,5"} {
		if _, err := parseEventNotice(bad); err == nil {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	for raw, want := range map[string]string{
		"postgres://u:hunter2@h:5432/db?sslmode=disable": "postgres://u:xxxxx@h:5432/db?sslmode=disable",
		"postgres://u@h/db?password=hunter2&sslmode=off": "postgres://u@h/db?password=xxxxx&sslmode=off",
		"postgresql://h/db": "postgresql://h/db",
	} {
		if got := redact(raw); got != want {
			t.Errorf("redact(%q) = %q, want %q", raw, got, want)
		}
	}
}
