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
//     every upstream value (bounded by queue_bytes) and the writer binds
//     the columns once it connects; a column without a key is then logged
//     and the queued rows are dropped and counted.
//   - Run: Interp copies the row into the queue (a full queue drops the
//     row and counts it, waits, or spools it: overflow); the writer
//     writes batches; a row the database
//     refuses (constraint, value out of range, text too long) is logged,
//     counted as dropped and skipped, the rest of its batch is written.
//   - Stop: the writer drains the queue for a bounded time; what it could
//     not write is counted as dropped and reported, or saved to the
//     spool (overflow=spool; see LayoutFile for what the next start
//     checks).
//
// A plugin on this layer (see plugins/output/pgsql):
//
//	type Config struct {
//		sqldb.Options        // table, procedure, reconnect, queue_bytes, overflow, ...
//		DB string `ulogd:"db"` // the driver's own options
//	}
//
//	// Descriptor: Wildcard: true (the columns choose the keys);
//	// NewConfig returns &Config{Options: sqldb.DefaultOptions()};
//	// Options merges sqldb.OptionDocs() with the driver's;
//	// Keys checks cfg.Options.Check(); Resources returns
//	// cfg.Options.Resources() (the spool directory); New checks
//	// CheckNames and returns
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
	"fmt"
	"maps"
	"strings"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/sinkq"
)

// Options are the options of ulogd2's db layer that every SQL sink built
// on it has, and the queue options of every network sink (queue_records,
// queue_bytes, overflow, spool_dir, spool_size). Plugins embed Options in
// their config (the config decoder promotes embedded fields).
//
// backlog_memcap and ring_buffer_size are ulogd2's names of queue_bytes
// and queue_records: each pair is one bound, and giving both names of one
// pair is an error (Check), whatever the values. Unset (0), the queue
// holds 16 MiB of rows, at most one per 64 bytes (at least 1024), as
// before the queue options existed (docs/compat.md S13).
type Options struct {
	Table          string `ulogd:"table,mandatory"`
	Procedure      string `ulogd:"procedure,mandatory"`
	Reconnect      int    `ulogd:"reconnect"`
	ConnectTimeout int    `ulogd:"connect_timeout"`
	BacklogMemcap  int    `ulogd:"backlog_memcap"`
	BacklogOneshot int    `ulogd:"backlog_oneshot_requests"`
	RingBufferSize int    `ulogd:"ring_buffer_size"`
	// The queue's options; QueueRecords and QueueBytes 0 mean unset
	// (Queue resolves them).
	sinkq.Options
}

// DefaultOptions returns ulogd2's defaults, and the queue's: its bounds
// unset (see Queue), overflow=drop, a spool of at most 1 GiB.
func DefaultOptions() Options {
	q := sinkq.DefaultOptions()
	q.QueueRecords, q.QueueBytes = 0, 0
	return Options{Reconnect: 2, BacklogOneshot: 10, Options: q}
}

// OptionDocs describes the options of Options, for the plugins' Options
// maps (merged with their own).
func OptionDocs() map[string]string {
	m := map[string]string{
		"table":                    "the table (or view) whose columns say what is written, and the target of a plain `INSERT`",
		"procedure":                "`INSERT`, `INSERT INTO name`, `CALL name` or a stored function name such as `INSERT_PACKET_FULL`",
		"reconnect":                "seconds between connection attempts (the first retry after a loss is immediate); `0`: give up after the first failure and drop (counted)",
		"connect_timeout":          "seconds one connection attempt may take (`0`: 10 s)",
		"backlog_memcap":           "ulogd2's name of `queue_bytes` (give only one of the two)",
		"backlog_oneshot_requests": "accepted for compatibility; values ≤ 2 become 3 as in ulogd2 (the writer catches up as fast as the database takes rows)",
		"ring_buffer_size":         "ulogd2's name of `queue_records` (give only one of the two)",
	}
	maps.Copy(m, QueueDocs())
	return m
}

