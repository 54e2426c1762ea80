package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	_ "modernc.org/sqlite"

	"github.com/ulogd-go/ulogd/internal/testpg"
)

// The SQL scenarios: the nohash flows (NEW and DESTROY rows) and the
// packets, into ulogd2's shipped schemas. PostgreSQL runs privately for the
// invocation (internal/testpg), one database per schema, each table
// emptied before a run; the rows written are what is counted as logged.
var sqlScenarios = map[string]struct {
	pkt    bool
	stack  string
	sink   string // the sink's section, @DB@ for the database
	db     string // PostgreSQL database (schema file), "" for SQLite
	goOnly bool   // options the reference does not have
}{
	"pgsql": {false, "ct1:NFCT,ip2str1:IP2STR,pgsql1:PGSQL",
		"table=\"ulog2_ct\"\nprocedure=\"INSERT\"\n", "flat", false},
	// pgsql with the queue spilling to disk: what a database slower
	// than the events costs when no row may be dropped.
	"pgsql-spool": {false, "ct1:NFCT,ip2str1:IP2STR,pgsql1:PGSQL",
		"table=\"ulog2_ct\"\nprocedure=\"INSERT\"\noverflow=\"spool\"\nspool_dir=\"@DIR@/spool\"\nspool_size=4294967296\n", "flat", true},
	"pgsql-ct": {false, "ct1:NFCT,ip2str1:IP2STR,pgsql1:PGSQL",
		"table=\"ulog2_ct\"\nprocedure=\"INSERT_CT\"\n", "full", false},
	"sqlite3": {false, "ct1:NFCT,sqlite1:SQLITE3",
		"db=\"@DIR@/ulogd.sqlite3db\"\ntable=\"ulog_ct\"\n", "", false},
	"pktpgsql": {true, "log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,mac2str1:HWHDR,pgsql1:PGSQL",
		"table=\"ulog\"\nprocedure=\"INSERT_PACKET_FULL\"\n", "full", false},
}

var pgSchemas = map[string]string{
	"flat": "/usr/share/doc/ulogd2/pgsql-ulogd2-flat.sql.gz",
	"full": "/usr/share/doc/ulogd2/pgsql-ulogd2.sql.gz",
}

const sqliteSchema = "/usr/share/doc/ulogd2/sqlite3.table"

var (
	pgOnce   sync.Once
	pgServer *testpg.Server
	pgErr    error
)

// postgres starts the invocation's server with both schemas, once.
func postgres() (*testpg.Server, error) {
	pgOnce.Do(func() {
		s, err := testpg.New()
		if err == nil {
			atCleanup(s.Close)
			err = s.StartErr()
		}
		for _, db := range []string{"flat", "full"} {
			if err == nil {
				err = s.CreateDatabase(db, pgSchemas[db])
			}
		}
		pgServer, pgErr = s, err
	})
	return pgServer, pgErr
}

// pgExec runs one statement in db.
func pgExec(s *testpg.Server, db, q string) error {
	c, err := s.Open(db)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return c.PgConn().Exec(context.Background(), q).Close()
}

// pgCount counts the rows of q in db.
func pgCount(s *testpg.Server, db, q string) (uint64, error) {
	c, err := s.Open(db)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	var n uint64
	err = c.QueryRow(context.Background(), q).Scan(&n)
	return n, err
}

// sqlConf is the config of an SQL scenario.
func sqlConf(plugDir, sc string) (stackConf, error) {
	v := sqlScenarios[sc]
	var b strings.Builder
	b.WriteString("[global]\nlogfile=\"@DIR@/daemon.log\"\nloglevel=3\n")
	insts := strings.Split(v.stack, ",")
	for _, in := range insts {
		_, name, _ := strings.Cut(in, ":")
		fmt.Fprintf(&b, "plugin=\"%s/ulogd_%s.so\"\n", plugDir, pluginSO[name])
	}
	src, _, _ := strings.Cut(insts[0], ":")
	sink, _, _ := strings.Cut(insts[len(insts)-1], ":")
	srcOpts := "event_mask=5\nhash_enable=0\n"
	if v.pkt {
		srcOpts = fmt.Sprintf("group=%d\n", nflogGroup)
	}
	fmt.Fprintf(&b, "stack=%s\n\n[%s]\n%s\n[%s]\n%s", v.stack, src, srcOpts, sink, v.sink)
	conf := stackConf{text: b.String(), out: "none"}
	if v.db == "" {
		schema, err := os.ReadFile(sqliteSchema)
		if err != nil {
			return conf, err
		}
		file := func(dir string) string { return filepath.Join(dir, "ulogd.sqlite3db") }
		conf.setup = func(dir string) error {
			db, err := sql.Open("sqlite", file(dir))
			if err != nil {
				return err
			}
			defer db.Close()
			_, err = db.Exec(string(schema))
			return err
		}
		conf.count = func(dir string) (uint64, error) {
			db, err := sql.Open("sqlite", file(dir)+"?mode=ro&_pragma=busy_timeout(1000)")
			if err != nil {
				return 0, err
			}
			defer db.Close()
			var n uint64
			err = db.QueryRow("select count(*) from ulog_ct").Scan(&n)
			return n, err
		}
		return conf, nil
	}
	s, err := postgres()
	if err != nil {
		return conf, err
	}
	fmt.Fprintf(&b, "host=%q\nuser=\"postgres\"\ndb=%q\n", s.Dir, v.db)
	conf.text = b.String()
	table, reset := "ulog2_ct", "TRUNCATE ulog2_ct RESTART IDENTITY"
	if v.pkt {
		table, reset = "ulog2", "TRUNCATE ulog2, tcp, udp, icmp, icmpv6, sctp, hwhdr, mac RESTART IDENTITY CASCADE"
	}
	conf.setup = func(string) error { return pgExec(s, v.db, reset) }
	conf.dbCPU = postgresCPUTicks
	conf.count = func(string) (uint64, error) { return pgCount(s, v.db, "select count(*) from "+table) }
	return conf, nil
}

// runSQLScenario runs an SQL scenario: the flow ones at each of -rates,
// the packet one flat out.
func runSQLScenario(o *options, sc string) []result {
	conf, err := sqlConf(o.plugDir, sc)
	if err != nil {
		return []result{{Scenario: sc, Err: err.Error()}}
	}
	if sqlScenarios[sc].pkt {
		l, subjects := packetLoad(o, sc)
		return runRounds(o, l, subjects, conf)
	}
	var rs []result
	for _, rate := range o.rates {
		var subjects []string
		for _, s := range o.subjects {
			// The floor writes no rows; the reference has no queue options.
			if s != subjFloor && (s != subjRef || !sqlScenarios[sc].goOnly) {
				subjects = append(subjects, s)
			}
		}
		l, _ := flowLoad(o, sc, rate)
		rs = append(rs, runRounds(o, l, subjects, conf)...)
	}
	return rs
}

// postgresCPUTicks sums utime+stime of every running postgres process
// (the server's, whose backends live as long as their connections: the
// daemons' stay for the whole run).
func postgresCPUTicks() uint64 {
	ents, _ := os.ReadDir("/proc")
	var sum uint64
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil || !strings.Contains(string(stat), "(postgres)") {
			continue
		}
		if u, s, err := cpuTicks(stat); err == nil {
			sum += u + s
		}
	}
	return sum
}
