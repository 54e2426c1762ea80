package nfct

// The flow table's mechanics: an open-addressing hash table of flow
// entries, keyed with a random seed. What a flow is and what events do to
// it is in flows.go.

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"sync"
)

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
