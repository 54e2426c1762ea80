package nfct

import (
	"sync"

	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
)

// flowKey identifies a conntrack entry: its original-direction tuple and
// its zone. It is a fixed-size value, so looking it up in a map does not
// allocate.
type flowKey struct {
	src, dst           [16]byte
	sport, dport       uint16 // as decoded (also GRE keys)
	icmpID             uint16
	icmpType, icmpCode uint8
	proto, family      uint8
	zone               uint16
	hasPorts, hasICMP  bool
}

// keyOf builds the table key of ev.
func keyOf(ev *ctnl.Event) flowKey {
	k := flowKey{
		proto:  ev.Orig.Proto,
		family: ev.Family,
		zone:   ev.Zone,
	}
	copy(k.src[:], ev.Orig.Src)
	copy(k.dst[:], ev.Orig.Dst)
	k.sport, k.dport, k.hasPorts = ev.Orig.SrcPort, ev.Orig.DstPort, ev.Orig.HasPorts
	if ev.Orig.HasICMP {
		k.hasICMP = true
		k.icmpType, k.icmpCode, k.icmpID = ev.Orig.ICMPType, ev.Orig.ICMPCode, ev.Orig.ICMPID
	}
	return k
}

// addrLen is the address length of an address family.
func addrLen(family uint8) int {
	if family == afInet6 {
		return 16
	}
	return 4
}

// Address families (AF_INET, AF_INET6).
const (
	afInet  = 2
	afInet6 = 10
)

// flow is one table entry: a private copy of the last event seen for the
// flow, and the time it started.
type flow struct {
	ev    ctnl.Event // Src/Dst slices point into addrs
	addrs [4][16]byte
	start timeval
	gen   uint64 // distinguishes successive uses of the same entry
	// silent marks a flow learned from a dump and not confirmed by any
	// event since. The kernel attaches its event cache to a conntrack entry
	// only if a ctnetlink listener exists when the entry is created, so a
	// flow that predates every listener never sends a DESTROY event: the
	// silent sweep asks the kernel about these flows instead.
	silent bool
	next   *flow // free list
}

// set copies ev into f, including the addresses.
func (f *flow) set(ev *ctnl.Event) {
	f.ev = *ev
	f.ev.Orig.Src = append(f.addrs[0][:0], ev.Orig.Src...)
	f.ev.Orig.Dst = append(f.addrs[1][:0], ev.Orig.Dst...)
	f.ev.Reply.Src = append(f.addrs[2][:0], ev.Reply.Src...)
	f.ev.Reply.Dst = append(f.addrs[3][:0], ev.Reply.Dst...)
}

// refresh updates f from a later event of the same flow. Counters are kept
// when the event carries none.
func (f *flow) refresh(ev *ctnl.Event) {
	op, ob, rp, rb, has := f.ev.OrigPackets, f.ev.OrigBytes, f.ev.ReplyPackets, f.ev.ReplyBytes, f.ev.HasCounters
	f.set(ev)
	if !ev.HasCounters && has {
		f.ev.OrigPackets, f.ev.OrigBytes, f.ev.ReplyPackets, f.ev.ReplyBytes, f.ev.HasCounters = op, ob, rp, rb, has
	}
}

// flowRef names a table entry as it was when a purge pass took its
// snapshot.
type flowRef struct {
	key flowKey
	gen uint64
}

// flowTable is ulogd's userspace conntrack table (hash mode). All methods
// are safe for concurrent use.
type flowTable struct {
	mu   sync.Mutex
	m    map[flowKey]*flow
	max  int
	free *flow
	gen  uint64

	// untracked counts flows that were not tracked because the table was
	// full; the caller notices the first one.
	untracked uint64
}

// slabSize is how many entries are allocated at once.
const slabSize = 256

// newFlowTable makes a table holding at most limit flows. The map is
// sized up front for the limit (up to 64 Ki entries, or hash_buckets when
// larger) so that inserts rarely grow it.
func newFlowTable(buckets, limit int) *flowTable {
	hint := limit
	if hint > 1<<16 {
		hint = max(buckets, 1<<16)
	}
	return &flowTable{m: make(map[flowKey]*flow, hint), max: limit}
}

func (t *flowTable) alloc() *flow {
	if t.free == nil {
		slab := make([]flow, slabSize)
		for i := range slab {
			slab[i].next = t.free
			t.free = &slab[i]
		}
	}
	f := t.free
	t.free = f.next
	f.next = nil
	t.gen++
	f.gen = t.gen
	return f
}

