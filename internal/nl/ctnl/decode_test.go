package ctnl

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

// captures returns the captured datagrams in testdata/, by file name.
func captures(t testing.TB) map[string][]byte {
	t.Helper()
	return testutil.ReadFiles(t, "testdata/*.bin")
}

func firstMsg(t testing.TB, raw []byte) nl.Msg {
	t.Helper()
	m, _, err := nl.NextMsg(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestGolden(t *testing.T) {
	gb, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string][]eventView
	if err := json.Unmarshal(gb, &golden); err != nil {
		t.Fatal(err)
	}
	caps := captures(t)
	if len(caps) != len(golden) {
		t.Errorf("%d captures, %d golden entries", len(caps), len(golden))
	}
	for name, raw := range caps {
		got, err := decodeAll(raw)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if diff := cmp.Diff(golden[name], got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
		// The file name states what the kernel sent.
		if !strings.HasPrefix(name, "dump") && (len(got) != 1 || !strings.HasPrefix(name, got[0].Type+"-")) {
			t.Errorf("%s decoded as %d events, first %+v", name, len(got), got)
		}
	}
}

// TestOracle compares Decode with github.com/ti-mo/conntrack on the captures.
func TestOracle(t *testing.T) {
	compared := 0
	for name, raw := range captures(t) {
		for rest := raw; len(rest) > 0; {
			m, r, err := nl.NextMsg(rest)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			msgBytes := rest[:len(rest)-len(r)]
			rest = r
			if m.IsControl() {
				continue
			}
			var ev Event
			if err := Decode(m, &ev); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var nm netlink.Message
			if err := nm.UnmarshalBinary(msgBytes[:binary.NativeEndian.Uint32(msgBytes)]); err != nil {
				t.Fatalf("%s: netlink: %v", name, err)
			}
			var oe conntrack.Event
			if err := oe.Unmarshal(nm); err != nil {
				t.Logf("%s: oracle cannot parse: %v", name, err)
				continue
			}
			compared++
			if diff := cmp.Diff(oracleView(&oe, &ev), view(&ev)); diff != "" {
				t.Errorf("%s: ours vs ti-mo (-oracle +ours):\n%s", name, diff)
			}
		}
	}
	if compared == 0 {
		t.Error("the oracle parsed no capture")
	}
	t.Logf("%d messages compared with ti-mo/conntrack", compared)
}

// oracleView renders ti-mo's decode in our golden form. ti-mo has no
// presence flags for counters, mark and tuple zones, and no family: those
// are copied from ours, so only values are compared.
func oracleView(oe *conntrack.Event, ours *Event) eventView {
	f := oe.Flow
	var ts string
	switch oe.Type {
	case conntrack.EventNew:
		ts = "NEW"
	case conntrack.EventUpdate:
		ts = "UPDATE"
	case conntrack.EventDestroy:
		ts = "DESTROY"
	}
	tup := func(t conntrack.Tuple) tupleView {
		v := tupleView{
			Src: t.IP.SourceAddress.String(), Dst: t.IP.DestinationAddress.String(),
			Proto: t.Proto.Protocol, SrcPort: t.Proto.SourcePort, DstPort: t.Proto.DestinationPort,
			HasPorts: PortsProto(t.Proto.Protocol),
			ICMPType: t.Proto.ICMPType, ICMPCode: t.Proto.ICMPCode, ICMPID: t.Proto.ICMPID,
			HasICMP: t.Proto.ICMPv4 || t.Proto.ICMPv6, Zone: t.Zone,
		}
		if !t.IP.SourceAddress.IsValid() {
			v.Src, v.Dst = "", ""
		}
		return v
	}
	v := eventView{
		Type: ts, Family: ours.Family, Orig: tup(f.TupleOrig), Reply: tup(f.TupleReply),
		OrigPackets: f.CountersOrig.Packets, OrigBytes: f.CountersOrig.Bytes,
		ReplyPackets: f.CountersReply.Packets, ReplyBytes: f.CountersReply.Bytes,
		Mark: f.Mark, ID: f.ID, HasID: f.ID != 0, Status: uint32(f.Status), Timeout: f.Timeout,
		Zone: f.Zone, Use: f.Use,
	}
	v.HasCounters, v.HasMark = ours.HasCounters, ours.HasMark
	v.Orig.HasZone, v.Reply.HasZone = ours.Orig.HasZone, ours.Reply.HasZone
	if !f.Timestamp.Start.IsZero() {
		v.Start, v.HasStart = uint64(f.Timestamp.Start.UnixNano()), true
	}
	if !f.Timestamp.Stop.IsZero() {
		v.Stop, v.HasStop = uint64(f.Timestamp.Stop.UnixNano()), true
	}
	return v
}

func destroyMsg(t testing.TB) nl.Msg {
	return firstMsg(t, captures(t)["DESTROY-ipv4-tcp.bin"])
}

func TestDecodeAllocs(t *testing.T) {
	var ev Event
	for name, raw := range captures(t) {
		n := testing.AllocsPerRun(200, func() {
			for rest := raw; len(rest) > 0; {
				m, r, err := nl.NextMsg(rest)
				if err != nil {
					break
				}
				rest = r
				Decode(m, &ev)
			}
		})
		if n != 0 {
			t.Errorf("%s: Decode allocates %v times per message", name, n)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	m := destroyMsg(t)
	var ev Event
	bad := m
	bad.Type = 0x0200 // CTNETLINK_EXP
	if err := Decode(bad, &ev); !errors.Is(err, ErrNotConntrack) {
		t.Errorf("exp message: %v", err)
	}
	bad.Type = 0x0105 // IPCTNL_MSG_CT_GET_STATS
	if err := Decode(bad, &ev); !errors.Is(err, ErrMsgType) {
		t.Errorf("stats message: %v", err)
	}
	bad = m
	bad.Payload = m.Payload[:3]
	if err := Decode(bad, &ev); !errors.Is(err, ErrShortMsg) {
		t.Errorf("short: %v", err)
	}
	bad.Payload = m.Payload[:len(m.Payload)-1]
	if err := Decode(bad, &ev); !errors.Is(err, nl.ErrMalformed) {
		t.Errorf("cut: %v", err)
	}
	// An IPv4 address attribute of 5 bytes.
	b := nl.AppendHeader(nil, 0x102, 0, 0)
	b = appendNfgen(b, 2)
	b, n1 := nl.BeginNest(b, ctaTupleOrig)
	b, n2 := nl.BeginNest(b, ctaTupleIP)
	b = nl.AppendAttr(b, ctaIPv4Src, []byte{1, 2, 3, 4, 5})
	b = nl.EndNest(nl.EndNest(b, n2), n1)
	if err := Decode(firstMsg(t, nl.FinishMsg(b, 0)), &ev); !errors.Is(err, ErrAttrSize) {
		t.Errorf("5-byte address: %v", err)
	}
	// Unknown and padding attributes are skipped and counted.
	b = nl.AppendHeader(nil, 0x102, 0, 0)
	b = appendNfgen(b, 2)
	b = nl.AppendAttr(b, 200, []byte{1})
	b = nl.AppendBE32(b, ctaMark, 5)
	b, n1 = nl.BeginNest(b, ctaCountersOrig)
	b = nl.AppendAttr(b, ctaCountersPad, nil)
	b = nl.AppendBE32(b, ctaCounters32Packets, 3)
	b = nl.EndNest(b, n1)
	b, n1 = nl.BeginNest(b, ctaTimestamp)
	b = nl.AppendAttr(b, ctaTimestampPad, nil)
	b = nl.EndNest(b, n1)
	if err := Decode(firstMsg(t, nl.FinishMsg(b, 0)), &ev); err != nil || ev.Unknown != 1 || ev.Mark != 5 || ev.OrigPackets != 3 || ev.Type != Destroy {
		t.Errorf("unknown/pad: %v %+v", err, ev)
	}
}

func TestRequests(t *testing.T) {
	buf := make([]byte, 0, 256)
	for _, zero := range []bool{false, true} {
		r := DumpRequest(buf, 9, 10, zero)
		m, rest, err := nl.NextMsg(r)
		want := uint16(0x101)
		if zero {
			want = 0x103
		}
		if err != nil || len(rest) != 0 || m.Type != want || m.Flags != 0x301 || m.Seq != 9 || len(m.Payload) != 4 || m.Payload[0] != 10 {
			t.Errorf("DumpRequest(zero=%v) = %+v, %v", zero, m, err)
		}
	}
	// GetRequest carries the original tuple: decoding it back gives it.
	var ev Event
	if err := Decode(destroyMsg(t), &ev); err != nil {
		t.Fatal(err)
	}
	ev.Zone = 3
	r := GetRequest(buf, 11, &ev)
	m, _, err := nl.NextMsg(r)
	if err != nil || m.Type != 0x101 || m.Flags != 0x5 || m.Seq != 11 {
		t.Fatalf("GetRequest = %+v, %v", m, err)
	}
	m.Type = 0x100 // decode as if it were an event
	var back Event
	if err := Decode(m, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(view(&Event{Type: Update, Family: 2, Orig: ev.Orig, Zone: 3}), view(&back)); diff != "" {
		t.Errorf("GetRequest round trip (-want +got):\n%s", diff)
	}
	if n := testing.AllocsPerRun(100, func() {
		DumpRequest(buf, 1, 0, true)
		GetRequest(buf, 1, &ev)
	}); n != 0 {
		t.Errorf("request builders allocate %v times", n)
	}
}

func FuzzDecode(f *testing.F) {
	for _, raw := range captures(f) {
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ev Event
		for rest := raw; len(rest) > 0; {
			m, r, err := nl.NextMsg(rest)
			if err != nil {
				return
			}
			rest = r
			// Force the ctnetlink types, so that mutated headers still
			// reach the attribute decoder.
			for _, typ := range []uint16{m.Type, 0x100, 0x102} {
				m.Type = typ
				if Decode(m, &ev) != nil {
					continue
				}
				for _, a := range [][]byte{ev.Orig.Src, ev.Orig.Dst, ev.Reply.Src, ev.Reply.Dst} {
					if a != nil && len(a) != 4 && len(a) != 16 {
						t.Fatalf("address of %d bytes", len(a))
					}
				}
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	m := destroyMsg(b)
	var ev Event
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(m, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeDump(b *testing.B) {
	raw := captures(b)["dump.bin"]
	var ev Event
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		for rest := raw; len(rest) > 0; {
			m, r, err := nl.NextMsg(rest)
			if err != nil {
				b.Fatal(err)
			}
			rest = r
			if !m.IsControl() {
				Decode(m, &ev)
			}
		}
	}
}
