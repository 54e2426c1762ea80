package sqldb

import (
	"fmt"
	"strings"

	"github.com/ulogd-go/ulogd/internal/keys"
)

// IDColumn says which first column is an auto-id left out of the
// statement (ulogd2 marks it INACTIVE).
type IDColumn uint8

// ID column rules.
const (
	NoID         IDColumn = iota // every column is written (SQLITE3)
	IDUnderscore                 // the first column when its name starts with '_' (PGSQL)
	IDFirst                      // always the first column (MYSQL, DBI)
)

// KeyName returns the key a column reads: its name with every '_' made
// '.' ("ip_saddr_str" → "ip.saddr.str").
func KeyName(column string) string { return strings.ReplaceAll(column, "_", ".") }

// Column is one column of the table with the key bound to it.
type Column struct {
	Name string
	Key  string // KeyName(Name)
	// ID marks the auto-id column: not written, no key.
	ID bool
	// Index is the key's index in the upstream key list the binding was
	// made against; -1 for the id column.
	Index int
}

// Binding is a table's columns bound to the stack's keys.
type Binding struct {
	Columns []Column
}

// Written returns the names of the columns that are written, in order.
func (b *Binding) Written() []string {
	var out []string
	for _, c := range b.Columns {
		if !c.ID {
			out = append(out, c.Name)
		}
	}
	return out
}

// Indexes returns the upstream indexes of the written columns, in order.
func (b *Binding) Indexes() []int {
	var out []int
	for _, c := range b.Columns {
		if !c.ID {
			out = append(out, c.Index)
		}
	}
	return out
}

// ErrNoKey is the error of a column that no key of the stack provides.
type ErrNoKey struct {
	Table, Column, Key string
	Stack              string // the stack line's position, when known
}

func (e *ErrNoKey) Error() string {
	s := fmt.Sprintf("column `%s' of table `%s': cannot find key `%s' in stack", e.Column, e.Table, e.Key)
	if e.Stack != "" {
		s += " (" + e.Stack + ")"
	}
	return s
}

// ErrNoTable is the error of a table the database does not know (no
// columns found).
type ErrNoTable struct {
	Table string
	Where string // the database, as Driver.Peer names it, when known
}

func (e *ErrNoTable) Error() string {
	s := fmt.Sprintf("table `%s' is missing or has no columns", e.Table)
	if e.Where != "" {
		s += " in " + e.Where
	}
	return s
}

// Bind maps the table's columns onto the upstream keys by name (KeyName);
// the first column is the id column as rule says. A column whose key is
// missing is an *ErrNoKey (the first one found); no columns at all is an
// *ErrNoTable.
func Bind(table string, cols []string, upstream []keys.Bound, rule IDColumn, stack string) (*Binding, error) {
	if len(cols) == 0 {
		return nil, &ErrNoTable{Table: table}
	}
	idx := make(map[string]int, len(upstream))
	for i, u := range upstream {
		if _, dup := idx[u.Name]; !dup {
			idx[u.Name] = i
		}
	}
	b := &Binding{Columns: make([]Column, len(cols))}
	for i, name := range cols {
		c := Column{Name: name, Key: KeyName(name), Index: -1}
		if i == 0 && (rule == IDFirst || rule == IDUnderscore && strings.HasPrefix(name, "_")) {
			c.ID = true
			b.Columns[i] = c
			continue
		}
		j, ok := idx[c.Key]
		if !ok {
			return nil, &ErrNoKey{Table: table, Column: name, Key: c.Key, Stack: stack}
		}
		c.Index = j
		b.Columns[i] = c
	}
	if len(b.Written()) == 0 {
		return nil, fmt.Errorf("table `%s' has no column to write", table)
	}
	return b, nil
}

// Explain returns one line per column: the column and the key bound to it
// (with its type and producer), for --explain.
func (b *Binding) Explain(upstream []keys.Bound) []string {
	out := make([]string, 0, len(b.Columns))
	for _, c := range b.Columns {
		if c.ID {
			out = append(out, fmt.Sprintf("column %-24s (id column, not written)", c.Name))
			continue
		}
		u := upstream[c.Index]
		out = append(out, fmt.Sprintf("column %-24s <- %-24s %-16s %s [slot %d]", c.Name, u.Name, u.Type, u.Instance, u.Slot))
	}
	return out
}
