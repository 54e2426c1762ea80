package sinkq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The spool: the records a full queue cannot hold go to disk, into a
// directory of segment files, and come back in order once the peer takes
// records again; what is on disk when the daemon stops is sent after the
// next start.
//
// A segment file is named by its sequence number (20 decimal digits,
// ".spool") and holds the 8-byte magic "ULGSPL1\n" followed by records,
// each
//
//	length  uint32, little endian (not 0)
//	crc     uint32, little endian: CRC-32C (Castagnoli) of the data
//	data    length bytes
//
// Segments are read oldest first. A record whose header or checksum is
// wrong ends its segment: the records of that segment not yet read are
// counted as corrupt and dropped, never sent, and reading goes on with the
// next segment. At start-up every segment is checked: a damaged tail is
// cut off and counted (one per damaged segment, the number of records it
// held being unknown).
//
// fsync policy: a segment is fsync'd when it is full and a new one is
// started, and at Close; the directory after a segment is created or
// renamed. Records are written with one write(2) each, so a crash of the
// daemon alone loses nothing spooled; a power loss can lose what was
// written to the last segment since its last fsync (a torn record is
// detected by its checksum at the next start).

const (
	spoolMagic  = "ULGSPL1\n"
	spoolHeader = 8 // length + crc
	spoolExt    = ".spool"
	// firstSeq leaves room below the first segment for the segments
	// Close writes in front of the oldest one.
	firstSeq = 1 << 40
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// SpoolConfig configures a Spool.
type SpoolConfig struct {
	// Dir holds the segments (created, mode 0700, when missing). One
	// spool per directory.
	Dir string
	// MaxBytes caps the segment files together (0: 1 GiB). A record
	// that would go beyond is refused (and dropped by the queue).
	MaxBytes int64
	// SegmentBytes is the size at which a new segment is started (0:
	// MaxBytes/16, between 64 KiB and 64 MiB).
	SegmentBytes int64
	// MaxRecord is the longest record Take accepts (0: 16 MiB). Records
	// of any length found on disk are read back (a previous run may have
	// had a larger bound).
	MaxRecord int
}

// SpoolStats are a spool's counters.
type SpoolStats struct {
	Records   uint64 // records on disk, not yet taken back
	Bytes     int64  // bytes of the segment files
	Recovered uint64 // records found on disk at Open
	Corrupt   uint64 // records dropped as corrupt (a damaged tail found at Open counts 1)
	Refused   uint64 // records refused: size cap reached, or a write failed (full disk)
}

type segment struct {
	seq     uint64
	size    int64 // bytes written, magic included
	records int   // records written (or found at Open)
}

// Spool is a directory of segment files holding records in order. Take
// (the queue's Overflow) appends; Peek and Advance, called by the writer
// goroutine only, read them back.
type Spool struct {
	mu   sync.Mutex
	cfg  SpoolConfig
	segs []*segment // oldest first; the last is the one written
	w    *os.File   // the last segment, open for appending
	r    *os.File   // segs[0], open for reading
	rseq uint64     // the segment r reads
	roff int64      // offset of the next record in segs[0]
	read int        // records of segs[0] read

	records uint64
	bytes   int64
	st      SpoolStats
	scratch []byte // Take's header + record
	rbuf    []byte // Peek's record
	err     error  // the last write error
}

// OpenSpool opens (or creates) the spool in cfg.Dir and checks the
// segments found there.
func OpenSpool(cfg SpoolConfig) (*Spool, error) {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 30
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = min(max(cfg.MaxBytes/16, 64<<10), 64<<20)
	}
	if cfg.MaxRecord <= 0 {
		cfg.MaxRecord = 16 << 20
	}
	if cfg.Dir == "" {
		return nil, errors.New("spool: no directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{cfg: cfg}
	ents, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, spoolExt) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, spoolExt), 10, 64)
		if err != nil {
			continue
		}
		seg, err := s.check(seq)
		if err != nil {
			return nil, err
		}
		if seg == nil {
			continue
		}
		s.segs = append(s.segs, seg)
		s.records += uint64(seg.records)
		s.bytes += seg.size
	}
	slices.SortFunc(s.segs, func(a, b *segment) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	s.st.Recovered = s.records
	if len(s.segs) > 0 {
		s.roff = int64(len(spoolMagic))
	}
	return s, nil
}

