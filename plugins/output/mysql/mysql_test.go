package mysql

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sqldb"
	"github.com/ulogd-go/ulogd/internal/sqltest"
	"github.com/ulogd-go/ulogd/internal/testdb"
	_ "github.com/ulogd-go/ulogd/plugins/filter/ip2bin"
	_ "github.com/ulogd-go/ulogd/plugins/input/nfct"
)

const fullSchema = "/usr/share/doc/ulogd2/mysql-ulogd2.sql.gz"

func TestConfigErrors(t *testing.T) {
	up, _ := sqltest.Upstream(t, "NFCT")
	const ok = "db=d\nhost=localhost\nuser=u\npass=p\ntable=t\nprocedure=INSERT\n"
	for _, tc := range []struct{ conf, want string }{
		{strings.Replace(ok, "db=d\n", "", 1), "db"},
		{strings.Replace(ok, "host=localhost\n", "", 1), "host"},
		{strings.Replace(ok, "user=u\n", "", 1), "user"},
		{strings.Replace(ok, "pass=p\n", "", 1), "pass"},
		{strings.Replace(ok, "table=t\n", "", 1), "table"},
		{strings.Replace(ok, "procedure=INSERT\n", "", 1), "procedure"},
		{ok + "port=70000\n", "port"},
		{ok + "reconnect=-1\n", "reconnect"},
		{ok + "backlog_memcap=-5\n", "backlog_memcap"},
		{ok + "backlog_memcap=1000\nqueue_bytes=2000\n", "`backlog_memcap' and `queue_bytes' are both given"},
		{ok + "ring_buffer_size=10\nqueue_records=20\n", "`ring_buffer_size' and `queue_records' are both given"},
		{ok + "overflow=\"spool\"\n", "needs a spool_dir"},
		{ok + "overflow=\"sometimes\"\n", "overflow must be"},
	} {
		_, err := sqltest.New(t, "MYSQL", tc.conf, up)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error about %s", tc.conf, err, tc.want)
		}
	}
	if _, err := sqltest.New(t, "MYSQL", ok, up); err != nil {
		t.Errorf("a good config: %v", err)
	}
}

// section is a [db1] section reaching m through host=localhost.
func section(t *testing.T, m *testdb.MariaDB, db, table, proc string) string {
	t.Setenv("MYSQL_UNIX_PORT", m.Socket)
	return fmt.Sprintf("db=%s\nhost=localhost\nuser=%s\npass=%s\ntable=%s\nprocedure=%s\n",
		db, testdb.MariaDBUser, testdb.MariaDBPass, table, proc)
}

