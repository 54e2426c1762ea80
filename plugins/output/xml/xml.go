// Package xml is the XML sink: one XML element per event (packet,
// conntrack flow), one line each, in a file named after the time it was
// opened, or on standard output.
package xml

import (
	_ "embed"

	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ulogd-go/ulogd/internal/fileout"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Config holds XML's options.
type Config struct {
	Directory string `ulogd:"directory"`
	Sync      int    `ulogd:"sync"`
	Stdout    int    `ulogd:"stdout"`
}

// Input key indexes.
const (
	inCT = iota
	inRaw
	inSum
	numInputs
)

var inputs = [numInputs]keys.Spec{
	inCT:  {Name: "ct", Type: keys.Raw, Flags: keys.Optional},
	inRaw: {Name: "raw", Type: keys.Raw, Flags: keys.Optional},
	inSum: {Name: "sum", Type: keys.Raw, Flags: keys.Optional},
}

// kind is what the stack's source produces; it names the file and the
// document's root element.
type kind struct {
	name, tag string
}

var (
	kindFlow = kind{"flow", "conntrack"}
	kindPkt  = kind{"pkt", "packet"}
	kindSum  = kind{"sum", "sum"}
)

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the XML plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:    "XML",
		Kind:    plugin.Sink,
		Summary: "write packets and flows as XML, one element per line",
		Input:   plugin.DTFlow | plugin.DTSum | plugin.DTRaw,
		Output:  plugin.DTSink,
		NewConfig: func() *Config {
			return &Config{Directory: "/var/log/"}
		},
		Options: map[string]string{
			"directory": "where the files are created (mode 0640)",
			"sync":      "1: write at the end of every batch of events",
			"stdout":    "1: write to standard output instead of a file",
		},
		Sample: sample,
		Keys: func(*Config) ([]keys.Spec, []keys.Spec, error) {
			return inputs[:], nil, nil
		},
		// The directory is shared ("dir:"), not claimed: --check checks
		// that the files can be created in it.
		Resources: func(cfg *Config) []string {
			if cfg.Stdout != 0 || cfg.Directory == "" {
				return nil
			}
			return []string{"dir:" + cfg.Directory}
		},
		New: func(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
			if cfg.Stdout == 0 && cfg.Directory == "" {
				return nil, fmt.Errorf("option \"directory\" is empty")
			}
			if len(env.In) != numInputs {
				return nil, fmt.Errorf("XML: %d input slots, want %d", len(env.In), numInputs)
			}
			s := &sink{cfg: cfg, log: env.Log}
			copy(s.in[:], env.In)
			// ulogd2 asks the source for its data type; the bound keys say
			// the same: only packet sources give "raw", only conntrack
			// sources (and NFLOG, which also gives "raw") give "ct", only
			// accounting sources give "sum".
			switch {
			case s.in[inRaw] != keys.NoSlot:
				s.kind = kindPkt
			case s.in[inCT] != keys.NoSlot:
				s.kind = kindFlow
			case s.in[inSum] != keys.NoSlot:
				s.kind = kindSum
			default:
				env.Log.Warn("XML: no upstream plugin provides ct, raw or sum: nothing will be logged")
				s.kind = kindPkt
			}
			return s, nil
		},
	})
}

// output is a buffered line writer: a fileout.Writer for files, a
// streamWriter for stdout.
type output interface {
	Buffer() []byte
	Commit([]byte) error
	Flush() error
	Close() error
}

type sink struct {
	cfg  *Config
	in   [numInputs]keys.Slot
	kind kind
	log  *slog.Logger

	out  output
	path string // current file ("" on stdout)

	f       formatter
	lastErr int64 // unix second of the last error message

	// stdout is where stdout=1 writes and clock the time source (file
	// names, <when>); Start sets what is nil to os.Stdout and time.Now
	// (tests set their own before).
	stdout io.Writer
	clock  func() time.Time
}

// fileName is <directory>/ulogd-<kind>-DDMMYYYY-HHMMSS.xml in local time.
func (s *sink) fileName(t time.Time) string {
	return filepath.Join(s.cfg.Directory, "ulogd-"+s.kind.name+"-"+t.Format("02012006-150405")+".xml")
}

// open opens a new output and queues the document header.
func (s *sink) open() error {
	if s.cfg.Stdout != 0 {
		s.out = newStreamWriter(s.stdout, s.cfg.Sync != 0)
		s.path = ""
	} else {
		p := s.fileName(s.clock())
		w, err := fileout.Open(p, s.cfg.Sync != 0)
		if err != nil {
			return fmt.Errorf("can't open XML file: %w", err)
		}
		s.out, s.path = w, p
	}
	b := s.out.Buffer()
	b = append(b, `<?xml version="1.0" encoding="utf-8"?>`+"\n<"...)
	b = append(b, s.kind.tag...)
	b = append(b, ">\n"...)
	if err := s.out.Commit(b); err != nil {
		return err
	}
	return s.flushSync()
}

