package ctnl

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/netnstest"
	"github.com/ulogd-go/ulogd/internal/nl"
	"golang.org/x/sys/unix"
)

// udpSend sends one datagram from inside ns and returns the destination port.
func udpSend(t *testing.T, ns *netnstest.NS, network, dst string, payload []byte) {
	t.Helper()
	var c net.Conn
	var err error
	ns.Do(t, func() { c, err = net.Dial(network, dst) })
	if err != nil {
		t.Fatalf("dial %s: %v", dst, err)
	}
	defer c.Close()
	if _, err := c.Write(payload); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// tcpFlow makes one TCP connection inside ns on loopback, sends payload and
// closes; it returns the server port.
func tcpFlow(t *testing.T, ns *netnstest.NS, network, laddr string, payload []byte) uint16 {
	t.Helper()
	var ln net.Listener
	var c net.Conn
	var err, derr error
	ns.Do(t, func() {
		ln, err = net.Listen(network, laddr)
		if err == nil {
			c, derr = net.Dial(network, ln.Addr().String())
		}
	})
	if err != nil || derr != nil {
		t.Fatalf("listen/dial: %v %v", err, derr)
	}
	defer ln.Close()
	done := make(chan []byte)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			done <- nil
			return
		}
		b, _ := io.ReadAll(s)
		s.Close()
		done <- b
	}()
	c.Write(payload)
	c.Close()
	if got := <-done; len(got) != len(payload) {
		t.Fatalf("server got %d bytes, want %d", len(got), len(payload))
	}
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func conntrackIns(t *testing.T, ns *netnstest.NS, args ...string) {
	t.Helper()
	ns.Run(t, append([]string{"conntrack", "-I", "--timeout", "100"}, args...)...)
}

