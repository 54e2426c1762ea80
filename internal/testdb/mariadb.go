package testdb

// MariaDB test servers: a private mariadbd (Debian's mariadb-server) in a
// temporary data directory, listening only on a unix socket in that
// directory. Nothing is left behind: t.Cleanup stops the server and the
// directory goes with t.TempDir; the server also dies with the test
// process (parent-death signal).

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	mariadbReadyTimeout = 60 * time.Second // install + first start on a busy 2-core host
	mariadbStopTimeout  = 30 * time.Second
	mariadbCmdTimeout   = 60 * time.Second // one client run (a schema load)
)

// MariaDBUser and MariaDBPass are the account every MariaDB test server
// has besides root: all privileges, password authentication, as a ulogd2
// configuration expects (user= and pass= are mandatory for MYSQL).
const (
	MariaDBUser = "ulogd"
	MariaDBPass = "ulogd-test-pw"
)

// MariaDB is one running (or stopped) test server.
type MariaDB struct {
	Dir    string // data directory, socket and logs live under it
	Socket string // the unix socket clients connect to

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// RequireMariaDB skips the test unless the MariaDB server and client are
// installed (apt-get install mariadb-server) and it runs as root or can
// run mariadbd as itself.
func RequireMariaDB(t testing.TB) {
	t.Helper()
	for _, n := range []string{"mariadbd", "mariadb-install-db", "mariadb"} {
		if _, err := lookPath(n); err != nil {
			t.Skipf("needs %s (apt-get install mariadb-server): %v", n, err)
		}
	}
}

// lookPath also searches /usr/sbin, which is not in every test's PATH.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not in PATH nor /usr/sbin", name)
	}
	return p, nil
}

