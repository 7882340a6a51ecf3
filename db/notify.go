package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
)

// keyChannel is the Postgres channel on which changed API keys (revoked,
// rolled) are announced by hash, so every instance evicts them from its cache.
const keyChannel = "reservekit_api_keys"

// eventChannel carries the ids of committed booking events.
const eventChannel = "reservekit_booking_events"

// notifyKeyChanged announces a key change when tx commits (Postgres only;
// SQLite deployments are a single instance).
func (db *DB) notifyKeyChanged(ctx context.Context, tx bun.Tx, hash string) error {
	if !db.postgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT pg_notify(?, ?)", db.channel(keyChannel), hash)
	return err
}

// revocationPoll is how often SQLite deployments look for keys revoked by
// another process.
const revocationPoll = time.Second

// pollRevocations calls onChange with the hash of every key revoked since it
// started, looking every interval, until ctx ends. Each look overlaps the
// previous one by a second (a revocation committed late, clock steps):
// hearing a change twice is harmless.
func (db *DB) pollRevocations(ctx context.Context, interval time.Duration, onChange func(hash string), logErr func(error)) {
	since := now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		started := now()
		var hashes []string
		err := db.NewSelect().Model((*APIKey)(nil)).Column("hash").
			Where("revoked_at >= ?", since.Add(-time.Second)).Scan(ctx, &hashes)
		if err != nil {
			if ctx.Err() == nil {
				logErr(fmt.Errorf("poll for revoked keys: %w", err))
			}
			continue
		}
		for _, h := range hashes {
			onChange(h)
		}
		since = started
	}
}

// channel is the name of a notification channel in this database's schema.
func (db *DB) channel(name string) string { return name + db.channelSuffix }

// Listeners are what Listen calls; a nil field is not listened for.
type Listeners struct {
	// KeyChanged receives the hash of every key revoked or rolled by any
	// instance or the command line.
	KeyChanged func(hash string)
	// Listening is called each time the listener (re)connects: changes
	// announced before that (at start, or while disconnected) were not
	// heard, so whatever was cached on the strength of them must go.
	Listening func()
	// Event receives the notice of every booking event committed by any
	// instance (Postgres; on SQLite events reach OnEvent in process).
	// Events committed while the listener was disconnected are not replayed:
	// subscriptions are live, webhooks read the outbox.
	Event func(EventNotice)
}

// Listen delivers notifications to l until ctx ends. On Postgres it holds
// one connection of its own, outside the pool, listening on every channel
// l wants, and reconnects with backoff when it breaks (logErr hears why).
// SQLite has no notifications, yet the command line of another process may
// revoke a key: there KeyChanged is fed by polling every second instead.
func (db *DB) Listen(ctx context.Context, l Listeners, logErr func(error)) {
	if !db.postgres {
		if l.KeyChanged != nil {
			db.pollRevocations(ctx, revocationPoll, l.KeyChanged, logErr)
		}
		return
	}
	handlers := map[string]func(payload string){}
	if l.KeyChanged != nil {
		handlers[db.channel(keyChannel)] = l.KeyChanged
	}
	if l.Event != nil {
		handlers[db.channel(eventChannel)] = func(payload string) {
			n, err := parseEventNotice(payload)
			if err != nil {
				logErr(err)
				return
			}
			l.Event(n)
		}
	}
	if len(handlers) == 0 {
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := db.listen(ctx, handlers, l.Listening)
		if ctx.Err() != nil {
			return
		}
		logErr(fmt.Errorf("listen for notifications: %w", err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// listen runs LISTEN on a connection of its own for every channel of
// handlers, calls onListening (when set), then dispatches notifications
// until the connection or ctx ends.
func (db *DB) listen(ctx context.Context, handlers map[string]func(payload string), onListening func()) error {
	conn, err := pgx.Connect(ctx, db.listenURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for channel := range handlers {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
			return err
		}
	}
	if onListening != nil {
		onListening()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		if h := handlers[n.Channel]; h != nil {
			h(n.Payload)
		}
	}
}
