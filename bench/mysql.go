package main

// The mysql scenario: flows (NFCT event mode, NEW and DESTROY) → IP2BIN →
// MYSQL into the shipped schema's INSERT_CT, on a private MariaDB
// (internal/testdb) that both subjects write to in turn. "logged" is the
// rows in ulog2_ct; the server's CPU is reported in the notes.

import (
	"database/sql"
	"fmt"
	"os"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/ulogd-go/ulogd/internal/testdb"
)

const (
	stackMySQL      = "ct1:NFCT,ip2bin1:IP2BIN,my1:MYSQL"
	mysqlBenchDB    = "ulogd"
	mysqlBenchTable = "ulog2_ct"
	mysqlSchemaFull = "/usr/share/doc/ulogd2/mysql-ulogd2.sql.gz"
)

// dbSink is a database a scenario's sink writes to.
type dbSink struct {
	m  *testdb.MariaDB
	db *sql.DB
	// before is the server's CPU at reset.
	before procSample
}

// startMySQLBench starts the server, loads the schema and points
// host=localhost at its socket ($MYSQL_UNIX_PORT, read by both daemons).
func startMySQLBench() (*dbSink, error) {
	dir, err := os.MkdirTemp("", "mdb")
	if err != nil {
		return nil, err
	}
	m, err := testdb.LaunchMariaDB(dir)
	stop := func() {
		if m != nil {
			m.Shutdown()
		}
		os.RemoveAll(dir)
	}
	atCleanup(stop)
	if err == nil {
		err = m.ExecSQL("", "CREATE DATABASE "+mysqlBenchDB)
	}
	if err == nil {
		err = m.LoadSchemaFile(mysqlBenchDB, mysqlSchemaFull)
	}
	if err != nil {
		stop()
		return nil, err
	}
	db, err := sql.Open("mysql", m.DSN(mysqlBenchDB))
	if err != nil {
		stop()
		return nil, err
	}
	os.Setenv("MYSQL_UNIX_PORT", m.Socket)
	return &dbSink{m: m, db: db}, nil
}

// reset empties the table before a subject runs and samples the
// server's CPU.
func (d *dbSink) reset() error {
	if _, err := d.db.Exec("TRUNCATE TABLE " + mysqlBenchTable); err != nil {
		return err
	}
	s, err := sampleProc(d.m.Pid())
	d.before = s
	return err
}

// progress is cheap enough to poll: the highest row id (ids start at 1
// after the TRUNCATE and have gaps only for rolled-back rows).
func (d *dbSink) progress() lineCounter {
	var n sql.NullInt64
	d.db.QueryRow("SELECT MAX(_ct_id) FROM " + mysqlBenchTable).Scan(&n)
	return lineCounter{Lines: uint64(n.Int64)}
}

// exact counts the rows, NEW (no end time) and DESTROY.
func (d *dbSink) exact() lineCounter {
	var all, news sql.NullInt64
	d.db.QueryRow("SELECT COUNT(*), SUM(flow_end_sec IS NULL) FROM "+mysqlBenchTable).Scan(&all, &news)
	return lineCounter{Lines: uint64(all.Int64), New: uint64(news.Int64), Destroy: uint64(all.Int64 - news.Int64)}
}

// serverCPU is the server's CPU since reset, in ms.
func (d *dbSink) serverCPU() float64 {
	after, err := sampleProc(d.m.Pid())
	if err != nil {
		return 0
	}
	return float64(after.CPUTicks-d.before.CPUTicks) * 1000 / clockTicks
}

// mysqlConf is the MYSQL stack; ulogd2 loads the plugins it names.
func mysqlConf(plugDir string, d *dbSink) stackConf {
	var b strings.Builder
	b.WriteString("[global]\nlogfile=\"@DIR@/daemon.log\"\nloglevel=3\n")
	for _, so := range []string{"inpflow_NFCT", "filter_IP2BIN", "output_MYSQL"} {
		fmt.Fprintf(&b, "plugin=\"%s/ulogd_%s.so\"\n", plugDir, so)
	}
	fmt.Fprintf(&b, "stack=%s\n\n[ct1]\nevent_mask=5\nhash_enable=0\n\n", stackMySQL)
	fmt.Fprintf(&b, "[my1]\ndb=%q\nhost=\"localhost\"\nuser=%q\npass=%q\ntable=\"conntrack\"\nprocedure=\"INSERT_CT\"\n",
		mysqlBenchDB, testdb.MariaDBUser, testdb.MariaDBPass)
	return stackConf{text: b.String(), db: d}
}

// runMySQLScenario runs the mysql scenario at one rate, for the daemon
// subjects (no floor: it has no database).
func runMySQLScenario(o *options, rate int) []result {
	offered := "max"
	flows := o.flows
	if rate > 0 {
		offered = fmt.Sprintf("%d/s", rate)
	}
	if flows == 0 {
		if rate > 0 {
			flows = int(float64(rate) * o.seconds)
		} else {
			flows = 250000
		}
	}
	d, err := startMySQLBench()
	if err != nil {
		return []result{{Scenario: "mysql", Offered: offered, Err: "mariadb: " + err.Error()}}
	}
	defer d.db.Close()
	lagRate := rate
	if lagRate == 0 {
		lagRate = 50000
	}
	l := load{scenario: "mysql", offered: offered, ruleset: rulesetFlows, end: "none",
		gen: genConfig{Flows: flows, Rate: rate, MaxTime: time.Duration(o.seconds*float64(time.Second)) + 2*time.Second,
			Delete: true, DeleteLag: max(1, int(o.deleteLag*float64(lagRate)))}}
	var subjects []string
	for _, s := range o.subjects {
		if s != subjFloor {
			subjects = append(subjects, s)
		}
	}
	return runRounds(o, l, subjects, mysqlConf(o.plugDir, d))
}
