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
// The buffer holds whole records (lines, or pcap records) and knows where
// each ends, so two writers appending to one file (O_APPEND) never
// interleave inside one, a full disk's partial write is continued in the
// same file or the record dropped (never finished in the next file after a
// rotation), and when the file cannot be written the newest records are
// dropped whole, counted and logged. Writes go through os.File, the
// runtime's ordinary system call, so that a stalled disk never holds a P
// (docs/performance.md, "File writes").
package fileout

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/ulogd-go/ulogd/internal/logging"
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

// Counts are a file sink's record counters, kept across reopens and
// restarts: a Sink shares one among the Writers it opens.
type Counts struct {
	Written atomic.Uint64 // records that reached the file
	Dropped atomic.Uint64 // records discarded
}

// Writer appends lines to a file. A record is what one Commit (or Write)
// adds; the Writer keeps the records' boundaries in its buffer, so that it
// drops, and writes to a new file after a reopen, whole records only.
type Writer struct {
	path      string
	perm      os.FileMode
	sync      bool
	f         *os.File
	buf       []byte
	ends      []int // where each buffered record ends in buf
	cut       bool  // the first buffered record was written in part
	headers   int   // the first buffered units are file headers, not records
	lastWrite time.Time
	now       func() time.Time

	// Dropped counts bytes discarded because the file could not be written
	// and the buffer was full, or at a reopen or close that could not write
	// them; DroppedRecords counts the records.
	Dropped        atomic.Uint64
	DroppedRecords atomic.Uint64
	// WrittenRecords counts the records written to the file.
	WrittenRecords atomic.Uint64
	// WriteErrors counts failed writes.
	WriteErrors atomic.Uint64
	// counts, when set (by Sink), also counts written and dropped
	// records, across reopens and restarts.
	counts *Counts
	// log, when set, is told of every drop (rate-limited), with the error.
	log      *slog.Logger
	dropNote logging.Limiter
}

// Open opens path for appending (creating it with mode 0640).
func Open(path string, sync bool) (*Writer, error) {
	w := &Writer{path: path, perm: 0o640, sync: sync, buf: make([]byte, 0, flushAt+4096),
		ends: make([]int, 0, 1024), now: time.Now}
	f, err := w.open()
	if err != nil {
		return nil, err
	}
	w.f = f
	w.lastWrite = w.now()
	return w, nil
}

// SetLog makes the Writer log each drop, at most every 10 s, with the
// error that caused it.
func (w *Writer) SetLog(log *slog.Logger) { w.log = log }

func (w *Writer) open() (*os.File, error) {
	return os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, w.perm)
}

// Path returns the file name.
func (w *Writer) Path() string { return w.path }

// Buffer returns the buffer to append one whole record to; give it back
// with Commit.
func (w *Writer) Buffer() []byte { return w.buf }

// Commit stores the buffer after one record was appended. When it has grown
// past the flush threshold it is written at once; if that fails the record
// stays buffered for the next attempt, unless the buffer is over its bound:
// then the record just appended is dropped (whole), counted and logged.
// The error is always nil (the record was kept or counted): the result
// stays for the callers that test it.
func (w *Writer) Commit(b []byte) error {
	if len(b) > len(w.buf) {
		w.buf = b
		w.ends = append(w.ends, len(b))
	} else {
		w.buf = b // nothing appended
	}
	if len(w.buf) < flushAt {
		return nil
	}
	if err := w.write(); err != nil && len(w.buf) > maxBuf {
		w.drop(len(w.ends)-1, 1, err)
	}
	return nil
}

// Prepend puts p (a file header, not a record) in front of everything
// buffered, to be written first.
func (w *Writer) Prepend(p []byte) {
	w.buf = append(w.buf, p...)
	copy(w.buf[len(p):], w.buf[:len(w.buf)-len(p)])
	copy(w.buf, p)
	for i := range w.ends {
		w.ends[i] += len(p)
	}
	w.ends = append(w.ends, 0)
	copy(w.ends[1:], w.ends)
	w.ends[0] = len(p)
	w.headers++
}

// Write appends p as one record (one or more whole lines) to the buffer.
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
	return w.writeUpTo(len(w.buf))
}

