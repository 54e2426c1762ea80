package sinkq

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// spoolWriter starts a Writer whose queue (maxRecords in memory) spools
// into dir, to a memServer.
func spoolWriter(t *testing.T, srv *memServer, dir string, maxRecords int, spoolBytes int64) (*Queue, *Writer, *bytes.Buffer) {
	t.Helper()
	sp, err := OpenSpool(SpoolConfig{Dir: dir, MaxBytes: spoolBytes, SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	q := New(Config{MaxRecords: maxRecords, MaxBytes: 4096, Policy: SpoolPolicy, Overflow: sp})
	log := &bytes.Buffer{}
	w := NewWriter(q, WriterConfig{Dial: srv.dial, Peer: "mem:1", StartAnyway: true,
		Log:   slog.New(slog.NewTextHandler(log, nil)),
		Texts: Texts{Full: "queue full", SendError: "failure sending", Redial: "can't reconnect", Connected: "connected", DropStop: "dropped in all"}})
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return q, w, log
}

// outage makes the server's current peer go away and refuse new ones.
func outage(srv *memServer) {
	srv.mu.Lock()
	srv.refuse = true
	p := srv.peers[len(srv.peers)-1]
	srv.mu.Unlock()
	for len(srv.dialled) > 0 {
		<-srv.dialled
	}
	close(p.gone)
}

func peerBack(srv *memServer) {
	srv.mu.Lock()
	srv.refuse = false
	srv.mu.Unlock()
}

// wantAscending checks that got is in order (with gaps: the drops).
func wantAscending(t *testing.T, got []int) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("seq %d after %d", got[i], got[i-1])
		}
	}
}

// pushAtRate pushes records from..to at 5000 a second of the bubble's
// time, in bursts of 50 every 10 ms.
func pushAtRate(w *Writer, from, to int) (taken int) {
	for i := from; i < to; i++ {
		if w.Push(rec(i, 24+i%32)) {
			taken++
		}
		if (i+1)%50 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return taken
}

// TestSpoolLosesNothingAndKeepsOrder: the peer is down for 8 s while 5000
// records a second arrive; a queue of 64 records spools the rest, and once
// the peer is back every record arrives, in order.
func TestSpoolLosesNothingAndKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		srv := newServer()
		q, w, _ := spoolWriter(t, srv, dir, 64, 0)
		pushAtRate(w, 0, 1000)
		synctest.Wait()
		outage(srv)
		pushAtRate(w, 1000, 41000) // 8 s
		if s := checkInvariant(t, q); s.Spooled < 40000-64 || s.Dropped != 0 {
			t.Fatalf("during the outage: %+v", s)
		}
		peerBack(srv)
		pushAtRate(w, 41000, 46000) // 1 s more, spooled behind the rest
		time.Sleep(time.Minute)
		synctest.Wait()
		wantSeqs(t, srv.received(), 0, 46000)
		if err := w.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s := checkInvariant(t, q); s.Written != 46000 || s.Dropped != 0 || s.Spooled != 0 {
			t.Fatalf("%+v", s)
		}
		if ents, _ := os.ReadDir(dir); len(ents) > 1 {
			t.Errorf("%d files left in the spool", len(ents))
		}
	})
}

// TestDropLosesWhatItCounts: the same outage under drop: the records that
// arrive are in order and exactly the dropped ones are missing.
func TestDropLosesWhatItCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, q, w, _ := startWriter(t, Config{MaxRecords: 64, MaxBytes: 4096, Policy: Drop}, false)
		pushAtRate(w, 0, 1000)
		synctest.Wait()
		outage(srv)
		taken := pushAtRate(w, 1000, 41000)
		peerBack(srv)
		<-srv.dialled
		synctest.Wait() // the 64 queued records are sent before more come
		pushAtRate(w, 41000, 46000)
		time.Sleep(time.Minute)
		synctest.Wait()
		if err := w.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		got := srv.received()
		s := checkInvariant(t, q)
		if uint64(len(got)) != s.Written || s.Written+s.Dropped != 46000 || s.Dropped != uint64(40000-taken) {
			t.Fatalf("%+v, %d received, %d of the outage's taken", s, len(got), taken)
		}
		wantAscending(t, got)
		if taken != 64 {
			t.Errorf("%d records queued during the outage, want the queue's 64", taken)
		}
	})
}

