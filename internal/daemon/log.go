// Package daemon holds the process-level chores of ulogd-go: the daemon's own
// log, the pid file, signal delivery, privilege drop, daemonization and
// systemd readiness notification. Plugins never use this package directly;
// they receive a *slog.Logger.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ulogd-go/ulogd/internal/logging"
)

// DefaultSyslogPath is the socket the syslog destination sends to.
const DefaultSyslogPath = "/dev/log"

// syslogSeverity maps a ulogd level number to an RFC 3164 severity.
func syslogSeverity(u int) int {
	switch u {
	case 1:
		return 7 // debug
	case 3:
		return 6 // info
	case 5:
		return 5 // notice
	case 7:
		return 3 // err
	default:
		return 2 // crit
	}
}

const facilityDaemon = 3

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
// facility (quirk Q29); ulogd-go writes them to stderr instead, which is what
// ulogd intended and what an operator starting the daemon by hand sees.
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

// syslogLine formats r as glibc's syslog(3) does for the local socket:
// "<PRI>Mmm dd hh:mm:ss ulogd[PID]: message".
func (l *Log) syslogLine(r *record) []byte {
	b := make([]byte, 0, 40+len(r.text))
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(facilityDaemon<<3|syslogSeverity(r.ulvl)), 10)
	b = append(b, '>')
	b = r.t.Local().AppendFormat(b, time.Stamp)
	b = append(b, " ulogd["...)
	b = strconv.AppendInt(b, int64(l.pid), 10)
	b = append(b, "]: "...)
	return append(b, r.text...)
}

// writeSyslog sends r to the syslog socket, connecting (or reconnecting once,
// after a syslog daemon restart) as needed. It reports false when the
// message could not be sent; the caller then writes it to stderr. Called
// with l.mu held.
func (l *Log) writeSyslog(r *record) bool {
	msg := l.syslogLine(r)
	for attempt := 0; attempt < 2; attempt++ {
		if l.syslogConn == nil {
			if err := l.dialSyslog(); err != nil {
				if !l.syslogSaid {
					l.syslogSaid = true
					l.stderr.Write(fileLine(&record{
						t: r.t, ulvl: 7, where: here(),
						text: []byte(fmt.Sprintf("can't send to syslog at %s: %v; logging to stderr", l.syslogPath, err)),
					}))
				}
				return false
			}
		}
		out := msg
		if l.syslogNet == "unix" {
			out = append(msg, 0) // stream sockets: glibc ends each message with NUL
		}
		if _, err := l.syslogConn.Write(out); err == nil {
			return true
		}
		l.syslogConn.Close()
		l.syslogConn = nil
	}
	return false
}

func (l *Log) dialSyslog() error {
	var errs []error
	for _, network := range []string{"unixgram", "unix"} {
		c, err := net.Dial(network, l.syslogPath)
		if err == nil {
			l.syslogConn, l.syslogNet, l.syslogSaid = c, network, false
			return nil
		}
		errs = append(errs, err)
	}
	// The datagram error is the telling one (ENOENT, ECONNREFUSED).
	var oe *net.OpError
	if errors.As(errs[0], &oe) {
		return oe.Err
	}
	return errs[0]
}

// here returns "file.go:line" of its caller.
func here() string {
	_, file, line, ok := runtime.Caller(1)
	if !ok {
		return "?:0"
	}
	return filepath.Base(file) + ":" + strconv.Itoa(line)
}

// handler is the slog.Handler behind Log.Logger.
type handler struct {
	log    *Log
	prefix string // group prefix for attributes added later, "g1.g2."
	attrs  []byte // preformatted " key=value" pairs from WithAttrs
}

func (h *handler) Enabled(_ context.Context, lvl slog.Level) bool {
	return int64(lvl) >= h.log.level.Load()
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	n := *h
	n.attrs = append([]byte(nil), h.attrs...)
	for _, a := range as {
		n.attrs = appendAttr(n.attrs, h.prefix, a)
	}
	return &n
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.prefix = h.prefix + name + "."
	return &n
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	rec := record{ulvl: logging.ULevel(r.Level), where: "?:0"}
	switch {
	case h.log.now != nil:
		rec.t = h.log.now()
	case !r.Time.IsZero():
		rec.t = r.Time
	default:
		rec.t = time.Now()
	}
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		if f.File != "" {
			rec.where = filepath.Base(f.File) + ":" + strconv.Itoa(f.Line)
		}
	}
	// ulogd messages carried their own newline; ported texts may too.
	msg := strings.TrimSuffix(r.Message, "\n")
	text := make([]byte, 0, len(msg)+len(h.attrs)+16*r.NumAttrs())
	text = append(text, msg...)
	text = append(text, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		text = appendAttr(text, h.prefix, a)
		return true
	})
	rec.text = text
	h.log.emit(&rec)
	return nil
}

// appendAttr appends " key=value" (groups flattened to "g.key=value").
func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "."
		}
		for _, g := range a.Value.Group() {
			b = appendAttr(b, p, g)
		}
		return b
	}
	b = append(b, ' ')
	b = appendMaybeQuoted(b, prefix+a.Key)
	b = append(b, '=')
	var s string
	switch a.Value.Kind() {
	case slog.KindTime:
		s = a.Value.Time().Format(time.RFC3339Nano)
	default:
		s = a.Value.String()
	}
	return appendMaybeQuoted(b, s)
}

// appendMaybeQuoted appends s, quoted Go-style when it is empty or contains
// a space, a quote, '=' or a non-printable character.
func appendMaybeQuoted(b []byte, s string) []byte {
	if s == "" {
		return append(b, `""`...)
	}
	for _, c := range s {
		if c == '"' || c == '=' || c == utf8.RuneError || unicode.IsSpace(c) || !unicode.IsPrint(c) {
			return strconv.AppendQuote(b, s)
		}
	}
	return append(b, s...)
}
