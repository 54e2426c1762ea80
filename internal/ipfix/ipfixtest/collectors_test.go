package ipfixtest_test

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/ipfix"
	"github.com/ulogd-go/ulogd/internal/ipfix/ipfixtest"
)

// TestCollectorsReadEncoder sends the encoder's records to nfcapd,
// nfacctd and tshark over UDP and checks what each shows: the elements
// the encoder uses are ones every collector decodes.
func TestCollectorsReadEncoder(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: nfcapd, nfacctd and tshark are run as root here")
	}
	start := time.UnixMilli(time.Now().UnixMilli() - 5000).UTC()
	end := start.Add(3500 * time.Millisecond)
	ms := func(t time.Time) uint64 { return uint64(t.UnixMilli()) }
	a := netip.MustParseAddr
	flows := []ipfix.Flow{
		{Src: a("10.0.0.1"), Dst: a("10.0.0.2"), SrcPort: 40000, DstPort: 80, Proto: 6, Octets: 1000, Packets: 10,
			Has: ipfix.HasTimes | ipfix.HasReverse | ipfix.HasNAT | ipfix.HasZone, StartMs: ms(start), EndMs: ms(end),
			RevOctets: 2000, RevPackets: 20, PostSrc: a("10.0.0.1"), PostDst: a("192.168.1.2"), PostSrcPort: 40000, PostDstPort: 8080, Zone: 3},
		{Src: a("fd00::1"), Dst: a("fd00::2"), SrcPort: 0, DstPort: 128 << 8, Proto: 58, Octets: 104, Packets: 1,
			Has: ipfix.HasTimes | ipfix.HasICMP | ipfix.HasReverse, StartMs: ms(start), EndMs: ms(end), ICMPType: 128, RevOctets: 104, RevPackets: 1},
		{Src: a("10.0.0.1"), Dst: a("10.0.0.2"), SrcPort: 0, DstPort: 8 << 8, Proto: 1, Octets: 84, Packets: 1,
			Has: ipfix.HasTimes | ipfix.HasICMP, StartMs: ms(start), EndMs: ms(end), ICMPType: 8},
		{Src: a("fd00::2"), Dst: a("fd00::1"), SrcPort: 53, DstPort: 5353, Proto: 17, Octets: 50, Packets: 2,
			Has: ipfix.HasTimes | ipfix.HasNAT, StartMs: ms(start), EndMs: ms(end), PostSrc: a("fd00::3"), PostDst: a("fd00::1"), PostSrcPort: 53, PostDstPort: 5353},
	}
	e := &ipfix.Encoder{Domain: 9, MTU: 512}
	var msgs [][]byte
	for i := range flows {
		rec := ipfix.AppendRecord(nil, &flows[i], 0)
		if !e.Fits(rec) {
			msgs = append(msgs, append([]byte(nil), e.Finish(time.Now())...))
		}
		if err := e.Add(rec); err != nil {
			t.Fatal(err)
		}
	}
	msgs = append(msgs, append([]byte(nil), e.Finish(time.Now())...))

	full := func(f ipfix.Flow) ipfixtest.Row {
		r := ipfixtest.Row{Src: f.Src, Dst: f.Dst, SrcPort: f.SrcPort, DstPort: f.DstPort, Proto: f.Proto,
			Packets: f.Packets, Octets: f.Octets, OutPackets: f.RevPackets, OutOctets: f.RevOctets,
			Start: start, End: end, Zone: f.Zone}
		if f.Has&ipfix.HasNAT != 0 {
			r.PostSrc, r.PostDst, r.PostSrcPort, r.PostDstPort = f.PostSrc, f.PostDst, f.PostSrcPort, f.PostDstPort
		}
		if f.Has&ipfix.HasICMP != 0 {
			r.ICMP = uint16(f.ICMPType)<<8 | uint16(f.ICMPCode)
		}
		return r
	}
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) ipfixtest.Collector
		want  func(f ipfix.Flow) ipfixtest.Row
	}{
		{"nfcapd", func(t *testing.T) ipfixtest.Collector { return ipfixtest.StartNfcapd(t, "", ipfixtest.FreePort(t, "")) },
			func(f ipfix.Flow) ipfixtest.Row {
				r := full(f)
				if f.V6() { // nfdump reads post-NAT addresses for IPv4 only
					r.PostSrc, r.PostDst = netip.Addr{}, netip.Addr{}
				}
				if r.ICMP != 0 { // it prints ICMP type and code instead of the port
					r.DstPort = 0
				}
				return r
			}},
		{"nfacctd", func(t *testing.T) ipfixtest.Collector {
			return ipfixtest.StartNfacctd(t, "", ipfixtest.FreePort(t, ""))
		},
			func(f ipfix.Flow) ipfixtest.Row {
				r := full(f)
				r.OutPackets, r.OutOctets, r.ICMP, r.Zone = 0, 0, 0, 0
				if f.V6() { // nor does pmacct
					r.PostSrc, r.PostDst = netip.Addr{}, netip.Addr{}
				}
				return r
			}},
		{"tshark", func(t *testing.T) ipfixtest.Collector { return ipfixtest.StartTshark(t, "", "udp") }, full},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.start(t)
			conn, err := net.Dial("udp", c.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for _, m := range msgs {
				if _, err := conn.Write(m); err != nil {
					t.Fatal(err)
				}
			}
			got := c.Rows(t, len(flows))
			want := make([]ipfixtest.Row, len(flows))
			for i, f := range flows {
				want[i] = tc.want(f)
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("%s shows (-want +got):\n%s", c.Name(), diff)
			}
		})
	}
}
