package main

// The mysql scenario: the nohash flows (NEW and DESTROY rows) → IP2BIN →
// MYSQL into the shipped schema's INSERT_CT (through the conntrack view),
// on a private MariaDB (internal/testdb) started once for the invocation.
// "logged" is the rows in ulog2_ct, emptied before each run; the notes give
// the server's CPU.

import (
	"database/sql"
	"fmt"
	"os"
	"strings"
	"sync"

	_ "github.com/go-sql-driver/mysql"

	"github.com/ulogd-go/ulogd/internal/testdb"
)

const (
	stackMySQL      = "ct1:NFCT,ip2bin1:IP2BIN,my1:MYSQL"
	mysqlBenchDB    = "ulogd"
	mysqlSchemaFull = "/usr/share/doc/ulogd2/mysql-ulogd2.sql.gz"
)

var (
	mysqlOnce   sync.Once
	mysqlServer *testdb.MariaDB
	mysqlDB     *sql.DB
	mysqlErr    error
)

// mariadb starts the invocation's server with the full schema, once, and
// points host=localhost at its socket ($MYSQL_UNIX_PORT, which both
// daemons read).
func mariadb() (*testdb.MariaDB, *sql.DB, error) {
	mysqlOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mdb")
		if err != nil {
			mysqlErr = err
			return
		}
		m, err := testdb.LaunchMariaDB(dir)
		atCleanup(func() {
			if m != nil {
				m.Shutdown()
			}
			os.RemoveAll(dir)
		})
		if err == nil {
			err = m.ExecSQL("", "CREATE DATABASE "+mysqlBenchDB)
		}
		if err == nil {
			err = m.LoadSchemaFile(mysqlBenchDB, mysqlSchemaFull)
		}
		var db *sql.DB
		if err == nil {
			db, err = sql.Open("mysql", m.DSN(mysqlBenchDB))
		}
		if err == nil {
			atCleanup(func() { db.Close() })
			os.Setenv("MYSQL_UNIX_PORT", m.Socket)
		}
		mysqlServer, mysqlDB, mysqlErr = m, db, err
	})
	return mysqlServer, mysqlDB, mysqlErr
}

// mysqlConf is the mysql scenario's config; ulogd2 loads the plugins it
// names.
func mysqlConf(plugDir string) (stackConf, error) {
	m, db, err := mariadb()
	if err != nil {
		return stackConf{}, err
	}
	var b strings.Builder
	b.WriteString("[global]\nlogfile=\"@DIR@/daemon.log\"\nloglevel=3\n")
	for _, so := range []string{"inpflow_NFCT", "filter_IP2BIN", "output_MYSQL"} {
		fmt.Fprintf(&b, "plugin=\"%s/ulogd_%s.so\"\n", plugDir, so)
	}
	fmt.Fprintf(&b, "stack=%s\n\n[ct1]\nevent_mask=5\nhash_enable=0\n\n", stackMySQL)
	fmt.Fprintf(&b, "[my1]\ndb=%q\nhost=\"localhost\"\nuser=%q\npass=%q\ntable=\"conntrack\"\nprocedure=\"INSERT_CT\"\n",
		mysqlBenchDB, testdb.MariaDBUser, testdb.MariaDBPass)
	return stackConf{
		text:      b.String(),
		out:       "none",
		setup:     func(string) error { _, err := db.Exec("TRUNCATE TABLE ulog2_ct"); return err },
		count:     func(string) (uint64, error) { return mysqlCount(db) },
		serverPid: m.Pid,
	}, nil
}

// mysqlCount counts the rows. While the drain is polled, the highest row
// id would be cheaper, but COUNT(*) of a few 100k rows is fast enough and
// exact.
func mysqlCount(db *sql.DB) (uint64, error) {
	var n uint64
	err := db.QueryRow("SELECT COUNT(*) FROM ulog2_ct").Scan(&n)
	return n, err
}

// runMySQLScenario runs the mysql scenario at each of -rates, for the
// daemons (the floor writes no rows).
func runMySQLScenario(o *options) []result {
	conf, err := mysqlConf(o.plugDir)
	if err != nil {
		return []result{{Scenario: "mysql", Err: "mariadb: " + err.Error()}}
	}
	var subjects []string
	for _, s := range o.subjects {
		if s != subjFloor {
			subjects = append(subjects, s)
		}
	}
	var rs []result
	for _, rate := range o.rates {
		l, _ := flowLoad(o, "mysql", rate)
		rs = append(rs, runRounds(o, l, subjects, conf)...)
	}
	return rs
}
