package nfct

// The compact part of hash mode's flow table. A flow learned from a NEW or
// UPDATE event needs nothing in its DESTROY record but its start time: the
// DESTROY event carries the tuples, counters, mark and id. So such a flow
// is kept as one 16-byte entry, its fingerprint (conntrack id and 32 bits
// of the keyed tuple hash) and its start time, in an open-addressing table
// without pointers: 32 bytes per flow when half full, 64 just after the
// table doubled. Flows learned from a dump keep a full entry (flowtable.go),
// which the silent sweep and polling need.

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
)

// startEntry is one flow: fp 0 marks an empty slot.
type startEntry struct {
	fp  uint64 // conntrack id << 32 | low 32 bits of the tuple hash
	sec uint32
	// usec (20 bits) | epoch << 20: the resync pass that last saw the flow.
	usecEpoch uint32
}

const (
	usecBits  = 20
	usecMask  = 1<<usecBits - 1
	epochMask = 1<<(32-usecBits) - 1
)

// startTable holds the flows learned from events. All methods are safe for
// concurrent use.
type startTable struct {
	mu        sync.Mutex
	slots     []startEntry // in mem, unless mapping failed
	mem       *mapping
	shift     uint // home slot = mixed fp >> shift
	n         int
	epoch     uint32
	seed      uint64
	untracked uint64
}

func newStartTable(buckets int) *startTable {
	s := &startTable{seed: rand.Uint64() | 1, mem: new(mapping)}
	runtime.AddCleanup(s, (*mapping).unmap, s.mem)
	s.resize(slotsFor(buckets))
	return s
}

// fingerprint identifies ev's flow: its conntrack id (distinct among live
// flows but for the rare 32-bit collision) and 32 bits of its tuple's
// keyed hash, which separate flows whose ids collide. ok is false for an
// event without an id: its flow goes to the full table.
func fingerprint(t *flowTable, ev *ctnl.Event) (fp uint64, ok bool) {
	if !ev.HasID || ev.ID == 0 {
		return 0, false
	}
	k := keyOf(ev)
	return uint64(ev.ID)<<32 | t.hash(&k)&0xffffffff, true
}

func (s *startTable) home(fp uint64) uint64 { return mix(fp^s.seed, 0x9e3779b97f4a7c15) >> s.shift }

// resize moves the flows into a new array of size slots. The arrays are
// mapped from the kernel rather than allocated by Go: the old one is
// unmapped at once, where the garbage collector would keep it (and the
// runtime its pages) for a while, so that the resident set follows the
// table; and the entries hold no pointer, so nothing needs scanning.
func (s *startTable) resize(size int) {
	old, oldMem := s.slots, s.mem.b
	s.mem.b, s.slots = mapEntries(size)
	s.shift = shiftFor(size)
	rehash(s.slots, old, func(e startEntry) uint64 { return s.home(e.fp) })
	if oldMem != nil {
		unix.Munmap(oldMem)
	}
}

// mapping is the table's mapped memory, unmapped when the table becomes
// unreachable.
type mapping struct{ b []byte }

func (m *mapping) unmap() {
	if m.b != nil {
		unix.Munmap(m.b)
	}
}

// mapEntries returns a zeroed array of n entries in anonymous memory, and
// that memory (nil when the mapping failed and Go allocated the array).
func mapEntries(n int) ([]byte, []startEntry) {
	mem, err := unix.Mmap(-1, 0, n*int(unsafe.Sizeof(startEntry{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, make([]startEntry, n)
	}
	return mem, unsafe.Slice((*startEntry)(unsafe.Pointer(&mem[0])), n)
}

// find returns the slot of fp, or the empty slot ending its probe run and
// false.
func (s *startTable) find(fp uint64) (uint64, bool) {
	mask := uint64(len(s.slots) - 1)
	for i := s.home(fp); ; i = (i + 1) & mask {
		switch s.slots[i].fp {
		case fp:
			return i, true
		case 0:
			return i, false
		}
	}
}

// track records the flow fp started at start unless it is known, and
// marks it seen by the current resync pass. It returns the flow's start;
// ok is false when the flow is new and room is at most 0 (the table is
// full), and first reports whether that is the first such flow.
func (s *startTable) track(fp uint64, start timeval, room int) (got timeval, ok, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := s.find(fp)
	if found {
		return s.seen(i), true, false
	}
	if room <= s.n {
		s.untracked++
		return start, false, s.untracked == 1
	}
	if 2*(s.n+1) > len(s.slots) {
		s.resize(2 * len(s.slots))
		i, _ = s.find(fp)
	}
	s.slots[i] = startEntry{fp: fp, sec: start.sec, usecEpoch: start.usec&usecMask | s.epoch<<usecBits}
	s.n++
	return start, true, false
}

// take removes ev's flow and returns its start. The fingerprint (keyed
// with ft's hash) is computed only when the table holds flows.
func (s *startTable) take(ft *flowTable, ev *ctnl.Event) (timeval, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return timeval{}, false
	}
	fp, ok := fingerprint(ft, ev)
	if !ok {
		return timeval{}, false
	}
	return s.remove(fp)
}

// remove removes the flow fp and returns its start; the caller holds mu.
func (s *startTable) remove(fp uint64) (timeval, bool) {
	i, found := s.find(fp)
	if !found {
		return timeval{}, false
	}
	start := s.slots[i].start()
	s.delete(i)
	return start, true
}

// lookup returns the start of flow fp.
func (s *startTable) lookup(fp uint64) (timeval, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, found := s.find(fp); found {
		return s.slots[i].start(), true
	}
	return timeval{}, false
}

// delete empties slot i; later entries of its probe run move back so that
// no lookup stops short at the hole.
func (s *startTable) delete(i uint64) {
	s.n--
	mask := uint64(len(s.slots) - 1)
	for j := i; ; {
		j = (j + 1) & mask
		e := s.slots[j]
		if e.fp == 0 {
			break
		}
		// e stays if its home lies cyclically in (i, j].
		if h := s.home(e.fp); (i <= j && i < h && h <= j) || (i > j && (i < h || h <= j)) {
			continue
		}
		s.slots[i] = e
		i = j
	}
	s.slots[i] = startEntry{}
}

// beginPass starts a resync pass: flows not marked seen (by track or
// mark) before endPass are removed by it.
func (s *startTable) beginPass() {
	s.mu.Lock()
	s.epoch = (s.epoch + 1) & epochMask
	s.mu.Unlock()
}

// mark marks the flow fp seen by the current pass; it reports whether the
// table holds it.
func (s *startTable) mark(fp uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := s.find(fp)
	if found {
		s.seen(i)
	}
	return found
}

// seen marks the flow in slot i seen by the current pass and returns its
// start.
func (s *startTable) seen(i uint64) timeval {
	e := &s.slots[i]
	e.usecEpoch = e.usecEpoch&usecMask | s.epoch<<usecBits
	return e.start()
}

func (e *startEntry) start() timeval { return timeval{sec: e.sec, usec: e.usecEpoch & usecMask} }

// endPass removes the flows the pass did not see and returns how many.
func (s *startTable) endPass() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	removed := 0
	for i := range s.slots {
		// A deletion moves a later entry into slot i: check it again.
		for e := &s.slots[i]; e.fp != 0 && e.usecEpoch>>usecBits != s.epoch; {
			s.delete(uint64(i))
			removed++
		}
	}
	return removed
}

// counts returns the number of flows, and how many flows were not tracked
// because the table was full.
func (s *startTable) counts() (n int, untracked uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, s.untracked
}