// flushSync writes the buffer now when sync=1 (the header and footer are
// not part of a receive batch).
func (s *sink) flushSync() error {
	if s.cfg.Sync != 0 {
		return s.out.Flush()
	}
	return nil
}

// close queues the closing tag and closes the output.
func (s *sink) close() error {
	if s.out == nil {
		return nil
	}
	b := s.out.Buffer()
	b = append(b, "</"...)
	b = append(b, s.kind.tag...)
	b = append(b, ">\n"...)
	err := s.out.Commit(b)
	err = joinErr(err, s.out.Close())
	s.out = nil
	return err
}

func joinErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (s *sink) Start(context.Context) error {
	if s.stdout == nil {
		s.stdout = os.Stdout
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	return s.open()
}

func (s *sink) Stop(context.Context) error { return s.close() }

// Interp appends one line: the packet element, then the flow element,
// whichever inputs are valid. An event with neither writes nothing.
func (s *sink) Interp(r *keys.Record) plugin.Verdict {
	if s.out == nil {
		return plugin.Fail
	}
	buf := s.out.Buffer()
	start := len(buf)
	var when time.Time
	if r.Valid(s.in[inRaw]) || r.Valid(s.in[inCT]) || r.Valid(s.in[inSum]) {
		when = s.clock()
	}
	var family uint8
	var err error
	if r.Valid(s.in[inRaw]) {
		buf, family, err = s.f.appendPacket(buf, r.Bytes(s.in[inRaw]), when)
		if err != nil {
			return s.fail(buf[:start], "raw", err)
		}
	}
	if r.Valid(s.in[inCT]) {
		ct := r.Bytes(s.in[inCT])
		if s.in[inRaw] != keys.NoSlot {
			// NFLOG: "ct" holds the NFULA_CT attributes, not a message.
			buf, err = s.f.appendFlowAttrs(buf, ct, family, when)
		} else {
			buf, err = s.f.appendFlowMsg(buf, ct, when)
		}
		if err != nil {
			return s.fail(buf[:start], "ct", err)
		}
	}
	if r.Valid(s.in[inSum]) {
		if buf, err = appendSum(buf, r.Bytes(s.in[inSum]), when); err != nil {
			return s.fail(buf[:start], "sum", err)
		}
	}
	if len(buf) == start {
		return plugin.Continue
	}
	buf = append(buf, '\n')
	if err := s.out.Commit(buf); err != nil {
		s.logError("Error during write: " + err.Error())
		return plugin.Fail
	}
	return plugin.Continue
}

// fail drops the partly formatted line and reports a malformed input.
func (s *sink) fail(buf []byte, key string, err error) plugin.Verdict {
	s.out.Commit(buf)
	s.logError("XML: can't format " + key + ": " + err.Error())
	return plugin.Fail
}

// logError logs at most one error per second.
func (s *sink) logError(msg string) {
	if now := time.Now().Unix(); now != s.lastErr {
		s.lastErr = now
		s.log.Error(msg)
	}
}

// Flush is called at the end of each receive batch (and every second).
func (s *sink) Flush() error {
	if s.out == nil {
		return nil
	}
	return s.out.Flush()
}

// Reopen ends the current document and starts a new one, in a new file
// named after the current time (as ulogd2 on SIGHUP).
func (s *sink) Reopen() error {
	s.log.Log(context.Background(), logging.LevelNotice, "XML: reopening logfile")
	err := s.close()
	if oerr := s.open(); oerr != nil {
		return joinErr(err, oerr)
	}
	return err
}

// streamWriter buffers whole lines for a stream (stdout) with the same
// flush policy as fileout: every Flush with sync=1, else when large or a
// second old.
type streamWriter struct {
	w         io.Writer
	sync      bool
	buf       []byte
	lastWrite time.Time
}

const (
	streamFlushAt = 64 << 10
	streamMaxAge  = time.Second
	streamMaxBuf  = 16 << 20
)

func newStreamWriter(w io.Writer, sync bool) *streamWriter {
	return &streamWriter{w: w, sync: sync, buf: make([]byte, 0, 8192), lastWrite: time.Now()}
}

func (w *streamWriter) Buffer() []byte { return w.buf }

func (w *streamWriter) Commit(b []byte) error {
	w.buf = b
	if len(w.buf) >= streamFlushAt {
		return w.write()
	}
	return nil
}

func (w *streamWriter) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if !w.sync && len(w.buf) < streamFlushAt && time.Since(w.lastWrite) < streamMaxAge {
		return nil
	}
	return w.write()
}

func (w *streamWriter) write() error {
	n, err := w.w.Write(w.buf)
	w.lastWrite = time.Now()
	w.buf = w.buf[:copy(w.buf, w.buf[n:])]
	if err != nil && len(w.buf) > streamMaxBuf {
		w.buf = w.buf[:0]
	}
	return err
}

// Close writes what is buffered; the stream itself stays open.
func (w *streamWriter) Close() error {
	if len(w.buf) == 0 {
		return nil
	}
	return w.write()
}
