package pgsql

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sqldb"
	"github.com/ulogd-go/ulogd/internal/sqltest"
	"github.com/ulogd-go/ulogd/internal/testpg"
	_ "github.com/ulogd-go/ulogd/plugins/filter/base"
	_ "github.com/ulogd-go/ulogd/plugins/filter/hwhdr"
	_ "github.com/ulogd-go/ulogd/plugins/filter/ifindex"
	_ "github.com/ulogd-go/ulogd/plugins/filter/ip2str"
	_ "github.com/ulogd-go/ulogd/plugins/input/nfacct"
	_ "github.com/ulogd-go/ulogd/plugins/input/nfct"
	_ "github.com/ulogd-go/ulogd/plugins/input/nflog"
)

const (
	flatSchema = "/usr/share/doc/ulogd2/pgsql-ulogd2-flat.sql.gz"
	fullSchema = "/usr/share/doc/ulogd2/pgsql-ulogd2.sql.gz"
)

func TestConnInfo(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{DB: "ulogd", User: "u", Pass: "p w'\\", Host: "localhost", Port: 5433},
			`host=localhost port=5433 dbname=ulogd user=u password='p w\'\\'`},
		{Config{DB: "ulogd", User: "u"}, "dbname=ulogd user=u"},
		{Config{DB: "x", User: "u", ConnString: "host=/tmp dbname=y"}, "host=/tmp dbname=y"},
	} {
		if got := ConnInfo(&tc.cfg); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	up, _ := sqltest.Upstream(t, "NFCT")
	for _, tc := range []struct{ conf, want string }{
		{"table=t\nprocedure=INSERT\nuser=u\n", "`db'"},
		{"table=t\nprocedure=INSERT\ndb=d\n", "`user'"},
		{"procedure=INSERT\ndb=d\nuser=u\n", "table"},
		{"table=t\ndb=d\nuser=u\n", "procedure"},
		{"table=t\nprocedure=INSERT\ndb=d\nuser=u\nport=70000\n", "port"},
		{"table=t\nprocedure=INSERT\ndb=d\nuser=u\nreconnect=-1\n", "reconnect"},
	} {
		_, err := sqltest.New(t, "PGSQL", tc.conf, up)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error about %s", tc.conf, err, tc.want)
		}
	}
	// connstring alone is enough.
	if _, err := sqltest.New(t, "PGSQL", "table=t\nprocedure=INSERT\nconnstring=\"host=/tmp dbname=x\"\n", up); err != nil {
		t.Error(err)
	}
}

