// Package pgsql is the PGSQL sink: one row per event into a PostgreSQL
// table, view or stored function (ulogd2's schema: the flat tables, or
// INSERT_PACKET_FULL and INSERT_CT), written in batches by a writer
// goroutine from a bounded queue, so that the stack never waits for the
// database (see package sqldb). ulogd2's statement is prepared once per
// connection with a parameter in place of each literal, and a batch is
// one pipeline of executions of it.
package pgsql

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sqldb"
)

// Config holds PGSQL's options: the db layer's and PostgreSQL's own.
type Config struct {
	sqldb.Options
	DB         string `ulogd:"db"`
	Host       string `ulogd:"host"`
	User       string `ulogd:"user"`
	Pass       string `ulogd:"pass"`
	Port       int    `ulogd:"port"`
	Schema     string `ulogd:"schema"`
	ConnString string `ulogd:"connstring"`
}

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

func options() map[string]string {
	m := sqldb.OptionDocs()
	for k, v := range map[string]string{
		"db":         "the database (needed unless `connstring` is set)",
		"host":       "the server's host name, address or unix-socket directory (empty: libpq's default, the local socket)",
		"user":       "the user name (needed unless `connstring` is set)",
		"pass":       "the password",
		"port":       "the server's port (`0`: 5432)",
		"schema":     "the schema of `table` (it must exist); a plain `INSERT` writes to `schema.table`",
		"connstring": "a libpq connection string (`key=value ...` or `postgresql://` URL); when set, `host`, `port`, `user`, `pass` and `db` are ignored",
	} {
		m[k] = v
	}
	return m
}

// Descriptor returns the PGSQL plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:    "PGSQL",
		Kind:    plugin.Sink,
		Summary: "write one row per event into a PostgreSQL table or stored function",
		Input:   plugin.DTPacket | plugin.DTFlow | plugin.DTSum,
		Output:  plugin.DTSink,
		NewConfig: func() *Config {
			return &Config{Options: sqldb.DefaultOptions(), Schema: "public"}
		},
		Options:  options(),
		Sample:   sample,
		Wildcard: true,
		Keys: func(cfg *Config) ([]keys.Spec, []keys.Spec, error) {
			return nil, nil, check(cfg)
		},
		Resources: func(cfg *Config) []string { return cfg.Options.Resources() },
		New: func(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
			if err := checkNames(cfg); err != nil {
				return nil, err
			}
			warn, _ := cfg.Options.Check()
			for _, w := range warn {
				env.Logger().Error("PGSQL: " + w)
			}
			d := NewDriver(cfg)
			return &sink{Sink: sqldb.NewSink(env, sqldb.SinkConfig{
				Name: "PGSQL", Options: cfg.Options, IDRule: sqldb.IDUnderscore, Driver: d,
			})}, nil
		},
	})
}

// check validates the option values (Keys: also for the defaults).
func check(cfg *Config) error {
	o := cfg.Options
	if _, err := o.Check(); err != nil {
		return err
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return config.OptionErrorf("port", "option `port': %d is not a port number", cfg.Port)
	}
	if _, err := pgx.ParseConfig(ConnInfo(cfg)); err != nil {
		return fmt.Errorf("connection options: %v", err)
	}
	return nil
}

// checkNames reports what an instance must name: the table, the
// procedure, the database and the user (unless connstring is set).
func checkNames(cfg *Config) error {
	if err := check(cfg); err != nil {
		return err
	}
	if err := cfg.Options.CheckNames(); err != nil {
		return err
	}
	if cfg.ConnString == "" {
		if cfg.DB == "" {
			return config.OptionErrorf("db", "option `db' is empty (and there is no `connstring')")
		}
		if cfg.User == "" {
			return config.OptionErrorf("user", "option `user' is empty (and there is no `connstring')")
		}
	}
	return nil
}

