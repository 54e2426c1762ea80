package sqldb

import (
	"context"
	"errors"
	"fmt"
)

// Driver opens connections to one database for one sink.
type Driver interface {
	// Dial opens a connection; ctx bounds the attempt.
	Dial(ctx context.Context) (Conn, error)
	// Peer names the database in log lines, without secrets
	// ("pgsql:/run/pg:5432/ulogd").
	Peer() string
}

// ReadOnlyDriver is implemented by drivers whose Dial may create
// something (SQLite creates a missing file): --explain dials with
// DialReadOnly instead.
type ReadOnlyDriver interface {
	DialReadOnly(ctx context.Context) (Conn, error)
}

// Conn is one open connection. Only the sink's writer goroutine uses it
// (Close excepted, which may come from Stop).
type Conn interface {
	// Columns returns the names of the table's columns, in order.
	Columns(ctx context.Context) ([]string, error)
	// Prepare readies the connection to write rows of the given columns
	// (the written ones, in order: the id column is left out). It is
	// called once per connection, after Columns and before Write.
	Prepare(ctx context.Context, cols []string) error
	// Write writes rows in order; row i holds one Value per column of
	// Prepare. It returns how many rows, from the first, are stored.
	//
	// When the row after those is refused for its own values (a
	// constraint, a value out of range, a text too long for its column)
	// it returns a *RowError: the sink counts that row as dropped,
	// reports it, and writes the rows after it. Any other error means
	// the connection is unusable: it is closed and the rows not stored
	// are written again on the next connection.
	Write(ctx context.Context, rows []Row) (stored int, err error)
	// Close closes the connection.
	Close() error
}

// RowError is a row the database refused for its values.
type RowError struct {
	Err error
}

func (e *RowError) Error() string { return fmt.Sprintf("row refused: %v", e.Err) }
func (e *RowError) Unwrap() error { return e.Err }

// IsRowError reports whether err is (or wraps) a *RowError.
func IsRowError(err error) bool {
	var re *RowError
	return errors.As(err, &re)
}