func count(t *testing.T, s *testpg.Server, db, q string) int {
	t.Helper()
	var n int
	if err := s.Connect(db).QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// waitWritten waits (bounded) until the sink has written n rows.
func waitWritten(t *testing.T, inst plugin.Instance, n uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		w, _ := sqltest.Counters(inst)
		if w >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s, want %d written", within, sqltest.String(inst), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stop(t *testing.T, inst plugin.Instance) error {
	t.Helper()
	return inst.Stop(context.Background())
}

func TestPGSQL(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run PostgreSQL as the postgres user")
	}
	s := testpg.Start(t)
	s.CreateDB("flat", flatSchema)
	s.CreateDB("full", fullSchema)
	ctUp, ctRec := sqltest.Upstream(t, "NFCT", "IP2STR")
	conn := func(db string) string { return fmt.Sprintf("connstring=%q\n", s.ConnString(db)) }

	t.Run("FlatInsert", func(t *testing.T) {
		inst, err := sqltest.New(t, "PGSQL", conn("flat")+"table=ulog2_ct\nprocedure=INSERT\n", ctUp)
		if err != nil {
			t.Fatal(err)
		}
		sqltest.Start(t, inst)
		for i := range 100 {
			sqltest.Flow(t, ctUp, ctRec, i, i%2 == 1)
			inst.(plugin.Interpreter).Interp(ctRec)
		}
		if err := stop(t, inst); err != nil {
			t.Fatal(err)
		}
		if w, d := sqltest.Counters(inst); w != 100 || d != 0 {
			t.Fatalf("%s", sqltest.String(inst))
		}
		if n := count(t, s, "flat", "select count(*) from ulog2_ct where orig_ip_saddr_str in ('10.99.0.1','fd67::1') and ct_mark < 100 and flow_end_usec = 482190 and ct_event = 4"); n != 100 {
			t.Errorf("rows: %d, want 100", n)
		}
		if n := count(t, s, "flat", "select count(*) from ulog2_ct where family(orig_ip_daddr_str) = 6 and oob_family = 10"); n != 50 {
			t.Errorf("IPv6 rows: %d, want 50", n)
		}
	})

	t.Run("InsertCT", func(t *testing.T) {
		inst, err := sqltest.New(t, "PGSQL", conn("full")+"table=ulog2_ct\nprocedure=INSERT_CT\nschema=public\n", ctUp)
		if err != nil {
			t.Fatal(err)
		}
		sqltest.Start(t, inst)
		for i := range 10 {
			sqltest.Flow(t, ctUp, ctRec, i, i >= 5)
			inst.(plugin.Interpreter).Interp(ctRec)
		}
		if err := stop(t, inst); err != nil {
			t.Fatal(err)
		}
		if n := count(t, s, "full", "select count(*) from ulog2_ct where orig_l4_dport = 5001 and reply_raw_pktlen = 164"); n != 10 {
			t.Errorf("rows: %d, want 10 (%s)", n, sqltest.String(inst))
		}
	})

	t.Run("InsertPacketFull", func(t *testing.T) {
		up, r := sqltest.Upstream(t, "NFLOG", "BASE", "IFINDEX", "IP2STR", "HWHDR")
		inst, err := sqltest.New(t, "PGSQL", conn("full")+"table=ulog\nprocedure=INSERT_PACKET_FULL\n", up)
		if err != nil {
			t.Fatal(err)
		}
		sqltest.Start(t, inst)
		set := func(k string, v any) { sqltest.Set(t, up, r, k, v) }
		for i, a := range []string{"10.99.0.1", "fd67::1"} {
			r.Reset()
			set("oob.time.sec", 1795630392)
			set("oob.time.usec", 5)
			set("oob.prefix", "IN'LOG")
			set("oob.in", "veth0")
			set("oob.out", "")
			set("oob.hook", 1)
			set("ip.saddr.str", a)
			set("ip.daddr.str", a)
			set("ip.protocol", 6)
			set("tcp.sport", 1000+i)
			set("tcp.dport", 22)
			set("tcp.syn", true)
			set("mac.saddr.str", "36:01:d3:9b:7d:ff")
			set("mac.daddr.str", "1e:1d:28:ef:3e:33")
			set("raw.type", 1)
			if i == 0 {
				set("oob.family", 2)
				set("oob.protocol", 0x0800)
			} else {
				set("oob.family", 10)
				set("oob.protocol", 0x86dd)
			}
			inst.(plugin.Interpreter).Interp(r)
		}
		if err := stop(t, inst); err != nil {
			t.Fatal(err)
		}
		if n := count(t, s, "full", "select count(*) from ulog where oob_prefix = 'IN''LOG' and tcp_dport = 22 and tcp_syn and mac_saddr_str = '36:01:d3:9b:7d:ff'"); n != 2 {
			t.Errorf("packets: %d, want 2 (%s)", n, sqltest.String(inst))
		}
	})

	t.Run("ColumnWithoutKey", func(t *testing.T) {
		db := s.Connect("flat")
		s.Exec(db, "create table nokey (_id serial, ct_mark bigint, no_such_key integer)")
		inst, err := sqltest.New(t, "PGSQL", conn("flat")+"table=nokey\nprocedure=INSERT\n", ctUp)
		if err != nil {
			t.Fatal(err)
		}
		err = inst.Start(context.Background())
		var nk *sqldb.ErrNoKey
		if !errors.As(err, &nk) || nk.Column != "no_such_key" || !strings.Contains(err.Error(), "test.conf:1") {
			t.Fatalf("Start: %v, want the column and the stack line named", err)
		}
		// --explain names every column with its key.
		lines := strings.Join(inst.(plugin.Explainer).Explain(context.Background()), "\n")
		if !strings.Contains(lines, "no_such_key") {
			t.Errorf("explain: %s", lines)
		}
		inst, _ = sqltest.New(t, "PGSQL", conn("flat")+"table=ulog2_ct\nprocedure=INSERT\n", ctUp)
		lines = strings.Join(inst.(plugin.Explainer).Explain(context.Background()), "\n")
		for _, want := range []string{"(id column, not written)", "orig_ip_saddr_str        <- orig.ip.saddr.str", "ct_event                 <- ct.event"} {
			if !strings.Contains(lines, want) {
				t.Errorf("explain lacks %q:\n%s", want, lines)
			}
		}
	})

	// NFACCT's sums through INSERT_NFACCT into the table nfacct; a counter
	// too large for its integer column is refused, counted and skipped.
	t.Run("InsertNfacct", func(t *testing.T) {
		up, r := sqltest.Upstream(t, "NFACCT")
		inst, err := sqltest.New(t, "PGSQL", conn("full")+"table=nfacct\nprocedure=INSERT_NFACCT\n", up)
		if err != nil {
			t.Fatal(err)
		}
		sqltest.Start(t, inst)
		for i, bytes := range []uint64{420, 1 << 40, 840} {
			r.Reset()
			sqltest.Set(t, up, r, "sum.name", fmt.Sprintf("icmp%d", i))
			sqltest.Set(t, up, r, "sum.pkts", 5)
			sqltest.Set(t, up, r, "sum.bytes", bytes)
			sqltest.Set(t, up, r, "oob.time.sec", 1795630392)
			sqltest.Set(t, up, r, "oob.time.usec", i)
			inst.(plugin.Interpreter).Interp(r)
		}
		if err := stop(t, inst); err != nil {
			t.Fatal(err)
		}
		if w, d := sqltest.Counters(inst); w != 2 || d != 1 {
			t.Errorf("%s, want 2 written and 1 dropped", sqltest.String(inst))
		}
		if n := count(t, s, "full", "select count(*) from nfacct where sum_name in ('icmp0','icmp2') and sum_pkts = 5"); n != 2 {
			t.Errorf("rows: %d, want 2", n)
		}
	})

	t.Run("TwoInstancesOneTable", func(t *testing.T) {
		s.Exec(s.Connect("flat"), "create table shared (_id serial, ct_mark bigint)")
		var insts []plugin.Instance
		for _, proc := range []string{"INSERT", "INSERT INTO shared"} {
			inst, err := sqltest.New(t, "PGSQL", conn("flat")+"table=shared\nprocedure=\""+proc+"\"\n", ctUp)
			if err != nil {
				t.Fatal(err)
			}
			sqltest.Start(t, inst)
			insts = append(insts, inst)
		}
		for i := range 2000 {
			sqltest.Flow(t, ctUp, ctRec, i, false)
			insts[i%2].(plugin.Interpreter).Interp(ctRec)
		}
		for _, inst := range insts {
			if err := stop(t, inst); err != nil {
				t.Fatal(err)
			}
		}
		if n := count(t, s, "flat", "select count(distinct ct_mark) from shared"); n != 2000 {
			t.Errorf("rows: %d, want 2000", n)
		}
	})

	t.Run("CopyText", func(t *testing.T) {
		db := s.Connect("flat")
		s.Exec(db, "create table texts (_id serial, oob_prefix text, oob_uid bigint, oob_mark bigint)")
		up, r := sqltest.Upstream(t, "NFLOG")
		inst, err := sqltest.New(t, "PGSQL", conn("flat")+"table=texts\nprocedure=INSERT\n", up)
		if err != nil {
			t.Fatal(err)
		}
		sqltest.Start(t, inst)
		want := []string{"tab\there", "nl\nhere", `back\slash \N`, "cr\r'quote'", `\.`}
		for i, p := range want {
			r.Reset()
			sqltest.Set(t, up, r, "oob.prefix", p)
			sqltest.Set(t, up, r, "oob.mark", i)
			inst.(plugin.Interpreter).Interp(r)
		}
		if err := stop(t, inst); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Query(context.Background(), "select oob_prefix, oob_uid is null from texts order by oob_mark")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var p string
			var null bool
			if err := rows.Scan(&p, &null); err != nil || !null {
				t.Fatal(err, null)
			}
			got = append(got, p)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("got %q, want %q", got, want)
		}
	})

	// A stored function is called for a whole batch in one statement,
	// each column's values as an array literal: the text survives it.
	t.Run("FunctionArrayText", func(t *testing.T) {
		db := s.Connect("flat")
		s.Exec(db, "create table ftexts (oob_prefix text, oob_mark bigint)")
		s.Exec(db, "create function put_text(p text, m bigint) returns void as 'insert into ftexts values ($1, $2)' language sql")
		up, r := sqltest.Upstream(t, "NFLOG")
		inst, err := sqltest.New(t, "PGSQL", conn("flat")+"table=ftexts\nprocedure=put_text\n", up)
		if err != nil {
			t.Fatal(err)
		}
		sqltest.Start(t, inst)
		// The connection a driver of these options makes calls the
		// function once per batch.
		cfg := &Config{Options: sqldb.Options{Table: "ftexts", Procedure: "put_text"}, ConnString: s.ConnString("flat")}
		c, err := NewDriver(cfg).Dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cols, err := c.Columns(context.Background())
		if err == nil {
			err = c.Prepare(context.Background(), cols)
		}
		if err != nil || !batched(c) {
			t.Fatalf("the function is not called once per batch (%v)", err)
		}
		want := []string{`dq"here`, `back\slash`, "{a,b}", "NULL", "", "tab\there", `\"`, "(null)"}
		for i, p := range want {
			r.Reset()
			if p != "(null)" {
				sqltest.Set(t, up, r, "oob.prefix", p)
			}
			sqltest.Set(t, up, r, "oob.mark", i)
			inst.(plugin.Interpreter).Interp(r)
		}
		if err := stop(t, inst); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Query(context.Background(), "select coalesce(oob_prefix, '(null)') from ftexts order by oob_mark")
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("got %q, want %q", got, want)
		}
	})

	// A row the database refuses (a bad address for inet) is skipped,
	// counted, and the rest of its batch written: as one pipeline into a
	// table, and as one statement calling a stored function.
	for _, c := range []struct {
		name, table string
		ddl         []string
		proc        string
	}{
		{"RefusedRowMidBatch", "checked", []string{
			"create table checked (_id serial, ct_mark bigint check (ct_mark <> 13), orig_ip_saddr_str inet)"}, "INSERT"},
		{"RefusedRowMidBatchFunction", "fchecked", []string{
			"create table fchecked (ct_mark bigint check (ct_mark <> 13), orig_ip_saddr_str inet)",
			"create function put_checked(m bigint, a inet) returns void as 'insert into fchecked values ($1, $2)' language sql"}, "put_checked"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := s.Connect("flat")
			for _, q := range c.ddl {
				s.Exec(db, q)
			}
			inst, err := sqltest.New(t, "PGSQL", conn("flat")+"table="+c.table+"\nprocedure="+c.proc+"\n", ctUp)
			if err != nil {
				t.Fatal(err)
			}
			sqltest.Start(t, inst)
			for i := range 100 {
				sqltest.Flow(t, ctUp, ctRec, i, false)
				if i == 60 {
					sqltest.Set(t, ctUp, ctRec, "orig.ip.saddr.str", "not an address")
				}
				inst.(plugin.Interpreter).Interp(ctRec)
			}
			if err := stop(t, inst); err != nil {
				t.Fatal(err)
			}
			if w, d := sqltest.Counters(inst); w != 98 || d != 2 {
				t.Errorf("%s, want 98 written, 2 dropped", sqltest.String(inst))
			}
			if n := count(t, s, "flat", "select count(*) from "+c.table); n != 98 {
				t.Errorf("rows: %d, want 98", n)
			}
			if n := count(t, s, "flat", "select count(*) from "+c.table+" where ct_mark in (13, 60)"); n != 0 {
				t.Errorf("refused rows stored: %d", n)
			}
		})
	}

	t.Run("DownAtStart", func(t *testing.T) {
		s.Stop()
		inst, err := sqltest.New(t, "PGSQL", conn("flat")+"table=ulog2_ct\nprocedure=INSERT\nreconnect=1\n", ctUp)
		if err != nil {
			t.Fatal(err)
		}
		sqltest.Start(t, inst) // the database is down: Start succeeds
		for i := range 50 {
			sqltest.Flow(t, ctUp, ctRec, 1000+i, false)
			inst.(plugin.Interpreter).Interp(ctRec)
		}
		s.Start()
		waitWritten(t, inst, 50, 30*time.Second)
		if err := stop(t, inst); err != nil {
			t.Fatal(err)
		}
		if n := count(t, s, "flat", "select count(*) from ulog2_ct where ct_mark >= 1000"); n != 50 {
			t.Errorf("rows: %d, want 50", n)
		}
	})

	// The database is stopped while 5000 flows/s arrive, then started
	// again: with room enough in the backlog no row is lost; with a small
	// one, the rows missing are exactly the rows counted as dropped.
	t.Run("OutageLargeBacklog", func(t *testing.T) {
		outage(t, s, ctUp, ctRec, conn("flat"), 10*time.Second, "backlog_memcap=67108864\n", 100000)
	})
	t.Run("OutageSmallBacklog", func(t *testing.T) {
		outage(t, s, ctUp, ctRec, conn("flat"), 3*time.Second, "backlog_memcap=100000\n", 200000)
	})
}