// TestSpoolSurvivesRestart: the writer stops while the peer is down; what
// was queued in memory and spooled goes to disk and, after a new start on
// the same directory, arrives in order before what comes next.
func TestSpoolSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		srv := newServer()
		q, w, log := spoolWriter(t, srv, dir, 64, 0)
		pushAtRate(w, 0, 100)
		synctest.Wait()
		outage(srv)
		pushAtRate(w, 100, 5000)
		if err := w.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s := checkInvariant(t, q); s.Written != 100 || s.Dropped != 0 || s.Spooled != 4900 || s.Depth != 0 {
			t.Fatalf("at stop: %+v", s)
		}
		if !bytes.Contains(log.Bytes(), []byte("records spooled for the next start")) {
			t.Errorf("no notice of the spooled records:\n%s", log)
		}

		// The next start, the peer back.
		srv2 := newServer()
		q2, w2, _ := spoolWriter(t, srv2, dir, 64, 0)
		// The new writer may already have moved the oldest spooled
		// records back into memory, and sent some (it runs beside this
		// goroutine): together they are the 4900.
		if s := q2.Stats(); s.Enqueued != 4900 || s.Spooled+s.Depth+s.Written != 4900 || s.Dropped != 0 {
			t.Fatalf("after the restart: %+v", s)
		}
		pushAtRate(w2, 5000, 6000)
		time.Sleep(time.Minute)
		synctest.Wait()
		wantSeqs(t, srv2.received(), 100, 6000)
		if err := w2.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s := checkInvariant(t, q2); s.Written != 5900 || s.Dropped != 0 {
			t.Fatalf("%+v", s)
		}
	})
}

