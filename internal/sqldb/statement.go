package sqldb

import (
	"strings"
)

// Style is the form of statement a procedure option asks for.
type Style uint8

// Statement styles, from the procedure option.
const (
	// Insert: the procedure is exactly "INSERT" (any case): insert into
	// [schema.]table (cols) values (...).
	Insert Style = iota + 1
	// InsertInto: the procedure starts with "INSERT " ("INSERT INTO
	// ulog2"): procedure (cols) values (...).
	InsertInto
	// Call: the procedure starts with "CALL": CALL name(...).
	Call
	// Select: anything else, a stored function: SELECT name(...).
	Select
)

func (s Style) String() string {
	switch s {
	case Insert:
		return "insert"
	case InsertInto:
		return "insert into"
	case Call:
		return "call"
	case Select:
		return "select"
	}
	return "unknown"
}

// ParseProcedure returns the style of procedure p and the name it calls
// (for Call, without the word CALL: see docs/compat.md).
func ParseProcedure(p string) (Style, string) {
	p = strings.TrimSpace(p)
	u := strings.ToUpper(p)
	switch {
	case u == "INSERT":
		return Insert, ""
	case strings.HasPrefix(u, "INSERT "):
		return InsertInto, p
	case strings.HasPrefix(u, "CALL"):
		return Call, strings.TrimSpace(p[len("CALL"):])
	}
	return Select, p
}

// Statement builds the SQL text of one sink: a head, the values of each
// row between parentheses, and, for the insert styles, several rows in one
// statement.
type Statement struct {
	Style Style
	head  string // text before the first row's "("
}

// NewStatement returns the statement for procedure p writing columns cols
// into table (qualified as schema.table for a plain INSERT when schema is
// not empty).
func NewStatement(procedure, schema, table string, cols []string) *Statement {
	style, name := ParseProcedure(procedure)
	var b strings.Builder
	switch style {
	case Insert, InsertInto:
		if style == Insert {
			b.WriteString("insert into ")
			if schema != "" {
				b.WriteString(schema)
				b.WriteByte('.')
			}
			b.WriteString(table)
		} else {
			b.WriteString(name)
		}
		b.WriteString(" (")
		b.WriteString(strings.Join(cols, ","))
		b.WriteString(") values ")
	case Call:
		b.WriteString("CALL ")
		b.WriteString(name)
	case Select:
		b.WriteString("SELECT ")
		b.WriteString(name)
	}
	return &Statement{Style: style, head: b.String()}
}

// MultiRow reports whether several rows go into one statement (the insert
// styles: values (...),(...)); otherwise each row is a statement of its own.
func (s *Statement) MultiRow() bool { return s.Style == Insert || s.Style == InsertInto }

// Head returns the text before the first row.
func (s *Statement) Head() string { return s.head }

// AppendOne appends the statement for one row whose rendered values
// (comma-separated, see Row.AppendSQL) are vals.
func (s *Statement) AppendOne(dst, vals []byte) []byte {
	dst = append(dst, s.head...)
	dst = append(dst, '(')
	dst = append(dst, vals...)
	return append(dst, ')')
}
