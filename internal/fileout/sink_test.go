package fileout

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var texts = Texts{Open: "can't open TEST", Reopen: "can't reopen TEST", Notice: "TEST: reopening logfile"}

// logTo returns a logger that writes "level=… msg=…" lines to buf.
func logTo(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

func TestSinkLifecycle(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.log")
	var logged bytes.Buffer
	s := NewSink(p, true, logTo(&logged), texts)
	// Before Start: nothing to flush, reopen or stop, and no error.
	if err := s.Flush(); err != nil {
		t.Errorf("Flush before Start = %v", err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Errorf("Stop before Start = %v", err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.W == nil || s.W.Path() != p {
		t.Fatalf("after Start W = %v", s.W)
	}
	s.W.Write([]byte("one\n"))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != "one\n" {
		t.Fatalf("after Flush: %q", got)
	}
	s.W.Write([]byte("two\n"))
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s.W != nil {
		t.Error("W kept after Stop")
	}
	if got := read(t, p); got != "one\ntwo\n" {
		t.Errorf("after Stop: %q", got)
	}
	// After Stop: idempotent, and Flush and Reopen do nothing but log.
	if err := s.Stop(t.Context()); err != nil {
		t.Errorf("second Stop = %v", err)
	}
	if err := s.Flush(); err != nil {
		t.Errorf("Flush after Stop = %v", err)
	}
	if err := s.Reopen(); err != nil {
		t.Errorf("Reopen after Stop = %v", err)
	}
	if got, want := logged.String(), "level=INFO+2 msg=\"TEST: reopening logfile\"\n"; got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
}

func TestSinkSync0(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.log")
	s := NewSink(p, false, nil, texts)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.W.Write([]byte("a\n"))
	s.Flush()
	if got := read(t, p); got != "" {
		t.Fatalf("sync=0 wrote a young small buffer: %q", got)
	}
	s.Stop(t.Context())
	if got := read(t, p); got != "a\n" {
		t.Fatalf("after Stop: %q", got)
	}
}

func TestSinkReopen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "out.log")
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	var logged bytes.Buffer
	s := NewSink(p, true, logTo(&logged), texts)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(t.Context())
	// logrotate: rename, then SIGHUP; what is buffered goes to the old file.
	s.W.Write([]byte("one\n"))
	os.Rename(p, p+".1")
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	s.W.Write([]byte("two\n"))
	s.Flush()
	if got := read(t, p+".1"); got != "one\n" {
		t.Errorf("rotated file = %q", got)
	}
	if got := read(t, p); got != "two\n" {
		t.Errorf("new file = %q", got)
	}
	// The directory disappears: the reopen fails with the plugin's text,
	// and the old file stays.
	os.Rename(filepath.Join(dir, "sub"), filepath.Join(dir, "moved"))
	err := s.Reopen()
	if err == nil || !strings.HasPrefix(err.Error(), "can't reopen TEST: open "+p+": ") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("failed Reopen = %v", err)
	}
	s.W.Write([]byte("three\n"))
	s.Flush()
	if got := read(t, filepath.Join(dir, "moved", "out.log")); got != "two\nthree\n" {
		t.Errorf("old file = %q", got)
	}
	if got := strings.Count(logged.String(), "TEST: reopening logfile"); got != 2 {
		t.Errorf("notice logged %d times, want 2: %q", got, logged.String())
	}
}

func TestSinkTexts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing", "out.log")
	s := NewSink(p, true, nil, texts)
	err := s.Start(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "can't open TEST: open "+p+": ") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Start = %v", err)
	}
	if s.W != nil {
		t.Error("W set after a failed Start")
	}
	// Without a Reopen text the Open text serves for both.
	s = NewSink(p, true, nil, Texts{Open: "can't open PKTLOG"})
	if s.texts.Reopen != "can't open PKTLOG" {
		t.Errorf("Reopen text = %q", s.texts.Reopen)
	}
}

// Dropped counts the records every Writer of the sink dropped, and keeps
// the count after Stop (the daemon reports it at exit).
func TestSinkDropped(t *testing.T) {
	s := NewSink(filepath.Join(t.TempDir(), "out.log"), true, logTo(&bytes.Buffer{}), texts)
	if s.Dropped() != 0 {
		t.Fatal("dropped before Start")
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.W.f.Close() // every write now fails
	line := []byte(strings.Repeat("z", 4095) + "\n")
	for range maxBuf/len(line) + 10 {
		s.W.Write(line)
		s.Flush()
	}
	n := s.W.DroppedRecords.Load()
	if n == 0 || s.Dropped() != n {
		t.Fatalf("sink dropped %d, writer %d: want equal and > 0", s.Dropped(), n)
	}
	// Stop cannot write what is buffered either: dropped too.
	buffered := uint64(len(s.W.ends))
	s.stopRetry = 0
	s.Stop(t.Context())
	if s.Dropped() != n+buffered || buffered == 0 {
		t.Fatalf("after Stop: dropped %d, want %d + %d", s.Dropped(), n, buffered)
	}
	var zero Sink
	if zero.Dropped() != 0 {
		t.Fatal("zero Sink reports drops")
	}
}

func TestCheckPathAndResources(t *testing.T) {
	if err := CheckPath(""); err == nil || err.Error() != `option "file" is empty` {
		t.Errorf("CheckPath(\"\") = %v", err)
	}
	if err := CheckPath("/x"); err != nil {
		t.Errorf("CheckPath(/x) = %v", err)
	}
	if r := Resources("/x"); len(r) != 1 || r[0] != "file:/x" {
		t.Errorf("Resources = %v", r)
	}
}