// writeUpTo writes the first end bytes of the buffer (a record boundary).
func (w *Writer) writeUpTo(end int) error {
	if end == 0 {
		return nil
	}
	if w.f == nil {
		return w.keep(errors.New("file is not open"))
	}
	// The runtime's ordinary system call: a write that blocks (a slow or
	// stalled disk) hands the P over, so the ticker, signals and the GC
	// go on (docs/performance.md, "File writes").
	n, err := w.f.Write(w.buf[:end])
	w.lastWrite = w.now()
	w.consume(n)
	if err != nil {
		// The rest, maybe from the middle of a record on, is written
		// next time, in order (to this file: see Reopen).
		return w.keep(fmt.Errorf("write %s: %w", w.path, err))
	}
	return nil
}

// consume removes the first n bytes of the buffer, written to the file,
// and counts the records they completed.
func (w *Writer) consume(n int) {
	if n == 0 {
		return
	}
	whole, boundary := 0, 0
	for whole < len(w.ends) && w.ends[whole] <= n {
		boundary = w.ends[whole]
		whole++
	}
	// Stopped inside a record: its start is in the file, the rest is not.
	w.cut = n > boundary || (w.cut && whole == 0)
	hdr := min(w.headers, whole)
	w.headers -= hdr
	w.count(whole-hdr, false, nil)
	w.buf = w.buf[:copy(w.buf, w.buf[n:])]
	w.ends = w.ends[:copy(w.ends, w.ends[whole:])]
	for i := range w.ends {
		w.ends[i] -= n
	}
}

// count counts k records written, or dropped because of err.
func (w *Writer) count(k int, dropped bool, err error) {
	if k == 0 {
		return
	}
	if !dropped {
		w.WrittenRecords.Add(uint64(k))
		if w.counts != nil {
			w.counts.Written.Add(uint64(k))
		}
		return
	}
	w.DroppedRecords.Add(uint64(k))
	if w.counts != nil {
		w.counts.Dropped.Add(uint64(k))
	}
	if w.log != nil && w.dropNote.Allow(time.Now()) {
		msg := "dropping records that cannot be written to " + w.path
		if err != nil {
			msg += ": " + err.Error()
		}
		w.log.Error(msg, "dropped", w.DroppedRecords.Load(), "buffered_records", len(w.ends))
	}
}

// drop discards k buffered records from the i-th on, counting them as
// dropped because of err.
func (w *Writer) drop(i, k int, err error) {
	if k <= 0 {
		return
	}
	start := 0
	if i > 0 {
		start = w.ends[i-1]
	}
	end := w.ends[i+k-1]
	w.buf = append(w.buf[:start], w.buf[end:]...)
	w.ends = append(w.ends[:i], w.ends[i+k:]...)
	for j := i; j < len(w.ends); j++ {
		w.ends[j] -= end - start
	}
	if i == 0 {
		w.cut = false
	}
	w.Dropped.Add(uint64(end - start))
	w.count(k, true, err)
}

func (w *Writer) keep(err error) error {
	w.WriteErrors.Add(1)
	return err
}

// Reopen writes what is buffered to the old file, then switches to a newly
// opened file at the same path (logrotate). A record the old file holds in
// part is finished there or dropped: no record is ever split across two
// files; the whole records the old file could not take go to the new one.
// If the new open fails, the old handle is kept and the error returned.
func (w *Writer) Reopen() error {
	flushErr := w.finishCut()
	if flushErr == nil {
		flushErr = w.write()
	}
	if len(w.buf) == 0 {
		flushErr = nil
	}
	f, err := w.open()
	if err != nil {
		return errors.Join(flushErr, err)
	}
	if w.cut {
		// The old file is not written again: drop what it holds in part.
		w.drop(0, 1, flushErr)
	}
	old := w.f
	w.f = f
	if old != nil {
		old.Close()
	}
	return flushErr
}

// finishCut writes the rest of a record the file holds in part.
func (w *Writer) finishCut() error {
	if !w.cut || len(w.ends) == 0 {
		return nil
	}
	return w.writeUpTo(w.ends[0])
}

// Close writes what is buffered and closes the file. What cannot be
// written is dropped and counted.
func (w *Writer) Close() error {
	var err error
	if len(w.buf) > 0 {
		err = w.write()
		if len(w.ends) > 0 {
			n := len(w.ends)
			w.dropNote = logging.Limiter{} // always logged
			w.drop(0, n, err)
		}
	}
	if w.f != nil {
		err = errors.Join(err, w.f.Close())
		w.f = nil
	}
	return err
}
