package mysql

import (
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/sqldb"
)

func row(vals ...sqldb.Value) sqldb.Row { return sqldb.Row{Vals: vals} }

func u16(n uint64) sqldb.Value { return sqldb.Value{Valid: true, Type: keys.Uint16, N: n} }
func str(s string) sqldb.Value { return sqldb.Value{Valid: true, Type: keys.String, B: []byte(s)} }

var null = sqldb.Value{Type: keys.Uint32}

func TestStatementText(t *testing.T) {
	rows := []sqldb.Row{row(u16(1), str("a")), row(null, str("it's\n\\")), row(u16(65535), sqldb.Value{Type: keys.String})}
	cols := []string{"udp_sport", "oob_prefix"}
	for _, c := range []struct {
		proc, want string
		tx         bool
	}{
		{"INSERT", `insert into ulog2 (udp_sport,oob_prefix) values (1,'a'),(NULL,'it\'s\n\\'),(65535,NULL)`, false},
		{"insert", `insert into ulog2 (udp_sport,oob_prefix) values (1,'a'),(NULL,'it\'s\n\\'),(65535,NULL)`, false},
		{"INSERT INTO other", `INSERT INTO other (udp_sport,oob_prefix) values (1,'a'),(NULL,'it\'s\n\\'),(65535,NULL)`, false},
		{"INSERT_PACKET_FULL", `SELECT INSERT_PACKET_FULL(1,'a'),INSERT_PACKET_FULL(NULL,'it\'s\n\\'),INSERT_PACKET_FULL(65535,NULL)`, true},
		{"CALL ADD_ROW", `CALL ADD_ROW(1,'a');CALL ADD_ROW(NULL,'it\'s\n\\');CALL ADD_ROW(65535,NULL)`, true},
	} {
		st := NewStatement(c.proc, "ulog2", cols)
		got, n := st.Append(nil, rows, 1<<20, 100)
		if string(got) != c.want || n != 3 {
			t.Errorf("%s:\n got %s (%d rows)\nwant %s", c.proc, got, n, c.want)
		}
		if st.Transaction(3) != c.tx || st.Transaction(1) {
			t.Errorf("%s: Transaction(3) = %v, want %v; Transaction(1) = %v", c.proc, st.Transaction(3), c.tx, st.Transaction(1))
		}
	}
}

func TestStatementLimits(t *testing.T) {
	st := NewStatement("INSERT", "t", []string{"a"})
	var rows []sqldb.Row
	for range 10 {
		rows = append(rows, row(u16(12345)))
	}
	head := len("insert into t (a) values ")
	// Each row is "(12345)" (7 bytes) plus a comma after the first.
	for _, c := range []struct{ maxBytes, maxRows, want int }{
		{1 << 20, 100, 10},
		{1 << 20, 4, 4},
		{head + 7 + 8*2, 100, 3},
		{head + 7 + 8*2 - 1, 100, 2},
		{1, 100, 1}, // one row always goes, whatever its size
	} {
		got, n := st.Append([]byte("junk"), rows, c.maxBytes, c.maxRows)
		if n != c.want {
			t.Errorf("maxBytes %d maxRows %d: %d rows, want %d", c.maxBytes, c.maxRows, n, c.want)
		}
		if !strings.HasPrefix(string(got), "junkinsert into t (a) values (12345)") || strings.Count(string(got), "(12345)") != n {
			t.Errorf("maxBytes %d maxRows %d: %s", c.maxBytes, c.maxRows, got)
		}
	}
}

func TestStatementEscaping(t *testing.T) {
	in := "a'b\"c\\d\x00e\nf\rg\x1ah"
	st := NewStatement("INSERT", "t", []string{"s"})
	got, _ := st.Append(nil, []sqldb.Row{row(str(in))}, 1<<20, 1)
	if want := `insert into t (s) values ('a\'b\"c\\d\0e\nf\rg\Zh')`; string(got) != want {
		t.Errorf("backslash escapes:\n got %s\nwant %s", got, want)
	}
	st.SetNoBackslashEscapes(true)
	got, _ = st.Append(nil, []sqldb.Row{row(str(in))}, 1<<20, 1)
	if want := "insert into t (s) values ('a''b\"c\\d\x00e\nf\rg\x1ah')"; string(got) != want {
		t.Errorf("NO_BACKSLASH_ESCAPES:\n got %q\nwant %q", got, want)
	}
}

