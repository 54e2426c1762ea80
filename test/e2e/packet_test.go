package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

// macIn is what PRINTPKT prints for a packet received on veth-a from B:
// the whole Ethernet header (destination A, source B, ethertype).
func macIn(ethertype string) string { return MacA + ":" + MacB + ":" + ethertype }

// Line patterns ('#' = any number) of PRINTPKT for the pair's addresses.
const (
	out4 = OutPrefix + " IN= OUT=veth-a MAC= SRC=10.99.0.1 DST=10.99.0.2 "
	out6 = OutPrefix + " IN= OUT=veth-a MAC= SRC=fd99::1 DST=fd99::2 "
	own  = "UID=0 GID=0 MARK=0x0 " // sent by a root process, unmarked
)

var (
	in4 = InPrefix + " IN=veth-a OUT= MAC=" + macIn("08:00") + " SRC=10.99.0.2 DST=10.99.0.1 "
	in6 = InPrefix + " IN=veth-a OUT= MAC=" + macIn("86:dd") + " SRC=fd99::2 DST=fd99::1 "
)

// expectOne finds the single body matching pattern and returns its
// numbers; it reports an error (and returns nil) unless exactly one
// matches.
func expectOne(t *testing.T, what, pattern string, bodies []string) []int {
	t.Helper()
	m := FindPacketLines(pattern, bodies)
	if len(m) != 1 {
		t.Errorf("%s: %d lines match\n  %q\nwant 1; lines:\n%s", what, len(m), pattern, strings.Join(bodies, "\n"))
		return nil
	}
	return m[0]
}

func u32(v int) string { return strconv.FormatUint(uint64(uint32(v)), 10) }

// TestPacketCanonical: our daemon alone with Debian's stack
// (NFLOG,BASE,IFINDEX,IP2STR,PRINTPKT,LOGEMU) on group 1. Exact lines for
// ICMP and ICMPv6 echo, UDP and the ICMP port unreachable it causes, and
// a TCP connection (SYN, SYN-ACK, data, FIN); every line stamped with the
// packet's time.
func TestPacketCanonical(t *testing.T) {
	t.Parallel()
	p := NewPacketNS(t, PacketRules{Groups: []int{1}})
	out := filepath.Join(t.TempDir(), "ours.out")
	startOurPacket(t, p, PacketConfig{Group: 1, Outputs: map[string]string{"emu1": out}})

	before := time.Now().Truncate(time.Second)
	p.Ping(t, false, 1)
	p.Ping(t, true, 1)
	const udpPayload = "hello udp\n"
	p.UDP(t, false, 40013, 5013, udpPayload)
	const tcpPayload = "hello tcp\n"
	p.TCP(t, false, 40011, 5011, tcpPayload)
	lines := p.PacketBarrier(t, out)[0]
	after := time.Now()

	bodies := StampedBodies(t, lines, ShortHostname(t), before, after)
	for _, b := range bodies {
		if !strings.HasPrefix(b, out4) && !strings.HasPrefix(b, out6) && !strings.HasPrefix(b, in4) && !strings.HasPrefix(b, in6) {
			t.Errorf("unexpected line %q", b)
		}
		if !strings.HasSuffix(b, " ") {
			t.Errorf("line does not end with a space: %q", b)
		}
	}

	// ICMP echo: the reply has the request's id and sequence.
	req := expectOne(t, "ICMP echo request", out4+"LEN=84 TOS=00 PREC=0x00 TTL=64 ID=# DF PROTO=ICMP TYPE=8 CODE=0 ID=# SEQ=1 "+own, bodies)
	if req != nil {
		expectOne(t, "ICMP echo reply", in4+"LEN=84 TOS=00 PREC=0x00 TTL=64 ID=# PROTO=ICMP TYPE=0 CODE=0 ID="+strconv.Itoa(req[1])+" SEQ=1 MARK=0x0 ", bodies)
	}
	req6 := expectOne(t, "ICMPv6 echo request", out6+"LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=# PROTO=ICMPv6 TYPE=128 CODE=0 ID=# SEQ=1 "+own, bodies)
	if req6 != nil {
		expectOne(t, "ICMPv6 echo reply", in6+"LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=# PROTO=ICMPv6 TYPE=129 CODE=0 ID="+strconv.Itoa(req6[1])+" SEQ=1 MARK=0x0 ", bodies)
	}

	// UDP to a closed port, and the port unreachable (IP header, ICMP
	// header, then the datagram's IP and UDP headers and payload).
	n := len(udpPayload)
	expectOne(t, "UDP datagram", fmt.Sprintf(out4+"LEN=%d TOS=00 PREC=0x00 TTL=64 ID=# DF PROTO=UDP SPT=40013 DPT=5013 LEN=%d "+own, 28+n, 8+n), bodies)
	expectOne(t, "ICMP port unreachable", fmt.Sprintf(in4+"LEN=%d TOS=00 PREC=0xC0 TTL=64 ID=# PROTO=ICMP TYPE=3 CODE=3 MARK=0x0 ", 56+n), bodies)

	// TCP: SYN, SYN-ACK (acknowledging the SYN; owned by the connecting
	// socket), the data segment and A's FIN, with consistent sequence
	// numbers.
	m := len(tcpPayload)
	syn := expectOne(t, "TCP SYN", out4+"LEN=60 TOS=00 PREC=0x00 TTL=64 ID=# DF PROTO=TCP SPT=40011 DPT=5011 SEQ=# ACK=0 WINDOW=# SYN URGP=0 "+own, bodies)
	if syn == nil {
		return
	}
	isn := syn[1]
	synack := expectOne(t, "TCP SYN-ACK", in4+"LEN=60 TOS=00 PREC=0x00 TTL=64 ID=0 DF PROTO=TCP SPT=5011 DPT=40011 SEQ=# ACK="+u32(isn+1)+" WINDOW=# ACK SYN URGP=0 "+own, bodies)
	if synack == nil {
		return
	}
	risn := synack[0]
	expectOne(t, "TCP data", fmt.Sprintf(out4+"LEN=%d TOS=00 PREC=0x00 TTL=64 ID=# DF PROTO=TCP SPT=40011 DPT=5011 SEQ=%s ACK=%s WINDOW=# ACK PSH URGP=0 "+own,
		52+m, u32(isn+1), u32(risn+1)), bodies)
	expectOne(t, "TCP FIN from A", fmt.Sprintf(out4+"LEN=52 TOS=00 PREC=0x00 TTL=64 ID=# DF PROTO=TCP SPT=40011 DPT=5011 SEQ=%s ACK=# WINDOW=# ACK FIN URGP=0 "+own,
		u32(isn+1+m)), bodies)
	expectOne(t, "TCP FIN from B", fmt.Sprintf(in4+"LEN=52 TOS=00 PREC=0x00 TTL=64 ID=# DF PROTO=TCP SPT=5011 DPT=40011 SEQ=%s ACK=# WINDOW=# ACK FIN URGP=0 "+own,
		u32(risn+1)), bodies)
}

