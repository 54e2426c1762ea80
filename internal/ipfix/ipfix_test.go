package ipfix_test

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/ipfix"
	"github.com/ulogd-go/ulogd/internal/ipfix/ipfixtest"
)

const testPEN = 64242

var t0 = time.Unix(1795630411, 0)

// randomFlow builds a record from r's numbers: family, every optional
// group, every value.
func randomFlow(r *rand.Rand) ipfix.Flow {
	addr := func(v6 bool) netip.Addr {
		if v6 {
			var b [16]byte
			binary.BigEndian.PutUint64(b[:], r.Uint64())
			binary.BigEndian.PutUint64(b[8:], r.Uint64())
			if b[0] == 0 {
				b[0] = 0xfd // never a v4-mapped address: that is an IPv4 flow in the encoder's eyes
			}
			return netip.AddrFrom16(b)
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], r.Uint32())
		return netip.AddrFrom4(b)
	}
	v6 := r.IntN(2) == 1
	f := ipfix.Flow{
		Src: addr(v6), Dst: addr(v6),
		SrcPort: uint16(r.Uint32()), DstPort: uint16(r.Uint32()),
		Proto:  uint8(r.Uint32()),
		Octets: r.Uint64(), Packets: r.Uint64(),
		Has: ipfix.Elems(r.Uint32()) & ipfix.AllElems,
	}
	if f.Has&ipfix.HasTimes != 0 {
		f.StartMs, f.EndMs = r.Uint64(), r.Uint64()
	}
	if f.Has&ipfix.HasICMP != 0 {
		f.ICMPType, f.ICMPCode = uint8(r.Uint32()), uint8(r.Uint32())
	}
	if f.Has&ipfix.HasReverse != 0 {
		f.RevOctets, f.RevPackets = r.Uint64(), r.Uint64()
	}
	if f.Has&ipfix.HasNAT != 0 {
		f.PostSrc, f.PostDst = addr(v6), addr(v6)
		f.PostSrcPort, f.PostDstPort = uint16(r.Uint32()), uint16(r.Uint32())
	}
	if f.Has&ipfix.HasFlowID != 0 {
		f.FlowID = r.Uint64()
	}
	if f.Has&ipfix.HasDirection != 0 {
		f.Direction = uint8(r.Uint32())
	}
	if f.Has&ipfix.HasEndReason != 0 {
		f.EndReason = uint8(r.Uint32())
	}
	if f.Has&ipfix.HasZone != 0 {
		f.Zone = r.Uint32()
	}
	if f.Has&ipfix.HasMark != 0 {
		f.Mark = r.Uint32()
	}
	return f
}

// roundTrip encodes flows with e, decodes every message and checks that
// the records come back equal and in order, that no message exceeds the
// MTU and that the sequence numbers count the records before each message.
func roundTrip(t *testing.T, e *ipfix.Encoder, flows []ipfix.Flow) {
	t.Helper()
	d := ipfixtest.NewDecoder(testPEN)
	var got []ipfix.Flow
	var records uint32
	take := func(m []byte) {
		t.Helper()
		if m == nil {
			return
		}
		if len(m) > e.MTU {
			t.Fatalf("message of %d bytes, MTU %d", len(m), e.MTU)
		}
		msg, err := d.Decode(m)
		if err != nil {
			t.Fatalf("decode: %v\n% x", err, m)
		}
		if msg.Sequence != records {
			t.Fatalf("sequence %d, want %d (records before the message)", msg.Sequence, records)
		}
		if msg.Domain != e.Domain || msg.ExportTime != uint32(t0.Unix()) {
			t.Fatalf("domain %d time %d", msg.Domain, msg.ExportTime)
		}
		if len(msg.Records) == 0 {
			t.Fatalf("message without records")
		}
		records += uint32(len(msg.Records))
		for i := range msg.Records {
			f, err := d.Flow(&msg.Records[i])
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			got = append(got, f)
		}
	}
	var rec []byte
	for i := range flows {
		rec = ipfix.AppendRecord(rec[:0], &flows[i], e.MarkPEN)
		if !e.Fits(rec) {
			take(e.Finish(t0))
		}
		if err := e.Add(rec); err != nil {
			t.Fatal(err)
		}
	}
	take(e.Finish(t0))
	want := make([]ipfix.Flow, len(flows))
	for i, f := range flows {
		if e.MarkPEN == 0 {
			f.Has &^= ipfix.HasMark
			f.Mark = 0
		}
		want[i] = f
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Fatalf("round trip (-sent +decoded):\n%s", diff)
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint16(512), uint8(0))
	f.Add(uint64(2), uint16(1400), uint8(2))
	f.Add(uint64(3), uint16(300), uint8(0))
	f.Fuzz(func(t *testing.T, seed uint64, mtu uint16, mode uint8) {
		r := rand.New(rand.NewPCG(seed, seed>>32))
		n := 1 + r.IntN(200)
		flows := make([]ipfix.Flow, n)
		for i := range flows {
			flows[i] = randomFlow(r)
		}
		e := &ipfix.Encoder{Domain: r.Uint32(), MarkPEN: testPEN}
		if seed%3 == 0 {
			e.MarkPEN = 0
		}
		e.MTU = ipfix.MinMTU(e.MarkPEN) + int(mtu)%9000
		switch mode % 2 { // TemplateNever leaves a decoder nothing to decode with
		case 0:
			e.Mode = ipfix.TemplateOnce
		case 1:
			e.Mode = ipfix.TemplateAlways
		}
		roundTrip(t, e, flows)
	})
}