func TestAddress(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		p             Params
		network, addr string
	}{
		{Params{Host: "localhost", Port: 3307, Getenv: env(nil)}, "unix", DefaultSocket},
		{Params{Host: "", Getenv: env(nil)}, "unix", DefaultSocket},
		{Params{Host: "localhost", Getenv: env(map[string]string{"MYSQL_UNIX_PORT": "/tmp/s"})}, "unix", "/tmp/s"},
		{Params{Host: "127.0.0.1", Getenv: env(nil)}, "tcp", "127.0.0.1:3306"},
		{Params{Host: "db.example", Port: 3307, Getenv: env(map[string]string{"MYSQL_TCP_PORT": "4000"})}, "tcp", "db.example:3307"},
		{Params{Host: "::1", Getenv: env(map[string]string{"MYSQL_TCP_PORT": "4000"})}, "tcp", "[::1]:4000"},
	} {
		n, a := c.p.Address()
		if n != c.network || a != c.addr {
			t.Errorf("%+v: %s %s, want %s %s", c.p, n, a, c.network, c.addr)
		}
	}
}

func TestQuoteIdent(t *testing.T) {
	for in, want := range map[string]string{"ulog": "`ulog`", "db.ulog": "`db`.`ulog`", "a`b": "`a``b`"} {
		if got := QuoteIdent(in); got != want {
			t.Errorf("QuoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
}

// mysqlTuples reads a statement as MariaDB's lexer would (string
// literals in single quotes, with backslash escapes unless noBackslash,
// a doubled quote for a quote) and returns the decoded string literals and the number
// of top-level "(...)" groups after "values"; ok is false when a literal
// does not end.
func mysqlTuples(stmt []byte, noBackslash bool) (lits [][]byte, groups int, ok bool) {
	depth := 0
	for i := 0; i < len(stmt); i++ {
		switch c := stmt[i]; c {
		case '(':
			if depth == 0 {
				groups++
			}
			depth++
		case ')':
			depth--
		case '\'':
			var lit []byte
			for i++; ; i++ {
				if i >= len(stmt) {
					return nil, 0, false
				}
				c := stmt[i]
				if c == '\\' && !noBackslash && i+1 < len(stmt) {
					i++
					switch e := stmt[i]; e {
					case '0':
						lit = append(lit, 0)
					case 'n':
						lit = append(lit, '\n')
					case 'r':
						lit = append(lit, '\r')
					case 'Z':
						lit = append(lit, 0x1a)
					default:
						lit = append(lit, e)
					}
					continue
				}
				if c == '\'' {
					if i+1 < len(stmt) && stmt[i+1] == '\'' {
						lit = append(lit, '\'')
						i++
						continue
					}
					break
				}
				lit = append(lit, c)
			}
			lits = append(lits, lit)
		}
	}
	return lits, groups, depth == 0
}

// FuzzStatementLiterals: whatever the strings of a batch hold, the
// multi-row INSERT has one group per row and its literals decode to the
// strings, in both quoting modes of the server.
func FuzzStatementLiterals(f *testing.F) {
	f.Add([]byte("it's"), []byte(`a\'b"c`), uint16(80))
	f.Add([]byte("\\"), []byte("'),(1,'x"), uint16(0))
	f.Add([]byte("\x00\x1a\r\n"), []byte("''"), uint16(65535))
	f.Fuzz(func(t *testing.T, a, b []byte, port uint16) {
		rows := []sqldb.Row{row(u16(uint64(port)), str(string(a))), row(null, str(string(b)))}
		for _, noBackslash := range []bool{false, true} {
			st := NewStatement("INSERT", "ulog2", []string{"udp_sport", "oob_prefix"})
			st.SetNoBackslashEscapes(noBackslash)
			stmt, n := st.Append(nil, rows, 1<<20, 10)
			lits, groups, ok := mysqlTuples(stmt, noBackslash)
			if !ok || n != 2 || groups != 3 { // the column list, then a group per row
				t.Fatalf("noBackslash=%v: %q: ok=%v, %d rows, %d groups", noBackslash, stmt, ok, n, groups)
			}
			if len(lits) != 2 || string(lits[0]) != string(a) || string(lits[1]) != string(b) {
				t.Fatalf("noBackslash=%v: %q decodes to %q, want %q and %q", noBackslash, stmt, lits, a, b)
			}
		}
	})
}