// ConnInfo returns the libpq connection string: connstring when set,
// else host, port, dbname, user and password from the options, leaving
// out the empty ones (values quoted as libpq wants).
func ConnInfo(cfg *Config) string {
	if cfg.ConnString != "" {
		return cfg.ConnString
	}
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+quote(v))
		}
	}
	add("host", cfg.Host)
	if cfg.Port > 0 {
		add("port", strconv.Itoa(cfg.Port))
	}
	add("dbname", cfg.DB)
	add("user", cfg.User)
	add("password", cfg.Pass)
	return strings.Join(parts, " ")
}

// quote quotes a conninfo value when it needs it.
func quote(v string) string {
	if !strings.ContainsAny(v, ` '\`) {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

type sink struct {
	*sqldb.Sink
}

// driver connects to PostgreSQL.
// NewDriver returns the driver writing to the database cfg names (PGSQL,
// and DBI with dbtype=pgsql).
func NewDriver(cfg *Config) sqldb.Driver { return &driver{cfg: cfg, conninfo: ConnInfo(cfg)} }

type driver struct {
	cfg      *Config
	conninfo string
}

func (d *driver) Peer() string {
	pc, err := pgx.ParseConfig(d.conninfo)
	if err != nil {
		return "pgsql"
	}
	return fmt.Sprintf("pgsql:%s:%d/%s", pc.Host, pc.Port, pc.Database)
}

func (d *driver) Dial(ctx context.Context) (sqldb.Conn, error) {
	pc, err := pgx.ParseConfig(d.conninfo)
	if err != nil {
		return nil, err
	}
	if pc.RuntimeParams == nil {
		pc.RuntimeParams = map[string]string{}
	}
	if _, ok := pc.RuntimeParams["application_name"]; !ok {
		pc.RuntimeParams["application_name"] = "ulogd"
	}
	c, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	return &conn{d: d, c: c}, nil
}

// conn is one PostgreSQL connection.
type conn struct {
	d      *driver
	c      *pgx.Conn
	schema string // the schema found for the table
	ncols  int
	text   []byte   // the parameters' text, all rows of a batch
	params [][]byte // one row's parameters, slices of text
	// copySQL is the COPY statement of a plain INSERT into a table
	// ("" for the other procedures and for views); copyBuf its data.
	copySQL string
	copyBuf []byte
	// many is whether the stored function of a SELECT procedure is
	// called for a whole batch in one statement (stmtMany); arrays holds
	// its parameters, one array literal per column.
	many   bool
	arrays [][]byte
}

// stmtName is the prepared statement of a connection; stmtMany the one
// that calls a stored function for every row of a batch.
const (
	stmtName = "ulogd_row"
	stmtMany = "ulogd_rows"
)

// Columns reads the table's attributes within the schema, in column order,
// as ulogd2 does.
func (c *conn) Columns(ctx context.Context) ([]string, error) {
	schema := c.d.cfg.Schema
	if schema != "" {
		var n int
		if err := c.c.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("schema %s not found", schema)
		}
		c.schema = schema
	}
	q := `SELECT a.attname FROM pg_attribute a JOIN pg_class c ON a.attrelid = c.oid
		LEFT JOIN pg_namespace n ON c.relnamespace = n.oid
		WHERE c.relname = $1 AND ($2 = '' OR n.nspname = $2) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`
	rows, err := c.c.Query(ctx, q, c.d.cfg.Table, c.schema)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string]) // none: sqldb reports the table missing
}

// Prepare prepares ulogd2's statement with one parameter per column in
// place of the literals ulogd2 pastes; PostgreSQL gives each parameter
// the type the literal would get.
func (c *conn) Prepare(ctx context.Context, cols []string) error {
	st := sqldb.NewStatement(c.d.cfg.Procedure, c.schema, c.d.cfg.Table, cols)
	var ph []byte
	for i := range cols {
		if i > 0 {
			ph = append(ph, ',')
		}
		ph = append(ph, '$')
		ph = strconv.AppendInt(ph, int64(i+1), 10)
	}
	sd, err := c.c.PgConn().Prepare(ctx, stmtName, string(st.AppendOne(nil, ph)), nil)
	if err != nil {
		return err
	}
	c.ncols = len(cols)
	c.copySQL = ""
	c.many = st.Style == sqldb.Select && c.prepareMany(ctx, st, sd.ParamOIDs)
	if st.Style == sqldb.Insert {
		var kind string
		err := c.c.QueryRow(ctx, `SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON c.relnamespace = n.oid
			WHERE c.relname = $1 AND ($2 = '' OR n.nspname = $2)`, c.d.cfg.Table, c.schema).Scan(&kind)
		if err != nil {
			return err
		}
		if kind == "r" || kind == "p" { // a table: COPY works, not into a view
			target := c.d.cfg.Table
			if c.schema != "" {
				target = c.schema + "." + target
			}
			c.copySQL = "COPY " + target + " (" + strings.Join(cols, ",") + ") FROM STDIN"
		}
	}
	return nil
}

// prepareMany prepares stmtMany for a stored function whose single-row
// call has parameters of the types oids:
//
//	SELECT f(c1,…,cn) FROM unnest($1::t1[],…,$n::tn[]) AS v(c1,…,cn)
//
// PostgreSQL plans a SQL function's statements once per calling
// statement, so calling it for a whole batch in one statement saves the
// planning of every row but the first: the shipped INSERT_CT costs the
// server 53 instead of 131 ms of CPU per 1000 rows (docs/performance.md).
// It reports whether the statement could be prepared; if not, each row
// is one call, in one pipeline per batch.
func (c *conn) prepareMany(ctx context.Context, st *sqldb.Statement, oids []uint32) bool {
	ids := make([]int64, len(oids))
	for i, oid := range oids {
		ids[i] = int64(oid)
	}
	var types []string
	err := c.c.QueryRow(ctx, `SELECT array_agg(format_type(o::oid, NULL) ORDER BY i)
		FROM unnest($1::int8[]) WITH ORDINALITY AS u(o, i)`, ids).Scan(&types)
	if err != nil || len(types) != len(oids) {
		return false
	}
	var cols, arrs []byte
	for i, ty := range types {
		if i > 0 {
			cols, arrs = append(cols, ','), append(arrs, ',')
		}
		cols = append(cols, 'c')
		cols = strconv.AppendInt(cols, int64(i+1), 10)
		arrs = append(arrs, '$')
		arrs = strconv.AppendInt(arrs, int64(i+1), 10)
		arrs = append(arrs, "::"...)
		arrs = append(arrs, ty...)
		arrs = append(arrs, "[]"...)
	}
	q := string(st.AppendOne(nil, cols)) + " FROM unnest(" + string(arrs) + ") AS v(" + string(cols) + ")"
	_, err = c.c.PgConn().Prepare(ctx, stmtMany, q, nil)
	return err == nil
}

// execMany calls the stored function for every row in one statement:
// each column's values go as one array literal.
func (c *conn) execMany(ctx context.Context, rows []sqldb.Row) error {
	for len(c.arrays) < c.ncols {
		c.arrays = append(c.arrays, nil)
	}
	arrays := c.arrays[:c.ncols]
	for j := range arrays {
		arrays[j] = append(arrays[j][:0], '{')
	}
	for i := range rows {
		for j, v := range rows[i].Vals {
			if i > 0 {
				arrays[j] = append(arrays[j], ',')
			}
			arrays[j] = appendArrayElem(arrays[j], v)
		}
	}
	for j := range arrays {
		arrays[j] = append(arrays[j], '}')
	}
	return c.c.PgConn().ExecPrepared(ctx, stmtMany, arrays, nil, nil).Read().Err
}

// appendArrayElem appends v as an element of an array literal: NULL, or
// its text between double quotes with '"' and '\' escaped.
func appendArrayElem(dst []byte, v sqldb.Value) []byte {
	n := len(dst)
	dst = append(dst, '"')
	dst, ok := v.AppendText(dst)
	if !ok {
		return append(dst[:n], "NULL"...)
	}
	dst = escapeFrom(dst, n+1, `"\`, func(b []byte, ch byte) []byte { return append(b, '\\', ch) })
	return append(dst, '"')
}

// copyRows writes the rows with COPY (text format), all or nothing.
func (c *conn) copyRows(ctx context.Context, rows []sqldb.Row) error {
	b := c.copyBuf[:0]
	for i := range rows {
		for j, v := range rows[i].Vals {
			if j > 0 {
				b = append(b, '\t')
			}
			n := len(b)
			var ok bool
			if b, ok = v.AppendText(b); !ok {
				b = append(b, '\\', 'N')
				continue
			}
			b = copyEscape(b, n)
		}
		b = append(b, '\n')
	}
	c.copyBuf = b
	_, err := c.c.PgConn().CopyFrom(ctx, bytes.NewReader(b), c.copySQL)
	return err
}

// copyEscape escapes b[n:] for COPY's text format: backslash, tab,
// newline and carriage return.
func copyEscape(b []byte, n int) []byte {
	return escapeFrom(b, n, "\\\t\n\r", func(b []byte, ch byte) []byte {
		switch ch {
		case '\t':
			ch = 't'
		case '\n':
			ch = 'n'
		case '\r':
			ch = 'r'
		}
		return append(b, '\\', ch)
	})
}

// escapeFrom rewrites b[n:]: each byte of special as esc appends it, the
// others as they are. It copies nothing when b[n:] holds none of them.
func escapeFrom(b []byte, n int, special string, esc func(b []byte, ch byte) []byte) []byte {
	if !bytes.ContainsAny(b[n:], special) {
		return b
	}
	text := append([]byte(nil), b[n:]...)
	b = b[:n]
	for _, ch := range text {
		if strings.IndexByte(special, ch) >= 0 {
			b = esc(b, ch)
		} else {
			b = append(b, ch)
		}
	}
	return b
}

// Write sends the rows with COPY (a plain INSERT into a table), else as
// one pipeline of the prepared statement, which PostgreSQL runs as one
// implicit transaction. When a row is refused the whole batch is rolled
// back; the first half is tried again as a pipeline, down to the refused
// row.
func (c *conn) Write(ctx context.Context, rows []sqldb.Row) (int, error) {
	if c.copySQL != "" {
		err := c.copyRows(ctx, rows)
		if err == nil {
			return len(rows), nil
		}
		if !rowClass(err) {
			return 0, err
		}
	}
	return c.writePipeline(ctx, rows)
}

// writePipeline writes rows as one pipeline, halving on a refused row.
func (c *conn) writePipeline(ctx context.Context, rows []sqldb.Row) (int, error) {
	err := c.exec(ctx, rows)
	if err == nil {
		return len(rows), nil
	}
	if !rowClass(err) {
		return 0, err
	}
	if len(rows) == 1 {
		return 0, &sqldb.RowError{Err: err}
	}
	return c.writePipeline(ctx, rows[:len(rows)/2])
}

func (c *conn) exec(ctx context.Context, rows []sqldb.Row) error {
	if c.many {
		return c.execMany(ctx, rows)
	}
	b := &pgconn.Batch{}
	for i := range rows {
		c.text, c.params = c.text[:0], c.params[:0]
		for _, v := range rows[i].Vals {
			n := len(c.text)
			var ok bool
			if c.text, ok = v.AppendText(c.text); ok {
				c.params = append(c.params, c.text[n:len(c.text):len(c.text)])
			} else {
				c.params = append(c.params, nil)
			}
		}
		// Bind copies the parameters into the batch at once.
		b.ExecPrepared(stmtName, c.params, nil, nil)
	}
	_, err := c.c.PgConn().ExecBatch(ctx, b).ReadAll()
	return err
}

// rowClass reports whether err is the database refusing values: a data
// exception (22: out of range, too long, bad syntax for the type), an
// integrity constraint (23), or an exception raised by a function (P0).
func rowClass(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || len(pe.Code) < 2 {
		return false
	}
	switch pe.Code[:2] {
	case "22", "23", "P0":
		return true
	}
	return false
}

func (c *conn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.c.Close(ctx)
}
