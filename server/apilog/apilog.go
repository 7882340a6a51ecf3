// Package apilog records API requests off the hot path: handlers hand entries
// to a Writer that never blocks them, and one goroutine writes the entries in
// batches. A pruner deletes logs past their retention.
package apilog

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/reservekit/reservekit/db"
)

// Defaults used when New or RunPruner get zero values.
const (
	DefaultBufferSize = 10000
	DefaultFlushEvery = 500 * time.Millisecond
	DefaultRetention  = 30 * 24 * time.Hour
	DefaultPruneEvery = time.Hour
)

// BatchSize is how many entries a Writer writes with one INSERT at most.
const BatchSize = 500

// flushTimeout bounds one batch write, which runs even while shutting down.
const flushTimeout = 10 * time.Second

// Writer buffers log entries and writes them in batches.
type Writer struct {
	db         *db.DB
	entries    chan *db.APILog
	flushEvery time.Duration
	log        *slog.Logger

	dropped, written, failed atomic.Int64
}

// New returns a Writer holding up to bufferSize entries not yet written and
// writing at least every flushEvery (zero values pick the defaults). Start it
// with Run.
func New(database *db.DB, bufferSize int, flushEvery time.Duration, log *slog.Logger) *Writer {
	if bufferSize <= 0 {
		bufferSize = DefaultBufferSize
	}
	if flushEvery <= 0 {
		flushEvery = DefaultFlushEvery
	}
	if log == nil {
		log = slog.Default()
	}
	return &Writer{db: database, entries: make(chan *db.APILog, bufferSize), flushEvery: flushEvery, log: log}
}

// Record queues an entry without ever blocking: when the buffer is full the
// entry is dropped and counted. Entries recorded after Run returns are not
// written.
func (w *Writer) Record(e *db.APILog) {
	if e == nil {
		return
	}
	select {
	case w.entries <- e:
	default:
		w.dropped.Add(1)
	}
}

// Dropped is how many entries Record dropped because the buffer was full.
func (w *Writer) Dropped() int64 { return w.dropped.Load() }

// Written is how many entries have been stored.
func (w *Writer) Written() int64 { return w.written.Load() }

// Failed is how many entries were lost because their batch failed to write.
func (w *Writer) Failed() int64 { return w.failed.Load() }

// Run writes queued entries in batches of up to BatchSize, at least every
// flushEvery, until ctx is done; then it writes everything still queued and
// returns.
func (w *Writer) Run(ctx context.Context) {
	ticker := time.NewTicker(w.flushEvery)
	defer ticker.Stop()
	batch := make([]*db.APILog, 0, BatchSize)
	for {
		select {
		case e := <-w.entries:
			batch = append(batch, e)
			if len(batch) >= BatchSize {
				batch = w.flush(ctx, batch)
			}
		case <-ticker.C:
			batch = w.flush(ctx, batch)
		case <-ctx.Done():
			w.drain(ctx, batch)
			return
		}
	}
}

// drain writes the batch and whatever is queued right now.
func (w *Writer) drain(ctx context.Context, batch []*db.APILog) {
	for {
		select {
		case e := <-w.entries:
			batch = append(batch, e)
			if len(batch) >= BatchSize {
				batch = w.flush(ctx, batch)
			}
		default:
			w.flush(ctx, batch)
			return
		}
	}
}

// flush writes the batch with one INSERT and returns it emptied for reuse.
// The write is not cancelled with ctx, so shutdown still stores the batch.
func (w *Writer) flush(ctx context.Context, batch []*db.APILog) []*db.APILog {
	if len(batch) == 0 {
		return batch
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	defer cancel()
	if err := w.db.InsertAPILogs(ctx, batch); err != nil {
		w.failed.Add(int64(len(batch)))
		w.log.Error("write api logs", "entries", len(batch), "err", err)
	} else {
		w.written.Add(int64(len(batch)))
	}
	clear(batch)
	return batch[:0]
}

// RunPruner deletes logs older than retention (default 30 days) now and then
// every interval (default an hour) until ctx is done.
func RunPruner(ctx context.Context, database *db.DB, retention, every time.Duration, log *slog.Logger) {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if every <= 0 {
		every = DefaultPruneEvery
	}
	if log == nil {
		log = slog.Default()
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		n, err := database.PruneAPILogs(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("prune api logs", "err", err)
		case n > 0:
			log.Info("pruned api logs", "deleted", n, "retention", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
