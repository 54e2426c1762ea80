// Package testpg starts a private PostgreSQL server for tests: a fresh
// data directory (initdb) in a temporary directory, listening only on a
// unix socket there, run as the unprivileged postgres user when the test
// runs as root. Nothing is left behind: the server is stopped and the
// directory removed when the test ends.
//
// Tests that need it call Start, which skips the test when PostgreSQL's
// binaries are not installed (Debian's postgresql-15 package).
package testpg

import (
	"bytes"
	"compress/gzip"
	"context"
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

// Server is one running test server.
type Server struct {
	t       testing.TB
	Dir     string // the temporary directory: data in Dir/data, socket in Dir
	data    string
	owner   string // OS user the server runs as ("" = the current one)
	running bool
}

// Start initialises and starts a server; the test's cleanup stops it and
// removes its files.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(filepath.Join(BinDir, "postgres")); err != nil {
		t.Skipf("PostgreSQL 15 is not installed (%s): %v", BinDir, err)
	}
	dir, err := os.MkdirTemp("", "testpg-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, Dir: dir, data: filepath.Join(dir, "data")}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and there is no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		s.owner = "postgres"
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.run("initdb", "-D", s.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--locale=C")
	s.Start()
	return s
}

// command returns the command running a PostgreSQL binary as the owner.
func (s *Server) command(bin string, args ...string) *exec.Cmd {
	path := filepath.Join(BinDir, bin)
	if s.owner != "" {
		return exec.Command("runuser", append([]string{"-u", s.owner, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (s *Server) run(bin string, args ...string) {
	s.t.Helper()
	out, err := s.command(bin, args...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s %v: %v\n%s", bin, args, err, out)
	}
}

// Start starts the (stopped) server and waits until it accepts
// connections.
func (s *Server) Start() {
	s.t.Helper()
	if s.running {
		return
	}
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -p %d -c fsync=off -c synchronous_commit=off -c full_page_writes=off", s.Dir, Port)
	s.run("pg_ctl", "-D", s.data, "-l", filepath.Join(s.Dir, "log"), "-o", opts, "-w", "-t", "60", "start")
	s.running = true
}

// Stop stops the server (fast shutdown: open connections are closed).
func (s *Server) Stop() {
	if !s.running {
		return
	}
	out, err := s.command("pg_ctl", "-D", s.data, "-m", "fast", "-w", "-t", "60", "stop").CombinedOutput()
	if err != nil {
		s.t.Errorf("pg_ctl stop: %v\n%s", err, out)
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

// Connect opens a connection to database db.
func (s *Server) Connect(db string) *pgx.Conn {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.ConnString(db))
	if err != nil {
		s.t.Fatalf("connect %s: %v", db, err)
	}
	s.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// CreateDB creates database name and runs the SQL scripts in it (a .gz
// file is decompressed first).
func (s *Server) CreateDB(name string, scripts ...string) {
	s.t.Helper()
	c := s.Connect("postgres")
	if _, err := c.Exec(context.Background(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		s.t.Fatal(err)
	}
	db := s.Connect(name)
	for _, f := range scripts {
		s.Exec(db, ReadScript(s.t, f))
	}
}

// Exec runs sql (several statements allowed) on c.
func (s *Server) Exec(c *pgx.Conn, sql string) {
	s.t.Helper()
	if err := c.PgConn().Exec(context.Background(), sql).Close(); err != nil {
		s.t.Fatalf("exec: %v\n%.300s", err, sql)
	}
}

// ReadScript returns the text of a SQL script, decompressed when its name
// ends in .gz; the test is skipped when it does not exist.
func ReadScript(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("schema not installed: %v", err)
	}
	if filepath.Ext(path) == ".gz" {
		z, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(z); err != nil {
			t.Fatal(err)
		}
	}
	return string(b)
}
