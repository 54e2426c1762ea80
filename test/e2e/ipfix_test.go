package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/ipfix/ipfixtest"
)

// ctEntry is one line of `conntrack -L -o extended,ktimestamp`: the
// ground truth.
type ctEntry struct {
	proto                  uint8
	origSrc, origDst       netip.Addr
	origSport, origDport   uint16
	replySrc, replyDst     netip.Addr
	replySport, replyDport uint16
	origPkts, origBytes    uint64
	replyPkts, replyBytes  uint64
	icmpType, icmpCode     uint8
	hasICMP                bool
	replyICMPType          uint8
	natted                 bool
	start                  time.Time // to the second (zero: unknown)
	line                   string
}

// conntrackList reads the flows of namespace ns.
func conntrackList(t *testing.T, p *NSPair, ns string) []ctEntry {
	t.Helper()
	out := p.Exec(t, ns, "conntrack", "-L", "-o", "extended,ktimestamp")
	var es []ctEntry
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || (f[0] != "ipv4" && f[0] != "ipv6") {
			continue
		}
		proto, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		e := ctEntry{proto: uint8(proto), line: line}
		if _, rest, ok := strings.Cut(line, "[start="); ok {
			if v, _, ok := strings.Cut(rest, "]"); ok {
				e.start, _ = time.ParseInLocation("Mon Jan _2 15:04:05 2006", v, time.Local)
			}
		}
		seen := map[string]int{}
		for _, kv := range f[4:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			n := seen[k]
			seen[k]++
			u, _ := strconv.ParseUint(v, 10, 64)
			a, _ := netip.ParseAddr(v)
			switch k + strconv.Itoa(n) {
			case "src0":
				e.origSrc = a
			case "dst0":
				e.origDst = a
			case "sport0":
				e.origSport = uint16(u)
			case "dport0":
				e.origDport = uint16(u)
			case "type0":
				e.icmpType, e.hasICMP = uint8(u), true
			case "code0":
				e.icmpCode = uint8(u)
			case "type1":
				e.replyICMPType = uint8(u)
			case "packets0":
				e.origPkts = u
			case "bytes0":
				e.origBytes = u
			case "src1":
				e.replySrc = a
			case "dst1":
				e.replyDst = a
			case "sport1":
				e.replySport = uint16(u)
			case "dport1":
				e.replyDport = uint16(u)
			case "packets1":
				e.replyPkts = u
			case "bytes1":
				e.replyBytes = u
			}
		}
		e.natted = e.replySrc != e.origDst || e.replyDst != e.origSrc ||
			(!e.hasICMP && (e.replySport != e.origDport || e.replyDport != e.origSport))
		es = append(es, e)
	}
	return es
}

// wantRows is what a collector that shows everything (Wireshark) shows
// for e: the original direction's record, and the reply direction's when
// packets came back.
func (e ctEntry) wantRows() []ipfixtest.Row {
	orig := ipfixtest.Row{Src: e.origSrc, Dst: e.origDst, SrcPort: e.origSport, DstPort: e.origDport,
		Proto: e.proto, Packets: e.origPkts, Octets: e.origBytes}
	reply := ipfixtest.Row{Src: e.replySrc, Dst: e.replyDst, SrcPort: e.replySport, DstPort: e.replyDport,
		Proto: e.proto, Packets: e.replyPkts, Octets: e.replyBytes}
	if e.hasICMP {
		orig.SrcPort, orig.DstPort = 0, uint16(e.icmpType)<<8|uint16(e.icmpCode)
		orig.ICMP = orig.DstPort
		reply.SrcPort, reply.DstPort = 0, uint16(e.replyICMPType)<<8|uint16(e.icmpCode)
		reply.ICMP = reply.DstPort
	}
	if e.natted {
		orig.PostSrc, orig.PostDst, orig.PostSrcPort, orig.PostDstPort = e.replyDst, e.replySrc, e.replyDport, e.replySport
		reply.PostSrc, reply.PostDst, reply.PostSrcPort, reply.PostDstPort = e.origDst, e.origSrc, e.origDport, e.origSport
		if e.hasICMP {
			orig.PostSrcPort, orig.PostDstPort, reply.PostSrcPort, reply.PostDstPort = 0, 0, 0, 0
		}
	}
	if e.replyPkts == 0 {
		return []ipfixtest.Row{orig}
	}
	return []ipfixtest.Row{orig, reply}
}

// rowKey identifies a flow direction in a collector's rows.
func rowKey(r ipfixtest.Row) string {
	return fmt.Sprintf("%d %s:%d > %s:%d", r.Proto, r.Src, r.SrcPort, r.Dst, r.DstPort)
}

