package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	coderws "github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vikstrous/dataloadgen"

	"github.com/reservekit/reservekit/db"
	"github.com/reservekit/reservekit/graph/model"
	"github.com/reservekit/reservekit/server/auth"
	"github.com/reservekit/reservekit/server/caller"
	"github.com/reservekit/reservekit/server/events"
)

// Subscriptions serves subscriptions over WebSocket (graphql-transport-ws,
// and the older graphql-ws) and Server-Sent Events.
type Subscriptions struct {
	// Init authenticates a WebSocket connection from its upgrade request
	// and its connection_init payload: it returns a context derived from
	// r's with the caller, and watch, which blocks until its context ends
	// (nil) or the connection's credentials stop being valid (the error). A
	// refusal is an *auth.Error, which closes the connection with 4000 +
	// its HTTP status (4401, 4403, 4429) and its message as the reason.
	Init func(r *http.Request, payload map[string]any) (ctx context.Context, watch func(context.Context) error, err error)
	// KeepAlive is the interval of keep-alive pings (default 15 s).
	KeepAlive time.Duration
}

// DefaultKeepAlive is the keep-alive ping interval of subscriptions.
const DefaultKeepAlive = 15 * time.Second

// CloseGoingAway (1001) closes the WebSocket connections of a server that
// shuts down; clients reconnect, to another instance.
const CloseGoingAway = 1001

// CloseCode is the WebSocket close code for a refused or ended connection:
// 4000 + the HTTP status of an *auth.Error (4401, 4403, 4429), 4500 else.
func CloseCode(err error) (int, string) {
	var authErr *auth.Error
	if errors.As(err, &authErr) {
		return 4000 + authErr.Status, closeReason(authErr.Message)
	}
	return 4500, "Internal error"
}

// closeReason fits a message in a close frame (at most 123 bytes).
func closeReason(s string) string {
	for len(s) > 123 {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

func (s *Subscriptions) transports(r *Resolver) (transport.Websocket, transport.SSE) {
	keepAlive := s.KeepAlive
	if keepAlive == 0 {
		keepAlive = DefaultKeepAlive
	}
	ws := transport.Websocket{
		// Any origin may connect: no cookie authenticates a connection, the
		// key in connection_init does, and the key's domain restriction
		// still applies to the upgrade request's Origin.
		Implementation: wsImplementation{transport.CoderWebsocketImplementation{
			AcceptOptions: coderws.AcceptOptions{InsecureSkipVerify: true},
		}},
		InitTimeout:           10 * time.Second,
		KeepAlivePingInterval: keepAlive, // graphql-ws
		PingPongInterval:      keepAlive, // graphql-transport-ws: a client that answers no ping is closed
		InitFunc: func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
			st := wsStateFrom(ctx)
			if st == nil {
				return ctx, nil, errors.New("internal error")
			}
			cctx, watch, err := s.Init(st.r.WithContext(ctx), payload)
			if err != nil {
				code, reason := CloseCode(err)
				ctx = transport.AppendCloseReason(transport.WithWebsocketCloseCode(ctx, code), reason)
				return ctx, nil, errors.New(reason)
			}
			cctx, cancel := context.WithCancel(cctx)
			cctx = withWebSocket(WithLoaders(cctx, r.DB, caller.From(cctx).AccountID()))
			// end closes the connection: gqlgen closes it when cctx ends, with
			// the forced code.
			end := func(code int, reason string) {
				if conn := st.conn.Load(); conn != nil {
					conn.forced.Store(&forcedClose{code, reason})
				}
				cancel()
			}
			go func() {
				if err := watch(cctx); err != nil && cctx.Err() == nil {
					end(CloseCode(err))
				}
			}()
			if r.Events != nil {
				go func() {
					select {
					case <-r.Events.Closing():
						end(CloseGoingAway, "server shutting down")
					case <-cctx.Done():
					}
				}()
			}
			return cctx, nil, nil
		},
	}
	return ws, transport.SSE{KeepAlivePingInterval: keepAlive}
}

// wsState is what the WebSocket transport's hooks need from the upgrade:
// the request (client address, Origin) and the connection, and the number
// of subscriptions the connection holds.
type wsState struct {
	r             *http.Request
	conn          atomic.Pointer[wsConn]
	subscriptions atomic.Int64
}

// refuse answers an operation with one coded error and no data (a response
// handler is called until it returns nil).
func refuse(code, message string) graphql.ResponseHandler {
	var once sync.Once
	return func(ctx context.Context) *graphql.Response {
		var r *graphql.Response
		once.Do(func() {
			r = &graphql.Response{Errors: gqlerror.List{{Message: message, Extensions: map[string]any{"code": code}}}}
		})
		return r
	}
}

type wsStateKey struct{}

func wsStateFrom(ctx context.Context) *wsState {
	st, _ := ctx.Value(wsStateKey{}).(*wsState)
	return st
}

type webSocketKey struct{}

func withWebSocket(ctx context.Context) context.Context {
	return context.WithValue(ctx, webSocketKey{}, true)
}

// onWebSocket reports whether ctx is an operation of a WebSocket connection.
func onWebSocket(ctx context.Context) bool {
	ok, _ := ctx.Value(webSocketKey{}).(bool)
	return ok
}

// wsImplementation remembers each accepted connection, so that a
// connection whose key fails can be closed with a code that says why.
type wsImplementation struct {
	transport.CoderWebsocketImplementation
}

func (i wsImplementation) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := i.CoderWebsocketImplementation.Accept(w, r, opts)
	if err != nil {
		return nil, err
	}
	c := &wsConn{WebsocketConn: conn}
	if st := wsStateFrom(r.Context()); st != nil {
		st.conn.Store(c)
	}
	return c, nil
}