func (s *Spool) path(seq uint64) string {
	return filepath.Join(s.cfg.Dir, fmt.Sprintf("%020d%s", seq, spoolExt))
}

// check reads segment seq found at Open: it counts its records, cuts off a
// damaged tail, and removes a segment with no record (nil).
func (s *Spool) check(seq uint64) (*segment, error) {
	p := s.path(seq)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	sc := SegmentScanner{R: f, Size: fi.Size()}
	n := 0
	for sc.Next() {
		n++
	}
	if sc.Err() != nil {
		s.st.Corrupt++
		if n == 0 {
			_ = os.Remove(p)
			return nil, nil
		}
		if err := f.Truncate(sc.Offset()); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	if n == 0 {
		_ = os.Remove(p)
		return nil, nil
	}
	return &segment{seq: seq, size: sc.Offset(), records: n}, nil
}

// ErrCorrupt is a segment's damage: a bad magic, length or checksum.
var ErrCorrupt = errors.New("spool: corrupt segment")

// SegmentScanner reads the records of one segment in order. It never
// panics on damaged input and never allocates more than the segment's
// size: Next returns false, and Err is ErrCorrupt when the segment does
// not end cleanly (a torn or damaged record).
type SegmentScanner struct {
	R    io.ReaderAt
	Size int64 // the segment's length

	off  int64
	rec  []byte
	err  error
	done bool
}

// Next reads the next record; false at the end or on damage.
func (sc *SegmentScanner) Next() bool {
	if sc.done {
		return false
	}
	if sc.off == 0 {
		var m [len(spoolMagic)]byte
		if sc.Size < int64(len(m)) {
			return sc.fail(ErrCorrupt)
		}
		if _, err := sc.R.ReadAt(m[:], 0); err != nil || string(m[:]) != spoolMagic {
			return sc.fail(ErrCorrupt)
		}
		sc.off = int64(len(spoolMagic))
	}
	rec, n, err := readRecord(sc.R, sc.Size, sc.off, sc.rec[:0])
	if err == io.EOF {
		sc.done = true
		return false
	}
	if err != nil {
		return sc.fail(err)
	}
	sc.rec, sc.off = rec, sc.off+n
	return true
}

func (sc *SegmentScanner) fail(err error) bool {
	sc.err, sc.done = err, true
	return false
}

// Record is the record Next read; valid until the next call.
func (sc *SegmentScanner) Record() []byte { return sc.rec }

// Offset is the end of the last good record (the magic's end before any).
func (sc *SegmentScanner) Offset() int64 { return sc.off }

// Err is nil when the segment ended cleanly.
func (sc *SegmentScanner) Err() error { return sc.err }

// readRecord reads the record at off of the size bytes of r into buf. It
// returns io.EOF when off is the end, ErrCorrupt for a bad or torn record.
func readRecord(r io.ReaderAt, size, off int64, buf []byte) ([]byte, int64, error) {
	if off >= size {
		return nil, 0, io.EOF
	}
	var h [spoolHeader]byte
	if off+spoolHeader > size {
		return nil, 0, ErrCorrupt
	}
	if n, _ := r.ReadAt(h[:], off); n < spoolHeader {
		return nil, 0, ErrCorrupt
	}
	l := binary.LittleEndian.Uint32(h[:4])
	if l == 0 || int64(l) > size-off-spoolHeader {
		return nil, 0, ErrCorrupt
	}
	buf = slices.Grow(buf[:0], int(l))[:l]
	if n, _ := r.ReadAt(buf, off+spoolHeader); n < int(l) {
		return nil, 0, ErrCorrupt
	}
	if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(h[4:]) {
		return nil, 0, ErrCorrupt
	}
	return buf, spoolHeader + int64(l), nil
}

// appendRecord appends rec's header and rec to b.
func appendRecord(b, rec []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(rec)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(rec, castagnoli))
	return append(b, rec...)
}

