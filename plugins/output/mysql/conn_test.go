package mysql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/sqldb"
	"github.com/ulogd-go/ulogd/internal/testdb"
)

// testSchema has a table and, writing into it, a stored function and a
// procedure, for the three statement styles.
const testSchema = `
CREATE TABLE t (_id bigint unsigned NOT NULL auto_increment PRIMARY KEY, a smallint, s varchar(4)) ENGINE=INNODB;
CREATE VIEW v AS SELECT _id, a, s FROM t;
DELIMITER $$
CREATE FUNCTION F(a smallint, s varchar(4)) RETURNS bigint unsigned
BEGIN
	INSERT INTO t (a, s) VALUES (a, s);
	RETURN LAST_INSERT_ID();
END
$$
CREATE PROCEDURE P(a smallint, s varchar(4))
BEGIN
	INSERT INTO t (a, s) VALUES (a, s);
END
$$
DELIMITER ;
`

func dial(t *testing.T, m *testdb.MariaDB, db, table, proc string) *Conn {
	t.Helper()
	d, err := NewDriver(Params{Host: "localhost", User: testdb.MariaDBUser, Pass: testdb.MariaDBPass, DB: db,
		Getenv: func(k string) string {
			if k == "MYSQL_UNIX_PORT" {
				return m.Socket
			}
			return ""
		}}, table, proc, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Peer(), m.Socket) {
		t.Errorf("Peer() = %q, want the socket named", d.Peer())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Dial(ctx)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*Conn)
}

// TestWriteStylesRefusedRow writes a batch with a row the server refuses
// in the middle (a value out of range for smallint, then a text too long
// for varchar(4)), through each statement style: the rows before it are
// stored, the refused row is a RowError, and the rest goes in the next
// call, in order.
func TestWriteStylesRefusedRow(t *testing.T) {
	m := server(t)
	for _, proc := range []string{"INSERT", "INSERT INTO t", "F", "CALL P"} {
		t.Run(proc, func(t *testing.T) {
			db := "s" + strings.NewReplacer(" ", "_").Replace(strings.ToLower(proc))
			m.CreateDatabase(t, db)
			m.Exec(t, db, testSchema)
			c := dial(t, m, db, "v", proc)
			ctx := context.Background()
			cols, err := c.Columns(ctx)
			if err != nil || strings.Join(cols, ",") != "_id,a,s" {
				t.Fatalf("Columns() = %q, %v", cols, err)
			}
			if err := c.Prepare(ctx, cols[1:]); err != nil {
				t.Fatal(err)
			}
			rows := []sqldb.Row{
				row(u16(1), str("a")), row(u16(2), str("it's")), row(null, str("c")),
				row(u16(40000), str("d")), // out of range for smallint
				row(u16(5), str("e")),
				row(u16(6), str("toolong")), // too long for varchar(4)
				row(u16(7), str("g")),
			}
			var stored []int
			var refused []string
			for off := 0; off < len(rows); {
				n, err := c.Write(ctx, rows[off:])
				stored = append(stored, n)
				off += n
				if err != nil {
					if !sqldb.IsRowError(err) {
						t.Fatalf("Write: %v (want a row error)", err)
					}
					refused = append(refused, err.Error())
					off++
				}
			}
			if fmt.Sprint(stored) != "[3 1 1]" || len(refused) != 2 ||
				!strings.Contains(refused[0], "Out of range") || !strings.Contains(refused[1], "too long") {
				t.Errorf("stored %v, refused %q", stored, refused)
			}
			got := m.Query(t, db, "SELECT a, s FROM t ORDER BY _id")
			if want := "[[1 a] [2 it's] [NULL c] [5 e] [7 g]]"; fmt.Sprint(got) != want {
				t.Errorf("rows %v, want %s", got, want)
			}
		})
	}
}

// TestServerGone: with the server stopped, Write fails with a connection
// fault (the rows are kept for the next connection) and Dial fails; after
// a restart a new connection writes.
func TestServerGone(t *testing.T) {
	m := server(t)
	m.CreateDatabase(t, "g")
	m.Exec(t, "g", testSchema)
	c := dial(t, m, "g", "t", "INSERT")
	ctx := context.Background()
	if err := c.Prepare(ctx, []string{"a", "s"}); err != nil {
		t.Fatal(err)
	}
	m.Stop(t)
	n, err := c.Write(ctx, []sqldb.Row{row(u16(1), str("a"))})
	if err == nil || n != 0 || Classify(err) != ConnFault || sqldb.IsRowError(err) {
		t.Fatalf("Write with the server stopped: %d, %v", n, err)
	}
	if _, err := c.d.Dial(ctx); err == nil {
		t.Fatal("Dial with the server stopped succeeded")
	}
	m.Start(t)
	c2, err := c.d.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Prepare(ctx, []string{"a", "s"}); err != nil {
		t.Fatal(err)
	}
	if n, err := c2.Write(ctx, []sqldb.Row{row(u16(1), str("a"))}); n != 1 || err != nil {
		t.Fatalf("Write after the restart: %d, %v", n, err)
	}
}

// TestMissingTableIsNotARowError: errors about the statement (no such
// table, no such function) keep the rows queued, they are no row's fault.
func TestMissingTableIsNotARowError(t *testing.T) {
	m := server(t)
	m.CreateDatabase(t, "x")
	c := dial(t, m, "x", "nope", "NOPE_FN")
	ctx := context.Background()
	if cols, err := c.Columns(ctx); cols != nil || err != nil {
		t.Errorf("Columns of a missing table: %q, %v (want none, for sqldb to report)", cols, err)
	}
	if err := c.Prepare(ctx, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Write(ctx, []sqldb.Row{row(u16(1)), row(u16(2))})
	if err == nil || Classify(err) != ConnFault || sqldb.IsRowError(err) {
		t.Errorf("Write to a missing function: %v", err)
	}
	if Classify(errors.New("EOF")) != ConnFault {
		t.Error("a non-server error is a row fault")
	}
}
