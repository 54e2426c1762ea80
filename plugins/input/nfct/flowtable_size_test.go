package nfct

import (
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
)

// TestFlowEntrySize keeps the per-flow memory of hash mode small: the
// entry, plus the map slot (key and pointer).
func TestFlowEntrySize(t *testing.T) {
	var f entry
	var k flowKey
	t.Logf("entry: %d bytes, flowKey: %d bytes, map slot: %d bytes", unsafe.Sizeof(f), unsafe.Sizeof(k), unsafe.Sizeof(k)+unsafe.Sizeof(&f))
	if n := unsafe.Sizeof(f); n >= 160 {
		t.Errorf("entry is %d bytes, want < 160", n)
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
			Type: ctnl.Update, Family: afInet, Zone: 7,
			Orig:        ctnl.Tuple{Src: []byte{10, 0, 0, 1}, Dst: []byte{192, 0, 2, 1}, Proto: ctnl.ProtoTCP, SrcPort: 1234, DstPort: 80, HasPorts: true},
			Reply:       ctnl.Tuple{Src: []byte{192, 0, 2, 1}, Dst: []byte{198, 51, 100, 9}, Proto: ctnl.ProtoTCP, SrcPort: 80, DstPort: 61000, HasPorts: true},
			OrigPackets: 1, OrigBytes: 2, ReplyPackets: 3, ReplyBytes: 4, HasCounters: true,
			Mark: 0xdead, HasMark: true, ID: 42, HasID: true,
		},
		{
			Type: ctnl.New, Family: afInet6,
			Orig:  ctnl.Tuple{Src: v6a, Dst: v6b, Proto: ctnl.ProtoICMPv6, HasICMP: true, ICMPType: 128, ICMPCode: 0, ICMPID: 77},
			Reply: ctnl.Tuple{Src: v6b, Dst: v6a, Proto: ctnl.ProtoICMPv6, HasICMP: true, ICMPType: 129, ICMPID: 77},
		},
		{
			Type: ctnl.New, Family: afInet,
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

// TestFlowTableRemade checks that the map made for hash_buckets flows is
// remade for the limit once, keeping every flow and its start time.
func TestFlowTableRemade(t *testing.T) {
	const buckets, limit = 8, 100
	tb := newFlowTable(buckets, limit)
	ev := func(i int) *ctnl.Event {
		return &ctnl.Event{Type: ctnl.New, Family: afInet,
			Orig: ctnl.Tuple{Src: []byte{10, 0, byte(i >> 8), byte(i)}, Dst: []byte{10, 1, 0, 1}, Proto: ctnl.ProtoTCP, SrcPort: uint16(i), DstPort: 80, HasPorts: true}}
	}
	for i := range limit + 10 {
		ok, _ := tb.upsert(ev(i), timeval{uint32(1000 + i), 0})
		if ok != (i < limit) {
			t.Fatalf("flow %d: tracked %v with limit %d", i, ok, limit)
		}
		if want := buckets; i < buckets && tb.size != want {
			t.Fatalf("after %d flows the map is made for %d, want %d", i+1, tb.size, want)
		}
	}
	if tb.size != limit || tb.Len() != limit {
		t.Fatalf("map made for %d flows holding %d, want %d and %d", tb.size, tb.Len(), limit, limit)
	}
	for i := range limit {
		start, ok := tb.take(ev(i))
		if !ok || start.sec != uint32(1000+i) {
			t.Fatalf("flow %d: found %v, start %d", i, ok, start.sec)
		}
	}
}

// TestFlowTableRemadeBounded checks that a huge hash_max_entries does not
// make a map for all of it at once.
func TestFlowTableRemadeBounded(t *testing.T) {
	tb := newFlowTable(4, 10_000_000)
	for i := range 5 {
		tb.upsert(&ctnl.Event{Type: ctnl.New, Family: afInet,
			Orig: ctnl.Tuple{Src: []byte{10, 0, 0, byte(i)}, Dst: []byte{10, 1, 0, 1}, Proto: ctnl.ProtoUDP, SrcPort: 1, DstPort: 2, HasPorts: true}}, timeval{1, 0})
	}
	if tb.size != remadeMax || tb.Len() != 5 {
		t.Fatalf("map made for %d flows holding %d, want %d and 5", tb.size, tb.Len(), remadeMax)
	}
}