// Take appends rec to the spool (Overflow). It returns false, and counts
// the refusal, when the size cap is reached or the write fails (a full
// disk): the queue then drops rec.
func (s *Spool) Take(rec []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	need := int64(spoolHeader + len(rec))
	if len(rec) > s.cfg.MaxRecord || s.bytes+need > s.cfg.MaxBytes {
		s.st.Refused++
		return false
	}
	if err := s.writable(need); err != nil {
		s.err = err
		s.st.Refused++
		return false
	}
	seg := s.segs[len(s.segs)-1]
	s.scratch = appendRecord(s.scratch[:0], rec)
	if n, err := s.w.WriteAt(s.scratch, seg.size); err != nil {
		if n > 0 {
			// A torn record would end the segment: cut it off.
			_ = s.w.Truncate(seg.size)
		}
		s.err = err
		s.st.Refused++
		return false
	}
	seg.size += need
	seg.records++
	s.records++
	s.bytes += need
	return true
}

// writable makes sure a segment open for writing has room for need bytes;
// s.mu is held.
func (s *Spool) writable(need int64) error {
	if s.w != nil {
		seg := s.segs[len(s.segs)-1]
		if seg.size+need <= s.cfg.SegmentBytes || seg.records == 0 {
			return nil
		}
		// Full: sync it and start the next one.
		_ = s.w.Sync()
		_ = s.w.Close()
		s.w = nil
	}
	seq := uint64(firstSeq)
	if n := len(s.segs); n > 0 {
		seq = s.segs[n-1].seq + 1
	}
	f, err := os.OpenFile(s.path(seq), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(spoolMagic)); err != nil {
		_ = f.Close()
		_ = os.Remove(s.path(seq))
		return err
	}
	syncDir(s.cfg.Dir)
	s.w = f
	s.segs = append(s.segs, &segment{seq: seq, size: int64(len(spoolMagic))})
	s.bytes += int64(len(spoolMagic))
	if len(s.segs) == 1 {
		s.roff, s.read = int64(len(spoolMagic)), 0
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// Len returns the records on disk not yet taken back.
func (s *Spool) Len() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records
}

// Stats returns the spool's counters.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Records, st.Bytes = s.records, s.bytes
	return st
}