// TestPacketMark: the mark-filtering stack
// (NFLOG,BASE,MARK,IFINDEX,IP2STR,PRINTPKT,LOGEMU) logs only the packets
// whose mark, masked, equals [mark1] mark=; nft marks some of them before
// the log rule.
func TestPacketMark(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		section string
		pass    map[int]string // destination port → MARK= printed; others must be stopped
	}{
		{"mark=5", "[mark1]\nmark=5", map[int]string{5050: "0x5"}},
		{"mark=5,mask=0xff", "[mark1]\nmark=5\nmask=0xff", map[int]string{5050: "0x5", 5052: "0x105"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPacketNS(t, PacketRules{Groups: []int{1}, OutputFirst: []string{
				"udp dport 5050 meta mark set 5",
				"udp dport 5051 meta mark set 6",
				"udp dport 5052 meta mark set 0x105",
				fmt.Sprintf("udp dport %d meta mark set 5", BarrierPort),
			}})
			out := filepath.Join(t.TempDir(), "ours.out")
			startOurPacket(t, p, PacketConfig{
				Group:    1,
				Stacks:   []string{"log1:NFLOG,base1:BASE,mark1:MARK,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU"},
				Outputs:  map[string]string{"emu1": out},
				Sections: []string{tc.section},
			})
			p.Ping(t, false, 1)
			for i, port := range []int{5050, 5051, 5052, 5053} {
				if _, err := p.UDPFromGo(false, 40020+i, port, []byte("mark")); err != nil {
					t.Fatal(err)
				}
			}
			_, bodies := PacketBodies(t, p.PacketBarrier(t, out)[0], ShortHostname(t))
			var want []string
			for i, port := range []int{5050, 5051, 5052, 5053} {
				if mark, ok := tc.pass[port]; ok {
					want = append(want, fmt.Sprintf(out4+"LEN=32 TOS=00 PREC=0x00 TTL=64 ID=# DF PROTO=UDP SPT=%d DPT=%d LEN=12 UID=0 GID=0 MARK=%s ", 40020+i, port, mark))
				}
			}
			if len(bodies) != len(want) {
				t.Fatalf("%d lines, want %d:\n%s", len(bodies), len(want), strings.Join(bodies, "\n"))
			}
			for i := range want {
				if _, ok := MatchPacketLine(want[i], bodies[i]); !ok {
					t.Errorf("line %d:\n got %q\nwant %q", i+1, bodies[i], want[i])
				}
			}
		})
	}
}

