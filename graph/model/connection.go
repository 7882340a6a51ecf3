package model

import (
	"context"

	"github.com/reservekit/reservekit/db"
)

// PageInfo tells where a page ends.
type PageInfo struct {
	HasNextPage bool
	EndCursor   *string
}

// Edge is one item of a connection with its cursor.
type Edge[T any] struct {
	Cursor string
	Node   T
}

// Connection is a Relay-style page. The total count is computed only when a
// client asks for it.
type Connection[T any] struct {
	Edges    []*Edge[T]
	PageInfo *PageInfo
	count    func(context.Context) (int, error)
}

// NewConnection builds a page from up to first+1 rows: the extra row, if
// present, only signals that a next page exists.
func NewConnection[T any](rows []T, first int, cursor func(T) string, count func(context.Context) (int, error)) *Connection[T] {
	c := &Connection[T]{PageInfo: &PageInfo{}, count: count}
	if len(rows) > first {
		rows = rows[:first]
		c.PageInfo.HasNextPage = true
	}
	c.Edges = make([]*Edge[T], len(rows))
	for i, r := range rows {
		c.Edges[i] = &Edge[T]{Cursor: cursor(r), Node: r}
	}
	if len(rows) > 0 {
		end := c.Edges[len(rows)-1].Cursor
		c.PageInfo.EndCursor = &end
	}
	return c
}

// Nodes lists the items of the page without their cursors.
func (c *Connection[T]) Nodes() []T {
	out := make([]T, len(c.Edges))
	for i, e := range c.Edges {
		out[i] = e.Node
	}
	return out
}

// TotalCount counts the items across all pages.
func (c *Connection[T]) TotalCount(ctx context.Context) (int, error) { return c.count(ctx) }

// The connections of the schema.
type (
	ServiceConnection = Connection[*db.Service]
	ServiceEdge       = Edge[*db.Service]
	BookingConnection = Connection[*db.Booking]
	BookingEdge       = Edge[*db.Booking]
	APIKeyConnection  = Connection[*db.APIKey]
	APIKeyEdge        = Edge[*db.APIKey]

	AuditEventConnection = Connection[*db.AuditEvent]
	AuditEventEdge       = Edge[*db.AuditEvent]

	APILogConnection = Connection[*db.APILog]
	APILogEdge       = Edge[*db.APILog]

	WebhookConnection         = Connection[*db.Webhook]
	WebhookEdge               = Edge[*db.Webhook]
	WebhookDeliveryConnection = Connection[*db.Delivery]
	WebhookDeliveryEdge       = Edge[*db.Delivery]
)
