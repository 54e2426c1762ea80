package e2e

// DBI on real databases: dbtype=mysql writes what MYSQL writes (same
// events, same schema), dbtype=sqlite3 writes into an SQLite file with
// the statement the procedure option asks for.

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// sqliteQuery runs a query with the sqlite3 command-line tool.
func sqliteQuery(t *testing.T, file, query string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sqlite3", "-batch", file, query).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s: %v\n%s", query, err, out)
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestDBIMySQLAndSQLite(t *testing.T) {
	RequireTools(t, "sqlite3")
	m := startMariaDBWith(t, map[string]string{"viamysql": mysqlSchemaFull, "viadbi": mysqlSchemaFull})
	p := NewNSPair(t, NSOptions{Conntrack: true, Accounting: true, Timestamps: true})
	dir := t.TempDir()
	// Mixed-case column names: DBI folds them to lower case, as ulogd2.
	lite := filepath.Join(dir, "flows.db")
	sqliteQuery(t, lite, `CREATE TABLE flows (id INTEGER PRIMARY KEY, Orig_IP_Saddr_Str TEXT, orig_ip_daddr_str TEXT,
		orig_ip_protocol INTEGER, orig_l4_dport INTEGER, flow_end_sec INTEGER, ct_event INTEGER)`)
	logfile := filepath.Join(dir, "ours.log")
	conf := fmt.Sprintf(`[global]
logfile=%q
loglevel=1
stack=ct1:NFCT,ip2bin1:IP2BIN,my1:MYSQL
stack=ct1:NFCT,ip2bin1:IP2BIN,dbi1:DBI
stack=ct1:NFCT,ip2str1:IP2STR,dbi2:DBI

[ct1]
hash_enable=0
event_mask=5

%s
%s
dbtype="mysql"

[dbi2]
dbtype="sqlite3"
db=%q
user="unused"
table="flows"
procedure="INSERT"
`, logfile, mysqlSection("my1", "viamysql", "conntrack", "INSERT_CT"),
		mysqlSection("dbi1", "viadbi", "conntrack", "INSERT_CT"), lite)
	cf := WriteConfig(t, filepath.Join(dir, "ours.conf"), conf)
	d := StartDaemon(t, DaemonSpec{Name: "ours", Binary: OurBinary(t), Netns: p.A, Config: cf, Logfile: logfile})

	mysqlTraffic(t, p, false, 4000)
	mysqlTraffic(t, p, true, 6000)
	mysqlFlowBarrier(t, p, m, "viamysql", "viadbi")
	WaitFor(t, linesTimeout, "the barrier's DESTROY in the SQLite file", func() bool {
		r := sqliteQuery(t, lite, fmt.Sprintf("SELECT count(*) FROM flows WHERE orig_l4_dport=%d AND flow_end_sec IS NOT NULL", BarrierPort))
		return len(r) == 1 && r[0] != "0"
	})
	via := mysqlRows(t, m, "viamysql", "ulog2_ct", "_ct_id")
	if len(via) != 12 {
		t.Errorf("MYSQL: %d rows, want 12 (6 flows, NEW and DESTROY):\n%s", len(via), strings.Join(via, "\n"))
	}
	if diff := cmp.Diff(via, mysqlRows(t, m, "viadbi", "ulog2_ct", "_ct_id")); diff != "" {
		t.Errorf("DBI dbtype=mysql differs from MYSQL (-MYSQL +DBI):\n%s", diff)
	}
	got := sqliteQuery(t, lite, fmt.Sprintf(`SELECT orig_ip_saddr_str, orig_ip_daddr_str, orig_ip_protocol, orig_l4_dport,
		flow_end_sec IS NOT NULL, ct_event FROM flows WHERE orig_l4_dport IS NOT %d OR orig_l4_dport IS NULL ORDER BY 1, 3, 4, 5`, BarrierPort))
	var want []string
	for _, f := range []struct{ src, dst, proto, dport string }{
		{"10.99.0.1", "10.99.0.2", "1", ""}, {"10.99.0.1", "10.99.0.2", "6", "5003"}, {"10.99.0.1", "10.99.0.2", "17", "5001"},
		{"fd99::1", "fd99::2", "6", "5003"}, {"fd99::1", "fd99::2", "17", "5001"}, {"fd99::1", "fd99::2", "58", ""},
	} {
		want = append(want, fmt.Sprintf("%s|%s|%s|%s|0|1", f.src, f.dst, f.proto, f.dport),
			fmt.Sprintf("%s|%s|%s|%s|1|4", f.src, f.dst, f.proto, f.dport))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DBI dbtype=sqlite3 rows (-want +got):\n%s", diff)
	}
	if _, err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"my1", "dbi1", "dbi2"} {
		if n := counterOf(t, logfile, id, "dropped"); n != 0 {
			t.Errorf("%s dropped %d rows", id, n)
		}
	}
}
