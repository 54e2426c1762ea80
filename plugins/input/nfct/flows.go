package nfct

// Flow semantics: what identifies a flow (flowKey), what the table keeps
// of it (entry), and what NEW, UPDATE and DESTROY events, dumps and purges
// do to it. The hash table itself is in flowtable.go.

import (
	"golang.org/x/sys/unix"

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

// orig is the original tuple the key holds, its addresses srcLen and
// dstLen bytes long (aliasing the key).
func (k *flowKey) orig(srcLen, dstLen int) ctnl.Tuple {
	t := ctnl.Tuple{
		Src:      k.src[:srcLen],
		Dst:      k.dst[:dstLen],
		Proto:    k.proto,
		SrcPort:  k.sport,
		DstPort:  k.dport,
		HasPorts: k.hasPorts,
	}
	if k.hasICMP {
		t.HasICMP = true
		t.ICMPType, t.ICMPCode, t.ICMPID = k.icmpType, k.icmpCode, k.icmpID
	}
	return t
}

// addrLen is the address length of an address family.
func addrLen(family uint8) int {
	if family == unix.AF_INET6 {
		return 16
	}
	return 4
}

// entry is one table entry: its key (the original tuple, family and zone)
// and what a DESTROY emitted from the table needs beyond it. The reply
// tuple is stored because NAT makes it differ from the original. Status,
// timeout and use are not kept: fill does not read them. entry holds no
// pointer, so the garbage collector does not scan the table.
type entry struct {
	key      flowKey
	counters [4]uint64 // orig packets, orig bytes, reply packets, reply bytes
	gen      uint64    // distinguishes successive uses of the same entry
	nextFree uint32    // free list: the next free entry's index+1
	rsrc     [16]byte  // reply source address
	rdst     [16]byte  // reply destination address
	start    timeval
	mark, id uint32
	// rsport, rdport are the reply ports as decoded (also GRE keys).
	rsport, rdport uint16
	// lens are the lengths of the orig src, orig dst, reply src and reply
	// dst addresses: 0 (absent), 4 or 16.
	lens        [4]uint8
	rproto      uint8
	rHasPorts   bool
	hasCounters bool
	// silent marks a flow learned from a dump and not confirmed by any
	// event since. The kernel attaches its event cache to a conntrack entry
	// only if a ctnetlink listener exists when the entry is created, so a
	// flow that predates every listener never sends a DESTROY event: the
	// silent sweep asks the kernel about these flows instead.
	silent bool
}

// storedLen is the length an address is stored with: the decoder yields 0,
// 4 or 16 bytes, and fill ignores any other length.
func storedLen(b []byte) uint8 {
	if n := len(b); n == 4 || n == 16 {
		return uint8(n)
	}
	return 0
}

// set stores what fill needs of ev (beyond its key) in f.
func (f *entry) set(ev *ctnl.Event) {
	f.counters = [4]uint64{ev.OrigPackets, ev.OrigBytes, ev.ReplyPackets, ev.ReplyBytes}
	f.hasCounters = ev.HasCounters
	f.mark, f.id = ev.Mark, ev.ID
	r := &ev.Reply
	f.lens = [4]uint8{storedLen(ev.Orig.Src), storedLen(ev.Orig.Dst), storedLen(r.Src), storedLen(r.Dst)}
	f.rsrc, f.rdst = [16]byte{}, [16]byte{}
	copy(f.rsrc[:f.lens[2]], r.Src)
	copy(f.rdst[:f.lens[3]], r.Dst)
	f.rproto, f.rsport, f.rdport, f.rHasPorts = r.Proto, r.SrcPort, r.DstPort, r.HasPorts
}

// refresh updates f from a later event of the same flow. Counters are kept
// when the event carries none.
func (f *entry) refresh(ev *ctnl.Event) {
	c, has := f.counters, f.hasCounters
	f.set(ev)
	if !ev.HasCounters && has {
		f.counters, f.hasCounters = c, has
	}
}

// flow is a table entry expanded back into an event, as fill reads it, for
// a DESTROY emitted from the table.
type flow struct {
	ev    ctnl.Event // Src/Dst slices point into key and reply
	key   flowKey
	reply [2][16]byte
	start timeval
}

// expand rebuilds the last event seen for the flow of key k from its entry
// f, as far as fill reads it.
func (out *flow) expand(k *flowKey, f *entry) {
	out.key = *k
	out.reply = [2][16]byte{f.rsrc, f.rdst}
	out.start = f.start
	k = &out.key
	ev := &out.ev
	*ev = ctnl.Event{
		Type:   ctnl.Destroy,
		Family: k.family,
		Zone:   k.zone,
		Mark:   f.mark,
		ID:     f.id,
	}
	ev.OrigPackets, ev.OrigBytes, ev.ReplyPackets, ev.ReplyBytes = f.counters[0], f.counters[1], f.counters[2], f.counters[3]
	ev.HasCounters = f.hasCounters
	ev.Orig = k.orig(int(f.lens[0]), int(f.lens[1]))
	ev.Reply = ctnl.Tuple{
		Src:      out.reply[0][:f.lens[2]],
		Dst:      out.reply[1][:f.lens[3]],
		Proto:    f.rproto,
		SrcPort:  f.rsport,
		DstPort:  f.rdport,
		HasPorts: f.rHasPorts,
	}
}

// flowRef names a table entry as it was when a purge pass took its
// snapshot.
type flowRef struct {
	key flowKey
	gen uint64
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
	h := t.hash(&k)
	t.mu.Lock()
	defer t.mu.Unlock()
	slot, f := t.find(&k, h)
	if f != nil {
		f.refresh(ev)
		if !dumped {
			f.silent = false
		}
		if f.start.sec == 0 {
			f.start = startOf(ev).or(now)
		}
		return f.start, true, false
	}
	if t.n >= t.max {
		t.untracked++
		return startOf(ev), false, t.untracked == 1
	}
	f = t.insert(&k, h, slot)
	f.set(ev)
	f.start = startOf(ev).or(now)
	f.silent = dumped
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
	h := t.hash(&k)
	t.mu.Lock()
	defer t.mu.Unlock()
	i, f := t.find(&k, h)
	if f == nil {
		return timeval{}, false
	}
	start = f.start
	t.delete(i)
	return start, true
}

// lookupStart returns the stored start time of ev's flow.
func (t *flowTable) lookupStart(ev *ctnl.Event) (timeval, bool) {
	k := keyOf(ev)
	h := t.hash(&k)
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, f := t.find(&k, h); f != nil {
		return f.start, true
	}
	return timeval{}, false
}

// snapshot appends a reference to every entry to dst.
func (t *flowTable) snapshot(dst []flowRef) []flowRef {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, v := range t.slots {
		if v != 0 {
			f := t.entry(uint32(v) - 1)
			dst = append(dst, flowRef{key: f.key, gen: f.gen})
		}
	}
	return dst
}

// snapshotSilent appends a reference to every silent entry to dst.
func (t *flowTable) snapshotSilent(dst []flowRef) []flowRef {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, v := range t.slots {
		if v != 0 {
			if f := t.entry(uint32(v) - 1); f.silent {
				dst = append(dst, flowRef{key: f.key, gen: f.gen})
			}
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
	ev.Orig = k.orig(n, n)
}

// remove takes the entry ref names out of the table if it is still the
// same entry, and returns it expanded into an event. The caller reads it
// and gives it back with put before the next remove. It does not allocate.
func (t *flowTable) remove(ref *flowRef) *flow {
	h := t.hash(&ref.key)
	t.mu.Lock()
	defer t.mu.Unlock()
	i, f := t.find(&ref.key, h)
	if f == nil || f.gen != ref.gen {
		return nil
	}
	t.out.expand(&ref.key, f)
	t.delete(i)
	return &t.out
}

// put gives back the flow obtained from remove.
func (t *flowTable) put(f *flow) {
	if f != &t.out {
		panic("nfct: put of a flow not obtained from remove")
	}
	f.ev = ctnl.Event{}
}