// tcpVia makes a TCP connection from A:sport to dial:dport, served by nc
// listening in B on listen:lport (with DNAT in A, dial is the virtual
// address).
func tcpVia(t *testing.T, p *NSPair, dial netip.Addr, dport int, listen netip.Addr, lport, sport int, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	srv := p.Command(ctx, p.B, "nc", "-l", listen.String(), strconv.Itoa(lport))
	var got strings.Builder
	srv.Stdout = &got
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, commandTimeout, "nc listening", func() bool {
		out, _ := runCmd(commandTimeout, "ip", "netns", "exec", p.B, "ss", "-Hltn", fmt.Sprintf("sport = :%d", lport))
		return len(strings.TrimSpace(string(out))) > 0
	})
	cli := p.Command(ctx, p.A, "nc", "-N", "-w", "5", "-p", strconv.Itoa(sport), dial.String(), strconv.Itoa(dport))
	cli.Stdin = strings.NewReader(payload)
	if out, err := cli.CombinedOutput(); err != nil {
		_ = srv.Process.Kill()
		_ = srv.Wait()
		t.Fatalf("nc %s:%d: %v\n%s", dial, dport, err, out)
	}
	if err := srv.Wait(); err != nil || got.String() != payload {
		t.Fatalf("nc server: %v, got %q", err, got.String())
	}
}

// udpEcho sends one datagram A:sport → B:dport and has B answer it.
func udpEcho(t *testing.T, p *NSPair, v6 bool, sport, dport int) {
	t.Helper()
	src, dst := addrs(p, v6)
	var srv *net.UDPConn
	if err := InNetns(p.B, func() (err error) {
		srv, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(dport))))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var cli *net.UDPConn
	if err := InNetns(p.A, func() (err error) {
		cli, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, uint16(sport))),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(dport))))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Write([]byte("question")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	srv.SetReadDeadline(time.Now().Add(commandTimeout))
	n, from, err := srv.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WriteToUDP([]byte("answer: "+string(buf[:n])), from); err != nil {
		t.Fatal(err)
	}
	cli.SetReadDeadline(time.Now().Add(commandTimeout))
	if _, err := cli.Read(buf); err != nil {
		t.Fatal(err)
	}
}

// ipfixTraffic makes the flows of the collector tests in p: TCP, UDP and
// ICMP over IPv4 and IPv6, and a TCP connection DNAT'd from
// 10.99.0.100:80 to B's 10.99.0.2:8080.
func ipfixTraffic(t *testing.T, p *NSPair) {
	t.Helper()
	p.Nft(t, p.A, `table ip ulogdnat {
	chain out { type nat hook output priority -100; ip daddr 10.99.0.100 tcp dport 80 dnat to 10.99.0.2:8080; }
}
table inet ulogdraw {
	chain out { type filter hook output priority raw; oif lo notrack; }
	chain pre { type filter hook prerouting priority raw; iif lo notrack; }
}`)
	p.TCP(t, false, 40001, 5001, "hello over IPv4\n")
	p.TCP(t, true, 40002, 5002, "hello over IPv6, a little longer\n")
	udpEcho(t, p, false, 40003, 5003)
	udpEcho(t, p, true, 40004, 5004)
	p.Ping(t, false, 3)
	p.Ping(t, true, 2)
	tcpVia(t, p, netip.MustParseAddr("10.99.0.100"), 80, p.B4, 8080, 40005, "through DNAT\n")
}

