// Package sqlite3 is the SQLITE3 sink: one row per event into a table of
// an SQLite database file, each batch of rows in one transaction (WAL
// journal), written by a writer goroutine from a bounded queue so that
// the stack never waits for the disk (see package sqldb). The driver is
// modernc.org/sqlite: no cgo.
package sqlite3

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"strings"

	"modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sinkq"
	"github.com/ulogd-go/ulogd/internal/sqldb"
)

// Config holds SQLITE3's options.
type Config struct {
	DB    string `ulogd:"db,mandatory"`
	Table string `ulogd:"table,mandatory"`
	// The queue's options, as the other SQL sinks' (sqldb.Options).
	sinkq.Options
}

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the SQLITE3 plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "SQLITE3",
		Kind:      plugin.Sink,
		Summary:   "write one row per event into a table of an SQLite database file",
		Input:     plugin.DTPacket | plugin.DTFlow | plugin.DTSum,
		Output:    plugin.DTSink,
		NewConfig: func() *Config { return &Config{Options: sqldb.DefaultOptions().Options} },
		Options:   options(),
		Sample:    sample,
		Wildcard:  true,
		Keys: func(cfg *Config) ([]keys.Spec, []keys.Spec, error) {
			o := cfg.sqlOptions()
			_, err := o.Check()
			return nil, nil, err
		},
		Resources: func(cfg *Config) []string { return cfg.Options.Resources() },
		New: func(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
			if err := check(cfg); err != nil {
				return nil, err
			}
			opts := cfg.sqlOptions()
			return &sink{Sink: sqldb.NewSink(env, sqldb.SinkConfig{
				Name: "SQLITE3", Options: opts, IDRule: sqldb.NoID, Driver: &driver{cfg: cfg},
			})}, nil
		},
	})
}

func options() map[string]string {
	m := sqldb.QueueDocs()
	m["queue_records"] = "most rows waiting in memory for the database (`0`: one per 64 bytes of `queue_bytes`, at least 1024)"
	m["queue_bytes"] = "most bytes of rows waiting in memory for the database, also the longest row (`0`: 16 MiB)"
	m["db"] = "the database file (created if missing; the table must exist)"
	m["table"] = "the table: its columns say which keys are written (`_` in a column name stands for `.` in the key name)"
	return m
}

// sqlOptions returns the db layer's options of cfg: a plain INSERT into
// the table, the queue's options.
func (cfg *Config) sqlOptions() sqldb.Options {
	opts := sqldb.DefaultOptions()
	opts.Table, opts.Procedure = cfg.Table, "INSERT"
	opts.Options = cfg.Options
	return opts
}

func check(cfg *Config) error {
	o := cfg.sqlOptions()
	if _, err := o.Check(); err != nil {
		return err
	}
	if cfg.DB == "" {
		return config.OptionErrorf("db", "option `db' is empty")
	}
	if strings.TrimSpace(cfg.Table) == "" {
		return config.OptionErrorf("table", "option `table' is empty")
	}
	return nil
}

type sink struct {
	*sqldb.Sink
}

type driver struct {
	cfg *Config
}

func (d *driver) Peer() string { return "sqlite3:" + d.cfg.DB }

// Dial opens the file with a busy timeout and the WAL journal.
func (d *driver) Dial(ctx context.Context) (sqldb.Conn, error) {
	return d.open(ctx, "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
}

// DialReadOnly opens the file read only, creating nothing (--explain).
func (d *driver) DialReadOnly(ctx context.Context) (sqldb.Conn, error) {
	return d.open(ctx, "?mode=ro&_pragma=busy_timeout(5000)")
}

func (d *driver) open(ctx context.Context, params string) (sqldb.Conn, error) {
	db, err := Open(ctx, d.cfg.DB, params)
	if err != nil {
		return nil, err
	}
	return &conn{d: d, db: db}, nil
}

// Open opens the database file with the URI parameters params (the
// ones of Dial or DialReadOnly), one connection, and checks it (SQLITE3,
// and DBI with dbtype=sqlite3).
func Open(ctx context.Context, file, params string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+file+params)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

type conn struct {
	d    *driver
	db   *sql.DB
	stmt *sql.Stmt
	args []any
}

// Columns reads the column names of "select * from table", as ulogd2.
func (c *conn) Columns(ctx context.Context) ([]string, error) {
	rows, err := c.db.QueryContext(ctx, "select * from "+c.d.cfg.Table+" limit 0")
	if err != nil {
		if isNoTable(err) {
			return nil, nil // sqldb reports the table missing
		}
		return nil, err
	}
	defer rows.Close()
	return rows.Columns()
}

func isNoTable(err error) bool {
	return strings.Contains(err.Error(), "no such table")
}

func (c *conn) Prepare(ctx context.Context, cols []string) error {
	q := "insert into " + c.d.cfg.Table + " (" + strings.Join(cols, ",") + ") values (" +
		strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return err
	}
	c.stmt = st
	return nil
}

// Write inserts the rows in one transaction (WriteTx).
func (c *conn) Write(ctx context.Context, rows []sqldb.Row) (int, error) {
	var st *sql.Stmt
	return WriteTx(ctx, c.db, len(rows), func(tx *sql.Tx, i int) error {
		if st == nil {
			st = tx.StmtContext(ctx, c.stmt)
		}
		c.args = Args(c.args[:0], &rows[i])
		_, err := st.ExecContext(ctx, c.args...)
		return err
	})
}

// WriteTx runs exec for each of n rows in one transaction. A row SQLite
// refuses (RowRefused) ends the transaction there: the rows before it
// are committed, and the refusal is returned as a *sqldb.RowError. DBI
// with dbtype=sqlite3 writes through it too.
func WriteTx(ctx context.Context, db *sql.DB, n int, exec func(tx *sql.Tx, i int) error) (int, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	for i := range n {
		if err := exec(tx, i); err != nil {
			if !RowRefused(err) {
				tx.Rollback()
				return 0, err
			}
			if cerr := tx.Commit(); cerr != nil {
				return 0, cerr
			}
			return i, &sqldb.RowError{Err: err}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return n, nil
}

// RowRefused reports whether err is SQLite refusing the row's values
// (DBI with dbtype=sqlite3 uses it too).
func RowRefused(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3lib.SQLITE_CONSTRAINT, sqlite3lib.SQLITE_TOOBIG, sqlite3lib.SQLITE_MISMATCH, sqlite3lib.SQLITE_RANGE:
		return true
	}
	return false
}

// Args appends the values of row as SQLite binds them (docs/compat.md):
// invalid → NULL; integers and booleans as 64-bit integers of their
// value (signed types sign-extended, so a UINT32 such as ct.id stays
// positive); a 4-byte IPADDR as the integer ulogd2 stores (the
// network-order bytes read little-endian: 10.99.0.1 → 16802570); a 16-byte
// one as NULL; strings as text; raw data as a blob.
func Args(dst []any, row *sqldb.Row) []any {
	for _, v := range row.Vals {
		dst = append(dst, arg(v))
	}
	return dst
}

func arg(v sqldb.Value) any {
	if !v.Valid {
		return nil
	}
	switch t := v.Type; {
	case t.IsSigned():
		return v.Signed()
	case t.IsInteger():
		return int64(v.N)
	case t == keys.IPAddr || t == keys.IP6Addr:
		if len(v.B) == 4 {
			return int64(sqldb.IPv4Host(v.B))
		}
		return nil
	case t == keys.String || t == keys.RawStr:
		return string(v.B)
	}
	return v.B
}

func (c *conn) Close() error {
	if c.stmt != nil {
		c.stmt.Close()
	}
	return c.db.Close()
}