func TestKernelEvents(t *testing.T) {
	type check func(t *testing.T, ev *Event)
	ports := func(sport, dport uint16) check {
		return func(t *testing.T, ev *Event) {
			if !ev.Orig.HasPorts || (sport != 0 && ev.Orig.SrcPort != sport) || ev.Orig.DstPort != dport {
				t.Errorf("orig ports = %v %d->%d, want %d->%d", ev.Orig.HasPorts, ev.Orig.SrcPort, ev.Orig.DstPort, sport, dport)
			}
			if !ev.Reply.HasPorts || ev.Reply.SrcPort != dport || ev.Reply.DstPort != ev.Orig.SrcPort {
				t.Errorf("reply ports = %d->%d", ev.Reply.SrcPort, ev.Reply.DstPort)
			}
		}
	}
	icmp := func(typ uint8, id uint16) check {
		return func(t *testing.T, ev *Event) {
			if ev.Orig.HasPorts || !ev.Orig.HasICMP || ev.Orig.ICMPType != typ || ev.Orig.ICMPCode != 0 || (id != 0 && ev.Orig.ICMPID != id) {
				t.Errorf("orig icmp = %v type %d code %d id %d, want type %d id %d", ev.Orig.HasICMP, ev.Orig.ICMPType, ev.Orig.ICMPCode, ev.Orig.ICMPID, typ, id)
			}
		}
	}
	const (
		tcpPort = 45123
		udpPort = 45124
	)
	cases := []struct {
		name       string
		family     uint8
		proto      uint8
		src, dst   string
		gen        func(t *testing.T, ns *netnstest.NS)
		check      check
		minPackets uint64 // orig packets expected on DESTROY
		update     bool   // an UPDATE event is expected
	}{
		{
			name: "tcp4-inserted", family: unix.AF_INET, proto: ProtoTCP, src: "10.0.0.1", dst: "10.0.0.2",
			gen: func(t *testing.T, ns *netnstest.NS) {
				conntrackIns(t, ns, "-s", "10.0.0.1", "-d", "10.0.0.2", "-p", "tcp", "--sport", "1234", "--dport", "80", "--state", "ESTABLISHED", "-m", "7")
			},
			check: func(t *testing.T, ev *Event) {
				ports(1234, 80)(t, ev)
				if !ev.HasMark || ev.Mark != 7 {
					t.Errorf("mark = %v %d, want 7", ev.HasMark, ev.Mark)
				}
				if ev.Status&0x8 == 0 { // IPS_CONFIRMED
					t.Errorf("status %#x lacks IPS_CONFIRMED", ev.Status)
				}
			},
		},
		{
			name: "tcp4-traffic", family: unix.AF_INET, proto: ProtoTCP, src: "127.0.0.1", dst: "127.0.0.1",
			gen: func(t *testing.T, ns *netnstest.NS) {
				tcpFlow(t, ns, "tcp4", "127.0.0.1:"+strconv.Itoa(tcpPort), []byte("hello"))
			},
			check: ports(0, tcpPort), minPackets: 4, update: true,
		},
		{
			name: "tcp6-traffic", family: unix.AF_INET6, proto: ProtoTCP, src: "::1", dst: "::1",
			gen: func(t *testing.T, ns *netnstest.NS) {
				tcpFlow(t, ns, "tcp6", "[::1]:"+strconv.Itoa(tcpPort), []byte("hello"))
			},
			check: ports(0, tcpPort), minPackets: 4, update: true,
		},
		{
			name: "udp4-traffic", family: unix.AF_INET, proto: ProtoUDP, src: "127.0.0.1", dst: "127.0.0.1",
			gen: func(t *testing.T, ns *netnstest.NS) {
				udpSend(t, ns, "udp4", "127.0.0.1:"+strconv.Itoa(udpPort), []byte("ping"))
			},
			check: ports(0, udpPort), minPackets: 1,
		},
		{
			name: "udp6-traffic", family: unix.AF_INET6, proto: ProtoUDP, src: "::1", dst: "::1",
			gen: func(t *testing.T, ns *netnstest.NS) {
				udpSend(t, ns, "udp6", "[::1]:"+strconv.Itoa(udpPort), []byte("ping"))
			},
			check: ports(0, udpPort), minPackets: 1,
		},
		{
			name: "udp6-inserted", family: unix.AF_INET6, proto: ProtoUDP, src: "fd00::1", dst: "fd00::2",
			gen: func(t *testing.T, ns *netnstest.NS) {
				conntrackIns(t, ns, "-s", "fd00::1", "-d", "fd00::2", "-p", "udp", "--sport", "5000", "--dport", "53")
			},
			check: ports(5000, 53),
		},
		{
			name: "icmp4-ping", family: unix.AF_INET, proto: ProtoICMP, src: "127.0.0.1", dst: "127.0.0.1",
			gen:   func(t *testing.T, ns *netnstest.NS) { ns.Run(t, "ping", "-c1", "-W1", "127.0.0.1") },
			check: icmp(8, 0), minPackets: 1, update: true,
		},
		{
			name: "icmp4-inserted", family: unix.AF_INET, proto: ProtoICMP, src: "10.0.0.1", dst: "10.0.0.2",
			gen: func(t *testing.T, ns *netnstest.NS) {
				conntrackIns(t, ns, "-s", "10.0.0.1", "-d", "10.0.0.2", "-p", "icmp", "--icmp-type", "8", "--icmp-code", "0", "--icmp-id", "77")
			},
			check: icmp(8, 77),
		},
		{
			name: "icmp6-ping", family: unix.AF_INET6, proto: ProtoICMPv6, src: "::1", dst: "::1",
			gen:   func(t *testing.T, ns *netnstest.NS) { ns.Run(t, "ping", "-6", "-c1", "-W1", "::1") },
			check: icmp(128, 0), minPackets: 1, update: true,
		},
		{
			name: "sctp4-inserted", family: unix.AF_INET, proto: ProtoSCTP, src: "10.0.0.1", dst: "10.0.0.2",
			gen: func(t *testing.T, ns *netnstest.NS) {
				conntrackIns(t, ns, "-s", "10.0.0.1", "-d", "10.0.0.2", "-p", "sctp", "--sport", "5000", "--dport", "6000",
					"--state", "ESTABLISHED", "--orig-vtag", "1", "--reply-vtag", "2")
			},
			check: ports(5000, 6000),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := netnstest.NewNS(t)
			ns.EnableConntrack(t)
			c := openIn(t, ns, GroupNew, GroupUpdate, GroupDestroy)
			tc.gen(t, ns)
			ns.Run(t, "conntrack", "-F")
			ours := func(ev *Event) bool { return ev.Orig.Proto == tc.proto && ev.Family == tc.family }
			all, _ := collect(t, c, 1, 3*time.Second, func(ev *Event) bool { return ours(ev) && ev.Type == Destroy })
			var seen = map[EventType]int{}
			for _, cp := range all {
				ev := &cp.ev
				if !ours(ev) {
					continue
				}
				t.Logf("%v", ev)
				seen[ev.Type]++
				if got, want := addr(ev.Orig.Src), tc.src; got != want {
					t.Errorf("%v orig src = %s, want %s", ev.Type, got, want)
				}
				if got, want := addr(ev.Orig.Dst), tc.dst; got != want {
					t.Errorf("%v orig dst = %s, want %s", ev.Type, got, want)
				}
				if addr(ev.Reply.Src) != tc.dst || addr(ev.Reply.Dst) != tc.src || ev.Reply.Proto != tc.proto {
					t.Errorf("%v reply tuple = %s -> %s proto %d", ev.Type, addr(ev.Reply.Src), addr(ev.Reply.Dst), ev.Reply.Proto)
				}
				if !ev.HasID || ev.ID == 0 {
					t.Errorf("%v: no CTA_ID", ev.Type)
				}
				if ev.Unknown != 0 {
					t.Errorf("%v: %d unknown attributes", ev.Type, ev.Unknown)
				}
				tc.check(t, ev)
				if ev.Type == Destroy {
					if !ev.HasCounters || ev.OrigPackets < tc.minPackets {
						t.Errorf("DESTROY counters = %v %d packets, want ≥ %d", ev.HasCounters, ev.OrigPackets, tc.minPackets)
					}
					if tc.minPackets > 0 && ev.OrigBytes == 0 {
						t.Errorf("DESTROY orig bytes = 0")
					}
					if !ev.HasStart || !ev.HasStop || ev.Stop < ev.Start {
						t.Errorf("DESTROY timestamps = %v %d, %v %d", ev.HasStart, ev.Start, ev.HasStop, ev.Stop)
					}
					now := uint64(time.Now().UnixNano())
					if ev.Stop > now || now-ev.Stop > uint64(time.Minute) {
						t.Errorf("DESTROY stop %d is not recent (now %d)", ev.Stop, now)
					}
				}
			}
			if seen[New] != 1 || seen[Destroy] != 1 || (tc.update && seen[Update] == 0) {
				t.Errorf("events seen %v, want 1 NEW, 1 DESTROY, UPDATE %v", seen, tc.update)
			}
		})
	}
}

