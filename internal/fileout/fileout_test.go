package fileout

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSyncWritesAtFlush(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.log")
	w, err := Open(p, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("a\n"))
	w.Write([]byte("b\n"))
	if got := read(t, p); got != "" {
		t.Fatalf("written before Flush: %q", got)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != "a\nb\n" {
		t.Fatalf("after Flush: %q", got)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
}

func TestNoSyncWaitsForAgeOrSize(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.log")
	w, err := Open(p, false)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1000, 0)
	w.now = func() time.Time { return clock }
	w.lastWrite = clock
	w.Write([]byte("a\n"))
	w.Flush()
	if got := read(t, p); got != "" {
		t.Fatalf("sync=0 wrote a young small buffer: %q", got)
	}
	clock = clock.Add(maxAge)
	w.Flush()
	if got := read(t, p); got != "a\n" {
		t.Fatalf("sync=0 did not write an old buffer: %q", got)
	}
	// A buffer over the threshold is written at once, without Flush.
	line := strings.Repeat("x", 1023) + "\n"
	for range flushAt / len(line) {
		w.Write([]byte(line))
	}
	if got := read(t, p); len(got) != 2+flushAt {
		t.Fatalf("large buffer not written: %d bytes", len(got))
	}
	w.Write([]byte("tail\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); !strings.HasSuffix(got, "tail\n") {
		t.Fatal("Close did not write the buffer")
	}
}

func TestReopenKeepsOldOnFailure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "out.log")
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	w, err := Open(p, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("one\n"))
	// The directory disappears: the reopen fails, the old handle stays.
	os.Rename(filepath.Join(dir, "sub"), filepath.Join(dir, "moved"))
	if err := w.Reopen(); err == nil {
		t.Fatal("Reopen into a missing directory succeeded")
	}
	w.Write([]byte("two\n"))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "moved", "out.log")); got != "one\ntwo\n" {
		t.Fatalf("old file = %q", got)
	}
}

func TestFailedWritesAreBoundedAndCounted(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.log")
	w, err := Open(p, true)
	if err != nil {
		t.Fatal(err)
	}
	w.f.Close() // every write now fails
	line := strings.Repeat("y", 4095) + "\n"
	for range maxBuf/len(line) + 100 {
		w.Write([]byte(line))
		w.Flush()
	}
	if len(w.buf) > maxBuf {
		t.Errorf("buffer grew to %d bytes, bound is %d", len(w.buf), maxBuf)
	}
	if w.Dropped.Load() == 0 || w.WriteErrors.Load() == 0 {
		t.Errorf("dropped %d bytes, %d write errors: want both counted", w.Dropped.Load(), w.WriteErrors.Load())
	}
	if w.Dropped.Load() != w.DroppedRecords.Load()*uint64(len(line)) || len(w.buf)%len(line) != 0 {
		t.Error("records were cut in the middle")
	}
	w.f = nil
}

// A header put in front of buffered records is written first and is not
// counted as a record; the records keep their boundaries.
func TestPrependHeader(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.log")
	w, err := Open(p, true)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("one\n"))
	w.Write([]byte("two\n"))
	w.Prepend([]byte("HDR\n"))
	if len(w.ends) != 3 || w.ends[0] != 4 || w.ends[1] != 8 || w.ends[2] != 12 {
		t.Fatalf("ends %v", w.ends)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != "HDR\none\ntwo\n" || w.WrittenRecords.Load() != 2 {
		t.Fatalf("file %q, %d records written", got, w.WrittenRecords.Load())
	}
}