type forcedClose struct {
	code   int
	reason string
}

// wsConn replaces the close code of gqlgen's "terminated" with the reason
// the server ended the connection, when it did.
type wsConn struct {
	transport.WebsocketConn
	forced atomic.Pointer[forcedClose]
}

func (c *wsConn) WriteClose(code int, message string) error {
	if f := c.forced.Load(); f != nil {
		code, message = f.code, f.reason
	}
	return c.WebsocketConn.WriteClose(code, message)
}

func (c *wsConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

func (c *wsConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

// IsWebSocket reports whether req asks to upgrade to a WebSocket.
func IsWebSocket(req *http.Request) bool {
	return req.Method == http.MethodGet && strings.EqualFold(strings.TrimSpace(req.Header.Get("Upgrade")), "websocket")
}

// keepStreaming lifts the server's read and write deadlines for a
// long-lived response (an SSE stream, a WebSocket): they are meant for
// ordinary requests.
func keepStreaming(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
}

// eventItem is one booking of a committed event, as a subscription sends it.
type eventItem struct {
	event    *model.BookingEvent
	customer *db.WireCustomer
}

var eventTypes = map[string]model.BookingEventType{
	db.EventBookingCreated: model.BookingEventTypeCreated,
	db.EventBookingUpdated: model.BookingEventTypeUpdated,
	db.EventBookingDeleted: model.BookingEventTypeDeleted,
}

// bookingEvents splits a committed event into one BookingEvent per booking
// (a cascade delete holds several).
func bookingEvents(ev *db.BookingEvent) ([]eventItem, error) {
	t, ok := eventTypes[ev.EventType]
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", ev.EventType)
	}
	bookings, err := ev.Bookings()
	if err != nil {
		return nil, err
	}
	var p db.EventPayload
	if err := json.Unmarshal([]byte(ev.Payload), &p); err != nil {
		return nil, err
	}
	out := make([]eventItem, len(bookings))
	for i, b := range bookings {
		out[i] = eventItem{event: &model.BookingEvent{Type: t, Booking: b, OccurredAt: ev.CreatedAt.UTC()}}
		if i < len(p.Bookings) {
			out[i].customer = p.Bookings[i].Customer
		}
	}
	return out, nil
}

// refreshLoaders empties a subscription's loaders before each event, so a
// long-lived subscription never serves what it cached for an earlier one,
// and remembers what the event knows of the booking's service, slot and
// customer: a deleted booking's service or slot may have gone with it (a
// cascade), and the loaders then answer with that (a gone service has only
// its id; a gone slot its id, service and weekday), so the event is still
// delivered. The previous event may still be resolving meanwhile: it then
// loads afresh, which is as right.
func refreshLoaders(l *loaders, g *ghosts, it eventItem) {
	g.add(it)
	l.service.ClearAll()
	l.timeSlot.ClearAll()
	l.customer.ClearAll()
	l.slotsOf.ClearAll()
	l.bookingsOf.ClearAll()
}

// ghosts keeps what the last few events said of their bookings' service,
// slot and customer, for rows already deleted when they are resolved.
type ghosts struct {
	mu    sync.Mutex
	items [8]eventItem
	next  int
}

type ghostsKey struct{}

func ghostsFrom(ctx context.Context) *ghosts {
	g, _ := ctx.Value(ghostsKey{}).(*ghosts)
	if g == nil {
		g = &ghosts{}
	}
	return g
}

func (g *ghosts) add(it eventItem) {
	g.mu.Lock()
	g.items[g.next%len(g.items)] = it
	g.next++
	g.mu.Unlock()
}

// fill adds to found a ghost for every id of ids it lacks and an event knew.
func fill[T any](g *ghosts, ids []int64, found map[int64]T, ghost func(eventItem, int64) (T, bool)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		if _, ok := found[id]; ok {
			continue
		}
		for _, it := range g.items {
			if it.event == nil {
				continue
			}
			if v, ok := ghost(it, id); ok {
				found[id] = v
				break
			}
		}
	}
}