// outage feeds 5000 flows/s (ct.mark from base up) for the outage plus 2 s
// before and after it, stopping the database for the outage; then it
// checks stored + dropped = sent, without duplicates, and, when
// the backlog is large enough for the whole outage, nothing dropped.
func outage(t *testing.T, s *testpg.Server, up []keys.Bound, r *keys.Record, conn string, down time.Duration, opts string, base int) {
	const rate = 5000
	inst, err := sqltest.New(t, "PGSQL", conn+"table=ulog2_ct\nprocedure=INSERT\nreconnect=1\n"+opts, up)
	if err != nil {
		t.Fatal(err)
	}
	sqltest.Start(t, inst)
	total := int((down + 4*time.Second).Seconds() * rate)
	stopAt, startAt := 2*rate, 2*rate+int(down.Seconds()*rate)
	done := make(chan struct{})
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	for sent < total {
		<-tick.C
		for range rate / 100 {
			sqltest.Flow(t, up, r, base+sent, false)
			inst.(plugin.Interpreter).Interp(r)
			sent++
		}
		switch sent {
		case stopAt:
			done = make(chan struct{})
			go func() { s.Stop(); close(done) }()
		case startAt:
			<-done
			go func() { s.Start() }()
		}
	}
	if s.Dir == "" {
		t.Fatal("no server")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		w, d := sqltest.Counters(inst)
		if int(w+d) >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := inst.Stop(context.Background()); err != nil {
		t.Error(err)
	}
	w, d := sqltest.Counters(inst)
	q := fmt.Sprintf("select count(*) from ulog2_ct where ct_mark >= %d and ct_mark < %d", base, base+total)
	rows := count(t, s, "flat", q)
	distinct := count(t, s, "flat", strings.Replace(q, "count(*)", "count(distinct ct_mark)", 1))
	t.Logf("sent %d, stored %d (distinct %d), written %d, dropped %d", total, rows, distinct, w, d)
	if rows != distinct {
		t.Errorf("%d duplicate rows", rows-distinct)
	}
	if rows+int(d) != total || int(w) != rows {
		t.Errorf("sent %d = stored %d + dropped %d does not hold (written %d)", total, rows, d, w)
	}
	if strings.Contains(opts, "67108864") && d != 0 {
		t.Errorf("%d rows dropped with a large backlog", d)
	}
	if strings.Contains(opts, "=100000\n") && d == 0 {
		t.Error("nothing dropped with a small backlog: the test did not test the bound")
	}
}

// TestThroughput measures how fast one sink writes queued flows into the
// flat ulog2_ct table (rows/s are logged; -run TestThroughput -v).
func TestThroughput(t *testing.T) {
	if os.Geteuid() != 0 || testing.Short() {
		t.Skip("needs root (PostgreSQL as the postgres user); not in -short")
	}
	s := testpg.Start(t)
	s.CreateDB("flat", flatSchema)
	up, r := sqltest.Upstream(t, "NFCT", "IP2STR")
	inst, err := sqltest.New(t, "PGSQL", fmt.Sprintf("connstring=%q\n", s.ConnString("flat"))+"table=ulog2_ct\nprocedure=INSERT\nbacklog_memcap=134217728\n", up)
	if err != nil {
		t.Fatal(err)
	}
	sqltest.Start(t, inst)
	const n = 50000
	start := time.Now()
	for i := range n {
		sqltest.Flow(t, up, r, i, i%2 == 0)
		inst.(plugin.Interpreter).Interp(r)
	}
	queued := time.Since(start)
	waitWritten(t, inst, n, 120*time.Second)
	el := time.Since(start)
	t.Logf("%d rows queued in %v, written in %v: %.0f rows/s", n, queued, el, n/el.Seconds())
}

// batched reports whether c calls its stored function once per batch.
func batched(c sqldb.Conn) bool {
	pc, ok := c.(*conn)
	return ok && pc.many
}
