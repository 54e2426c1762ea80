package testdb

import (
	"strings"
	"testing"
)

// TestMariaDBHarness starts a server, loads both shipped MySQL schemas
// unchanged, survives a restart with its data, and cleans up.
func TestMariaDBHarness(t *testing.T) {
	m := StartMariaDB(t)
	m.CreateDatabase(t, "full")
	m.LoadSchema(t, "full", "/usr/share/doc/ulogd2/mysql-ulogd2.sql.gz")
	m.CreateDatabase(t, "flat")
	m.LoadSchema(t, "flat", "/usr/share/doc/ulogd2/mysql-ulogd2-flat.sql.gz")
	got := m.Query(t, "full", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA='full' AND ROUTINE_NAME IN ('INSERT_PACKET_FULL','INSERT_CT') ORDER BY 1")
	if len(got) != 2 || got[0][0] != "INSERT_CT" || got[1][0] != "INSERT_PACKET_FULL" {
		t.Fatalf("stored functions after loading the schema: %q", got)
	}
	m.Exec(t, "flat", "INSERT INTO ulog2 (oob_prefix) VALUES ('x')")
	m.Stop(t)
	m.Start(t)
	if got := m.Query(t, "flat", "SELECT oob_prefix, oob_mark FROM ulog2"); len(got) != 1 || got[0][0] != "x" || got[0][1] != "NULL" {
		t.Fatalf("rows after a restart: %q", got)
	}
	if got := m.Query(t, "", "SELECT @@sql_mode"); len(got) != 1 || !strings.Contains(got[0][0], "STRICT_TRANS_TABLES") {
		t.Fatalf("sql_mode: %q", got)
	}
}
