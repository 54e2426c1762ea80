// Package fileout is the buffered, reopenable file writer behind the file
// sinks (LOGEMU, OPRINT, GPRINT, NACCT, PCAP, JSON, XML), and Sink, the
// start, stop, flush and SIGHUP-reopen life cycle all but XML share.
//
// Lines are appended to a user-space buffer and written with one write(2)
// per flush. With sync=1 every Flush writes (a source flushes when it has
// emptied its socket, before it waits or sleeps: group commit, nothing
// stays buffered once the source is idle). With sync=0 a Flush writes only
// when the buffer is large or a second has passed, and the engine's
// 1-second tick bounds the delay.
// The buffer only ever holds whole records (lines, or pcap records), so two
// writers appending to one file (O_APPEND) never interleave inside one, and
// when the file cannot be written the newest records are dropped whole.
package fileout

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

const (
	// flushAt is the buffer size that forces a write even with sync=0.
	flushAt = 64 << 10
	// maxAge is how long sync=0 output may wait in the buffer.
	maxAge = time.Second
	// maxBuf bounds the buffer while the file cannot be written; records
	// that would grow it beyond are dropped whole and counted.
	maxBuf = 16 << 20
)

// Writer appends lines to a file.
type Writer struct {
	path      string
	perm      os.FileMode
	sync      bool
	f         *os.File
	fd        int // rawFD(f): ≥ 0 to write f with rawWrite
	buf       []byte
	lastWrite time.Time
	now       func() time.Time

	// Dropped counts bytes discarded because the file could not be written
	// and the buffer was full; DroppedRecords counts the records.
	Dropped        atomic.Uint64
	DroppedRecords atomic.Uint64
	// WriteErrors counts failed writes.
	WriteErrors atomic.Uint64
	// sinkDrops, when set (by Sink), also counts the dropped records,
	// across reopens and restarts.
	sinkDrops *atomic.Uint64
}

// Open opens path for appending (creating it with mode 0640).
func Open(path string, sync bool) (*Writer, error) {
	w := &Writer{path: path, perm: 0o640, sync: sync, fd: -1, buf: make([]byte, 0, flushAt+4096), now: time.Now}
	f, err := w.open()
	if err != nil {
		return nil, err
	}
	w.f, w.fd = f, rawFD(f)
	w.lastWrite = w.now()
	return w, nil
}

func (w *Writer) open() (*os.File, error) {
	return os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, w.perm)
}

// Path returns the file name.
func (w *Writer) Path() string { return w.path }

// Buffer returns the buffer to append one whole record to; give it back
// with Commit.
func (w *Writer) Buffer() []byte { return w.buf }

// Commit stores the buffer after one record was appended. When it has grown
// past the flush threshold it is written at once; if that fails and the
// buffer is over its bound, the record just appended is dropped (whole) and
// counted.
func (w *Writer) Commit(b []byte) error {
	prev := len(w.buf)
	w.buf = b
	if len(w.buf) < flushAt {
		return nil
	}
	err := w.write()
	if err != nil && len(w.buf) > maxBuf {
		n := len(w.buf) - prev
		if n > len(w.buf) {
			n = len(w.buf)
		}
		w.buf = w.buf[:len(w.buf)-n]
		w.Dropped.Add(uint64(n))
		w.DroppedRecords.Add(1)
		if w.sinkDrops != nil {
			w.sinkDrops.Add(1)
		}
	}
	return err
}

// Write appends p (whole lines) to the buffer.
func (w *Writer) Write(p []byte) (int, error) {
	return len(p), w.Commit(append(w.buf, p...))
}

// Flush writes the buffer: always with sync=1, and with sync=0 when it is
// large or old.
func (w *Writer) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if !w.sync && len(w.buf) < flushAt && w.now().Sub(w.lastWrite) < maxAge {
		return nil
	}
	return w.write()
}

// write writes the whole buffer. On failure the data stays buffered (up to
// maxBuf) for the next attempt.
func (w *Writer) write() error {
	if w.f == nil {
		return w.keep(errors.New("file is not open"))
	}
	var n int
	var err error
	if w.fd >= 0 {
		n, err = rawWrite(w.fd, w.buf)
	} else {
		n, err = w.f.Write(w.buf)
	}
	w.lastWrite = w.now()
	if err != nil {
		// What was written is gone from the buffer; the rest, from the
		// middle of a record on, is written next time, in order.
		w.buf = w.buf[:copy(w.buf, w.buf[n:])]
		return w.keep(fmt.Errorf("write %s: %w", w.path, err))
	}
	w.buf = w.buf[:0]
	return nil
}

func (w *Writer) keep(err error) error {
	w.WriteErrors.Add(1)
	return err
}

// Reopen writes what is buffered to the old file, then switches to a newly
// opened file at the same path (logrotate). If the new open fails, the old
// handle is kept and the error returned.
func (w *Writer) Reopen() error {
	flushErr := w.write()
	if len(w.buf) == 0 {
		flushErr = nil
	}
	f, err := w.open()
	if err != nil {
		return errors.Join(flushErr, err)
	}
	old := w.f
	w.f, w.fd = f, rawFD(f)
	if old != nil {
		old.Close()
	}
	return flushErr
}

// Close writes what is buffered and closes the file.
func (w *Writer) Close() error {
	var err error
	if len(w.buf) > 0 {
		err = w.write()
	}
	if w.f != nil {
		err = errors.Join(err, w.f.Close())
		w.f, w.fd = nil, -1
	}
	return err
}
