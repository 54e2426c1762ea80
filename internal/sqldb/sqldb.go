// Package sqldb is the layer the SQL sinks share (ulogd2's "db" layer):
// their common options, the mapping of a table's columns onto the stack's
// keys, the construction of the INSERT, CALL or SELECT statement from the
// procedure option, the rendering of values as SQL literals, the copy of
// a record's values into the sink queue, and the sink itself: Interp
// copies the bound values into a bounded queue (internal/sinkq) and never
// waits for the database; a writer goroutine per sink takes the queued
// rows in batches and hands them to the driver's Conn, reconnecting with
// backoff while the database is away.
//
// A driver (PGSQL, MYSQL, DBI, SQLITE3) provides a Driver: Dial opens a
// Conn, Conn.Columns reads the table's column names and Conn.Write writes
// a batch of rows. The driver chooses how: rendered SQL text (Statement,
// Dialect and Row.AppendSQL, what PGSQL and MYSQL do) or bound parameters
// (Row.Value, what SQLITE3 does).
//
// The life of one SQL sink:
//
//   - New (no connection): options checked, the sink built with every
//     upstream key available to it (the SQL sinks are wildcard sinks: the
//     keys they need come from the table, which only the database knows).
//   - Start: one connection attempt, bounded by the connect timeout. If it
//     succeeds, the columns are read and bound (a column without a key is
//     Start's error, naming the column and the stack line) and only the
//     bound values are queued per event. If the database is unreachable,
//     Start logs it and succeeds: the other stacks run, this sink queues
//     every upstream value (bounded by backlog_memcap) and the writer binds
//     the columns once it connects; a column without a key is then logged
//     and the queued rows are dropped and counted.
//   - Run: Interp copies the row into the queue (a full queue drops the
//     row and counts it); the writer writes batches; a row the database
//     refuses (constraint, value out of range, text too long) is logged,
//     counted as dropped and skipped, the rest of its batch is written.
//   - Stop: the writer drains the queue for a bounded time; what it could
//     not write is counted as dropped and reported.
//
// A plugin on this layer (see plugins/output/pgsql):
//
//	type Config struct {
//		sqldb.Options        // table, procedure, reconnect, backlog_memcap, ...
//		DB string `ulogd:"db"` // the driver's own options
//	}
//
//	// Descriptor: Wildcard: true (the columns choose the keys);
//	// NewConfig returns &Config{Options: sqldb.DefaultOptions()};
//	// Options merges sqldb.OptionDocs() with the driver's;
//	// Keys checks cfg.Options.Check(); New checks CheckNames and returns
//	type sink struct{ *sqldb.Sink }
//	&sink{sqldb.NewSink(env, sqldb.SinkConfig{Name: "PGSQL",
//		Options: cfg.Options, IDRule: sqldb.IDUnderscore, Driver: d})}
//
// The driver's Conn builds its statement in Prepare with NewStatement
// (ulogd2's INSERT / INSERT INTO / CALL / SELECT forms) and renders values
// with Value.AppendSQL and a Dialect (pasted literals) or Value.AppendText
// (query parameters); Write returns a *RowError for a row the database
// refuses, so that the row is counted and skipped and the batch goes on.
package sqldb

import (
	"errors"
	"fmt"
	"strings"
)

// Options are the options of ulogd2's db layer that every SQL sink built
// on it has. Plugins embed Options in their config (the config decoder
// promotes embedded fields).
type Options struct {
	Table          string `ulogd:"table,mandatory"`
	Procedure      string `ulogd:"procedure,mandatory"`
	Reconnect      int    `ulogd:"reconnect"`
	ConnectTimeout int    `ulogd:"connect_timeout"`
	BacklogMemcap  int    `ulogd:"backlog_memcap"`
	BacklogOneshot int    `ulogd:"backlog_oneshot_requests"`
	RingBufferSize int    `ulogd:"ring_buffer_size"`
}

// DefaultOptions returns ulogd2's defaults.
func DefaultOptions() Options {
	return Options{Reconnect: 2, BacklogOneshot: 10}
}

// OptionDocs describes the options of Options, for the plugins' Options
// maps (merged with their own).
func OptionDocs() map[string]string {
	return map[string]string{
		"table":                    "the table (or view) whose columns say what is written, and the target of a plain `INSERT`",
		"procedure":                "`INSERT`, `INSERT INTO name`, `CALL name` or a stored function name such as `INSERT_PACKET_FULL`",
		"reconnect":                "seconds between connection attempts (the first retry after a loss is immediate); `0`: give up after the first failure and drop (counted)",
		"connect_timeout":          "seconds one connection attempt may take (`0`: 10 s)",
		"backlog_memcap":           "bytes of rows kept in memory while the database is slow or away (`0`: 16 MiB); rows past it are dropped and counted",
		"backlog_oneshot_requests": "accepted for compatibility; values ≤ 2 become 3 as in ulogd2 (the writer catches up as fast as the database takes rows)",
		"ring_buffer_size":         "`>0`: the queue holds at most this many rows (besides `backlog_memcap`)",
	}
}

// Defaults of the queue.
const (
	DefaultMemcap     = 16 << 20
	minQueueRecords   = 1024
	bytesPerRecordEst = 64
)

// CheckNames reports an empty table or procedure (given as "", since the
// config decoder reports them missing).
func (o *Options) CheckNames() error {
	if strings.TrimSpace(o.Table) == "" {
		return errors.New("option `table' is empty")
	}
	if strings.TrimSpace(o.Procedure) == "" {
		return errors.New("option `procedure' is empty")
	}
	return nil
}

// Check validates the numeric options; it returns an error naming the
// option. Warnings (values ulogd2 corrects) are returned as text.
func (o *Options) Check() (warnings []string, err error) {
	switch {
	case o.Reconnect < 0:
		return nil, fmt.Errorf("option `reconnect': %d is negative", o.Reconnect)
	case o.ConnectTimeout < 0:
		return nil, fmt.Errorf("option `connect_timeout': %d is negative", o.ConnectTimeout)
	case o.BacklogMemcap < 0:
		return nil, fmt.Errorf("option `backlog_memcap': %d is negative", o.BacklogMemcap)
	case o.RingBufferSize < 0:
		return nil, fmt.Errorf("option `ring_buffer_size': %d is negative", o.RingBufferSize)
	}
	if o.BacklogOneshot <= 2 {
		warnings = append(warnings, fmt.Sprintf("backlog_oneshot_requests=%d is too small, using 3", o.BacklogOneshot))
		o.BacklogOneshot = 3
	}
	return warnings, nil
}

// QueueBounds returns the queue's bounds in records and bytes for the
// options: backlog_memcap (16 MiB when 0) bounds the bytes;
// ring_buffer_size, when set, the records (else one record per 64 bytes
// of memcap, at least 1024).
func (o *Options) QueueBounds() (records, bytes int) {
	bytes = o.BacklogMemcap
	if bytes <= 0 {
		bytes = DefaultMemcap
	}
	records = o.RingBufferSize
	if records <= 0 {
		records = max(bytes/bytesPerRecordEst, minQueueRecords)
	}
	return records, bytes
}
