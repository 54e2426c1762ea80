package nflog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

var updateGolden = flag.Bool("nflog.update", false, "rewrite testdata/packets.golden")

func TestBuilders(t *testing.T) {
	le32 := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	le16 := func(v uint16) []byte { return binary.NativeEndian.AppendUint16(nil, v) }
	hdr := func(l uint32, seq uint32, family byte, group uint16) []byte {
		b := le32(l)
		b = append(b, le16(0x0401)...) // NFNL_SUBSYS_ULOG<<8 | NFULNL_MSG_CONFIG
		b = append(b, le16(0x5)...)    // NLM_F_REQUEST|NLM_F_ACK
		b = append(b, le32(seq)...)
		b = append(b, le32(0)...)
		return append(b, family, 0, byte(group>>8), byte(group))
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"bind", AppendBind(nil, 7, 0x0105), cat(hdr(28, 7, 0, 0x0105), le16(5), le16(1), []byte{1, 0, 0, 0})},
		{"unbind", AppendUnbind(nil, 7, 5), cat(hdr(28, 7, 0, 5), le16(5), le16(1), []byte{2, 0, 0, 0})},
		{"pf_bind", AppendPFBind(nil, 1, 10), cat(hdr(28, 1, 10, 0), le16(5), le16(1), []byte{3, 0, 0, 0})},
		{"pf_unbind", AppendPFUnbind(nil, 1, 7), cat(hdr(28, 1, 7, 0), le16(5), le16(1), []byte{4, 0, 0, 0})},
		{"mode", AppendMode(nil, 2, 5, CopyPacket, 0xffff), cat(hdr(32, 2, 0, 5), le16(10), le16(2), []byte{0, 0, 0xff, 0xff, 2, 0, 0, 0})},
		{"nlbufsiz", AppendNlBufSiz(nil, 3, 5, 65536), cat(hdr(28, 3, 0, 5), le16(8), le16(3), []byte{0, 1, 0, 0})},
		{"timeout", AppendTimeout(nil, 3, 5, 100), cat(hdr(28, 3, 0, 5), le16(8), le16(4), []byte{0, 0, 0, 100})},
		{"qthresh", AppendQThresh(nil, 3, 5, 1), cat(hdr(28, 3, 0, 5), le16(8), le16(5), []byte{0, 0, 0, 1})},
		{"flags", AppendFlags(nil, 3, 5, FlagSeq|FlagConntrack), cat(hdr(28, 3, 0, 5), le16(6), le16(6), []byte{0, 5, 0, 0})},
	} {
		if diff := cmp.Diff(tc.want, tc.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	// Appending to a non-empty buffer keeps what is there.
	b := AppendQThresh(AppendBind(nil, 1, 5), 2, 5, 1)
	m1, rest, err := nl.NextMsg(b)
	if err != nil || m1.Seq != 1 {
		t.Fatalf("first: %+v %v", m1, err)
	}
	if m2, _, err := nl.NextMsg(rest); err != nil || m2.Seq != 2 || len(m2.Payload) != 12 {
		t.Fatalf("second: %+v %v", m2, err)
	}
	// No allocation with a large enough buffer.
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { AppendMode(buf, 1, 2, CopyPacket, 0xffff) }); n != 0 {
		t.Errorf("builder allocates %v times", n)
	}
}

// packetMsg builds a packet message with the given attributes.
func packetMsg(family byte, group uint16, attrs ...[]byte) []byte {
	b := nl.AppendHeader(nil, MsgTypePacket, 0, 0)
	b = append(b, family, 0, byte(group>>8), byte(group))
	for _, a := range attrs {
		b = append(b, a...)
	}
	return nl.FinishMsg(b, 0)
}

func attr(typ uint16, data ...byte) []byte { return nl.AppendAttr(nil, typ, data) }

func decodeBytes(t testing.TB, b []byte) (Packet, error) {
	t.Helper()
	m, _, err := nl.NextMsg(b)
	if err != nil {
		t.Fatal(err)
	}
	var p Packet
	err = Decode(m, &p)
	return p, err
}