// TestPacketSharedSource: one NFLOG instance (log1) in two stacks, each
// ending in its own LOGEMU file: every packet is in both files, with the
// same text and time stamp.
func TestPacketSharedSource(t *testing.T) {
	t.Parallel()
	p := NewPacketNS(t, PacketRules{Groups: []int{1}})
	dir := t.TempDir()
	fileA, fileB := filepath.Join(dir, "a.out"), filepath.Join(dir, "b.out")
	startOurPacket(t, p, PacketConfig{
		Group: 1,
		Stacks: []string{
			CanonicalPacketStack,
			"log1:NFLOG,base2:BASE,ifi2:IFINDEX,ip2str2:IP2STR,print2:PRINTPKT,emu2:LOGEMU",
		},
		Outputs: map[string]string{"emu1": fileA, "emu2": fileB},
	})
	p.Ping(t, false, 2)
	p.Ping(t, true, 2)
	p.UDP(t, false, 40041, 5041, "shared\n")
	p.TCP(t, true, 40042, 5042, "shared\n")
	got := p.PacketBarrier(t, fileA, fileB)
	if diff := cmp.Diff(got[0], got[1]); diff != "" {
		t.Errorf("the two stacks' files differ (-%s +%s):\n%s", fileA, fileB, diff)
	}
	// 4 + 4 echo packets, the datagram and its ICMP error, and at least
	// 6 TCP segments.
	if len(got[0]) < 16 {
		t.Errorf("only %d lines:\n%s", len(got[0]), strings.Join(got[0], "\n"))
	}
}

var countersRE = regexp.MustCompile(`counters instance=log1 plugin=NFLOG events=(\d+) lost=(\d+)`)

// lastCounters returns the numbers of the last NFLOG counters line in
// the daemon's log, or ok=false.
func lastCounters(t *testing.T, logfile string) (events, lost int, ok bool) {
	t.Helper()
	for _, l := range ReadLines(t, logfile) {
		if m := countersRE.FindStringSubmatch(l); m != nil {
			events, _ = strconv.Atoi(m[1])
			lost, _ = strconv.Atoi(m[2])
			ok = true
		}
	}
	return events, lost, ok
}

// TestPacketNFLOGLoss: with an 8 KiB socket buffer that may not grow and
// the daemon stopped (SIGSTOP) while a burst of packets is logged, the
// kernel drops most of them. The daemon must count them: events + lost
// equals what the nft rule logged, lost > 0, and every event is a line.
// Not parallel: its barriers wait 200 ms windows and want the CPU.
func TestPacketNFLOGLoss(t *testing.T) {
	const burst = 3000
	p := NewPacketNS(t, PacketRules{Groups: []int{1}, NoInput: true, Counter: "logged"})
	out := filepath.Join(t.TempDir(), "ours.out")
	d, logfile := startOurPacket(t, p, PacketConfig{
		Group:   1,
		NFLOG:   []string{"netlink_socket_buffer_size=8192", "netlink_socket_buffer_maxsize=0"},
		Outputs: map[string]string{"emu1": out},
	})

	d.Signal(t, syscall.SIGSTOP)
	stopped := true
	defer func() {
		if stopped {
			_ = d.Cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	if err := p.UDPBurst(false, 40051, BurstPort, burst, []byte("burst")); err != nil {
		t.Fatal(err)
	}
	d.Signal(t, syscall.SIGCONT)
	stopped = false

	// A barrier sent while the daemon still drains the full buffer can be
	// dropped too: retry (bounded) until one gets through.
	const tries = 25
	var lines []string
	for try := 0; ; try++ {
		sport := 32000 + try
		if _, err := p.UDPFromGo(false, sport, BarrierPort, []byte("barrier")); err != nil {
			t.Fatal(err)
		}
		marker := fmt.Sprintf(" SPT=%d DPT=%d ", sport, BarrierPort)
		if testutil.Eventually(200*time.Millisecond, func() bool {
			lines = ReadLines(t, out)
			return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, marker) })
		}) {
			break
		}
		if try == tries-1 {
			t.Fatalf("no barrier datagram logged after %d tries; %d lines", tries, len(lines))
		}
	}

	// SIGUSR1 logs the counters while running.
	d.Signal(t, syscall.SIGUSR1)
	WaitFor(t, linesTimeout, "counters line after SIGUSR1", func() bool {
		_, _, ok := lastCounters(t, logfile)
		return ok
	})
	if _, err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	events, lost, _ := lastCounters(t, logfile) // the exit report is the last one
	logged := NftRuleCounter(t, p, p.A, "logged")
	lines = ReadLines(t, out)
	t.Logf("nft logged %d packets (burst %d); daemon: events=%d lost=%d; %d lines", logged, burst, events, lost, len(lines))
	if logged < burst {
		t.Fatalf("nft counted %d packets, fewer than the burst of %d", logged, burst)
	}
	if events+lost != logged {
		t.Errorf("events %d + lost %d = %d, want the %d packets nft logged", events, lost, events+lost, logged)
	}
	if lost == 0 {
		t.Errorf("lost=0: the burst of %d packets into an 8 KiB buffer lost nothing?", burst)
	}
	if len(lines) != events {
		t.Errorf("%d lines written, %d events received", len(lines), events)
	}
}

