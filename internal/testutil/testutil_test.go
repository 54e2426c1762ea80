package testutil

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestEventually(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		n := 0
		if !Eventually(time.Second, func() bool { n++; return n == 3 }) {
			t.Fatal("Eventually = false for a condition that holds at the third check")
		}
		if got, want := time.Since(start), 2*PollInterval; got != want {
			t.Errorf("took %v, want %v (two intervals)", got, want)
		}

		start = time.Now()
		n = 0
		if Eventually(time.Second, func() bool { n++; return false }) {
			t.Fatal("Eventually = true for a condition that never holds")
		}
		if got := time.Since(start); got < time.Second || got > time.Second+PollInterval {
			t.Errorf("gave up after %v, want the 1s timeout", got)
		}
		if want := int(time.Second/PollInterval) + 1; n != want {
			t.Errorf("checked %d times, want %d", n, want)
		}
	})
}

// fakeT records Fatalf instead of stopping the test.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = format
}

func TestWaitFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeT{TB: t}
		WaitFor(ft, time.Second, "nothing", func() bool { return true })
		if ft.failed != "" {
			t.Errorf("WaitFor failed for a condition that holds: %q", ft.failed)
		}
		WaitFor(ft, time.Second, "nothing", func() bool { return false })
		if ft.failed == "" {
			t.Error("WaitFor did not fail for a condition that never holds")
		}
	})
}

func TestDatagramsRoundTrip(t *testing.T) {
	want := [][]byte{[]byte("first"), {}, []byte("third datagram")}
	var capture []byte
	for _, dg := range want {
		capture = AppendDatagram(capture, dg)
	}
	path := filepath.Join(t.TempDir(), "capture.bin")
	if err := os.WriteFile(path, capture, 0o644); err != nil {
		t.Fatal(err)
	}
	got := ReadDatagrams(t, path)
	if len(got) != len(want) {
		t.Fatalf("read %d datagrams, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("datagram %d = %q, want %q", i, got[i], want[i])
		}
	}

	// A truncated capture fails the test.
	if err := os.WriteFile(path, capture[:len(capture)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	ft := &fakeT{TB: t}
	func() {
		defer func() { recover() }() // fakeT.Fatalf does not stop; reading on may panic
		ReadDatagrams(ft, path)
	}()
	if ft.failed == "" {
		t.Error("ReadDatagrams accepted a truncated capture")
	}
}

func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			b.Write([]byte("x"))
		}
	}()
	for range 100 {
		_ = b.String()
	}
	<-done
	if got := b.String(); got != strings.Repeat("x", 100) {
		t.Errorf("got %q, want 100 x", got)
	}
}

func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"a.bin": "A", "b.bin": "B", "c.txt": "C"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := ReadFiles(t, filepath.Join(dir, "*.bin"))
	if len(got) != 2 || string(got["a.bin"]) != "A" || string(got["b.bin"]) != "B" {
		t.Errorf("ReadFiles = %q, want a.bin=A b.bin=B", got)
	}
	ft := &fakeT{TB: t}
	ReadFiles(ft, filepath.Join(dir, "*.none"))
	if ft.failed == "" {
		t.Error("ReadFiles did not fail when nothing matches")
	}
}

func TestAllocsPerCall(t *testing.T) {
	var sink []byte
	if n := AllocsPerCall(100, func() {}); n != 0 {
		t.Errorf("an empty call: %v allocations", n)
	}
	if n := AllocsPerCall(100, func() { sink = make([]byte, 64+len(sink)%2) }); n != 1 {
		t.Errorf("a call that allocates once: %v allocations, want 1", n)
	}
}
