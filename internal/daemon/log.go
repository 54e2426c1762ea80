package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ulogd-go/ulogd/internal/logging"
)

type destKind int

const (
	destStderr destKind = iota
	destStdout
	destFile
	destSyslog
)

// Log is the daemon's own log: a destination (stderr, stdout, a file or
// syslog) and a threshold. It is safe for concurrent use; every line is
// written with a single write call while holding a mutex, so lines never
// interleave and a Reopen never loses or splits a line. Create it with
// NewLog; the zero value is not usable.
type Log struct {
	level atomic.Int64 // slog.Level threshold

	mu      sync.Mutex
	kind    destKind
	path    string   // file destination
	file    *os.File // file destination
	verbose bool

	// syslog destination
	syslogConn net.Conn
	syslogNet  string // "unixgram" or "unix"
	syslogSaid bool   // the stderr fallback has been announced

	// Injectable for tests.
	stderr     io.Writer
	stdout     io.Writer
	now        func() time.Time // nil: the record's time
	syslogPath string
	pid        int
}

// NewLog returns a log that writes to stderr at level notice. ulogd sends
// messages emitted before a logfile is configured to syslog with the user
// facility (docs/compat.md D1); ulogd-go writes them to stderr instead,
// which is what ulogd intended and what an operator starting the daemon by
// hand sees.
func NewLog() *Log {
	l := &Log{
		stderr:     os.Stderr,
		stdout:     os.Stdout,
		syslogPath: DefaultSyslogPath,
		pid:        os.Getpid(),
	}
	l.level.Store(int64(logging.LevelNotice))
	return l
}

// Logger returns a logger whose records go through l. The destination and
// level are read at each record, so later SetLevel, Open and Reopen calls
// apply to loggers handed out earlier.
func (l *Log) Logger() *slog.Logger {
	return slog.New(&handler{log: l})
}

// SetLevel sets the threshold from a ulogd level number (see logging.SlogLevel).
func (l *Log) SetLevel(u int) {
	l.level.Store(int64(logging.SlogLevel(u)))
}

// SetVerbose turns on (-v) or off the copy of every line to stderr. It has an
// effect only when the destination is a file or stdout, as in ulogd.
func (l *Log) SetVerbose(on bool) {
	l.mu.Lock()
	l.verbose = on
	l.mu.Unlock()
}

// Dest returns the current destination: "stdout", "syslog", the file path,
// or "" while the log writes to stderr (before Open, after Close).
func (l *Log) Dest() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch l.kind {
	case destStdout:
		return "stdout"
	case destSyslog:
		return "syslog"
	case destFile:
		return l.path
	}
	return ""
}

// Open switches the destination: "stdout", "syslog" or a file path (opened
// for appending, created with mode 0640; the parent directory must exist).
// The previous destination is closed only once the new one is open. The
// syslog socket is connected lazily, at the first message; if it cannot be
// reached messages go to stderr and that is said once.
func (l *Log) Open(dest string) error {
	switch dest {
	case "stdout":
		l.swap(destStdout, "", nil)
		return nil
	case "syslog":
		l.swap(destSyslog, "", nil)
		return nil
	}
	f, err := openLogFile(dest)
	if err != nil {
		return err
	}
	l.swap(destFile, dest, f)
	return nil
}

func openLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("can't open logfile '%s': %w", path, unwrapPath(err))
	}
	return f, nil
}

// swap installs a new destination and closes the old one.
func (l *Log) swap(kind destKind, path string, f *os.File) {
	l.mu.Lock()
	oldFile, oldConn := l.file, l.syslogConn
	l.kind, l.path, l.file = kind, path, f
	l.syslogConn, l.syslogNet, l.syslogSaid = nil, "", false
	l.mu.Unlock()
	if oldFile != nil {
		oldFile.Close()
	}
	if oldConn != nil {
		oldConn.Close()
	}
}

// Reopen reopens a file destination (SIGHUP, after logrotate renamed it).
// The new file is opened first; on failure the old one stays in use and the
// error ("can't open logfile '<path>': <reason>") is returned. For the other
// destinations Reopen does nothing. After DropPrivileges the reopen runs as
// the unprivileged user, as in ulogd.
func (l *Log) Reopen() error {
	l.mu.Lock()
	if l.kind != destFile {
		l.mu.Unlock()
		return nil
	}
	path := l.path
	l.mu.Unlock()

	f, err := openLogFile(path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	if l.kind != destFile || l.path != path { // changed meanwhile
		l.mu.Unlock()
		f.Close()
		return nil
	}
	old := l.file
	l.file = f
	l.mu.Unlock()
	return old.Close()
}

// Close closes a file or syslog destination. Later messages go to stderr so
// that nothing logged during shutdown is lost.
func (l *Log) Close() error {
	l.mu.Lock()
	f, c := l.file, l.syslogConn
	l.kind, l.path, l.file, l.syslogConn = destStderr, "", nil, nil
	l.mu.Unlock()
	var err error
	if f != nil {
		err = f.Close()
	}
	if c != nil {
		err = errors.Join(err, c.Close())
	}
	return err
}

// record is one formatted message, ready for either line format.
type record struct {
	t     time.Time
	ulvl  int
	where string // "file.go:123"
	text  []byte // message and attributes, no newline
}

// emit writes one record to the current destination.
func (l *Log) emit(r *record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch l.kind {
	case destSyslog:
		if l.writeSyslog(r) {
			return
		}
		l.stderr.Write(fileLine(r))
	case destFile:
		line := fileLine(r)
		l.file.Write(line)
		if l.verbose {
			l.stderr.Write(line)
		}
	case destStdout:
		line := fileLine(r)
		l.stdout.Write(line)
		if l.verbose {
			l.stderr.Write(line)
		}
	default:
		l.stderr.Write(fileLine(r))
	}
}

// ctimeLayout is ctime(3) without its newline; the day of month is
// space-padded.
const ctimeLayout = "Mon Jan _2 15:04:05 2006"

// fileLine formats r as ulogd does for a file or stdout:
// "Wed Nov 25 18:11:46 2026 <5> stack.go:123 message\n".
func fileLine(r *record) []byte {
	b := make([]byte, 0, 48+len(r.where)+len(r.text))
	b = r.t.Local().AppendFormat(b, ctimeLayout)
	b = append(b, " <"...)
	b = strconv.AppendInt(b, int64(r.ulvl), 10)
	b = append(b, "> "...)
	b = append(b, r.where...)
	b = append(b, ' ')
	b = append(b, r.text...)
	return append(b, '\n')
}

// here returns "file.go:line" of its caller.
func here() string {
	_, file, line, ok := runtime.Caller(1)
	if !ok {
		return "?:0"
	}
	return filepath.Base(file) + ":" + strconv.Itoa(line)
}