func TestKernelDump(t *testing.T) {
	ns := netnstest.NewNS(t)
	ns.EnableConntrack(t)
	conntrackIns(t, ns, "-s", "10.0.0.1", "-d", "10.0.0.2", "-p", "tcp", "--sport", "1", "--dport", "2", "--state", "ESTABLISHED")
	conntrackIns(t, ns, "-s", "10.0.0.3", "-d", "10.0.0.4", "-p", "udp", "--sport", "3", "--dport", "4")
	conntrackIns(t, ns, "-s", "fd00::1", "-d", "fd00::2", "-p", "udp", "--sport", "5", "--dport", "6")
	c := openIn(t, ns)
	for _, tc := range []struct {
		family uint8
		want   []string
	}{
		{0, []string{"10.0.0.1", "10.0.0.3", "fd00::1"}},
		{unix.AF_INET, []string{"10.0.0.1", "10.0.0.3"}},
		{unix.AF_INET6, []string{"fd00::1"}},
	} {
		got := map[string]bool{}
		err := Dump(c, tc.family, false, func(ev *Event) {
			if ev.Type != Update {
				t.Errorf("dump entry type %v, want UPDATE", ev.Type)
			}
			got[addr(ev.Orig.Src)] = true
		})
		if err != nil {
			t.Fatalf("Dump(%d): %v", tc.family, err)
		}
		if len(got) != len(tc.want) {
			t.Errorf("Dump(%d) = %v, want %v", tc.family, got, tc.want)
		}
		for _, w := range tc.want {
			if !got[w] {
				t.Errorf("Dump(%d) = %v, missing %s", tc.family, got, w)
			}
		}
	}
	// The socket keeps serving requests after many dumps.
	for range 20 {
		if err := Dump(c, 0, false, func(*Event) {}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKernelDumpZero(t *testing.T) {
	ns := netnstest.NewNS(t)
	ns.EnableConntrack(t)
	ns.Run(t, "ping", "-c3", "-i0.01", "-W1", "127.0.0.1")
	c := openIn(t, ns)
	counts := func(zero bool) (pkts, bytes uint64, n int) {
		t.Helper()
		err := Dump(c, unix.AF_INET, zero, func(ev *Event) {
			if ev.Orig.Proto == ProtoICMP {
				pkts, bytes, n = ev.OrigPackets+ev.ReplyPackets, ev.OrigBytes+ev.ReplyBytes, n+1
			}
		})
		if err != nil {
			t.Fatalf("Dump(zero=%v): %v", zero, err)
		}
		return
	}
	if p, b, n := counts(false); n != 1 || p != 6 || b != 6*84 {
		t.Fatalf("before: %d entries, %d packets, %d bytes; want 1, 6, 504", n, p, b)
	}
	if p, b, _ := counts(true); p != 6 || b != 6*84 {
		t.Fatalf("zeroing dump returned %d packets %d bytes, want the values before zeroing (6, 504)", p, b)
	}
	if p, b, n := counts(false); n != 1 || p != 0 || b != 0 {
		t.Fatalf("after zeroing: %d entries, %d packets, %d bytes; want 1, 0, 0", n, p, b)
	}
}

func TestKernelExists(t *testing.T) {
	ns := netnstest.NewNS(t)
	ns.EnableConntrack(t)
	conntrackIns(t, ns, "-s", "10.0.0.1", "-d", "10.0.0.2", "-p", "tcp", "--sport", "1", "--dport", "2", "--state", "ESTABLISHED")
	conntrackIns(t, ns, "-s", "fd00::1", "-d", "fd00::2", "-p", "udp", "--sport", "5", "--dport", "6")
	conntrackIns(t, ns, "-s", "10.0.0.5", "-d", "10.0.0.6", "-p", "icmp", "--icmp-type", "8", "--icmp-code", "0", "--icmp-id", "9")
	conntrackIns(t, ns, "-s", "10.0.0.7", "-d", "10.0.0.8", "-p", "sctp", "--sport", "5000", "--dport", "6000",
		"--state", "ESTABLISHED", "--orig-vtag", "1", "--reply-vtag", "2")
	c := openIn(t, ns)
	var flows []Event
	var raws [][]byte
	if err := Dump(c, 0, false, func(ev *Event) {
		// Keep a copy that outlives the dump buffer.
		cp := *ev
		cp.Orig.Src, cp.Orig.Dst = append([]byte(nil), ev.Orig.Src...), append([]byte(nil), ev.Orig.Dst...)
		flows = append(flows, cp)
		raws = append(raws, cp.Orig.Src)
	}); err != nil {
		t.Fatal(err)
	}
	if len(flows) != 4 {
		t.Fatalf("dumped %d flows, want 4", len(flows))
	}
	for i := range flows {
		ok, err := Exists(c, &flows[i])
		if err != nil || !ok {
			t.Errorf("Exists(%v) = %v, %v; want true", &flows[i], ok, err)
		}
	}
	ns.Run(t, "conntrack", "-F")
	for i := range flows {
		ok, err := Exists(c, &flows[i])
		if err != nil || ok {
			t.Errorf("after flush Exists(%v) = %v, %v; want false", &flows[i], ok, err)
		}
	}
	// A flow that never existed, with a port changed.
	f := flows[0]
	f.Orig.SrcPort++
	if ok, err := Exists(c, &f); err != nil || ok {
		t.Errorf("Exists(unknown) = %v, %v", ok, err)
	}
}

func TestKernelFilter(t *testing.T) {
	ns := netnstest.NewNS(t)
	ns.EnableConntrack(t)
	// The flows inserted for each filter, named by their source address.
	flows := [][]string{
		{"-s", "10.1.0.1", "-d", "192.168.0.1", "-p", "tcp", "--sport", "1", "--dport", "2", "--state", "ESTABLISHED"},
		{"-s", "10.2.0.1", "-d", "192.168.1.1", "-p", "udp", "--sport", "1", "--dport", "2"},
		{"-s", "10.1.0.2", "-d", "192.168.1.2", "-p", "icmp", "--icmp-type", "8", "--icmp-code", "0", "--icmp-id", "1"},
		{"-s", "fd00::1", "-d", "fd10::1", "-p", "tcp", "--sport", "1", "--dport", "2", "--state", "ESTABLISHED"},
		{"-s", "fd01::1", "-d", "fd10::2", "-p", "udp", "--sport", "1", "--dport", "2"},
		{"-s", "fd00:0:0:1::1", "-d", "fd11::1", "-p", "icmpv6", "--icmpv6-type", "128", "--icmpv6-code", "0", "--icmpv6-id", "1"},
	}
	all := []string{"10.1.0.1", "10.2.0.1", "10.1.0.2", "fd00::1", "fd01::1", "fd00:0:0:1::1"}
	pfx := func(ss ...string) []netip.Prefix {
		var ps []netip.Prefix
		for _, s := range ss {
			ps = append(ps, netip.MustParsePrefix(s))
		}
		return ps
	}
	cases := []struct {
		name string
		f    Filter
		want []string
	}{
		{"empty", Filter{}, all},
		{"src v4 only (v6 unlisted accepted)", Filter{Src: pfx("10.1.0.0/16")}, []string{"10.1.0.1", "10.1.0.2", "fd00::1", "fd01::1", "fd00:0:0:1::1"}},
		{"src v4 host", Filter{Src: pfx("10.2.0.1/32")}, []string{"10.2.0.1", "fd00::1", "fd01::1", "fd00:0:0:1::1"}},
		{"src v6 only (v4 unlisted accepted)", Filter{Src: pfx("fd00::/64")}, []string{"10.1.0.1", "10.2.0.1", "10.1.0.2", "fd00::1"}},
		{"src v6 /48 and v4 two prefixes", Filter{Src: pfx("fd00::/48", "10.2.0.0/16", "10.1.0.2/32")}, []string{"10.2.0.1", "10.1.0.2", "fd00::1", "fd00:0:0:1::1"}},
		{"src v6 /0 and v4 /0", Filter{Src: pfx("::/0", "0.0.0.0/0")}, all},
		{"dst", Filter{Dst: pfx("192.168.1.0/24", "fd10::/120")}, []string{"10.2.0.1", "10.1.0.2", "fd00::1", "fd01::1"}},
		{"dst v6 odd prefix", Filter{Dst: pfx("fd10::2/127")}, []string{"10.1.0.1", "10.2.0.1", "10.1.0.2", "fd01::1"}},
		{"proto", Filter{Protos: []uint8{ProtoUDP, ProtoICMP}}, []string{"10.2.0.1", "10.1.0.2", "fd01::1"}},
		{"proto icmpv6 dup", Filter{Protos: []uint8{ProtoICMPv6, ProtoICMPv6}}, []string{"fd00:0:0:1::1"}},
		{"src and dst and proto", Filter{Src: pfx("10.0.0.0/8"), Dst: pfx("192.168.1.0/24"), Protos: []uint8{ProtoUDP, ProtoTCP}},
			[]string{"10.2.0.1", "fd00::1", "fd01::1"}}, // IPv6 is listed in neither address list
		{"src and dst and proto, both families", Filter{Src: pfx("10.0.0.0/8", "fd00::/16"), Dst: pfx("192.168.1.0/24", "fd10::/16"), Protos: []uint8{ProtoUDP, ProtoTCP}},
			[]string{"10.2.0.1", "fd00::1"}}, // fd01::1 is outside fd00::/16
		{"src and dst, v6 dst mismatch", Filter{Src: pfx("fd00::/16"), Dst: pfx("fd11::/16")}, []string{"10.1.0.1", "10.2.0.1", "10.1.0.2", "fd00:0:0:1::1"}},
		{"no match", Filter{Src: pfx("11.0.0.0/8", "fe80::/10")}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prog, err := tc.f.Program()
			if err != nil {
				t.Fatal(err)
			}
			c := openIn(t, ns, GroupNew, GroupDestroy)
			if err := c.AttachFilter(prog); err != nil {
				t.Fatalf("AttachFilter (%d insns): %v", len(prog), err)
			}
			for _, f := range flows {
				conntrackIns(t, ns, f...)
			}
			ns.Run(t, "conntrack", "-F")
			evs, _ := collect(t, c, 1<<30, 200*time.Millisecond, nil)
			got := map[string]int{}
			for _, cp := range evs {
				if cp.ev.Type != Update { // dump replies decode as UPDATE
					got[addr(cp.ev.Orig.Src)]++
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("accepted %v, want %v", got, tc.want)
			}
			for _, w := range tc.want {
				if got[w] != 2 { // NEW and DESTROY
					t.Errorf("accepted %v, want NEW+DESTROY of %v", got, tc.want)
					break
				}
			}
		})
	}
}

func TestFilterProgramErrors(t *testing.T) {
	if _, err := (Filter{Src: []netip.Prefix{{}}}).Program(); err == nil {
		t.Error("invalid prefix accepted")
	}
	var many []netip.Prefix
	for i := range 2000 {
		many = append(many, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	if _, err := (Filter{Src: many}).Program(); err == nil {
		t.Error("program over BPF_MAXINSNS accepted")
	}
	prog, err := Filter{}.Program()
	if err != nil || len(prog) == 0 {
		t.Errorf("empty filter: %v", err)
	}
	_ = nl.ErrMalformed
}
