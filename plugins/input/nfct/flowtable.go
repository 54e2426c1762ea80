package nfct

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
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

// flowTable is ulogd's userspace conntrack table (hash mode). All methods
// are safe for concurrent use.
//
// It is an open-addressing hash table with linear probing. A slot holds the
// top 32 bits of the flow's hash (which also give its home slot) and the
// index of its entry: a probe reads 8 bytes per slot and touches an entry
// only when the hash bits match. Entries live in fixed chunks that are
// never moved or freed, linked by index when free, so they hold no pointer
// for the garbage collector to scan. The hash is keyed with a random seed
// per table: flow tuples come from the network, and a fixed hash would let
// a sender pick tuples that all collide.
type flowTable struct {
	mu     sync.Mutex
	slots  []uint64 // 0: empty; else hash>>32<<32 | entry index+1
	shift  uint     // home slot = hash >> shift
	n      int      // live flows
	max    int
	chunks [][]entry
	free   uint32 // first free entry's index+1; 0: none
	gen    uint64
	seed   [4]uint64

	// out is the expanded entry remove returns; it stays valid until put.
	// Only the maintenance goroutine removes entries.
	out flow

	// untracked counts flows that were not tracked because the table was
	// full; the caller notices the first one.
	untracked uint64
}

// chunkSize is how many entries are allocated at once.
const chunkSize = 256

// minSlots is the smallest slot array.
const minSlots = 16

// newFlowTable makes a table holding at most limit flows, with slots for
// hash_buckets flows to begin with. It doubles its slots whenever they are
// half full, so a huge limit costs nothing until flows need it.
func newFlowTable(buckets, limit int) *flowTable {
	t := &flowTable{max: limit}
	for i := range t.seed {
		t.seed[i] = rand.Uint64()
	}
	t.resize(slotsFor(min(buckets, limit)))
	return t
}

// slotsFor is the slot count for n flows: a power of two, at most half full.
func slotsFor(n int) int {
	s := minSlots
	for s < 2*n {
		s *= 2
	}
	return s
}

// resize rehashes the slots into a new array of size slots (a power of
// two holding every live flow).
func (t *flowTable) resize(size int) {
	old := t.slots
	t.slots = make([]uint64, size)
	t.shift = uint(64 - bits.TrailingZeros(uint(size)))
	mask := uint64(size - 1)
	for _, v := range old {
		if v == 0 {
			continue
		}
		i := t.home(v)
		for t.slots[i] != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = v
	}
}

// home is the home slot of slot value v (its hash's top bits).
func (t *flowTable) home(v uint64) uint64 { return v >> t.shift }

// mix is the 64×64→128-bit multiply folded to 64 bits.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// hash is k's keyed hash.
func (t *flowTable) hash(k *flowKey) uint64 {
	le := binary.LittleEndian
	meta := uint64(k.sport) | uint64(k.dport)<<16 | uint64(k.icmpID)<<32 |
		uint64(k.icmpType)<<48 | uint64(k.icmpCode)<<56
	var flags uint64
	if k.hasPorts {
		flags |= 1
	}
	if k.hasICMP {
		flags |= 2
	}
	meta2 := uint64(k.proto) | uint64(k.family)<<8 | uint64(k.zone)<<16 | flags<<32
	s := &t.seed
	h := mix(le.Uint64(k.src[0:8])^s[1], le.Uint64(k.src[8:16])^s[0])
	h = mix(le.Uint64(k.dst[0:8])^s[2], le.Uint64(k.dst[8:16])^h)
	h = mix(meta^s[3], meta2^h)
	return mix(h^s[0], s[1]^46)
}

// entry returns the entry with index i.
func (t *flowTable) entry(i uint32) *entry { return &t.chunks[i/chunkSize][i%chunkSize] }

// find returns the slot of flow k and its entry, or the empty slot that
// ends its probe sequence and nil.
func (t *flowTable) find(k *flowKey, h uint64) (slot uint64, f *entry) {
	mask := uint64(len(t.slots) - 1)
	tag := h >> 32
	for i := h >> t.shift; ; i = (i + 1) & mask {
		v := t.slots[i]
		if v == 0 {
			return i, nil
		}
		if v>>32 == tag {
			if f := t.entry(uint32(v) - 1); f.key == *k {
				return i, f
			}
		}
	}
}

// insert stores a new entry for k in slot, the empty slot where find
// missed it, and returns the entry. When the slots must grow first, it
// finds k's slot again among the new ones.
func (t *flowTable) insert(k *flowKey, h uint64, slot uint64) *entry {
	if 2*(t.n+1) > len(t.slots) {
		t.resize(2 * len(t.slots))
		slot, _ = t.find(k, h)
	}
	i := t.alloc()
	f := t.entry(i)
	f.key = *k
	t.slots[slot] = h>>32<<32 | uint64(i+1)
	t.n++
	return f
}

// delete empties slot i and releases its entry. Later entries of the probe
// run move back so that no lookup stops short at the hole.
func (t *flowTable) delete(i uint64) {
	t.release(uint32(t.slots[i]) - 1)
	t.n--
	mask := uint64(len(t.slots) - 1)
	for j := i; ; {
		j = (j + 1) & mask
		v := t.slots[j]
		if v == 0 {
			break
		}
		// v stays if its home lies cyclically in (i, j].
		if h := t.home(v); (i <= j && i < h && h <= j) || (i > j && (i < h || h <= j)) {
			continue
		}
		t.slots[i] = v
		i = j
	}
	t.slots[i] = 0
}

func (t *flowTable) alloc() uint32 {
	if t.free == 0 {
		base := uint32(len(t.chunks) * chunkSize)
		c := make([]entry, chunkSize)
		for i := chunkSize - 1; i >= 0; i-- {
			c[i].nextFree = t.free
			t.free = base + uint32(i) + 1
		}
		t.chunks = append(t.chunks, c)
	}
	i := t.free - 1
	f := t.entry(i)
	t.free = f.nextFree
	f.nextFree = 0
	t.gen++
	f.gen = t.gen
	return i
}

func (t *flowTable) release(i uint32) {
	*t.entry(i) = entry{nextFree: t.free}
	t.free = i + 1
}

// Len returns the number of tracked flows.
func (t *flowTable) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
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