// newSubscriptionLoaders are loaders whose service, slot and customer fall
// back on the ghosts of recent events.
func newSubscriptionLoaders(database *db.DB, accountID int64, g *ghosts) *loaders {
	l := newLoaders(database, accountID)
	wait := dataloadgen.WithWait(loaderWait)
	l.service = dataloadgen.NewMappedLoader(func(ctx context.Context, ids []int64) (map[int64]*db.Service, error) {
		rows, err := database.ServicesByIDs(ctx, accountID, ids)
		m := byID(rows, func(s *db.Service) int64 { return s.ID })
		fill(g, ids, m, func(it eventItem, id int64) (*db.Service, bool) {
			b := it.event.Booking
			return &db.Service{ID: id, AccountID: b.AccountID, Timezone: "UTC"}, b.ServiceID == id
		})
		return m, err
	}, wait)
	l.timeSlot = dataloadgen.NewMappedLoader(func(ctx context.Context, ids []int64) (map[int64]*db.TimeSlot, error) {
		rows, err := database.TimeSlotsByIDs(ctx, accountID, ids)
		m := byID(rows, func(s *db.TimeSlot) int64 { return s.ID })
		fill(g, ids, m, func(it eventItem, id int64) (*db.TimeSlot, bool) {
			b := it.event.Booking
			ts := &db.TimeSlot{ID: id, AccountID: b.AccountID, ServiceID: b.ServiceID}
			if d, err := time.Parse(db.DateLayout, b.Date); err == nil {
				ts.DayOfWeek = int(d.Weekday())
			}
			return ts, b.TimeSlotID == id
		})
		return m, err
	}, wait)
	l.customer = dataloadgen.NewMappedLoader(func(ctx context.Context, ids []int64) (map[int64]*db.Customer, error) {
		rows, err := database.CustomersByIDs(ctx, accountID, ids)
		m := byID(rows, func(c *db.Customer) int64 { return c.ID })
		fill(g, ids, m, func(it eventItem, id int64) (*db.Customer, bool) {
			b, w := it.event.Booking, it.customer
			if b.CustomerID == nil || *b.CustomerID != id || w == nil {
				return nil, false
			}
			return &db.Customer{ID: id, AccountID: b.AccountID, Name: w.Name, Email: w.Email, Phone: w.Phone}, true
		})
		return m, err
	}, wait)
	return l
}

// serveWebSocket runs a WebSocket connection: unauthenticated until its
// connection_init, which Subscriptions.Init checks.
func serveWebSocket(w http.ResponseWriter, req *http.Request, serve http.HandlerFunc) {
	keepStreaming(w)
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	st := &wsState{}
	req = req.WithContext(context.WithValue(ctx, wsStateKey{}, st))
	st.r = req
	serve(w, req)
}

// MaxSubscriptionsPerConnection bounds the subscriptions one WebSocket
// connection may hold at once (each costs a buffer and a goroutine).
const MaxSubscriptionsPerConnection = 16

// subscriptionLoaders gives each subscription loaders of its own, which it
// refreshes per event (see refreshLoaders). Over a WebSocket it runs only
// subscriptions, at most MaxSubscriptionsPerConnection at a time: queries
// and mutations go over HTTP, where every request passes the rate limit,
// the quota, the API log and Idempotency-Key (the socket passed them once,
// when it connected).
func subscriptionLoaders(database *db.DB) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		oc := graphql.GetOperationContext(ctx)
		if onWebSocket(ctx) && oc.Operation != nil {
			if oc.Operation.Operation != ast.Subscription {
				return refuse(db.CodeInvalidRequest, "Only subscriptions run over a WebSocket; send queries and mutations with POST /graphql")
			}
			st := wsStateFrom(ctx)
			if st != nil && st.subscriptions.Add(1) > MaxSubscriptionsPerConnection {
				st.subscriptions.Add(-1)
				return refuse("too_many_subscriptions", fmt.Sprintf("A connection holds at most %d subscriptions at a time", MaxSubscriptionsPerConnection))
			}
			if st != nil {
				done := ctx.Done() // the operation's: gqlgen cancels it when the subscription ends
				go func() { <-done; st.subscriptions.Add(-1) }()
			}
		}
		if c := caller.From(ctx); c != nil && oc.Operation != nil && oc.Operation.Operation == ast.Subscription {
			g := &ghosts{}
			ctx = context.WithValue(ctx, ghostsKey{}, g)
			ctx = context.WithValue(ctx, loadersKey{}, newSubscriptionLoaders(database, c.AccountID(), g))
		}
		return next(ctx)
	}
}

// subscriptionDropped tells a WebSocket client why its subscription ends.
func (r *subscriptionResolver) subscriptionDropped(ctx context.Context, err error) {
	if err == nil || !onWebSocket(ctx) {
		return
	}
	code := "subscriber_too_slow"
	if errors.Is(err, events.ErrShutdown) {
		code = "server_shutting_down"
	}
	transport.AddSubscriptionError(ctx, &gqlerror.Error{Message: err.Error(), Extensions: map[string]any{"code": code}})
}
