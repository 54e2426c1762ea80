package mysql

import (
	"os"
	"sync"
	"testing"

	"github.com/ulogd-go/ulogd/internal/testdb"
)

// One MariaDB for the package's tests (each uses databases of its own
// names; the tests that stop it start it again).
var shared struct {
	once sync.Once
	dir  string
	m    *testdb.MariaDB
	err  error
}

func server(t *testing.T) *testdb.MariaDB {
	t.Helper()
	testdb.RequireMariaDB(t)
	shared.once.Do(func() {
		if shared.dir, shared.err = os.MkdirTemp("", "mdb"); shared.err == nil {
			shared.m, shared.err = testdb.LaunchMariaDB(shared.dir)
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.m
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.m != nil {
		shared.m.Shutdown()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}