// Err returns the last write error (a full disk), or nil.
func (s *Spool) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Peek returns the oldest record without taking it (nil when the spool is
// empty), valid until the next Peek, and how many records it found
// corrupt and dropped on the way (already removed from the spool).
func (s *Spool) Peek() (rec []byte, corrupt int) {
	for {
		s.mu.Lock()
		if s.records == 0 || len(s.segs) == 0 {
			s.mu.Unlock()
			return nil, corrupt
		}
		seg := s.segs[0]
		if s.read >= seg.records && len(s.segs) > 1 {
			s.dropHead()
			s.mu.Unlock()
			continue
		}
		if s.r == nil || s.rseq != seg.seq {
			if s.r != nil {
				_ = s.r.Close()
			}
			f, err := os.Open(s.path(seg.seq))
			if err != nil {
				corrupt += s.loseHead()
				s.mu.Unlock()
				continue
			}
			s.r, s.rseq = f, seg.seq
		}
		r, off, size := s.r, s.roff, seg.size
		s.mu.Unlock()
		// Read outside the lock: bytes below size are written for good.
		rec, _, err := readRecord(r, size, off, s.rbuf[:0])
		if err == nil {
			s.rbuf = rec
			return rec, corrupt
		}
		s.mu.Lock()
		if len(s.segs) > 0 && s.segs[0] == seg {
			corrupt += s.loseHead()
		}
		s.mu.Unlock()
	}
}

// loseHead drops the rest of segment 0 as corrupt; s.mu is held.
func (s *Spool) loseHead() int {
	seg := s.segs[0]
	n := seg.records - s.read
	s.st.Corrupt += uint64(n)
	s.records -= uint64(n)
	s.read = seg.records
	if len(s.segs) == 1 {
		// The segment written: start a new one for what comes next.
		if s.w != nil {
			_ = s.w.Close()
			s.w = nil
		}
		s.removeHead()
		s.segs = nil
		return n
	}
	s.dropHead()
	return n
}

// dropHead removes segment 0, all of it read; s.mu is held.
func (s *Spool) dropHead() {
	s.removeHead()
	s.segs = s.segs[1:]
	s.roff, s.read = int64(len(spoolMagic)), 0
}

func (s *Spool) removeHead() {
	seg := s.segs[0]
	if s.r != nil && s.rseq == seg.seq {
		_ = s.r.Close()
		s.r = nil
	}
	_ = os.Remove(s.path(seg.seq))
	s.bytes -= seg.size
}

// Advance takes the record Peek returned out of the spool.
func (s *Spool) Advance() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.records == 0 || len(s.segs) == 0 {
		return
	}
	s.roff += int64(spoolHeader + len(s.rbuf))
	s.read++
	s.records--
	seg := s.segs[0]
	if s.read < seg.records {
		return
	}
	if len(s.segs) > 1 {
		s.dropHead()
		return
	}
	// The segment written, all read: empty it for reuse.
	if s.w != nil && s.w.Truncate(int64(len(spoolMagic))) == nil {
		s.bytes -= seg.size - int64(len(spoolMagic))
		seg.size, seg.records = int64(len(spoolMagic)), 0
		s.roff, s.read = int64(len(spoolMagic)), 0
	}
}

// Close saves front (records older than everything spooled, in order: what
// was still queued in memory) in front of the spool, together with the
// unread rest of the oldest segment, syncs and closes the files. It
// returns how many of front it saved; the others are the caller's to
// count as dropped.
func (s *Spool) Close(front [][]byte) (saved int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		if s.w != nil {
			_ = s.w.Sync()
			_ = s.w.Close()
			s.w = nil
		}
		if s.r != nil {
			_ = s.r.Close()
			s.r = nil
		}
		syncDir(s.cfg.Dir)
	}()
	partial := len(s.segs) > 0 && s.read > 0
	if len(front) == 0 && !partial {
		return 0, nil
	}
	// (The size cap is not applied here: it is exceeded by at most the
	// in-memory queue's bound.)
	buf := []byte(spoolMagic)
	for _, rec := range front {
		buf = appendRecord(buf, rec)
	}
	saved = len(front)
	n := saved
	if partial {
		seg := s.segs[0]
		rest := make([]byte, seg.size-s.roff)
		f, err := os.Open(s.path(seg.seq))
		if err == nil {
			_, err = f.ReadAt(rest, s.roff)
			_ = f.Close()
		}
		if err != nil {
			return 0, fmt.Errorf("spool: %w", err)
		}
		buf = append(buf, rest...)
		n += seg.records - s.read
	}
	if n == 0 {
		return 0, nil
	}
	seq := uint64(firstSeq)
	if len(s.segs) > 0 {
		seq = s.segs[0].seq
		if !partial {
			seq--
		}
	}
	tmp := filepath.Join(s.cfg.Dir, "front.tmp")
	if err := writeSynced(tmp, buf); err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(tmp, s.path(seq)); err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("spool: %w", err)
	}
	if partial && len(s.segs) == 1 && s.w != nil {
		// The renamed file replaced the segment being written.
		_ = s.w.Close()
		s.w = nil
	}
	s.records += uint64(saved)
	return saved, nil
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
