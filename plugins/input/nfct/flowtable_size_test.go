package nfct

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
)

// TestFlowEntrySize keeps the per-flow memory of hash mode small: the
// entry (with its key), plus at most two 8-byte slots.
func TestFlowEntrySize(t *testing.T) {
	var f entry
	t.Logf("entry: %d bytes", unsafe.Sizeof(f))
	if n := unsafe.Sizeof(f); n > 160 {
		t.Errorf("entry is %d bytes, want at most 160", n)
	}
}

// TestFlowExpand checks that a flow removed from the table is the stored
// event as fill reads it: NAT reply tuple, ICMP identity, absent addresses,
// IPv6.
func TestFlowExpand(t *testing.T) {
	v6a := []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}
	v6b := []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}
	evs := []ctnl.Event{
		{
			Type: ctnl.Update, Family: unix.AF_INET, Zone: 7,
			Orig:        ctnl.Tuple{Src: []byte{10, 0, 0, 1}, Dst: []byte{192, 0, 2, 1}, Proto: ctnl.ProtoTCP, SrcPort: 1234, DstPort: 80, HasPorts: true},
			Reply:       ctnl.Tuple{Src: []byte{192, 0, 2, 1}, Dst: []byte{198, 51, 100, 9}, Proto: ctnl.ProtoTCP, SrcPort: 80, DstPort: 61000, HasPorts: true},
			OrigPackets: 1, OrigBytes: 2, ReplyPackets: 3, ReplyBytes: 4, HasCounters: true,
			Mark: 0xdead, HasMark: true, ID: 42, HasID: true,
		},
		{
			Type: ctnl.New, Family: unix.AF_INET6,
			Orig:  ctnl.Tuple{Src: v6a, Dst: v6b, Proto: ctnl.ProtoICMPv6, HasICMP: true, ICMPType: 128, ICMPCode: 0, ICMPID: 77},
			Reply: ctnl.Tuple{Src: v6b, Dst: v6a, Proto: ctnl.ProtoICMPv6, HasICMP: true, ICMPType: 129, ICMPID: 77},
		},
		{
			Type: ctnl.New, Family: unix.AF_INET,
			Orig: ctnl.Tuple{Src: []byte{10, 0, 0, 2}, Proto: 47, SrcPort: 5, DstPort: 6},
		},
	}
	tb := newFlowTable(16, 16)
	for i := range evs {
		tb.upsert(&evs[i], timeval{1, 0})
	}
	refs := tb.snapshot(nil)
	if len(refs) != len(evs) {
		t.Fatalf("%d refs", len(refs))
	}
	var sl slots
	for i := range sl {
		sl[i] = keys.Slot(i)
	}
	e := newTestEmitter()
	r := e.NewRecord()
	for i := range refs {
		f := tb.remove(&refs[i])
		if f == nil {
			t.Fatal("remove")
		}
		var want *ctnl.Event
		for j := range evs {
			if keyOf(&evs[j]) == refs[i].key {
				want = &evs[j]
			}
		}
		sl.fill(r, want, eventDestroy, nil)
		exp := snapshot(r)
		r.Reset()
		sl.fill(r, &f.ev, eventDestroy, nil)
		got := snapshot(r)
		r.Reset()
		if diff := cmp.Diff(exp, got); diff != "" {
			t.Errorf("flow %d (-stored event +expanded):\n%s", i, diff)
		}
		if f.start != (timeval{1, 0}) {
			t.Errorf("start = %v", f.start)
		}
		tb.put(f)
	}
	if tb.Len() != 0 {
		t.Errorf("Len = %d", tb.Len())
	}
}

// TestFlowTableGrows checks that the slots made for hash_buckets flows
// grow up to the limit, keeping every flow and its start time, and that
// flows beyond the limit are not tracked.
func TestFlowTableGrows(t *testing.T) {
	const buckets, limit = 8, 100
	tb := newFlowTable(buckets, limit)
	if len(tb.slots) != 16 {
		t.Fatalf("%d slots for %d buckets, want 16", len(tb.slots), buckets)
	}
	ev := func(i int) *ctnl.Event {
		return &ctnl.Event{Type: ctnl.New, Family: unix.AF_INET,
			Orig: ctnl.Tuple{Src: []byte{10, 0, byte(i >> 8), byte(i)}, Dst: []byte{10, 1, 0, 1}, Proto: ctnl.ProtoTCP, SrcPort: uint16(i), DstPort: 80, HasPorts: true}}
	}
	for i := range limit + 10 {
		ok, first := tb.upsert(ev(i), timeval{uint32(1000 + i), 0})
		if ok != (i < limit) || first != (i == limit) {
			t.Fatalf("flow %d: tracked %v, first untracked %v, with limit %d", i, ok, first, limit)
		}
	}
	if len(tb.slots) != 256 || tb.Len() != limit || tb.Untracked() != 10 {
		t.Fatalf("%d slots holding %d flows, %d untracked; want 256, %d, 10", len(tb.slots), tb.Len(), tb.Untracked(), limit)
	}
	for i := range limit {
		start, ok := tb.take(ev(i))
		if !ok || start.sec != uint32(1000+i) {
			t.Fatalf("flow %d: found %v, start %d", i, ok, start.sec)
		}
	}
	if tb.Len() != 0 {
		t.Errorf("Len = %d after taking every flow", tb.Len())
	}
}

