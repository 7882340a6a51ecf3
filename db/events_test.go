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