// TestIPFIXCollectors exports real conntrack flows to nfdump's nfcapd,
// pmacct's nfacctd (both UDP) and, over TCP, to a listener whose messages
// Wireshark's dissector decodes; each must show every flow's 5-tuple,
// both directions' packets and bytes as conntrack counted them, start
// and end times, and the NAT translation.
func TestIPFIXCollectors(t *testing.T) {
	t.Parallel()
	RequireTools(t, "nfcapd", "nfdump", "nfacctd", "tshark")
	// The window of every flow: the daemon's own TCP connection to the
	// listener is one of them (tracked from before the notrack rule).
	begin := time.Now().Truncate(time.Second)
	p := NewNSPair(t, NSOptions{Conntrack: true, Accounting: true, Timestamps: true})
	nfcapd := ipfixtest.StartNfcapd(t, p.A, 4739)
	nfacctd := ipfixtest.StartNfacctd(t, p.A, 4740)
	tshark := ipfixtest.StartTshark(t, p.A, "tcp")
	dir := t.TempDir()
	logfile := filepath.Join(dir, "ours.log")
	_, tport, _ := net.SplitHostPort(tshark.Addr())
	conf := WriteConfig(t, filepath.Join(dir, "ours.conf"), fmt.Sprintf(`[global]
logfile=%q
loglevel=1
stack=ct1:NFCT,ipfix1:IPFIX
stack=ct1:NFCT,ipfix2:IPFIX
stack=ct1:NFCT,ipfix3:IPFIX

[ct1]

[ipfix1]
oid=1
host=127.0.0.1
port=4739
proto=udp

[ipfix2]
oid=2
host=127.0.0.1
port=4740
proto=udp

[ipfix3]
oid=3
host=127.0.0.1
port=%s
proto=tcp
`, logfile, tport))
	StartDaemon(t, DaemonSpec{Name: "ours", Binary: OurBinary(t), Netns: p.A, Config: conf, Logfile: logfile})

	ipfixTraffic(t, p)
	truth := conntrackList(t, p, p.A)
	p.FlushConntrack(t)
	end := time.Now().Add(time.Second)

	var want []ipfixtest.Row
	starts := map[string]time.Time{}
	nat := 0
	for _, e := range truth {
		for _, w := range e.wantRows() {
			want = append(want, w)
			starts[rowKey(w)] = e.start
		}
		if e.natted {
			nat++
		}
	}
	known := 0
	for _, e := range truth {
		if !e.start.IsZero() {
			known++
		}
	}
	if known != len(truth) {
		t.Errorf("conntrack -o ktimestamp gave the start of %d flows of %d", known, len(truth))
	}
	if len(truth) < 7 || nat != 1 {
		t.Fatalf("conntrack has %d flows (%d NAT'd), want at least 7 and 1:\n%v", len(truth), nat, truth)
	}
	for _, c := range []ipfixtest.Collector{tshark, nfcapd, nfacctd} {
		t.Run(c.Name(), func(t *testing.T) {
			got := map[string]ipfixtest.Row{}
			for _, r := range c.Rows(t, len(want)) {
				got[rowKey(r)] = r
			}
			for _, w := range want {
				adjust := w
				switch c.Name() {
				case "nfcapd":
					if w.ICMP != 0 {
						adjust.DstPort = 0 // nfdump shows ICMP type and code instead
					}
					if w.Src.Is6() {
						adjust.PostSrc, adjust.PostDst = netip.Addr{}, netip.Addr{}
					}
				case "nfacctd":
					adjust.ICMP = 0
					if w.Src.Is6() {
						adjust.PostSrc, adjust.PostDst = netip.Addr{}, netip.Addr{}
					}
				}
				r, ok := got[rowKey(adjust)]
				if !ok {
					t.Errorf("no %s", adjust)
					continue
				}
				if r.Start.Before(begin) || r.End.After(end) || r.End.Before(r.Start) {
					t.Errorf("%s: times %s..%s outside the test's %s..%s", adjust, r.Start, r.End, begin, end)
				}
				if st := starts[rowKey(w)]; !st.IsZero() && (r.Start.Before(st) || !r.Start.Before(st.Add(1100*time.Millisecond))) {
					t.Errorf("%s: start %s, conntrack says %s (to the second)", adjust, r.Start, st)
				}
				adjust.Start, adjust.End = r.Start, r.End
				if r != adjust {
					t.Errorf("%s shows\n  %s\nwant\n  %s", c.Name(), r, adjust)
				}
			}
			if t.Failed() {
				var all []string
				for _, e := range truth {
					all = append(all, e.line)
				}
				t.Logf("conntrack -L -o extended:\n%s", strings.Join(all, "\n"))
			}
		})
	}
}

