package dbi

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sqltest"
	"github.com/ulogd-go/ulogd/internal/testdb"
	_ "github.com/ulogd-go/ulogd/plugins/filter/ip2str"
	_ "github.com/ulogd-go/ulogd/plugins/input/nfct"
)

func TestConfigErrors(t *testing.T) {
	up, _ := sqltest.Upstream(t, "NFCT")
	const ok = "dbtype=sqlite3\ndb=/tmp/x.db\nuser=u\ntable=t\nprocedure=INSERT\n"
	for _, tc := range []struct{ conf, want string }{
		{strings.Replace(ok, "dbtype=sqlite3\n", "", 1), "dbtype"},
		{strings.Replace(ok, "dbtype=sqlite3\n", "dbtype=oracle\n", 1), "oracle"},
		{strings.Replace(ok, "db=/tmp/x.db\n", "", 1), "db"},
		{strings.Replace(ok, "user=u\n", "", 1), "user"},
		{strings.Replace(ok, "table=t\n", "", 1), "table"},
		{ok + "port=-1\n", "port"},
	} {
		_, err := sqltest.New(t, "DBI", tc.conf, up)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error about %s", tc.conf, err, tc.want)
		}
	}
	for _, ty := range DBTypes {
		if _, err := sqltest.New(t, "DBI", strings.Replace(ok, "sqlite3", ty, 1), up); err != nil {
			t.Errorf("dbtype=%s: %v", ty, err)
		}
	}
}

func TestSQLitePath(t *testing.T) {
	for db, want := range map[string]string{"/var/x.db": "/var/x.db", "ulog.db": SQLiteDir + "/ulog.db"} {
		if got := (&Config{DB: db}).SQLitePath(); got != want {
			t.Errorf("%s: %s, want %s", db, got, want)
		}
	}
}

func settle(t *testing.T, inst plugin.Instance, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for w, d := sqltest.Counters(inst); w+d < n; w, d = sqltest.Counters(inst) {
		if time.Now().After(deadline) {
			t.Fatalf("%s, want %d rows settled", sqltest.String(inst), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSQLite: upper-case column names are folded (DBI's SELECT * names),
// the first column is the id and left out, a refused row (NOT NULL) is
// skipped and counted, the rest written.
func TestSQLite(t *testing.T) {
	file := filepath.Join(t.TempDir(), "u.db")
	db, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE flows (ID INTEGER PRIMARY KEY, ORIG_IP_SADDR_STR TEXT, Ct_Mark INTEGER CHECK (ct_mark <> 3), ct_event INTEGER)`); err != nil {
		t.Fatal(err)
	}
	up, rec := sqltest.Upstream(t, "NFCT", "IP2STR")
	inst, err := sqltest.New(t, "DBI", fmt.Sprintf("dbtype=sqlite3\ndb=%q\nuser=u\ntable=flows\nprocedure=INSERT\n", file), up)
	if err != nil {
		t.Fatal(err)
	}
	sqltest.Start(t, inst)
	for i := range 6 {
		sqltest.Flow(t, up, rec, i, i%2 == 1)
		inst.(plugin.Interpreter).Interp(rec)
	}
	settle(t, inst, 6)
	if w, d := sqltest.Counters(inst); w != 5 || d != 1 {
		t.Errorf("%s, want 5 written, 1 refused", sqltest.String(inst))
	}
	var got []string
	rows, err := db.Query("SELECT id, orig_ip_saddr_str, ct_mark, ct_event FROM flows ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, mark, ev int
		var s string
		rows.Scan(&id, &s, &mark, &ev)
		got = append(got, fmt.Sprintf("%d %s %d %d", id, s, mark, ev))
	}
	want := "[1 10.99.0.1 0 4 2 fd67::1 1 4 3 10.99.0.1 2 4 4 10.99.0.1 4 4 5 fd67::1 5 4]"
	if fmt.Sprint(got) != want {
		t.Errorf("rows %v\nwant %s", got, want)
	}
}

// TestMySQL: dbtype=mysql writes through MYSQL's driver, column names
// folded to lower case.
func TestMySQL(t *testing.T) {
	m := testdb.StartMariaDB(t)
	m.CreateDatabase(t, "d")
	m.Exec(t, "d", "CREATE TABLE flows (ID bigint unsigned NOT NULL auto_increment PRIMARY KEY, ORIG_IP_SADDR_STR varchar(40), CT_MARK int)")
	t.Setenv("MYSQL_UNIX_PORT", m.Socket)
	up, rec := sqltest.Upstream(t, "NFCT", "IP2STR")
	inst, err := sqltest.New(t, "DBI", fmt.Sprintf("dbtype=mysql\ndb=d\nhost=localhost\nuser=%s\npass=%s\ntable=flows\nprocedure=INSERT\n",
		testdb.MariaDBUser, testdb.MariaDBPass), up)
	if err != nil {
		t.Fatal(err)
	}
	sqltest.Start(t, inst)
	for i := range 4 {
		sqltest.Flow(t, up, rec, i, i%2 == 1)
		inst.(plugin.Interpreter).Interp(rec)
	}
	settle(t, inst, 4)
	if err := inst.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := m.Query(t, "d", "SELECT ID, ORIG_IP_SADDR_STR, CT_MARK FROM flows ORDER BY ID"); fmt.Sprint(got) != "[[1 10.99.0.1 0] [2 fd67::1 1] [3 10.99.0.1 2] [4 fd67::1 3]]" {
		t.Errorf("rows %v", got)
	}
}

// TestExplainCreatesNothing: --explain of a sqlite3 DBI opens the file
// read only: a missing file stays missing.
func TestExplainCreatesNothing(t *testing.T) {
	file := filepath.Join(t.TempDir(), "missing.db")
	up, _ := sqltest.Upstream(t, "NFCT", "IP2STR")
	inst, err := sqltest.New(t, "DBI", fmt.Sprintf("dbtype=sqlite3\ndb=%q\nuser=u\ntable=flows\nprocedure=INSERT\n", file), up)
	if err != nil {
		t.Fatal(err)
	}
	lines := inst.(plugin.Explainer).Explain(context.Background())
	if len(lines) == 0 || !strings.Contains(lines[0], "not known") {
		t.Errorf("Explain: %q", lines)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("Explain created %s (%v)", file, err)
	}
}
