package mysql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/ulogd-go/ulogd/internal/sqldb"
)

// Params say where the database is, with ulogd2's meaning: host empty or
// "localhost" is the unix socket ($MYSQL_UNIX_PORT, else DefaultSocket),
// as libmariadb does; any other host is TCP to port ($MYSQL_TCP_PORT, else
// 3306, when port is 0).
type Params struct {
	Host, User, Pass, DB string
	Port                 int
	// ConnectTimeout bounds one connection attempt (0: 10 s).
	ConnectTimeout time.Duration
	// Getenv reads MYSQL_UNIX_PORT and MYSQL_TCP_PORT (os.Getenv when nil).
	Getenv func(string) string
}

// DefaultSocket is libmariadb's compiled-in socket on Debian.
const DefaultSocket = "/run/mysqld/mysqld.sock"

const defaultConnectTimeout = 10 * time.Second

// Address returns the network ("unix" or "tcp") and address Params
// connect to.
func (p Params) Address() (network, addr string) {
	getenv := p.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if p.Host == "" || p.Host == "localhost" {
		if s := getenv("MYSQL_UNIX_PORT"); s != "" {
			return "unix", s
		}
		return "unix", DefaultSocket
	}
	port := p.Port
	if port <= 0 {
		if n, err := strconv.Atoi(getenv("MYSQL_TCP_PORT")); err == nil && n > 0 {
			port = n
		} else {
			port = 3306
		}
	}
	return "tcp", net.JoinHostPort(p.Host, strconv.Itoa(port))
}

// Config returns the go-sql-driver configuration.
func (p Params) Config() *gomysql.Config {
	c := gomysql.NewConfig()
	c.Net, c.Addr = p.Address()
	c.User, c.Passwd, c.DBName = p.User, p.Pass, p.DB
	c.Timeout = p.ConnectTimeout
	if c.Timeout <= 0 {
		c.Timeout = defaultConnectTimeout
	}
	// CALL batches are several statements in one round trip.
	c.MultiStatements = true
	// Errors are returned and reported by the sink, not printed.
	c.Logger = &gomysql.NopLogger{}
	return c
}

// NewDriver returns the sqldb driver writing rows with MariaDB/MySQL
// statements: multi-row INSERT, or several SELECT f(...) / CALL p(...) in
// one transaction. lower folds column names to lower case (DBI).
func NewDriver(p Params, table, procedure string, lower bool) (sqldb.Driver, error) {
	conn, err := gomysql.NewConnector(p.Config())
	if err != nil {
		return nil, err
	}
	network, addr := p.Address()
	return &Driver{
		connector: conn,
		peer:      fmt.Sprintf("mysql:%s:%s/%s", network, addr, p.DB),
		table:     table,
		procedure: procedure,
		lower:     lower,
	}, nil
}

// Driver is the MariaDB/MySQL sqldb.Driver.
type Driver struct {
	connector driver.Connector
	peer      string
	table     string
	procedure string
	lower     bool
}

// Peer names the database in log lines.
func (d *Driver) Peer() string { return d.peer }

// Dial opens one connection.
func (d *Driver) Dial(ctx context.Context) (sqldb.Conn, error) {
	c, err := d.connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &Conn{d: d, c: c}, nil
}