// TestLayout pins the bytes of one IPv4 message: header, template set,
// data set.
func TestLayout(t *testing.T) {
	e := &ipfix.Encoder{Domain: 42, MTU: 512}
	f := ipfix.Flow{
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
		SrcPort: 1, DstPort: 2, Proto: 17, Octets: 3, Packets: 4,
		Has: ipfix.HasTimes, StartMs: 5, EndMs: 6,
	}
	rec := ipfix.AppendRecord(nil, &f, 0)
	if err := e.Add(rec); err != nil {
		t.Fatal(err)
	}
	m := e.Finish(t0)
	want := []byte{
		0, 10, 0, 16 + 4 + 4 + 9*4 + 4 + 45, 0x6b, 0x07, 0x25, 0x4b, 0, 0, 0, 0, 0, 0, 0, 42,
		0, 2, 0, 4 + 4 + 9*4, // template set
		0x01, 0x02, 0, 9, // template 258 (HasTimes<<1), 9 fields
		0, 8, 0, 4, 0, 12, 0, 4, 0, 7, 0, 2, 0, 11, 0, 2, 0, 4, 0, 1,
		0, 1, 0, 8, 0, 2, 0, 8, 0, 152, 0, 8, 0, 153, 0, 8,
		0x01, 0x02, 0, 4 + 45, // data set
		10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2, 17,
		0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4,
		0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 6,
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Fatalf("message (-want +got):\n%s", diff)
	}
	// The second message has no template (once) and sequence 1.
	e.Add(rec)
	m = e.Finish(t0)
	if len(m) != 16+4+45 || ipfix.MessageSequence(m) != 1 {
		t.Fatalf("second message: %d bytes, sequence %d", len(m), ipfix.MessageSequence(m))
	}
	// After ResendTemplates the template comes again.
	e.ResendTemplates()
	e.Add(rec)
	if m = e.Finish(t0); len(m) != len(want) {
		t.Fatalf("after ResendTemplates: %d bytes, want %d", len(m), len(want))
	}
}

// TestTemplateModes checks where templates go with each mode.
func TestTemplateModes(t *testing.T) {
	f := ipfix.Flow{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2")}
	for _, tc := range []struct {
		mode ipfix.TemplateMode
		want []int // templates per message
	}{
		{ipfix.TemplateOnce, []int{1, 0, 0}},
		{ipfix.TemplateAlways, []int{1, 1, 1}},
		{ipfix.TemplateNever, []int{0, 0, 0}},
	} {
		e := &ipfix.Encoder{Domain: 1, MTU: 512, Mode: tc.mode}
		d := ipfixtest.NewDecoder(0)
		d.Templates[ipfix.TemplateID(true, 0)] = []ipfixtest.Field{{ID: 27, Len: 16}, {ID: 28, Len: 16},
			{ID: 7, Len: 2}, {ID: 11, Len: 2}, {ID: 4, Len: 1}, {ID: 1, Len: 8}, {ID: 2, Len: 8}}
		rec := ipfix.AppendRecord(nil, &f, 0)
		for i, w := range tc.want {
			e.Add(rec)
			e.Add(rec)
			msg, err := d.Decode(e.Finish(t0))
			if err != nil {
				t.Fatal(err)
			}
			if len(msg.Templates) != w || len(msg.Records) != 2 || msg.Sequence != uint32(2*i) {
				t.Errorf("mode %d message %d: %d templates, %d records, sequence %d; want %d, 2, %d",
					tc.mode, i, len(msg.Templates), len(msg.Records), msg.Sequence, w, 2*i)
			}
		}
	}
}

// TestDrop: a dropped message neither counts in the sequence nor
// counts its templates as sent.
func TestDrop(t *testing.T) {
	e := &ipfix.Encoder{Domain: 1, MTU: 512}
	rec := ipfix.AppendRecord(nil, &ipfix.Flow{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2")}, 0)
	e.Add(rec)
	e.Drop()
	e.Add(rec)
	d := ipfixtest.NewDecoder(0)
	msg, err := d.Decode(e.Finish(t0))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Sequence != 0 || len(msg.Templates) != 1 || len(msg.Records) != 1 {
		t.Fatalf("after Drop: sequence %d, %d templates, %d records; want 0, 1, 1", msg.Sequence, len(msg.Templates), len(msg.Records))
	}
}

func TestTooBig(t *testing.T) {
	e := &ipfix.Encoder{MTU: 40}
	f := ipfix.Flow{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2")}
	if err := e.Add(ipfix.AppendRecord(nil, &f, 0)); err != ipfix.ErrTooBig {
		t.Fatalf("Add = %v, want ErrTooBig", err)
	}
	if m := e.Finish(t0); m != nil {
		t.Fatalf("message after a refused record: % x", m)
	}
}

func BenchmarkAdd(b *testing.B) {
	e := &ipfix.Encoder{Domain: 1, MTU: 1400}
	f := ipfix.Flow{
		Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
		Has:     ipfix.HasTimes | ipfix.HasFlowID | ipfix.HasDirection | ipfix.HasNAT,
		PostSrc: netip.MustParseAddr("10.0.0.1"), PostDst: netip.MustParseAddr("10.0.0.3"),
	}
	b.ReportAllocs()
	var rec []byte
	for b.Loop() {
		rec = ipfix.AppendRecord(rec[:0], &f, 0)
		if !e.Fits(rec) {
			e.Finish(t0)
		}
		e.Add(rec)
	}
}
