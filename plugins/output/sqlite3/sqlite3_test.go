package sqlite3

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sqldb"
	"github.com/ulogd-go/ulogd/internal/sqltest"
	_ "github.com/ulogd-go/ulogd/plugins/input/nfct"
	_ "github.com/ulogd-go/ulogd/plugins/input/nflog"
)

const shippedTable = "/usr/share/doc/ulogd2/sqlite3.table"

// newDB creates a database file with the given schema and returns its path
// and a handle for checks.
func newDB(t *testing.T, schema string) (string, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ulogd.sqlite3db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(schema); err != nil {
		t.Fatal(err)
	}
	return path, db
}

func shipped(t *testing.T) string {
	b, err := os.ReadFile(shippedTable)
	if err != nil {
		t.Skipf("ulogd2-sqlite3 not installed: %v", err)
	}
	return string(b)
}

func newSink(t *testing.T, conf string, up []keys.Bound) plugin.Instance {
	t.Helper()
	inst, err := sqltest.New(t, "SQLITE3", conf, up)
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func query(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var f []string
		for _, v := range vals {
			if v == nil {
				f = append(f, "")
			} else {
				f = append(f, fmt.Sprint(v))
			}
		}
		out = append(out, strings.Join(f, "|"))
	}
	return strings.Join(out, "\n")
}

// TestShippedTableRows writes flows into ulog_ct of the shipped
// sqlite3.table and checks the rows the reference writes for the same
// flow (its observed row), with our choices for IPv6 and ct.id.
func TestShippedTableRows(t *testing.T) {
	path, db := newDB(t, shipped(t))
	up, r := sqltest.Upstream(t, "NFCT")
	inst := newSink(t, fmt.Sprintf("db=%q\ntable=ulog_ct\n", path), up)
	sqltest.Start(t, inst)
	sqltest.Flow(t, up, r, 0, false)
	inst.(plugin.Interpreter).Interp(r)
	sqltest.Flow(t, up, r, 1, true)
	inst.(plugin.Interpreter).Interp(r)
	if err := inst.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := query(t, db, "select * from ulog_ct")
	want := "1795630392|57479|1795630411|482190|16802570|33579786|48142|5001|6|||274|5|164|3|0\n" +
		"1795630392|57479|1795630411|482190|||48142|5001|6|||274|5|164|3|1"
	if got != want {
		t.Errorf("rows:\n%s\nwant:\n%s", got, want)
	}
	var mode string
	if err := db.QueryRow("pragma journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal mode %q (%v), want wal", mode, err)
	}
}

func TestUnsignedStaysPositive(t *testing.T) {
	path, db := newDB(t, "create table t (ct_id integer, ct_mark integer)")
	up, r := sqltest.Upstream(t, "NFCT")
	inst := newSink(t, fmt.Sprintf("db=%q\ntable=t\n", path), up)
	sqltest.Start(t, inst)
	sqltest.Flow(t, up, r, 7, false)
	inst.(plugin.Interpreter).Interp(r)
	inst.Stop(context.Background())
	if got := query(t, db, "select * from t"); got != "3000000007|7" {
		t.Errorf("got %s", got)
	}
}

func TestPacketTable(t *testing.T) {
	path, db := newDB(t, shipped(t))
	up, r := sqltest.Upstream(t, "NFLOG")
	inst := newSink(t, fmt.Sprintf("db=%q\ntable=ulog_pkt\n", path), up)
	sqltest.Start(t, inst)
	set := func(k string, v any) { sqltest.Set(t, up, r, k, v) }
	set("raw.pktlen", 84)
	set("raw.pktcount", 1)
	set("oob.prefix", "IN-LOG 'x'")
	set("oob.time.sec", 1795630392)
	set("oob.time.usec", 12)
	set("oob.mark", 0)
	set("oob.hook", 1)
	inst.(plugin.Interpreter).Interp(r)
	inst.Stop(context.Background())
	if got := query(t, db, "select * from ulog_pkt"); got != "84|1|IN-LOG 'x'|1795630392|12|0|1||" {
		t.Errorf("got %s", got)
	}
}

func TestStartErrors(t *testing.T) {
	up, _ := sqltest.Upstream(t, "NFCT")
	path, _ := newDB(t, "create table t (ct_mark integer, no_such_key integer)")
	inst := newSink(t, fmt.Sprintf("db=%q\ntable=t\n", path), up)
	err := inst.Start(context.Background())
	var nk *sqldb.ErrNoKey
	if !errors.As(err, &nk) || nk.Column != "no_such_key" || !strings.Contains(err.Error(), "test.conf:1") {
		t.Errorf("Start: %v", err)
	}
	inst = newSink(t, fmt.Sprintf("db=%q\ntable=missing\n", path), up)
	err = inst.Start(context.Background())
	var nt *sqldb.ErrNoTable
	if !errors.As(err, &nt) {
		t.Errorf("Start: %v, want the table missing", err)
	}
	for _, conf := range []string{"table=t\n", "db=x\n"} {
		if _, err := sqltest.New(t, "SQLITE3", conf, up); err == nil {
			t.Errorf("%q accepted", conf)
		}
	}
}

// TestRefusedRowMidBatch: a row the database refuses (a constraint) is
// counted and skipped, the rows around it are written.
func TestRefusedRowMidBatch(t *testing.T) {
	path, db := newDB(t, "create table t (ct_mark integer check (ct_mark <> 13), orig_l4_dport integer)")
	up, r := sqltest.Upstream(t, "NFCT")
	inst := newSink(t, fmt.Sprintf("db=%q\ntable=t\n", path), up)
	sqltest.Start(t, inst)
	for i := range 100 {
		sqltest.Flow(t, up, r, i, false)
		inst.(plugin.Interpreter).Interp(r)
	}
	if err := inst.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w, d := sqltest.Counters(inst); w != 99 || d != 1 {
		t.Errorf("%s, want 99 written and 1 dropped", sqltest.String(inst))
	}
	if got := query(t, db, "select count(*), sum(ct_mark) from t"); got != fmt.Sprintf("99|%d", 99*100/2-13) {
		t.Errorf("got %s", got)
	}
}

// TestExplain shows each column with its key.
func TestExplain(t *testing.T) {
	path, _ := newDB(t, shipped(t))
	up, _ := sqltest.Upstream(t, "NFCT")
	inst := newSink(t, fmt.Sprintf("db=%q\ntable=ulog_ct\n", path), up)
	got := strings.Join(inst.(plugin.Explainer).Explain(context.Background()), "\n")
	if !strings.Contains(got, "orig_ip_saddr            <- orig.ip.saddr            IP addr          NFCT") {
		t.Errorf("explain:\n%s", got)
	}
	// --explain creates no file.
	missing := filepath.Join(t.TempDir(), "missing.db")
	inst = newSink(t, fmt.Sprintf("db=%q\ntable=ulog_ct\n", missing), up)
	got = strings.Join(inst.(plugin.Explainer).Explain(context.Background()), "\n")
	if _, err := os.Stat(missing); err == nil || !strings.Contains(got, "not known") {
		t.Errorf("explain of a missing file: %v, %s", err, got)
	}
}