func TestDecodeBuilt(t *testing.T) {
	ts := make([]byte, 16)
	binary.BigEndian.PutUint64(ts, 1700000000)
	binary.BigEndian.PutUint64(ts[8:], 123456)
	hw := []byte{0, 6, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0, 0}
	vlan := append(nl.AppendBE16(nil, nfulaVLANProto, 0x8100), nl.AppendBE16(nil, nfulaVLANTCI, 42)...)
	msg := packetMsg(2, 5,
		attr(nfulaPacketHdr, 0x08, 0x00, 1, 0),
		attr(nfulaMark, 0, 0, 0, 42),
		attr(nfulaTimestamp, ts...),
		attr(nfulaIfindexIndev, 0, 0, 0, 3),
		attr(nfulaIfindexOutdev, 0, 0, 0, 4),
		attr(nfulaIfindexPhysIn, 0, 0, 0, 5),
		attr(nfulaIfindexPhysOut, 0, 0, 0, 6),
		attr(nfulaHwaddr, hw...),
		attr(nfulaPayload, 0x45, 0, 0, 20),
		attr(nfulaPrefix, 'a', 'b', 0),
		attr(nfulaUID, 0, 0, 3, 0xe8),
		attr(nfulaGID, 0, 0, 0, 100),
		attr(nfulaSeq, 0, 0, 0, 9),
		attr(nfulaSeqGlobal, 0, 0, 1, 0),
		attr(nfulaHwtype, 0, 1),
		attr(nfulaHwheader, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 0),
		attr(nfulaHwlen, 0, 14),
		attr(nfulaCT, 1, 2, 3, 4),
		attr(nfulaCTInfo, 0, 0, 0, 2),
		nl.AppendAttr(nil, nfulaVLAN|nl.AttrNested, vlan),
		attr(nfulaL2Hdr, 9, 9),
		attr(99, 1),
		attr(0),
	)
	p, err := decodeBytes(t, msg)
	if err != nil {
		t.Fatal(err)
	}
	want := Packet{
		Family: 2, Group: 5, HwProtocol: 0x0800, Hook: 1, HasHdr: true,
		Mark: 42, HasMark: true, TimestampSec: 1700000000, TimestampUsec: 123456, HasTimestamp: true,
		IfIndexIn: 3, IfIndexOut: 4, IfIndexPhysIn: 5, IfIndexPhysOut: 6,
		HwAddr: []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}, HwAddrLen: 6, HasHwAddr: true,
		Payload: []byte{0x45, 0, 0, 20}, HasPayload: true, Prefix: []byte("ab"), HasPrefix: true,
		UID: 1000, GID: 100, HasUID: true, HasGID: true, Seq: 9, SeqGlobal: 256, HasSeq: true, HasSeqGlobal: true,
		HwType: 1, HasHwType: true, HwHeader: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 8, 0},
		HwHeaderLen: 14, HasHwHeader: true, HasHwLen: true, CT: []byte{1, 2, 3, 4}, HasCT: true,
		CTInfo: 2, HasCTInfo: true, VLANProto: 0x8100, VLANTCI: 42, HasVLAN: true,
		L2Header: []byte{9, 9}, HasL2Header: true, Unknown: 2,
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	// Prefix without NUL, empty prefix, hw address longer than 8.
	hw[1] = 20
	p, err = decodeBytes(t, packetMsg(10, 1, attr(nfulaPrefix, 'x', 'y'), attr(nfulaHwaddr, hw...)))
	if err != nil || string(p.Prefix) != "xy" || len(p.HwAddr) != 8 || p.HwAddrLen != 20 {
		t.Errorf("prefix/hwaddr: %+v %v", p, err)
	}
	p, err = decodeBytes(t, packetMsg(2, 1, attr(nfulaPrefix, 0)))
	if err != nil || !p.HasPrefix || len(p.Prefix) != 0 || p.Prefix == nil {
		t.Errorf("empty prefix: %+v %v", p, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"short hdr", packetMsg(2, 1, attr(nfulaPacketHdr, 8, 0)), ErrAttrSize},
		{"short mark", packetMsg(2, 1, attr(nfulaMark, 1)), ErrAttrSize},
		{"short timestamp", packetMsg(2, 1, attr(nfulaTimestamp, 1, 2, 3, 4, 5, 6, 7, 8)), ErrAttrSize},
		{"short ifindex", packetMsg(2, 1, attr(nfulaIfindexOutdev, 1)), ErrAttrSize},
		{"short hwaddr", packetMsg(2, 1, attr(nfulaHwaddr, 0, 6, 0, 0, 1)), ErrAttrSize},
		{"short seq", packetMsg(2, 1, attr(nfulaSeq, 1, 2)), ErrAttrSize},
		{"bad framing", append(packetMsg(2, 1), 0xff, 0xff), nl.ErrMalformed},
	} {
		b := tc.msg
		if tc.name == "bad framing" {
			// Extend nlmsg_len over the garbage.
			binary.NativeEndian.PutUint32(b, uint32(len(b)))
		}
		if _, err := decodeBytes(t, b); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	var p Packet
	if err := Decode(nl.Msg{Type: 0x0401, Payload: make([]byte, 4)}, &p); !errors.Is(err, ErrNotPacket) {
		t.Errorf("config message: %v", err)
	}
	if err := Decode(nl.Msg{Type: MsgTypePacket, Payload: make([]byte, 3)}, &p); !errors.Is(err, ErrShortMsg) {
		t.Errorf("short: %v", err)
	}
}

// loadCaptured returns the datagrams in testdata/packets.bin (each prefixed
// by its length, u32 little endian; the messages are host order, captured
// on amd64).
func loadCaptured(t testing.TB) [][]byte {
	t.Helper()
	return testutil.ReadDatagrams(t, filepath.Join("testdata", "packets.bin"))
}

// capturedMsgs returns every message of the captured datagrams.
func capturedMsgs(t testing.TB) []nl.Msg {
	var ms []nl.Msg
	for _, dg := range loadCaptured(t) {
		for rest := dg; len(rest) > 0; {
			m, r, err := nl.NextMsg(rest)
			if err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
			rest = r
		}
	}
	return ms
}