// TestPacketPWSNIFF: a stack with PWSNIFF logs only the segments carrying
// FTP or POP3 USER/PASS commands (IPv4 and IPv6); other packets, also a
// login sent to another port, are stopped. A second stack on the same
// source without PWSNIFF carries the barrier.
func TestPacketPWSNIFF(t *testing.T) {
	t.Parallel()
	p := NewPacketNS(t, PacketRules{Groups: []int{1}})
	dir := t.TempDir()
	sniffed, all := filepath.Join(dir, "sniffed.out"), filepath.Join(dir, "all.out")
	startOurPacket(t, p, PacketConfig{
		Group: 1,
		Stacks: []string{
			"log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,pw1:PWSNIFF,print1:PRINTPKT,emu1:LOGEMU",
			"log1:NFLOG,base2:BASE,ifi2:IFINDEX,ip2str2:IP2STR,print2:PRINTPKT,emu2:LOGEMU",
		},
		Outputs: map[string]string{"emu1": sniffed, "emu2": all},
	})
	// Traffic PWSNIFF must stop.
	p.Ping(t, false, 1)
	p.UDP(t, false, 40060, 21, "USER mallory\r\n")
	p.TCPLogin(t, false, 40061, 2121, "bob", "hunter2")
	// The logins, last, so that the sniffed lines are the last ones.
	type login struct {
		v6          bool
		sport, port int
		user, pass  string
	}
	logins := []login{
		{false, 40062, 21, "alice", "secret"},
		{true, 40063, 21, "alice6", "secret6"},
		{false, 40064, 110, "carol", "pop3pass"},
	}
	for _, l := range logins {
		p.TCPLogin(t, l.v6, l.sport, l.port, l.user, l.pass)
	}
	allLines := p.PacketBarrier(t, all)[0]
	if len(allLines) < 20 {
		t.Errorf("the stack without PWSNIFF has only %d lines", len(allLines))
	}
	lines := WaitLines(t, sniffed, 2*len(logins), linesTimeout)
	_, bodies := PacketBodies(t, lines, ShortHostname(t))
	if len(bodies) != 2*len(logins) {
		t.Fatalf("%d lines with PWSNIFF, want %d:\n%s", len(bodies), 2*len(logins), strings.Join(bodies, "\n"))
	}
	for i, l := range logins {
		pre, hdr := out4, 52 // IPv4 + TCP with time stamps
		ipf := "TOS=00 PREC=0x00 TTL=64 ID=# DF "
		if l.v6 {
			pre, hdr = out6, 72
			ipf = "TC=0 HOPLIMIT=64 FLOWLBL=# "
		}
		user, pass := "USER "+l.user+"\r\n", "PASS "+l.pass+"\r\n"
		pat := func(n int, seq string) string {
			return fmt.Sprintf(pre+"LEN=%d "+ipf+"PROTO=TCP SPT=%d DPT=%d SEQ=%s ACK=# WINDOW=# ACK PSH URGP=0 "+own, hdr+n, l.sport, l.port, seq)
		}
		u, ok := MatchPacketLine(pat(len(user), "#"), bodies[2*i])
		if !ok {
			t.Errorf("login %d USER line:\n got %q\nwant %q", i+1, bodies[2*i], pat(len(user), "#"))
			continue
		}
		seq := u[len(u)-3] // SEQ, ACK, WINDOW are the last three numbers
		if _, ok := MatchPacketLine(pat(len(pass), u32(seq+len(user))), bodies[2*i+1]); !ok {
			t.Errorf("login %d PASS line:\n got %q\nwant %q", i+1, bodies[2*i+1], pat(len(pass), u32(seq+len(user))))
		}
	}
}