// TestFlowTableBounded checks that a huge hash_max_entries takes no memory
// before flows need it.
func TestFlowTableBounded(t *testing.T) {
	tb := newFlowTable(4, 10_000_000)
	for i := range 5 {
		tb.upsert(&ctnl.Event{Type: ctnl.New, Family: unix.AF_INET,
			Orig: ctnl.Tuple{Src: []byte{10, 0, 0, byte(i)}, Dst: []byte{10, 1, 0, 1}, Proto: ctnl.ProtoUDP, SrcPort: 1, DstPort: 2, HasPorts: true}}, timeval{1, 0})
	}
	if len(tb.slots) != 16 || len(tb.chunks) != 1 || tb.Len() != 5 {
		t.Fatalf("%d slots, %d chunks holding %d flows; want 16, 1 and 5", len(tb.slots), len(tb.chunks), tb.Len())
	}
}

// TestFlowTableModel runs random inserts, refreshes and removals on a
// small table, where probe runs collide and wrap around the slot array,
// against a Go map holding what the table should.
func TestFlowTableModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		tb := newFlowTable(4, 48)
		want := map[flowKey]timeval{}
		ev := func(i int) *ctnl.Event {
			return &ctnl.Event{Type: ctnl.New, Family: unix.AF_INET,
				Orig: ctnl.Tuple{Src: []byte{10, 0, 0, byte(i)}, Dst: []byte{10, 1, 0, 1}, Proto: ctnl.ProtoUDP, SrcPort: uint16(i), DstPort: 53, HasPorts: true}}
		}
		for op := range 3000 {
			i := rng.IntN(64)
			e := ev(i)
			k := keyOf(e)
			_, in := want[k]
			if rng.IntN(2) == 0 {
				ts := timeval{uint32(op + 1), 0}
				start, ok, _ := tb.upsertStart(e, ts)
				switch {
				case in && (!ok || start != want[k]):
					t.Fatalf("round %d op %d: refresh of flow %d = %v, %v; want %v", round, op, i, start, ok, want[k])
				case !in && ok != (len(want) < 48):
					t.Fatalf("round %d op %d: insert of flow %d tracked %v with %d flows", round, op, i, ok, len(want))
				case !in && ok:
					want[k] = ts
				}
			} else {
				start, ok := tb.take(e)
				if ok != in || (in && start != want[k]) {
					t.Fatalf("round %d op %d: take of flow %d = %v, %v; want %v, %v", round, op, i, start, ok, want[k], in)
				}
				delete(want, k)
			}
			if tb.Len() != len(want) {
				t.Fatalf("round %d op %d: Len %d, want %d", round, op, tb.Len(), len(want))
			}
		}
		refs := tb.snapshot(nil)
		if len(refs) != len(want) {
			t.Fatalf("round %d: snapshot of %d flows, want %d", round, len(refs), len(want))
		}
		for _, r := range refs {
			if _, ok := want[r.key]; !ok {
				t.Fatalf("round %d: snapshot holds a flow that is not in the table", round)
			}
		}
	}
}

// TestFlowTableSeeded checks that two tables hash the same flow
// differently: the hash is keyed.
func TestFlowTableSeeded(t *testing.T) {
	k := keyOf(&ctnl.Event{Family: unix.AF_INET, Orig: ctnl.Tuple{Src: []byte{10, 0, 0, 1}, Dst: []byte{10, 0, 0, 2}, Proto: ctnl.ProtoUDP, SrcPort: 1, DstPort: 2, HasPorts: true}})
	a, b := newFlowTable(8, 8), newFlowTable(8, 8)
	if a.hash(&k) == b.hash(&k) {
		t.Error("two tables hash a flow alike: the hash is not seeded")
	}
	if a.hash(&k) != a.hash(&k) {
		t.Error("a table hashes a flow differently twice")
	}
}

// BenchmarkFlowTable is hash mode's table work at the bench's load: a
// window of live flows (2000: 20k flows/s, each ending 0.1 s after it
// began), one NEW stored and one DESTROY taken per op, in a table sized by
// the default hash_buckets and hash_max_entries.
func BenchmarkFlowTable(b *testing.B) {
	const window, distinct = 2000, 1 << 16
	evs := make([]ctnl.Event, distinct)
	for i := range evs {
		evs[i] = ctnl.Event{Type: ctnl.New, Family: unix.AF_INET,
			Orig:  ctnl.Tuple{Src: []byte{10, byte(i >> 16), byte(i >> 8), byte(i)}, Dst: []byte{10, 9, 0, 1}, Proto: ctnl.ProtoUDP, SrcPort: uint16(1024 + i), DstPort: 53, HasPorts: true},
			Reply: ctnl.Tuple{Src: []byte{10, 9, 0, 1}, Dst: []byte{10, byte(i >> 16), byte(i >> 8), byte(i)}, Proto: ctnl.ProtoUDP, SrcPort: 53, DstPort: uint16(1024 + i), HasPorts: true}}
	}
	tb := newFlowTable(8192, 32768)
	now := timeval{1, 0}
	for i := range window {
		tb.upsert(&evs[i], now)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tb.upsert(&evs[(i+window)%distinct], now)
		if _, ok := tb.take(&evs[i%distinct]); !ok {
			b.Fatal("flow not found")
		}
		i++
	}
}
