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

// ListenKeyChanges calls onChange with the hash of every key changed by any
// instance, until ctx ends. onReset is called each time the listener
// (re)connects, since changes made before it listened were not announced
// to it.
// SQLite has no notifications, yet the command line of another process may
// revoke a key: there it polls for revocations every second instead.
func (db *DB) ListenKeyChanges(ctx context.Context, onChange func(hash string), onReset func(), logErr func(error)) {
	if !db.postgres {
		db.pollRevocations(ctx, revocationPoll, onChange, logErr)
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := db.listen(ctx, keyChannel, onChange, onReset)
		if ctx.Err() != nil {
			return
		}
		logErr(fmt.Errorf("listen for key changes: %w", err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// listen runs LISTEN on a connection of its own and then calls onListening: changes made before that
// (at start, or while disconnected) were not heard, so whatever was cached
// then must go.
func (db *DB) listen(ctx context.Context, channel string, onChange func(payload string), onListening func()) error {
	conn, err := pgx.Connect(ctx, db.listenURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{db.channel(channel)}.Sanitize()); err != nil {
		return err
	}
	onListening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		onChange(n.Payload)
	}
}

// ListenEvents calls onNotice with the notice of every booking event
// committed by any instance, until ctx ends (Postgres; on SQLite events
// reach OnEvent in process and this returns at once). Events committed
// while the listener was disconnected are not replayed: subscriptions are
// live, webhooks read the outbox.
func (db *DB) ListenEvents(ctx context.Context, onNotice func(EventNotice), logErr func(error)) {
	if !db.postgres {
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := db.listen(ctx, eventChannel, func(payload string) {
			n, err := parseEventNotice(payload)
			if err != nil {
				logErr(err)
				return
			}
			onNotice(n)
		}, func() {})
		if ctx.Err() != nil {
			return
		}
		logErr(fmt.Errorf("listen for booking events: %w", err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