func waitSettled(t *testing.T, inst plugin.Instance, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		w, d := sqltest.Counters(inst)
		if w+d >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, want %d rows settled", sqltest.String(inst), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMYSQL(t *testing.T) {
	m := server(t)
	m.CreateDatabase(t, "full")
	m.LoadSchema(t, "full", fullSchema)
	m.CreateDatabase(t, "small")
	m.Exec(t, "small", "CREATE TABLE flows (_id bigint unsigned NOT NULL auto_increment PRIMARY KEY, ct_mark smallint, orig_l4_dport int, orig_ip_saddr binary(16))")
	up, rec := sqltest.Upstream(t, "NFCT", "IP2BIN")

	// INSERT_CT of the shipped schema, through the conntrack view, IPv4
	// and IPv6: the same rows as the reference writes (ct.id above 2^31
	// is no column of the schema).
	t.Run("InsertCT", func(t *testing.T) {
		inst, err := sqltest.New(t, "MYSQL", section(t, m, "full", "conntrack", "INSERT_CT"), up)
		if err != nil {
			t.Fatal(err)
		}
		sqltest.Start(t, inst)
		for i := range 10 {
			sqltest.Flow(t, up, rec, i, i >= 5)
			// IP2BIN's text, as it renders the flow's addresses.
			bin := map[bool]string{false: "0x00000000000000000000ffff0a630001", true: "0xfd670000000000000000000000000001"}[i >= 5]
			sqltest.Set(t, up, rec, "orig.ip.saddr.bin", bin)
			sqltest.Set(t, up, rec, "reply.ip.daddr.bin", bin)
			inst.(plugin.Interpreter).Interp(rec)
		}
		waitSettled(t, inst, 10)
		if w, d := sqltest.Counters(inst); w != 10 || d != 0 {
			t.Fatal(sqltest.String(inst))
		}
		got := m.Query(t, "full", "SELECT oob_family, HEX(orig_ip_saddr), HEX(reply_ip_daddr), orig_l4_sport, orig_bytes, ct_mark, flow_end_usec FROM ulog2_ct WHERE ct_mark IN (0, 9) ORDER BY ct_mark")
		want := "[[2 00000000000000000000FFFF0A630001 00000000000000000000FFFF0A630001 48142 274 0 482190] " +
			"[10 FD670000000000000000000000000001 FD670000000000000000000000000001 48142 274 9 482190]]"
		if fmt.Sprint(got) != want {
			t.Errorf("rows %v\nwant %s", got, want)
		}
	})

	// A value out of range for its column is refused; the other rows of
	// the batch are written, the refused ones counted as dropped.
	t.Run("RefusedRows", func(t *testing.T) {
		inst, err := sqltest.New(t, "MYSQL", section(t, m, "small", "flows", "INSERT"), up)
		if err != nil {
			t.Fatal(err)
		}
		sqltest.Start(t, inst)
		for i := range 100 {
			sqltest.Flow(t, up, rec, i*1000, false) // ct.mark ≥ 32768 does not fit
			inst.(plugin.Interpreter).Interp(rec)
		}
		waitSettled(t, inst, 100)
		if w, d := sqltest.Counters(inst); w != 33 || d != 67 || inst.(interface{ Refused() uint64 }).Refused() != 67 {
			t.Errorf("%s, want 33 written and 67 refused", sqltest.String(inst))
		}
		if got := m.Query(t, "small", "SELECT count(*), max(ct_mark) FROM flows"); fmt.Sprint(got) != "[[33 32000]]" {
			t.Errorf("rows: %v", got)
		}
	})

	// A column no key feeds: Start fails naming the column and the stack.
	t.Run("ColumnWithoutKey", func(t *testing.T) {
		ctOnly, _ := sqltest.Upstream(t, "NFCT")
		inst, err := sqltest.New(t, "MYSQL", section(t, m, "full", "conntrack", "INSERT_CT"), ctOnly)
		if err != nil {
			t.Fatal(err)
		}
		err = inst.Start(context.Background())
		var nk *sqldb.ErrNoKey
		if !errors.As(err, &nk) || nk.Column != "orig_ip_saddr_bin" || !strings.Contains(err.Error(), "test.conf:1") {
			t.Errorf("Start: %v, want the column orig_ip_saddr_bin and the stack named", err)
		}
		if err == nil {
			inst.Stop(context.Background())
		}
	})

	// A missing table is Start's error too, naming the database.
	t.Run("MissingTable", func(t *testing.T) {
		inst, err := sqltest.New(t, "MYSQL", section(t, m, "full", "nope", "INSERT"), up)
		if err != nil {
			t.Fatal(err)
		}
		err = inst.Start(context.Background())
		if err == nil || !strings.Contains(err.Error(), "nope") || !strings.Contains(err.Error(), m.Socket) {
			t.Errorf("Start: %v", err)
		}
		if err == nil {
			inst.Stop(context.Background())
		}
	})

	// The server down at start: the sink starts, queues, and writes once
	// the server is back.
	t.Run("DownAtStart", func(t *testing.T) {
		sec := section(t, m, "full", "conntrack", "INSERT_CT") + "reconnect=1\n"
		m.Stop(t)
		inst, err := sqltest.New(t, "MYSQL", sec, up)
		if err != nil {
			t.Fatal(err)
		}
		sqltest.Start(t, inst)
		for i := range 5 {
			sqltest.Flow(t, up, rec, 100+i, false)
			inst.(plugin.Interpreter).Interp(rec)
		}
		m.Start(t)
		waitSettled(t, inst, 5)
		if w, d := sqltest.Counters(inst); w != 5 || d != 0 {
			t.Error(sqltest.String(inst))
		}
		if got := m.Query(t, "full", "SELECT count(*) FROM ulog2_ct WHERE ct_mark BETWEEN 100 AND 104"); got[0][0] != "5" {
			t.Errorf("rows after the restart: %v", got)
		}
	})
}