// QueueDocs describes the queue options of a SQL sink: the network
// sinks' (sinkq.OptionDocs) with the SQL defaults of the bounds.
func QueueDocs() map[string]string {
	m := sinkq.OptionDocs()
	maps.Copy(m, map[string]string{
		"queue_records": "most rows waiting in memory for the database (`0`: `ring_buffer_size` if set, else one per 64 bytes of `queue_bytes`, at least 1024)",
		"queue_bytes":   "most bytes of rows waiting in memory for the database, also the longest row (`0`: `backlog_memcap` if set, else 16 MiB)",
		"overflow":      "full queue: `drop` (count each row), `block` (hold the source: the kernel counts its losses) or `spool` (to disk, `spool_dir`; every upstream key is then queued, and a spool of other keys left by a changed stack stops the start)",
	})
	return m
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
		return config.OptionErrorf("table", "option `table' is empty")
	}
	if strings.TrimSpace(o.Procedure) == "" {
		return config.OptionErrorf("procedure", "option `procedure' is empty")
	}
	return nil
}

// Check validates the numeric options; it returns an error naming the
// option. Warnings (values ulogd2 corrects) are returned as text.
func (o *Options) Check() (warnings []string, err error) {
	switch {
	case o.Reconnect < 0:
		return nil, config.OptionErrorf("reconnect", "option `reconnect': %d is negative", o.Reconnect)
	case o.ConnectTimeout < 0:
		return nil, config.OptionErrorf("connect_timeout", "option `connect_timeout': %d is negative", o.ConnectTimeout)
	case o.BacklogMemcap < 0:
		return nil, config.OptionErrorf("backlog_memcap", "option `backlog_memcap': %d is negative", o.BacklogMemcap)
	case o.RingBufferSize < 0:
		return nil, config.OptionErrorf("ring_buffer_size", "option `ring_buffer_size': %d is negative", o.RingBufferSize)
	case o.QueueRecords < 0:
		return nil, config.OptionErrorf("queue_records", "option `queue_records': %d is negative", o.QueueRecords)
	case o.QueueBytes < 0:
		return nil, config.OptionErrorf("queue_bytes", "option `queue_bytes': %d is negative", o.QueueBytes)
	case o.BacklogMemcap > 0 && o.QueueBytes > 0:
		return nil, config.OptionErrorf("queue_bytes", "options `backlog_memcap' and `queue_bytes' are both given: they are one bound (ulogd2's name and the network sinks' one); keep `queue_bytes'")
	case o.RingBufferSize > 0 && o.QueueRecords > 0:
		return nil, config.OptionErrorf("queue_records", "options `ring_buffer_size' and `queue_records' are both given: they are one bound (ulogd2's name and the network sinks' one); keep `queue_records'")
	}
	q := o.Queue()
	if err := q.Check(); err != nil {
		return nil, err
	}
	if o.BacklogOneshot <= 2 {
		warnings = append(warnings, fmt.Sprintf("backlog_oneshot_requests=%d is too small, using 3", o.BacklogOneshot))
		o.BacklogOneshot = 3
	}
	return warnings, nil
}

// Queue returns the queue options with the bounds resolved: queue_bytes,
// else backlog_memcap, else 16 MiB; queue_records, else ring_buffer_size,
// else one record per 64 bytes of the byte bound (at least 1024).
func (o *Options) Queue() sinkq.Options {
	q := o.Options
	if q.QueueBytes <= 0 {
		q.QueueBytes = o.BacklogMemcap
	}
	if q.QueueBytes <= 0 {
		q.QueueBytes = DefaultMemcap
	}
	if q.QueueRecords <= 0 {
		q.QueueRecords = o.RingBufferSize
	}
	if q.QueueRecords <= 0 {
		q.QueueRecords = max(q.QueueBytes/bytesPerRecordEst, minQueueRecords)
	}
	return q
}
