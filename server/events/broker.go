// Package events fans committed booking events out to the live
// subscriptions of this instance: each subscriber has a bounded buffer, and
// one that falls behind is dropped rather than slowing Publish or the others.
package events

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/reservekit/reservekit/db"
)

// DefaultBuffer is how many events a subscriber may have waiting by default.
const DefaultBuffer = 256

// ErrShutdown ends the subscriptions of a server that is shutting down.
var ErrShutdown = errors.New("the server is shutting down; subscribe again")

// ErrTooSlow ends a subscription whose buffer filled up.
var ErrTooSlow = errors.New("subscriber too slow: events were not read fast enough and the subscription was dropped")

// Broker delivers events to the subscriptions of their account.
type Broker struct {
	buffer int
	open   atomic.Int64
	// dropped counts subscriptions dropped for being too slow.
	dropped atomic.Int64

	mu       sync.RWMutex
	subs     map[int64]map[*Subscription]struct{} // by account
	shutdown bool
	// closing is closed by Shutdown, for connections that carry
	// subscriptions (a WebSocket) and must close with it.
	closing chan struct{}
}

// New returns a broker whose subscribers may each hold buffer events
// (DefaultBuffer when buffer <= 0).
func New(buffer int) *Broker {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	return &Broker{buffer: buffer, subs: map[int64]map[*Subscription]struct{}{}, closing: make(chan struct{})}
}

// Subscription receives the events of one account, of one service when
// serviceID is not zero.
type Subscription struct {
	b         *Broker
	accountID int64
	serviceID int64
	ch        chan *db.BookingEvent
	done      chan struct{}
	once      sync.Once
	err       atomic.Pointer[error]
}

// Subscribe starts a subscription; Close ends it.
func (b *Broker) Subscribe(accountID, serviceID int64) *Subscription {
	s := &Subscription{b: b, accountID: accountID, serviceID: serviceID,
		ch: make(chan *db.BookingEvent, b.buffer), done: make(chan struct{})}
	b.open.Add(1)
	b.mu.Lock()
	if b.shutdown {
		b.mu.Unlock()
		s.end(ErrShutdown)
		return s
	}
	m := b.subs[accountID]
	if m == nil {
		m = map[*Subscription]struct{}{}
		b.subs[accountID] = m
	}
	m[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Events delivers the subscription's events, in commit order per instance.
// Events shared with other subscribers: treat them as read-only.
func (s *Subscription) Events() <-chan *db.BookingEvent { return s.ch }

// Done is closed when the subscription ends (Close, or dropped: see Err).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err is ErrTooSlow when the broker dropped the subscription, else nil.
func (s *Subscription) Err() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close ends the subscription; it is safe to call more than once.
func (s *Subscription) Close() { s.end(nil) }

func (s *Subscription) end(err error) {
	s.once.Do(func() {
		if err != nil {
			s.err.Store(&err)
		}
		b := s.b
		b.mu.Lock()
		if m := b.subs[s.accountID]; m != nil {
			delete(m, s)
			if len(m) == 0 {
				delete(b.subs, s.accountID)
			}
		}
		b.mu.Unlock()
		b.open.Add(-1)
		close(s.done)
	})
}

// Wants reports whether a subscriber would receive an event of the
// account and service, so that an event need not be loaded for nobody.
func (b *Broker) Wants(accountID, serviceID int64) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs[accountID] {
		if s.serviceID == 0 || s.serviceID == serviceID {
			return true
		}
	}
	return false
}

// Publish hands ev to every matching subscriber without ever blocking: a
// subscriber whose buffer is full is dropped with ErrTooSlow.
func (b *Broker) Publish(ev *db.BookingEvent) {
	if ev == nil {
		return
	}
	var slow []*Subscription
	b.mu.RLock()
	for s := range b.subs[ev.AccountID] {
		if s.serviceID != 0 && s.serviceID != ev.ServiceID {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			slow = append(slow, s)
		}
	}
	b.mu.RUnlock()
	for _, s := range slow {
		b.dropped.Add(1)
		s.end(ErrTooSlow)
	}
}

// Shutdown ends every subscription with ErrShutdown, and those started
// later at once.
func (b *Broker) Shutdown() {
	b.mu.Lock()
	first := !b.shutdown
	b.shutdown = true
	var all []*Subscription
	for _, m := range b.subs {
		for s := range m {
			all = append(all, s)
		}
	}
	b.mu.Unlock()
	for _, s := range all {
		s.end(ErrShutdown)
	}
	if first {
		close(b.closing) // after the subscriptions, whose errors go out first
	}
}

// Closing is closed when Shutdown starts.
func (b *Broker) Closing() <-chan struct{} { return b.closing }

// Open is the number of open subscriptions (a gauge for the metrics).
func (b *Broker) Open() int64 { return b.open.Load() }

// Dropped is how many subscriptions were dropped for being too slow.
func (b *Broker) Dropped() int64 { return b.dropped.Load() }
