package dbi

import (
	"context"
	"database/sql"
	"strings"

	"github.com/ulogd-go/ulogd/internal/sqldb"
	"github.com/ulogd-go/ulogd/plugins/output/sqlite3"
)

// sqliteDriver writes rows into an SQLite file with the statement text
// ulogd2's db layer builds (libdbi's sqlite3 driver runs SQL text), one
// transaction per batch.
type sqliteDriver struct {
	path, table, procedure string
}

func newSQLiteDriver(path, table, procedure string) *sqliteDriver {
	return &sqliteDriver{path: path, table: table, procedure: procedure}
}

func (d *sqliteDriver) Peer() string { return "sqlite3:" + d.path }

// Dial opens the file (created if missing) with a busy timeout and the
// WAL journal, as SQLITE3 does.
func (d *sqliteDriver) Dial(ctx context.Context) (sqldb.Conn, error) {
	return d.open(ctx, "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
}

// DialReadOnly opens the file for --explain, creating nothing.
func (d *sqliteDriver) DialReadOnly(ctx context.Context) (sqldb.Conn, error) {
	return d.open(ctx, "?mode=ro&_pragma=busy_timeout(5000)")
}

func (d *sqliteDriver) open(ctx context.Context, params string) (sqldb.Conn, error) {
	db, err := sqlite3.Open(ctx, d.path, params)
	if err != nil {
		return nil, err
	}
	return &sqliteConn{d: d, db: db}, nil
}

type sqliteConn struct {
	d         *sqliteDriver
	db        *sql.DB
	st        *sqldb.Statement
	buf, vals []byte
}

// sqliteDialect: standard string literals, an IPv6 address as a blob.
var sqliteDialect = sqldb.Dialect{AppendString: sqldb.AppendStdString, AppendIP6: appendBlob}

func appendBlob(dst, b []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, 'X', '\'')
	for _, c := range b {
		dst = append(dst, hex[c>>4], hex[c&15])
	}
	return append(dst, '\'')
}

// Columns are the result columns of "SELECT * FROM table", lower-cased
// as ulogd2's DBI does.
func (c *sqliteConn) Columns(ctx context.Context) ([]string, error) {
	rows, err := c.db.QueryContext(ctx, "SELECT * FROM "+c.d.table+" LIMIT 0")
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil, nil // sqldb reports the table missing
		}
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	for i := range cols {
		cols[i] = strings.ToLower(cols[i])
	}
	return cols, err
}

func (c *sqliteConn) Prepare(_ context.Context, cols []string) error {
	c.st = sqldb.NewStatement(c.d.procedure, "", c.d.table, cols)
	return nil
}

// Write runs one statement per row in one transaction (sqlite3.WriteTx).
func (c *sqliteConn) Write(ctx context.Context, rows []sqldb.Row) (int, error) {
	return sqlite3.WriteTx(ctx, c.db, len(rows), func(tx *sql.Tx, i int) error {
		c.vals = rows[i].AppendSQL(c.vals[:0], &sqliteDialect)
		c.buf = c.st.AppendOne(c.buf[:0], c.vals)
		_, err := tx.ExecContext(ctx, string(c.buf))
		return err
	})
}

func (c *sqliteConn) Close() error { return c.db.Close() }