// TestIPFIXReference runs the reference ulogd2 and ours on the same
// config (apart from the port) and the same events, and compares what
// Wireshark decodes on the fields both export: the 5-tuple of the
// original direction, packets and bytes (ulogd2 sums both directions,
// ours exports each direction in its own record), start and end (ulogd2
// in seconds, ours in milliseconds), the mark (ulogd2's applicationId,
// ours an enterprise element). IPv4 only: ulogd2 exports the first
// 4 bytes of IPv6 addresses (docs/compat.md).
func TestIPFIXReference(t *testing.T) {
	t.Parallel()
	RequireTools(t, "tshark")
	ref := RefBinary(t)
	p := NewNSPair(t, NSOptions{Conntrack: true, Accounting: true, Timestamps: true})
	// Every flow gets a mark: ulogd2 exports it as applicationId, ours
	// under mark_pen (which ulogd2 2.0.8 ignores).
	p.Nft(t, p.A, "table inet ulogdmark {\n\tchain out { type filter hook output priority 0; ct mark set 42; }\n}")
	refC := ipfixtest.StartTshark(t, p.A, "udp")
	oursC := ipfixtest.StartTshark(t, p.A, "udp")
	dir := t.TempDir()
	config := func(logfile, addr string) string {
		_, port, _ := net.SplitHostPort(addr)
		return fmt.Sprintf("[global]\nlogfile=%q\nloglevel=1\nplugin=\"/usr/lib/x86_64-linux-gnu/ulogd/ulogd_inpflow_NFCT.so\"\n"+
			"plugin=\"/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_IPFIX.so\"\n"+
			"stack=ct1:NFCT,ipfix1:IPFIX\n\n[ct1]\n\n[ipfix1]\noid=1\nhost=127.0.0.1\nport=%s\nproto=udp\nmark_pen=32473\n", logfile, port)
	}
	refLog, oursLog := filepath.Join(dir, "ref.log"), filepath.Join(dir, "ours.log")
	StartDaemon(t, DaemonSpec{Name: "ref", Binary: ref, Netns: p.A, Logfile: refLog,
		Config: WriteConfig(t, filepath.Join(dir, "ref.conf"), config(refLog, refC.Addr()))})
	StartDaemon(t, DaemonSpec{Name: "ours", Binary: OurBinary(t), Netns: p.A, Logfile: oursLog,
		Config: WriteConfig(t, filepath.Join(dir, "ours.conf"), config(oursLog, oursC.Addr()))})

	ipfixTraffic(t, p)
	truth := conntrackList(t, p, p.A)
	p.FlushConntrack(t)
	// ulogd2 sends full messages only (13 records with the template, 14
	// without, at mtu 512; docs/compat.md X7): more flows push ours out.
	for i := range 30 {
		if _, err := p.UDPFromGo(false, 41000+i, 6000+i, []byte("filler")); err != nil {
			t.Fatal(err)
		}
	}
	filler := conntrackList(t, p, p.A)
	p.FlushConntrack(t)
	if len(truth) > 27 {
		t.Fatalf("%d flows: more than ulogd2's first two messages hold", len(truth))
	}
	var oursWant int
	for _, e := range append(append([]ctEntry(nil), truth...), filler...) {
		oursWant += len(e.wantRows())
	}
	refRows := refC.Rows(t, 27)
	oursRows := oursC.Rows(t, oursWant)

	key := func(proto uint8, src, dst netip.Addr, sport, dport uint16) string {
		if proto == 1 || proto == 58 {
			sport, dport = 0, 0
		}
		return fmt.Sprintf("%d %s:%d > %s:%d", proto, src, sport, dst, dport)
	}
	refBy, oursBy := map[string]ipfixtest.Row{}, map[string]ipfixtest.Row{}
	for _, r := range refRows {
		refBy[key(r.Proto, r.Src, r.Dst, r.SrcPort, r.DstPort)] = r
	}
	for _, r := range oursRows {
		oursBy[key(r.Proto, r.Src, r.Dst, r.SrcPort, r.DstPort)] = r
	}
	compared := 0
	for _, e := range truth {
		if !e.origSrc.Is4() || e.origSrc.IsLoopback() {
			continue
		}
		k := key(e.proto, e.origSrc, e.origDst, e.origSport, e.origDport)
		rr, ok1 := refBy[k]
		or, ok2 := oursBy[k]
		rk := key(e.proto, e.replySrc, e.replyDst, e.replySport, e.replyDport)
		back, ok3 := oursBy[rk]
		if !ok1 || !ok2 || !ok3 {
			t.Errorf("%s: ulogd2 %v, ours %v, ours reply %v", k, ok1, ok2, ok3)
			continue
		}
		compared++
		if rr.Packets != or.Packets+back.Packets || rr.Octets != or.Octets+back.Octets {
			t.Errorf("%s: ulogd2 %d packets %d bytes, ours %d+%d packets %d+%d bytes", k,
				rr.Packets, rr.Octets, or.Packets, back.Packets, or.Octets, back.Octets)
		}
		if or.Packets != e.origPkts || back.Packets != e.replyPkts {
			t.Errorf("%s: ours %d/%d packets, conntrack %d/%d", k, or.Packets, back.Packets, e.origPkts, e.replyPkts)
		}
		if rr.Mark != 42 || or.Mark != 42 || back.Mark != 42 {
			t.Errorf("%s: mark: ulogd2 %d, ours %d and %d, want 42", k, rr.Mark, or.Mark, back.Mark)
		}
		if !rr.Start.Equal(or.Start.Truncate(time.Second)) || !rr.End.Equal(or.End.Truncate(time.Second)) {
			t.Errorf("%s: ulogd2 %s..%s, ours %s..%s", k, rr.Start, rr.End, or.Start, or.End)
		}
	}
	if compared < 4 {
		t.Errorf("compared %d IPv4 flows, want 4 (TCP, UDP, ICMP, DNAT'd TCP)", compared)
	}
	if t.Failed() {
		for _, r := range refRows {
			t.Logf("ulogd2: %s", r)
		}
		for _, r := range oursRows {
			t.Logf("ours:   %s", r)
		}
	}
}