// Conn is one connection to the server.
type Conn struct {
	d   *Driver
	c   driver.Conn
	st  *Statement
	buf []byte
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Columns returns the columns of the table or view, as mysql_list_fields
// does (the result columns of a query that returns no row).
func (c *Conn) Columns(ctx context.Context) ([]string, error) {
	q, ok := c.c.(driver.QueryerContext)
	if !ok {
		return nil, errors.New("mysql: driver cannot query")
	}
	// Column discovery only: the table name is the user's, quoted.
	rows, err := q.QueryContext(ctx, "SELECT * FROM "+QuoteIdent(c.d.table)+" LIMIT 0", nil)
	if err != nil {
		var me *gomysql.MySQLError
		if errors.As(err, &me) && me.Number == 1146 { // ER_NO_SUCH_TABLE
			return nil, nil // sqldb reports the table missing
		}
		return nil, fmt.Errorf("columns of `%s': %w", c.d.table, err)
	}
	cols := rows.Columns()
	if err := rows.Close(); err != nil {
		return nil, err
	}
	out := make([]string, len(cols))
	for i, n := range cols {
		if c.d.lower {
			n = strings.ToLower(n)
		}
		out[i] = n
	}
	return out, nil
}

// Prepare builds the statement for the written columns, with the string
// escaping the server's sql_mode asks for.
func (c *Conn) Prepare(ctx context.Context, cols []string) error {
	c.st = NewStatement(c.d.procedure, c.d.table, cols)
	mode, err := c.queryString(ctx, "SELECT @@SESSION.sql_mode")
	if err != nil {
		return err
	}
	c.st.SetNoBackslashEscapes(strings.Contains(mode, "NO_BACKSLASH_ESCAPES"))
	return nil
}

// queryString returns the first column of the first row of a query.
func (c *Conn) queryString(ctx context.Context, query string) (string, error) {
	q, ok := c.c.(driver.QueryerContext)
	if !ok {
		return "", errors.New("mysql: driver cannot query")
	}
	rows, err := q.QueryContext(ctx, query, nil)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	if len(dest) == 0 {
		return "", fmt.Errorf("%s: no column", query)
	}
	if err := rows.Next(dest); err != nil {
		return "", fmt.Errorf("%s: %w", query, err)
	}
	switch v := dest[0].(type) {
	case []byte:
		return string(v), nil
	case string:
		return v, nil
	}
	return fmt.Sprint(dest[0]), nil
}

// Limits of one statement: well under MariaDB's default
// max_allowed_packet (16 MiB) and a transaction small enough to retry.
const (
	maxStatementBytes = 1 << 20
	maxStatementRows  = 1000
)

// Write writes rows in statements of up to maxStatementRows rows. A
// statement refused for a row's values is retried row by row to find that
// row, which is returned as a *sqldb.RowError after the rows before it are
// stored.
func (c *Conn) Write(ctx context.Context, rows []sqldb.Row) (int, error) {
	if c.st == nil {
		return 0, errors.New("mysql: Write before Prepare")
	}
	stored := 0
	for stored < len(rows) {
		n := 0
		c.buf, n = c.st.Append(c.buf[:0], rows[stored:], maxStatementBytes, maxStatementRows)
		err := c.exec(ctx, c.buf, c.st.Transaction(n))
		if err == nil {
			stored += n
			continue
		}
		if Classify(err) != RowFault {
			return stored, err
		}
		if n == 1 {
			return stored, &sqldb.RowError{Err: err}
		}
		// Find the refused row: the statement wrote nothing (one
		// InnoDB statement, or a rolled-back transaction).
		for range n {
			c.buf, _ = c.st.Append(c.buf[:0], rows[stored:stored+1], maxStatementBytes, 1)
			if err := c.exec(ctx, c.buf, false); err != nil {
				if Classify(err) == RowFault {
					return stored, &sqldb.RowError{Err: err}
				}
				return stored, err
			}
			stored++
		}
	}
	return stored, nil
}

// exec runs one statement text, in a transaction when tx (several CALL
// statements or function calls: all or nothing).
func (c *Conn) exec(ctx context.Context, stmt []byte, tx bool) error {
	e, ok := c.c.(driver.ExecerContext)
	if !ok {
		return errors.New("mysql: driver cannot exec")
	}
	if !tx {
		_, err := e.ExecContext(ctx, string(stmt), nil)
		return err
	}
	if _, err := e.ExecContext(ctx, "START TRANSACTION", nil); err != nil {
		return err
	}
	if _, err := e.ExecContext(ctx, string(stmt), nil); err != nil {
		if Classify(err) == RowFault {
			// The connection is fine: undo the calls before the
			// refused one. If even that fails, the connection is
			// unusable.
			if _, rerr := e.ExecContext(ctx, "ROLLBACK", nil); rerr != nil {
				return rerr
			}
		}
		return err
	}
	_, err := e.ExecContext(ctx, "COMMIT", nil)
	return err
}

// Fault is what an error says about its cause.
type Fault uint8

// Faults.
const (
	// ConnFault: the connection or the server (gone, restarting, out of
	// resources, denied, missing table...): write the rows again later.
	ConnFault Fault = iota
	// RowFault: the row's own values were refused (strict mode, a
	// constraint): skip that row.
	RowFault
)

// rowErrors are server errors about a row's values whose SQLSTATE is not
// of class 22 (data exception) or 23 (integrity constraint).
var rowErrors = map[uint16]bool{
	1265: true, // data truncated for column
	1292: true, // truncated incorrect value
	1366: true, // incorrect value for column (strict mode)
	1411: true, // incorrect value for function
	1644: true, // SIGNAL in a procedure or trigger (user-defined refusal)
}

// Classify says whether err is about one row or about the connection.
func Classify(err error) Fault {
	var me *gomysql.MySQLError
	if !errors.As(err, &me) {
		return ConnFault // io, net, driver.ErrBadConn, context
	}
	class := string(me.SQLState[:2])
	if class == "22" || class == "23" || rowErrors[me.Number] {
		return RowFault
	}
	return ConnFault
}

// QuoteIdent quotes a table name for MySQL: each dot-separated part in
// backquotes (db.table stays two parts).
func QuoteIdent(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = "`" + strings.ReplaceAll(p, "`", "``") + "`"
	}
	return strings.Join(parts, ".")
}