// TestSpoolRestartMidReplay: stopped while replaying (part of the oldest
// segment sent), the next start sends the rest once, in order.
func TestSpoolRestartMidReplay(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		srv := newServer()
		_, w, _ := spoolWriter(t, srv, dir, 16, 0)
		synctest.Wait()
		outage(srv)
		pushAtRate(w, 0, 2000)
		srv.mu.Lock()
		srv.failAt = 300 // the peer takes 300 records, then fails
		srv.mu.Unlock()
		peerBack(srv)
		<-srv.dialled
		synctest.Wait()
		srv.mu.Lock()
		srv.refuse = true
		srv.mu.Unlock()
		if err := w.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		first := srv.received()
		wantSeqs(t, first, 0, len(first))
		srv2 := newServer()
		_, w2, _ := spoolWriter(t, srv2, dir, 16, 0)
		time.Sleep(time.Minute)
		synctest.Wait()
		wantSeqs(t, srv2.received(), len(first), 2000)
		if err := w2.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSpoolFullDiskDropsCounted: on a small tmpfs the spool fills the
// disk; the records it cannot write are dropped and counted, and every
// other record arrives in order once the peer is back.
func TestSpoolFullDiskDropsCounted(t *testing.T) {
	dir := plugintest.SmallTmpfs(t, "256k")
	synctest.Test(t, func(t *testing.T) {
		srv := newServer()
		q, w, log := spoolWriter(t, srv, dir, 64, 1<<30)
		synctest.Wait()
		outage(srv)
		taken := pushAtRate(w, 0, 20000) // about 1 MiB: 4 times the disk
		s := checkInvariant(t, q)
		if s.Dropped == 0 || s.Dropped != uint64(20000-taken) || q.Spool().Stats().Refused != s.Dropped {
			t.Fatalf("full disk: %+v, %d taken, spool %+v", s, taken, q.Spool().Stats())
		}
		peerBack(srv)
		time.Sleep(time.Minute)
		synctest.Wait()
		got := srv.received()
		if len(got) != taken {
			t.Fatalf("%d received, %d taken", len(got), taken)
		}
		wantAscending(t, got)
		if err := w.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(log.Bytes(), []byte("no space left on device")) {
			t.Errorf("the drop notice lacks the disk's error:\n%s", log)
		}
	})
}

// TestSpoolSizeCap: beyond spool_size records are dropped and counted.
func TestSpoolSizeCap(t *testing.T) {
	sp, err := OpenSpool(SpoolConfig{Dir: t.TempDir(), MaxBytes: 10000, SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	q := New(Config{MaxRecords: 1, Policy: SpoolPolicy, Overflow: sp})
	taken := 0
	for i := range 1000 {
		if q.Push(rec(i, 92)) {
			taken++
		}
	}
	s := checkInvariant(t, q)
	if st := sp.Stats(); st.Bytes > 10000 || s.Dropped != uint64(1000-taken) || st.Refused != s.Dropped || taken < 90 {
		t.Fatalf("%+v, spool %+v, %d taken", s, st, taken)
	}
}

// TestSpoolCorruptionCounted: a damaged byte in a segment drops the rest
// of that segment, counted, and the other segments are replayed: damage
// found at start-up (one count per damaged segment) and while running
// (the exact records lost).
func TestSpoolCorruptionCounted(t *testing.T) {
	dir := t.TempDir()
	sp, err := OpenSpool(SpoolConfig{Dir: dir, SegmentBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if !sp.Take(rec(i, 92)) { // 10 records a segment
			t.Fatal("refused")
		}
	}
	if _, err := sp.Close(nil); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.spool"))
	if len(segs) != 10 {
		t.Fatalf("%d segments", len(segs))
	}
	// Damage record 3 of segment 2 (records 20..29) and the tail of the
	// last segment.
	b, _ := os.ReadFile(segs[2])
	b[len(spoolMagic)+3*100+20] ^= 0xff
	os.WriteFile(segs[2], b, 0o600)
	b, _ = os.ReadFile(segs[9])
	os.WriteFile(segs[9], b[:len(b)-5], 0o600)

	sp, err = OpenSpool(SpoolConfig{Dir: dir, SegmentBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	// Records 23..29 and 99 are gone.
	if st := sp.Stats(); st.Recovered != 92 || st.Corrupt != 2 {
		t.Fatalf("at open: %+v", st)
	}
	// Damage while running: the first record of segment 5 (50..59).
	b, _ = os.ReadFile(segs[5])
	b[len(spoolMagic)+1] ^= 0xff
	os.WriteFile(segs[5], b, 0o600)
	q := New(Config{MaxRecords: 1000, Policy: SpoolPolicy, Overflow: sp})
	for q.Refill() {
	}
	s := checkInvariant(t, q)
	var b2 Batch
	q.Peek(&b2, 1000)
	var got []int
	for i := range b2.Len() {
		got = append(got, seq(b2.Record(i)))
	}
	if s.Dropped != 10 || s.Depth != 82 || len(got) != 82 || got[22] != 22 || got[23] != 30 || got[43] != 60 || got[81] != 98 {
		t.Fatalf("%+v, got %v", s, got)
	}
	if st := sp.Stats(); st.Corrupt != 12 || st.Records != 0 {
		t.Fatalf("%+v", st)
	}
}

// FuzzSegmentScanner: any bytes read as a segment end cleanly or with
// ErrCorrupt, never a panic; a valid segment cut anywhere gives back the
// records that were whole.
func FuzzSegmentScanner(f *testing.F) {
	seg := []byte(spoolMagic)
	for i := range 5 {
		seg = appendRecord(seg, rec(i, 4+i*3))
	}
	f.Add(seg, uint16(len(seg)))
	f.Add(seg, uint16(20))
	f.Add([]byte(spoolMagic+"\xff\xff\xff\xff\x00\x00\x00\x00"), uint16(16))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		sc := SegmentScanner{R: bytes.NewReader(data), Size: int64(len(data))}
		for sc.Next() {
			r := sc.Record()
			if len(r) == 0 || len(r) > len(data) {
				t.Fatalf("record of %d bytes", len(r))
			}
		}
		if sc.Offset() > int64(len(data)) {
			t.Fatalf("offset %d beyond %d", sc.Offset(), len(data))
		}
		// The valid segment, cut.
		c := min(int(cut), len(seg))
		sc = SegmentScanner{R: bytes.NewReader(seg[:c]), Size: int64(c)}
		n := 0
		for sc.Next() {
			if seq(sc.Record()) != n {
				t.Fatalf("record %d is %d", n, seq(sc.Record()))
			}
			n++
		}
		want, off := 0, len(spoolMagic)
		for off < len(seg) {
			l := int(binary.LittleEndian.Uint32(seg[off:]))
			if off+spoolHeader+l > c {
				break
			}
			off += spoolHeader + l
			want++
		}
		if c < len(spoolMagic) {
			want = 0
		}
		if n != want {
			t.Fatalf("cut at %d: %d records, want %d", c, n, want)
		}
	})
}

// TestSpoolRecordLongerThanQueue: a record spooled by a run with a larger
// queue than this one's is dropped and counted when read back; the
// others go on.
func TestSpoolRecordLongerThanQueue(t *testing.T) {
	dir := t.TempDir()
	sp, err := OpenSpool(SpoolConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []int{10, 3000, 10} {
		if !sp.Take(rec(i, n)) {
			t.Fatal("refused")
		}
	}
	if _, err := sp.Close(nil); err != nil {
		t.Fatal(err)
	}
	if sp, err = OpenSpool(SpoolConfig{Dir: dir, MaxRecord: 1000}); err != nil {
		t.Fatal(err)
	}
	q := New(Config{MaxRecords: 10, MaxBytes: 1000, Policy: SpoolPolicy, Overflow: sp})
	if q.Refill() {
		t.Fatal("records left in the spool")
	}
	var b Batch
	q.Peek(&b, 10)
	if s := checkInvariant(t, q); s.Dropped != 1 || b.Len() != 2 || seq(b.Record(0)) != 0 || seq(b.Record(1)) != 2 {
		t.Fatalf("%+v, %d records", s, b.Len())
	}
}
