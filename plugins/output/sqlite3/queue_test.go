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

	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sqldb"
	"github.com/ulogd-go/ulogd/internal/sqltest"
	_ "github.com/ulogd-go/ulogd/plugins/filter/ip2str"
)

// TestSpoolAcrossRestartAndChangedStack: overflow=spool with a queue of 4
// rows while the database file cannot be opened: the rows go to the
// spool, and the stop leaves them there. A start with other upstream keys
// (IP2STR added to the stack) refuses the spool, naming its directory;
// the start with the keys of the spool writes every row exactly once,
// after which other keys are accepted again (docs/compat.md S13).
func TestSpoolAcrossRestartAndChangedStack(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "later", "ulogd.sqlite3db") // no such directory yet
	spool := filepath.Join(dir, "spool")
	conf := fmt.Sprintf("db=%q\ntable=t\nqueue_records=4\noverflow=\"spool\"\nspool_dir=%q\n", path, spool)
	up, r := sqltest.Upstream(t, "NFCT")
	const n = 100

	inst := newSink(t, conf, up)
	if err := inst.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		sqltest.Flow(t, up, r, i, false)
		inst.(plugin.Interpreter).Interp(r)
	}
	// The health check and the metrics tell it.
	if err := inst.(plugin.Checker).Check(); err == nil || !strings.Contains(err.Error(), "not connected to sqlite3:") {
		t.Errorf("Check with the database away: %v", err)
	}
	if m := metric(inst, plugin.MetricSpoolRecords); m < n-4 {
		t.Errorf("%v rows in the spool, want at least %d", m, n-4)
	}
	if err := inst.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w, d := sqltest.Counters(inst); w != 0 || d != 0 {
		t.Fatalf("database away: %s, want nothing written or dropped", sqltest.String(inst))
	}
	if _, err := os.Stat(filepath.Join(spool, sqldb.LayoutFile)); err != nil {
		t.Fatal(err)
	}

	// The database is there now; the stack has other keys.
	if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("create table t (ct_id integer, ct_mark integer)"); err != nil {
		t.Fatal(err)
	}
	up2, _ := sqltest.Upstream(t, "NFCT", "IP2STR")
	inst = newSink(t, conf, up2)
	err = inst.Start(context.Background())
	var le *sqldb.ErrSpoolLayout
	if !errors.As(err, &le) || le.Rows != n || !strings.Contains(err.Error(), spool) {
		t.Fatalf("Start with other keys: %v, want the spool of %d rows in %s refused", err, n, spool)
	}
	inst.Stop(context.Background())

	// The keys of the spool: every row once.
	inst = newSink(t, conf, up)
	if err := inst.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sqltest.Flow(t, up, r, n, false)
	inst.(plugin.Interpreter).Interp(r)
	if err := inst.(plugin.Checker).Check(); err != nil {
		t.Errorf("Check once connected: %v", err)
	}
	if err := inst.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w, d := sqltest.Counters(inst); w != n+1 || d != 0 {
		t.Errorf("%s, want %d written", sqltest.String(inst), n+1)
	}
	want := fmt.Sprintf("%d|%d|%d|%d", n+1, n+1, n*(n+1)/2, n*(n+1)/2+(n+1)*3000000000)
	if got := query(t, db, "select count(*), count(distinct ct_mark), sum(ct_mark), sum(ct_id) from t"); got != want {
		t.Errorf("rows: %s, want %s", got, want)
	}

	// The spool is empty: other keys start.
	inst = newSink(t, conf, up2)
	if err := inst.Start(context.Background()); err != nil {
		t.Fatalf("Start with other keys and an empty spool: %v", err)
	}
	inst.Stop(context.Background())
}

// TestBlockKeepsEveryRow: overflow=block with a queue of 2 rows: Interp
// waits for the writer, nothing is dropped.
func TestBlockKeepsEveryRow(t *testing.T) {
	path, db := newDB(t, "create table t (ct_mark integer)")
	up, r := sqltest.Upstream(t, "NFCT")
	inst := newSink(t, fmt.Sprintf("db=%q\ntable=t\nqueue_records=2\noverflow=\"block\"\n", path), up)
	sqltest.Start(t, inst)
	const n = 2000
	for i := range n {
		sqltest.Flow(t, up, r, i, false)
		inst.(plugin.Interpreter).Interp(r)
	}
	if err := inst.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w, d := sqltest.Counters(inst); w != n || d != 0 {
		t.Errorf("%s, want %d written", sqltest.String(inst), n)
	}
	if got := query(t, db, "select count(*), sum(ct_mark) from t"); got != fmt.Sprintf("%d|%d", n, n*(n-1)/2) {
		t.Errorf("rows: %s", got)
	}
}

// TestQueueOptionChecks: the queue options are checked as the network
// sinks' are, and the spool directory is held exclusively.
func TestQueueOptionChecks(t *testing.T) {
	up, _ := sqltest.Upstream(t, "NFCT")
	for conf, want := range map[string]string{
		"overflow=\"later\"\n":                  "overflow must be",
		"overflow=\"spool\"\n":                  "needs a spool_dir",
		"overflow=\"spool\"\nspool_dir=\"x\"\n": "absolute",
		"queue_records=-1\n":                    "queue_records",
	} {
		if _, err := sqltest.New(t, "SQLITE3", "db=\"/x\"\ntable=t\n"+conf, up); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", conf, err, want)
		}
	}
	d, _ := plugin.Default.Lookup("SQLITE3")
	cfg := d.NewConfig().(*Config)
	cfg.Overflow, cfg.SpoolDir = "spool", "/var/spool/ulogd/sql/"
	if got := d.Resources(cfg); len(got) != 1 || got[0] != "spool:/var/spool/ulogd/sql" {
		t.Errorf("resources %q", got)
	}
}

// metric returns the value of the sink's metric name (-1: none).
func metric(inst plugin.Instance, name string) float64 {
	for _, m := range inst.(plugin.Metricer).Metrics() {
		if m.Name == name {
			return m.Value
		}
	}
	return -1
}