// StartMariaDB creates a data directory, starts mariadbd on a unix socket
// and creates the MariaDBUser account. The server runs with MariaDB's
// default sql_mode (strict), as a Debian installation does. It is stopped
// and its directory removed when the test ends.
func StartMariaDB(t testing.TB) *MariaDB {
	t.Helper()
	RequireMariaDB(t)
	// A short path: unix socket paths are limited to 107 bytes and
	// t.TempDir() names can be long.
	dir, err := os.MkdirTemp("", "mdb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	m, err := LaunchMariaDB(dir)
	if m != nil {
		t.Cleanup(func() {
			if err := m.Shutdown(); err != nil {
				t.Errorf("mariadb: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// LaunchMariaDB is StartMariaDB for programs that are not tests (the
// benchmark): the server lives in dir until Shutdown. On error, the
// returned server (if any) must still be shut down.
func LaunchMariaDB(dir string) (*MariaDB, error) {
	install, err := lookPath("mariadb-install-db")
	if err != nil {
		return nil, err
	}
	m := &MariaDB{Dir: dir, Socket: filepath.Join(dir, "sock")}
	args := []string{"--no-defaults", "--datadir=" + m.datadir(), "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	if out, err := m.run(mariadbCmdTimeout, nil, install, args...); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v\n%s", err, out)
	}
	if err := m.StartServer(); err != nil {
		return m, err
	}
	return m, m.ExecSQL("", fmt.Sprintf("CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'; GRANT ALL ON *.* TO '%s'@'localhost';",
		MariaDBUser, MariaDBPass, MariaDBUser))
}

func (m *MariaDB) datadir() string { return filepath.Join(m.Dir, "data") }

// Start (re)starts the server on the existing data directory and waits
// until it accepts connections.
func (m *MariaDB) Start(t testing.TB) {
	t.Helper()
	if err := m.StartServer(); err != nil {
		t.Fatal(err)
	}
}

// StartServer is Start returning its error.
func (m *MariaDB) StartServer() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return errors.New("mariadb: already running")
	}
	bin, err := lookPath("mariadbd")
	if err != nil {
		return err
	}
	args := []string{"--no-defaults", "--datadir=" + m.datadir(), "--socket=" + m.Socket,
		"--skip-networking", "--pid-file=" + filepath.Join(m.Dir, "pid"),
		"--log-error=" + filepath.Join(m.Dir, "error.log"), "--skip-log-bin",
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
		// Tests measure rows, not durability: no fsync per commit.
		"--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
		"--max-connections=50", "--skip-name-resolve"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(bin, args...)
	// The server dies with the thread that started it: a thread kept
	// for it alone, until it exits (Go ends other threads at will, and
	// with them their children's parent-death signal would fire).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	started := make(chan error)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the server
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("mariadbd: %v", err)
	}
	m.cmd, m.done = cmd, done
	deadline := time.Now().Add(mariadbReadyTimeout)
	for {
		if _, err := m.run(5*time.Second, strings.NewReader("SELECT 1"), "mariadb", m.clientArgs("root", "", "")...); err == nil {
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(m.Dir, "error.log"))
			m.cmd = nil
			return fmt.Errorf("mariadbd exited during start-up:\n%s\n%s", out.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mariadbd: not ready after %v", mariadbReadyTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid is the running server's process id (0 when stopped).
func (m *MariaDB) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// Stop stops the server (SIGTERM, bounded wait, then SIGKILL); Start
// brings it back on the same data.
func (m *MariaDB) Stop(t testing.TB) {
	t.Helper()
	if err := m.Shutdown(); err != nil {
		t.Fatal(err)
	}
}

// Kill stops the server abruptly (SIGKILL), as a crash would.
func (m *MariaDB) Kill(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.done
	m.cmd = nil
}

// Shutdown is Stop returning its error.
func (m *MariaDB) Shutdown() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return nil
	}
	cmd, done := m.cmd, m.done
	m.cmd = nil
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(mariadbStopTimeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("mariadbd did not stop within %v of SIGTERM (killed)", mariadbStopTimeout)
	}
}

func (m *MariaDB) clientArgs(user, pass, db string) []string {
	args := []string{"--no-defaults", "--socket=" + m.Socket, "--user=" + user, "--batch", "--skip-column-names",
		"--raw", "--connect-timeout=5"}
	if pass != "" {
		args = append(args, "--password="+pass)
	}
	if db != "" {
		args = append(args, "--database="+db)
	}
	return args
}

// run runs a program with stdin and a deadline; it returns stdout and
// stderr together when it fails, stdout alone otherwise.
func (m *MariaDB) run(timeout time.Duration, stdin io.Reader, prog string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Stdin = stdin
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		return o.String() + e.String(), err
	}
	return o.String(), nil
}

// client runs the mariadb client as root with the SQL on its standard
// input (so DELIMITER lines of the shipped schemas work).
func (m *MariaDB) client(db string, sql io.Reader) (string, error) {
	return m.run(mariadbCmdTimeout, sql, "mariadb", m.clientArgs("root", "", db)...)
}

// DSN is the go-sql-driver/mysql data source name of database db for
// MariaDBUser.
func (m *MariaDB) DSN(db string) string {
	return fmt.Sprintf("%s:%s@unix(%s)/%s", MariaDBUser, MariaDBPass, m.Socket, db)
}

// Exec runs SQL statements (several, separated by ';') in database db
// ("" for none) as root.
func (m *MariaDB) Exec(t testing.TB, db, sql string) {
	t.Helper()
	if err := m.ExecSQL(db, sql); err != nil {
		t.Fatal(err)
	}
}

// ExecSQL is Exec returning its error.
func (m *MariaDB) ExecSQL(db, sql string) error {
	if out, err := m.client(db, strings.NewReader(sql)); err != nil {
		return fmt.Errorf("mariadb %s: %v\n%s", sql, err, out)
	}
	return nil
}

// CreateDatabase creates an empty database.
func (m *MariaDB) CreateDatabase(t testing.TB, db string) {
	t.Helper()
	m.Exec(t, "", "CREATE DATABASE `"+db+"`")
}

// LoadSchema runs a schema file (gzip-compressed when its name ends in
// .gz, as in /usr/share/doc/ulogd2) in database db, unchanged.
func (m *MariaDB) LoadSchema(t testing.TB, db, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Skipf("schema %s: %v (apt-get install ulogd2)", path, err)
	}
	if err := m.LoadSchemaFile(db, path); err != nil {
		t.Fatal(err)
	}
}

// LoadSchemaFile is LoadSchema returning its error.
func (m *MariaDB) LoadSchemaFile(db, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		r = zr
	}
	if out, err := m.client(db, r); err != nil {
		return fmt.Errorf("loading %s: %v\n%s", path, err, out)
	}
	return nil
}

// Query runs one query in database db and returns its rows, each a list
// of column values as the client prints them in batch mode ("NULL" for
// NULL). Select binary columns through HEX().
func (m *MariaDB) Query(t testing.TB, db, query string) [][]string {
	t.Helper()
	out, err := m.client(db, strings.NewReader(query))
	if err != nil {
		t.Fatalf("mariadb %s: %v\n%s", query, err, out)
	}
	var rows [][]string
	for l := range strings.SplitSeq(strings.TrimSuffix(out, "\n"), "\n") {
		if l != "" {
			rows = append(rows, strings.Split(l, "\t"))
		}
	}
	return rows
}

// Table returns the column names of table (or view) in database db and
// its rows ordered by its first column; binary columns (addresses) are
// returned as HEX().
func (m *MariaDB) Table(t testing.TB, db, table string) (cols []string, rows [][]string) {
	t.Helper()
	meta := m.Query(t, db, fmt.Sprintf("SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "+
		"WHERE TABLE_SCHEMA='%s' AND TABLE_NAME='%s' ORDER BY ORDINAL_POSITION", db, table))
	if len(meta) == 0 {
		t.Fatalf("mariadb: no table %s.%s", db, table)
	}
	var sel []string
	for _, c := range meta {
		cols = append(cols, c[0])
		if strings.Contains(c[1], "binary") || strings.Contains(c[1], "blob") {
			sel = append(sel, "HEX(`"+c[0]+"`)")
		} else {
			sel = append(sel, "`"+c[0]+"`")
		}
	}
	return cols, m.Query(t, db, "SELECT "+strings.Join(sel, ",")+" FROM `"+table+"` ORDER BY 1")
}
