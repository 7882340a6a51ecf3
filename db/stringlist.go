package db

import (
	"database/sql/driver"
	"fmt"
	"strings"
)

// StringList is a set of short tokens (scopes, CIDRs) stored as one
// space-separated text column, the same on both dialects.
type StringList []string

// Value implements driver.Valuer.
func (l StringList) Value() (driver.Value, error) { return strings.Join(l, " "), nil }

// Scan implements sql.Scanner.
func (l *StringList) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case nil:
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return fmt.Errorf("StringList: cannot scan %T", src)
	}
	*l = strings.Fields(s)
	return nil
}

// Contains reports whether l holds s.
func (l StringList) Contains(s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}
