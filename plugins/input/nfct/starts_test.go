package nfct

import (
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
)

// TestStartEntrySize: the compact entry is 16 bytes and holds no pointer.
func TestStartEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(startEntry{}); n != 16 {
		t.Errorf("startEntry is %d bytes, want 16", n)
	}
}

// TestStartTableModel runs random track/take/lookup operations against a
// map, through several doublings, with fingerprints that share their
// conntrack id (the hash bits must tell them apart) and their home slots.
func TestStartTableModel(t *testing.T) {
	s := newStartTable(16)
	model := map[uint64]timeval{}
	rng := rand.New(rand.NewPCG(1, 2))
	fps := make([]uint64, 5000)
	for i := range fps {
		// Few ids: many fingerprints share one.
		fps[i] = uint64(rng.IntN(64)+1)<<32 | uint64(rng.Uint32())
	}
	for step := range 200000 {
		fp := fps[rng.IntN(len(fps))]
		switch rng.IntN(3) {
		case 0:
			start := timeval{sec: uint32(step + 1), usec: uint32(step % 1000000)}
			got, ok, _ := s.track(fp, start, 1<<30)
			if !ok {
				t.Fatal("track: full")
			}
			if want, known := model[fp]; known {
				if got != want {
					t.Fatalf("step %d: track of a known flow = %v, want %v", step, got, want)
				}
			} else {
				model[fp] = start
			}
		case 1:
			got, ok := s.takeFP(fp)
			want, known := model[fp]
			if ok != known || got != want {
				t.Fatalf("step %d: take = %v %v, want %v %v", step, got, ok, want, known)
			}
			delete(model, fp)
		default:
			got, ok := s.lookup(fp)
			want, known := model[fp]
			if ok != known || got != want {
				t.Fatalf("step %d: lookup = %v %v, want %v %v", step, got, ok, want, known)
			}
		}
		if n, _ := s.counts(); n != len(model) {
			t.Fatalf("step %d: %d flows, model %d", step, n, len(model))
		}
	}
	if len(s.slots) < 2*len(model) {
		t.Errorf("%d slots for %d flows: more than half full", len(s.slots), len(model))
	}
}

// takeFP is take by fingerprint.
func (s *startTable) takeFP(fp uint64) (timeval, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remove(fp)
}

// TestStartTableGrowsAndBounds: the table doubles when half full and
// refuses new flows beyond room, reporting the first refusal once.
func TestStartTableGrowsAndBounds(t *testing.T) {
	s := newStartTable(4)
	if len(s.slots) != minSlots {
		t.Fatalf("%d slots, want %d", len(s.slots), minSlots)
	}
	for i := range 1000 {
		if _, ok, _ := s.track(uint64(i+1)<<32, timeval{sec: 1}, 1000); !ok {
			t.Fatalf("flow %d refused", i)
		}
	}
	if len(s.slots) != 2048 {
		t.Errorf("%d slots for 1000 flows, want 2048", len(s.slots))
	}
	_, ok, first := s.track(1001<<32, timeval{sec: 1}, 1000)
	_, ok2, first2 := s.track(1002<<32, timeval{sec: 1}, 1000)
	if _, u := s.counts(); ok || ok2 || !first || first2 || u != 2 {
		t.Errorf("beyond room: ok %v %v, first %v %v, untracked %d", ok, ok2, first, first2, u)
	}
	// A known flow is found even when there is no room.
	if _, ok, _ := s.track(5<<32, timeval{sec: 9}, 0); !ok {
		t.Error("known flow refused")
	}
}

// TestStartTablePass: a resync pass removes exactly the flows neither
// tracked nor marked during it.
func TestStartTablePass(t *testing.T) {
	s := newStartTable(16)
	for i := range 3000 {
		s.track(uint64(i+1)<<32|uint64(i*7919), timeval{sec: 1, usec: 999999}, 1<<20)
	}
	s.beginPass()
	kept := 0
	for i := range 3000 {
		if i%3 == 0 {
			if !s.mark(uint64(i+1)<<32 | uint64(i*7919)) {
				t.Fatalf("flow %d not found", i)
			}
			kept++
		}
	}
	s.track(99999<<32, timeval{sec: 2}, 1<<20) // new during the pass
	kept++
	if n := s.endPass(); n != 3000-(kept-1) {
		t.Errorf("endPass removed %d, want %d", n, 3000-(kept-1))
	}
	if n, _ := s.counts(); n != kept {
		t.Errorf("%d flows left, want %d", n, kept)
	}
	for i := range 3000 {
		st, ok := s.lookup(uint64(i+1)<<32 | uint64(i*7919))
		if ok != (i%3 == 0) || (ok && st != (timeval{sec: 1, usec: 999999})) {
			t.Fatalf("flow %d after the pass: %v %v", i, st, ok)
		}
	}
}

// TestStartTableNoAllocs: tracking and taking flows allocates nothing
// once the table has its size.
func TestStartTableNoAllocs(t *testing.T) {
	ft := newFlowTable(16, 1<<20)
	s := newStartTable(1024)
	evs := make([]ctnl.Event, 256)
	for i := range evs {
		evs[i] = *tcpEvent(ctnl.New, uint16(i+1))
		evs[i].ID, evs[i].HasID = uint32(i+1), true
	}
	run := func() {
		for i := range evs {
			fp, _ := fingerprint(ft, &evs[i])
			s.track(fp, timeval{sec: 1}, 1<<20)
		}
		for i := range evs {
			if _, ok := s.take(ft, &evs[i]); !ok {
				t.Fatal("flow not found")
			}
		}
	}
	run()
	if a := testing.AllocsPerRun(100, run); a != 0 {
		t.Errorf("%v allocations per run", a)
	}
}

// TestFingerprint: events without an id have none; the same flow has the
// same fingerprint; the tuple tells apart flows with the same id.
func TestFingerprint(t *testing.T) {
	ft := newFlowTable(16, 16)
	a, b := tcpEvent(ctnl.New, 1), tcpEvent(ctnl.Destroy, 2)
	a.HasID = false
	if _, ok := fingerprint(ft, a); ok {
		t.Error("fingerprint without an id")
	}
	a.ID, a.HasID, b.ID, b.HasID = 7, true, 7, true
	fa, _ := fingerprint(ft, a)
	fb, _ := fingerprint(ft, b)
	d := *a
	d.Type = ctnl.Destroy
	fd, _ := fingerprint(ft, &d)
	if fa == fb || fa != fd || fa>>32 != 7 {
		t.Errorf("fingerprints %#x %#x %#x", fa, fb, fd)
	}
}

// TestStartTableMemory: filling the table with 500,000 flows grows the
// resident set by at most 64 bytes per flow: the entries' 16 bytes, the
// free half of the slots, and nothing of the arrays it outgrew.
func TestStartTableMemory(t *testing.T) {
	const flows = 500000
	s := newStartTable(16)
	before := residentKB(t)
	for i := range flows {
		if _, ok, _ := s.track(uint64(i+1)<<32|uint64(i), timeval{sec: 1}, flows); !ok {
			t.Fatal("refused")
		}
	}
	grown := (residentKB(t) - before) * 1024
	t.Logf("%d flows: resident set +%d KiB, %d bytes per flow, %d slots", flows, grown/1024, grown/flows, len(s.slots))
	if grown > 64*flows {
		t.Errorf("%d bytes per flow, want at most 64", grown/flows)
	}
	runtime.KeepAlive(s)
}

// residentKB is VmRSS of this process.
func residentKB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no VmRSS")
	return 0
}
