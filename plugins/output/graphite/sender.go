package graphite

import "context"

// sender is the queue and writer goroutine between Interp and the server.
type sender interface {
	// Start connects and starts the writer.
	Start(ctx context.Context) error
	// Push copies rec into the queue, or drops it (and counts it) when
	// the queue is full; it never waits.
	Push(rec []byte) bool
	// Stop drains the queue for a bounded time, then closes.
	Stop(ctx context.Context) error
	// Dropped and Written count records (objects).
	Dropped() uint64
	Written() uint64
}
