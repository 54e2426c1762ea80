package testpg

import (
	"context"
	"testing"
)

// TestShippedSchemasLoad starts a server and loads ulogd2's two PostgreSQL
// schemas unchanged, each in its own database.
func TestShippedSchemasLoad(t *testing.T) {
	s := Start(t)
	s.CreateDB("full", "/usr/share/doc/ulogd2/pgsql-ulogd2.sql.gz")
	s.CreateDB("flat", "/usr/share/doc/ulogd2/pgsql-ulogd2-flat.sql.gz")
	var n int
	if err := s.Connect("full").QueryRow(context.Background(),
		"select count(*) from pg_proc where proname in ('insert_packet_full','insert_ct')").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("stored functions found: %d, want 2", n)
	}
	s.Stop()
	s.Start()
	if err := s.Connect("flat").QueryRow(context.Background(), "select count(*) from ulog2_ct").Scan(&n); err != nil {
		t.Fatal(err)
	}
}
