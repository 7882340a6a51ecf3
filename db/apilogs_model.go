package db

import (
	"time"

	"github.com/uptrace/bun"
)

// APILog is one authenticated request, as the account sees it in its logs.
// Variables and response bodies are never recorded.
type APILog struct {
	bun.BaseModel `bun:"table:api_logs"`

	ID            int64 `bun:",pk,autoincrement"`
	AccountID     int64
	APIKeyID      int64  `bun:"api_key_id"`
	APIKeyPrefix  string `bun:"api_key_prefix"`
	OccurredAt    time.Time
	OperationName string
	OperationType string
	RootFields    StringList
	Cost          int
	Status        int
	ErrorCodes    StringList
	DurationUS    int64  `bun:"duration_us"`
	ClientIP      string `bun:"client_ip"`
	Origin        string
	UserAgent     string
}