// render prints the decoded fields of p, one line.
func render(p *Packet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "family=%d group=%d", p.Family, p.Group)
	if p.HasHdr {
		fmt.Fprintf(&b, " hwproto=%#04x hook=%d", p.HwProtocol, p.Hook)
	}
	if p.HasMark {
		fmt.Fprintf(&b, " mark=%d", p.Mark)
	}
	if p.HasTimestamp {
		fmt.Fprintf(&b, " ts=%d.%06d", p.TimestampSec, p.TimestampUsec)
	}
	fmt.Fprintf(&b, " in=%d out=%d physin=%d physout=%d", p.IfIndexIn, p.IfIndexOut, p.IfIndexPhysIn, p.IfIndexPhysOut)
	if p.HasHwAddr {
		fmt.Fprintf(&b, " hwaddr=%x/%d", p.HwAddr, p.HwAddrLen)
	}
	if p.HasHwType {
		fmt.Fprintf(&b, " hwtype=%d", p.HwType)
	}
	if p.HasHwHeader || p.HasHwLen {
		fmt.Fprintf(&b, " hwheader=%x/%d", p.HwHeader, p.HwHeaderLen)
	}
	if p.HasPrefix {
		fmt.Fprintf(&b, " prefix=%q", p.Prefix)
	}
	if p.HasUID {
		fmt.Fprintf(&b, " uid=%d", p.UID)
	}
	if p.HasGID {
		fmt.Fprintf(&b, " gid=%d", p.GID)
	}
	if p.HasSeq {
		fmt.Fprintf(&b, " seq=%d", p.Seq)
	}
	if p.HasSeqGlobal {
		fmt.Fprintf(&b, " seqglobal=%d", p.SeqGlobal)
	}
	if p.HasCT {
		fmt.Fprintf(&b, " ct=%d", len(p.CT))
	}
	if p.HasPayload {
		n := min(len(p.Payload), 24)
		fmt.Fprintf(&b, " payload=%d:%x", len(p.Payload), p.Payload[:n])
	}
	if p.Unknown != 0 {
		fmt.Fprintf(&b, " unknown=%d", p.Unknown)
	}
	return b.String()
}

// TestGolden decodes every captured message and compares the result with
// testdata/packets.golden (rewrite with -nflog.update).
func TestGolden(t *testing.T) {
	var b strings.Builder
	for i, m := range capturedMsgs(t) {
		if m.Type != MsgTypePacket {
			fmt.Fprintf(&b, "%d: control type=%d\n", i, m.Type)
			continue
		}
		var p Packet
		if err := Decode(m, &p); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		fmt.Fprintf(&b, "%d: %s\n", i, render(&p))
	}
	got := b.String()
	path := filepath.Join("testdata", "packets.golden")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (rewrite with -nflog.update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("decode differs from %s (-want +got):\n%s", path, diff)
	}
	// The capture covers what the plugin depends on.
	for _, s := range []string{`prefix="OUT-LOG"`, `prefix="IN-LOG"`, `prefix=""`, "family=10", "hook=1", "hook=3",
		"mark=42", "hwaddr=", "hwtype=1", "ts=", "uid=", "seq=", "seqglobal=", "control type=3"} {
		if !strings.Contains(got, s) {
			t.Errorf("captured data has no packet with %s", s)
		}
	}
}

func TestDecodeNoAllocs(t *testing.T) {
	ms := capturedMsgs(t)
	var p Packet
	n := testing.AllocsPerRun(100, func() {
		for _, m := range ms {
			Decode(m, &p)
		}
	})
	if n != 0 {
		t.Errorf("Decode allocates %v times per %d messages", n, len(ms))
	}
}

func BenchmarkDecode(b *testing.B) {
	var ms []nl.Msg
	for _, m := range capturedMsgs(b) {
		if m.Type == MsgTypePacket {
			ms = append(ms, m)
		}
	}
	var p Packet
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := Decode(ms[i%len(ms)], &p); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func FuzzDecode(f *testing.F) {
	for _, dg := range loadCaptured(f) {
		f.Add(dg)
	}
	f.Add(packetMsg(2, 1, attr(nfulaPrefix, 'x'), attr(nfulaHwaddr, 0, 9, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8)))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Packet
		for rest := b; len(rest) > 0; {
			m, r, err := nl.NextMsg(rest)
			if err != nil {
				return
			}
			rest = r
			m.Type = MsgTypePacket // exercise the decoder on every message
			if err := Decode(m, &p); err != nil {
				continue
			}
			for _, s := range [][]byte{p.HwAddr, p.Payload, p.Prefix, p.HwHeader, p.CT, p.L2Header} {
				if len(s) > len(m.Payload) {
					t.Fatalf("field longer than the message")
				}
			}
			if len(p.HwAddr) > 8 || bytes.IndexByte(p.Prefix, 0) >= 0 {
				t.Fatalf("bad hwaddr/prefix: %+v", p)
			}
		}
	})
}