func (t *flowTable) release(f *flow) {
	f.ev = ctnl.Event{}
	f.silent = false
	f.next = t.free
	t.free = f
}

// Len returns the number of tracked flows.
func (t *flowTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// upsert inserts ev's flow or refreshes its stored copy. A new entry starts
// at the kernel's start timestamp, or now when there is none. It returns
// false when the flow is new and the table is full: the flow is not
// tracked, and first reports whether that is the first such flow.
func (t *flowTable) upsert(ev *ctnl.Event, now timeval) (ok, first bool) {
	_, ok, first = t.upsertStart(ev, now)
	return ok, first
}

// upsertStart is upsert that also returns the flow's start time (the
// kernel's, when the flow could not be tracked).
func (t *flowTable) upsertStart(ev *ctnl.Event, now timeval) (start timeval, ok, first bool) {
	return t.upsertFrom(ev, now, false)
}

// learn is upsert for a flow seen in a dump rather than in an event: a new
// entry is marked silent until an event confirms it.
func (t *flowTable) learn(ev *ctnl.Event, now timeval) (ok, first bool) {
	_, ok, first = t.upsertFrom(ev, now, true)
	return ok, first
}

// learnStart is learn that also returns the flow's start time.
func (t *flowTable) learnStart(ev *ctnl.Event, now timeval) (start timeval, ok, first bool) {
	return t.upsertFrom(ev, now, true)
}

func (t *flowTable) upsertFrom(ev *ctnl.Event, now timeval, dumped bool) (start timeval, ok, first bool) {
	k := keyOf(ev)
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.m[k]; f != nil {
		f.refresh(ev)
		if !dumped {
			f.silent = false
		}
		if f.start.sec == 0 {
			f.start = startOf(ev).or(now)
		}
		return f.start, true, false
	}
	if len(t.m) >= t.max {
		t.untracked++
		return startOf(ev), false, t.untracked == 1
	}
	f := t.alloc()
	f.set(ev)
	f.start = startOf(ev).or(now)
	f.silent = dumped
	t.m[k] = f
	return f.start, true, false
}

// Untracked returns how many flows were not tracked because the table was
// full.
func (t *flowTable) Untracked() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.untracked
}

// take removes ev's flow and returns its start time. ok is false when the
// flow was not in the table.
func (t *flowTable) take(ev *ctnl.Event) (start timeval, ok bool) {
	k := keyOf(ev)
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[k]
	if f == nil {
		return timeval{}, false
	}
	delete(t.m, k)
	start = f.start
	t.release(f)
	return start, true
}

// lookupStart returns the stored start time of ev's flow.
func (t *flowTable) lookupStart(ev *ctnl.Event) (timeval, bool) {
	k := keyOf(ev)
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.m[k]; f != nil {
		return f.start, true
	}
	return timeval{}, false
}

// snapshot appends a reference to every entry to dst.
func (t *flowTable) snapshot(dst []flowRef) []flowRef {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, f := range t.m {
		dst = append(dst, flowRef{key: k, gen: f.gen})
	}
	return dst
}

// snapshotSilent appends a reference to every silent entry to dst.
func (t *flowTable) snapshotSilent(dst []flowRef) []flowRef {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, f := range t.m {
		if f.silent {
			dst = append(dst, flowRef{key: k, gen: f.gen})
		}
	}
	return dst
}

// probe fills ev with the original tuple and zone of ref, for a kernel
// lookup; the addresses alias ref.
func (ref *flowRef) probe(ev *ctnl.Event) {
	k := &ref.key
	n := addrLen(k.family)
	*ev = ctnl.Event{Family: k.family, Zone: k.zone}
	ev.Orig = ctnl.Tuple{
		Src:      k.src[:n],
		Dst:      k.dst[:n],
		Proto:    k.proto,
		SrcPort:  k.sport,
		DstPort:  k.dport,
		HasPorts: k.hasPorts,
	}
	if k.hasICMP {
		ev.Orig.HasICMP = true
		ev.Orig.ICMPType, ev.Orig.ICMPCode, ev.Orig.ICMPID = k.icmpType, k.icmpCode, k.icmpID
	}
}

// remove takes the entry ref names out of the table if it is still the
// same entry. The caller reads it and gives it back with put.
func (t *flowTable) remove(ref *flowRef) *flow {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[ref.key]
	if f == nil || f.gen != ref.gen {
		return nil
	}
	delete(t.m, ref.key)
	return f
}

// put gives back an entry obtained from remove.
func (t *flowTable) put(f *flow) {
	t.mu.Lock()
	t.release(f)
	t.mu.Unlock()
}
