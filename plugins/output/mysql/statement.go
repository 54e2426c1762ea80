package mysql

import (
	"github.com/ulogd-go/ulogd/internal/sqldb"
)

// Statement is the SQL text of one sink for MariaDB/MySQL, built from
// the procedure option as ulogd2's db layer does (see sqldb.NewStatement),
// with several rows per round trip:
//
//	INSERT, INSERT INTO t:  insert into t (c1,c2) values (...),(...)
//	CALL p:                 CALL p(...);CALL p(...)          (one transaction)
//	a function f:           SELECT f(...),f(...)             (one transaction)
type Statement struct {
	st      *sqldb.Statement
	dialect sqldb.Dialect
}

// NewStatement returns the statement for procedure writing cols of table.
func NewStatement(procedure, table string, cols []string) *Statement {
	return &Statement{
		st:      sqldb.NewStatement(procedure, "", table, cols),
		dialect: Dialect(false),
	}
}

// Dialect is MySQL's spelling of literals: strings escaped as
// mysql_real_escape_string does (quotes doubled instead when the server
// runs with NO_BACKSLASH_ESCAPES), a 16-byte address as a 0x… binary
// literal, which a binary(16) column stores as it is.
func Dialect(noBackslashEscapes bool) sqldb.Dialect {
	d := sqldb.Dialect{AppendString: sqldb.AppendBackslashString, AppendIP6: sqldb.AppendHexIP6}
	if noBackslashEscapes {
		d.AppendString = sqldb.AppendStdString
	}
	return d
}

// SetNoBackslashEscapes switches string literals to quote doubling.
func (s *Statement) SetNoBackslashEscapes(on bool) { s.dialect = Dialect(on) }

// Transaction reports whether a statement of n rows must run in a
// transaction to be all or nothing (several calls; a multi-row INSERT is
// one statement, atomic by itself on InnoDB).
func (s *Statement) Transaction(n int) bool { return n > 1 && !s.st.MultiRow() }

// Append appends the statement for the first rows of rows to dst: at
// least one row, then more while the text stays within maxBytes and the
// rows within maxRows. It returns the text and the number of rows in it.
func (s *Statement) Append(dst []byte, rows []sqldb.Row, maxBytes, maxRows int) ([]byte, int) {
	start := len(dst)
	n := 0
	for n < len(rows) && n < maxRows {
		mark := len(dst)
		switch {
		case n == 0:
			dst = append(dst, s.st.Head()...)
		case s.st.MultiRow():
			dst = append(dst, ',')
		case s.st.Style == sqldb.Select:
			dst = append(dst, ',')
			dst = append(dst, s.st.Head()[len("SELECT "):]...)
		default: // CALL
			dst = append(dst, ';')
			dst = append(dst, s.st.Head()...)
		}
		dst = append(dst, '(')
		dst = rows[n].AppendSQL(dst, &s.dialect)
		dst = append(dst, ')')
		if n > 0 && len(dst)-start > maxBytes {
			return dst[:mark], n
		}
		n++
	}
	return dst, n
}
