// Package testpg starts a private PostgreSQL server for tests and the
// benchmark: a fresh data directory (initdb) in a temporary directory,
// listening only on a unix socket there, run as the unprivileged postgres
// user when the caller is root. Nothing is left behind: the server is
// stopped and the directory removed at the end (the test's cleanup, or
// Close).
//
// Tests call Start, which skips the test when PostgreSQL's binaries are
// not installed (Debian's postgresql-15 package); other programs call New.
package testpg

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir is where Debian installs PostgreSQL 15's server binaries.
const BinDir = "/usr/lib/postgresql/15/bin"

// Port is the port number in the socket's name (.s.PGSQL.<Port>).
const Port = 5432

// ErrNotInstalled is New's error when PostgreSQL is not installed.
var ErrNotInstalled = errors.New("PostgreSQL 15 is not installed (" + BinDir + ")")

// Server is one private server.
type Server struct {
	Dir     string // the temporary directory: data in Dir/data, socket in Dir
	data    string
	owner   string // OS user the server runs as ("" = the current one)
	running bool
	t       testing.TB // nil outside tests
}

// New initialises a server (not started) in a new temporary directory.
func New() (*Server, error) {
	if _, err := os.Stat(filepath.Join(BinDir, "postgres")); err != nil {
		return nil, ErrNotInstalled
	}
	dir, err := os.MkdirTemp("", "testpg-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, data: filepath.Join(dir, "data")}
	if err := s.init(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *Server) init() error {
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root and there is no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(s.Dir, uid, gid); err != nil {
			return err
		}
		s.owner = "postgres"
	}
	if err := os.Chmod(s.Dir, 0o755); err != nil {
		return err
	}
	return s.run("initdb", "-D", s.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--locale=C")
}

// Start initialises and starts a server for a test; the test's cleanup
// stops it and removes its files. The test is skipped when PostgreSQL is
// not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.t = t
	t.Cleanup(s.Close)
	s.Start()
	return s
}

// Close stops the server and removes its directory.
func (s *Server) Close() {
	s.Stop()
	os.RemoveAll(s.Dir)
}

// command returns the command running a PostgreSQL binary as the owner.
func (s *Server) command(bin string, args ...string) *exec.Cmd {
	path := filepath.Join(BinDir, bin)
	if s.owner != "" {
		return exec.Command("runuser", append([]string{"-u", s.owner, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (s *Server) run(bin string, args ...string) error {
	if out, err := s.command(bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %v\n%s", bin, args, err, out)
	}
	return nil
}

// check fails the test on err (outside tests: panics, a programming or
// set-up error the caller could not recover from anyway).
func (s *Server) check(err error) {
	if err == nil {
		return
	}
	if s.t != nil {
		s.t.Helper()
		s.t.Fatal(err)
	}
	panic(err)
}

// StartErr starts the (stopped) server and waits until it accepts
// connections.
func (s *Server) StartErr() error {
	if s.running {
		return nil
	}
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -p %d -c fsync=off -c synchronous_commit=off -c full_page_writes=off", s.Dir, Port)
	if err := s.run("pg_ctl", "-D", s.data, "-l", filepath.Join(s.Dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		return err
	}
	s.running = true
	return nil
}

// Start is StartErr failing the test.
func (s *Server) Start() {
	if s.t != nil {
		s.t.Helper()
	}
	s.check(s.StartErr())
}

// Stop stops the server (fast shutdown: open connections are closed).
func (s *Server) Stop() {
	if !s.running {
		return
	}
	if err := s.run("pg_ctl", "-D", s.data, "-m", "fast", "-w", "-t", "60", "stop"); err != nil && s.t != nil {
		s.t.Error(err)
	}
	s.running = false
}

// Log returns the server's log file.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
	return string(b)
}

// ConnString returns a libpq connection string for database db.
func (s *Server) ConnString(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", s.Dir, Port, db)
}

// Open opens a connection to database db; the caller closes it.
func (s *Server) Open(db string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return pgx.Connect(ctx, s.ConnString(db))
}

// Connect opens a connection to database db, closed at the test's end.
func (s *Server) Connect(db string) *pgx.Conn {
	s.t.Helper()
	c, err := s.Open(db)
	if err != nil {
		s.t.Fatalf("connect %s: %v", db, err)
	}
	s.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// CreateDatabase creates database name and runs the SQL scripts in it (a
// .gz file is decompressed first).
func (s *Server) CreateDatabase(name string, scripts ...string) error {
	c, err := s.Open("postgres")
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return err
	}
	db, err := s.Open(name)
	if err != nil {
		return err
	}
	defer db.Close(context.Background())
	for _, f := range scripts {
		text, err := ReadScriptErr(f)
		if err != nil {
			return err
		}
		if err := db.PgConn().Exec(context.Background(), text).Close(); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}

// CreateDB is CreateDatabase for a test: a missing script skips the test,
// another error fails it.
func (s *Server) CreateDB(name string, scripts ...string) {
	s.t.Helper()
	for _, f := range scripts {
		ReadScript(s.t, f)
	}
	if err := s.CreateDatabase(name, scripts...); err != nil {
		s.t.Fatal(err)
	}
}

// Exec runs sql (several statements allowed) on c.
func (s *Server) Exec(c *pgx.Conn, sql string) {
	s.t.Helper()
	if err := c.PgConn().Exec(context.Background(), sql).Close(); err != nil {
		s.t.Fatalf("exec: %v\n%.300s", err, sql)
	}
}

// ReadScriptErr returns the text of a SQL script, decompressed when its
// name ends in .gz.
func ReadScriptErr(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if filepath.Ext(path) == ".gz" {
		z, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return "", err
		}
		if b, err = io.ReadAll(z); err != nil {
			return "", err
		}
	}
	return string(b), nil
}

// ReadScript is ReadScriptErr for a test: the test is skipped when the
// script does not exist.
func ReadScript(t testing.TB, path string) string {
	t.Helper()
	text, err := ReadScriptErr(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("schema not installed: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return text
}
