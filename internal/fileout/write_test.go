package fileout

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A FIFO (or a terminal) is written like a file: through os.File, which
// waits in the runtime's poller when the reader is slow.
func TestWriteToFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fw, err := Open(fifo, true)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	fw.Write([]byte("through the pipe\n"))
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := r.Read(buf)
	if string(buf[:n]) != "through the pipe\n" {
		t.Fatalf("FIFO reader got %q", buf[:n])
	}
}

func TestWriteErrorKeepsData(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.log")
	w, err := Open(p, true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ro, err := os.Open(p) // read-only: write(2) fails with EBADF
	if err != nil {
		t.Fatal(err)
	}
	w.f.Close()
	w.f = ro
	w.Write([]byte("kept\n"))
	err = w.Flush()
	if !errors.Is(err, syscall.EBADF) || !strings.Contains(err.Error(), p) {
		t.Fatalf("Flush: %v, want EBADF naming %s", err, p)
	}
	if string(w.buf) != "kept\n" || w.WriteErrors.Load() != 1 {
		t.Fatalf("buffer %q, %d write errors: want the line kept and 1 error", w.buf, w.WriteErrors.Load())
	}
	w.Reopen() // fails to write to the old (read-only) file, opens a writable one
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != "kept\n" {
		t.Fatalf("after reopen the file holds %q", got)
	}
}
