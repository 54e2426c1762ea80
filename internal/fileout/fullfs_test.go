package fileout

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ulogd-go/ulogd/internal/plugintest"
)

var fill = plugintest.FillDisk

func smallTmpfs(t *testing.T) string { return plugintest.SmallTmpfs(t, "64k") }

// line is record i: a whole line of n bytes.
func line(i, n int) []byte {
	s := fmt.Sprintf("rec %06d ", i)
	return []byte(s + strings.Repeat("x", n-len(s)-1) + "\n")
}

// checkWhole fails unless the file at p holds only whole records.
func checkWhole(t *testing.T, p string) int {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Errorf("%s ends inside a line", filepath.Base(p))
	}
	n := 0
	for l := range bytes.Lines(b) {
		if !bytes.HasPrefix(l, []byte("rec ")) {
			t.Errorf("%s holds a broken line: %.40q…", filepath.Base(p), l)
		}
		n++
	}
	return n
}

// A disk still full at Stop: Stop tries for 2 s, then drops what is
// buffered, counted and logged (it used to vanish with dropped=0).
func TestStopOnFullDiskDropsWhatIsLeft(t *testing.T) {
	dir := smallTmpfs(t)
	p := filepath.Join(dir, "out.log")
	synctest.Test(t, func(t *testing.T) {
		var logged bytes.Buffer
		s := NewSink(p, true, logTo(&logged), texts)
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			s.W.Write(line(i, 100))
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		fill(t, dir)
		const total = 40
		for i := 10; i < total; i++ {
			s.W.Write(line(i, 300))
		}
		if err := s.Flush(); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Flush on a full disk = %v", err)
		}
		start := time.Now()
		if err := s.Stop(t.Context()); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Stop = %v", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("Stop retried for %v, want 2 s", d)
		}
		inFile := uint64(checkWholeOrCut(t, p))
		if s.Written() != inFile || s.Written()+s.Dropped() != total || s.Dropped() == 0 {
			t.Errorf("written %d, dropped %d, file holds %d of %d records", s.Written(), s.Dropped(), inFile, total)
		}
		if !strings.Contains(logged.String(), "dropping records that cannot be written to "+p+": ") ||
			!strings.Contains(logged.String(), "no space left on device") {
			t.Errorf("drop not logged with its error:\n%s", logged.String())
		}
	})
}

// checkWholeOrCut counts the whole records in p, allowing its end to be
// the start of one that the full disk cut.
func checkWholeOrCut(t *testing.T, p string) int {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte{'\n'})
}

// Stop gets the records out when the disk gets room while it retries.
func TestStopRetriesUntilTheDiskHasRoom(t *testing.T) {
	dir := smallTmpfs(t)
	p := filepath.Join(dir, "out.log")
	synctest.Test(t, func(t *testing.T) {
		s := NewSink(p, true, logTo(&bytes.Buffer{}), texts)
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		filler := fill(t, dir)
		for i := range 20 {
			s.W.Write(line(i, 300))
		}
		s.Flush()
		go func() {
			time.Sleep(time.Second)
			os.Remove(filler)
		}()
		if err := s.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := checkWhole(t, p); n != 20 || s.Written() != 20 || s.Dropped() != 0 {
			t.Errorf("file holds %d records, written %d, dropped %d; want 20, 20, 0", n, s.Written(), s.Dropped())
		}
	})
}

// A record the full disk cut in the old file is not finished in the new
// one after a rotation: no line is split across two files.
func TestReopenNeverSplitsARecord(t *testing.T) {
	dir := smallTmpfs(t)
	p := filepath.Join(dir, "out.log")
	var logged bytes.Buffer
	s := NewSink(p, true, logTo(&logged), texts)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(t.Context())
	// 4000 bytes: the file's page has 96 bytes free when the disk fills.
	for i := range 40 {
		s.W.Write(line(i, 100))
	}
	s.Flush()
	filler := fill(t, dir)
	s.W.Write(line(40, 300)) // cut after 96 bytes
	s.W.Write(line(41, 300))
	if err := s.Flush(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Flush on a full disk = %v", err)
	}
	if !s.W.cut {
		t.Fatal("the full disk did not cut a record: the test proves nothing")
	}
	// logrotate: rename, SIGHUP; the disk is still full.
	os.Rename(p, p+".1")
	if err := s.Reopen(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Reopen = %v", err)
	}
	os.Remove(filler)
	s.W.Write(line(42, 100))
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := checkWhole(t, p); n != 2 {
		t.Errorf("new file holds %d records, want 41 and 42", n)
	}
	if got := read(t, p); !strings.HasPrefix(got, "rec 000041 ") {
		t.Errorf("new file starts with %.20q", got)
	}
	if s.Dropped() != 1 || s.Written() != 42 {
		t.Errorf("dropped %d, written %d; want 1 (the cut record) and 42", s.Dropped(), s.Written())
	}
}
