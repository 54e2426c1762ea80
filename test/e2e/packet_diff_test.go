package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestPacketDiffCanonical runs the reference ulogd2 and ours on the same
// packets: every packet is logged by one nft rule to group 2 (the
// reference) and then group 1 (ours), and both run the canonical
// NFLOG,BASE,IFINDEX,IP2STR,PRINTPKT,LOGEMU stack. After
// NormalizePacketLine the outputs must be equal line by line; the time
// stamps of received packets (kernel time stamp) must be equal, those of
// sent packets (stamped when read) at most a second apart.
func TestPacketDiffCanonical(t *testing.T) {
	t.Parallel()
	const refGroup, oursGroup = 2, 1
	p := NewPacketNS(t, PacketRules{Groups: []int{refGroup, oursGroup}})
	both := StartBothPacket(t, p, refGroup, oursGroup, func(group int, logfile, out string) string {
		return PacketConfig{Logfile: logfile, Group: group, Outputs: map[string]string{"emu1": out}}.String()
	})

	p.Ping(t, false, 2)
	p.Ping(t, true, 2)
	p.UDP(t, false, 40003, 5002, "udp over IPv4\n") // → ICMP port unreachable (3/3)
	p.UDP(t, true, 40004, 5002, "udp over IPv6\n")  // → ICMPv6 port unreachable (1/4)
	p.TCP(t, false, 40001, 5001, "hello over IPv4\n")
	p.TCP(t, true, 40002, 5001, "hello over IPv6\n")
	got := p.PacketBarrier(t, both.RefOut, both.OursOut)

	host := ShortHostname(t)
	norm := func(lines []string, reference bool) ([]time.Time, []string) {
		var stamps []time.Time
		var bodies []string
		for _, l := range lines {
			ts, b, err := NormalizePacketLine(l, host, reference)
			if err != nil {
				t.Error(err)
				continue
			}
			stamps, bodies = append(stamps, ts), append(bodies, b)
		}
		return stamps, bodies
	}
	refStamps, ref := norm(got[0], true)
	oursStamps, ours := norm(got[1], false)

	if diff := DiffMultiset(ref, ours); diff != "" {
		t.Errorf("outputs differ as multisets (-ref +ours):\n%s", diff)
	} else if diff := cmp.Diff(ref, ours); diff != "" {
		t.Errorf("same lines, different order (-ref +ours):\n%s", diff)
	} else {
		for i := range ref {
			d := oursStamps[i].Sub(refStamps[i])
			incoming := strings.HasPrefix(ref[i], InPrefix+" ")
			if (incoming && d != 0) || d > time.Second || d < -time.Second {
				t.Errorf("time stamps %s (ref) and %s (ours) of %q: %v apart",
					refStamps[i].Format(time.Stamp), oursStamps[i].Format(time.Stamp), ref[i], d)
			}
		}
	}

	// Guard against both being equally empty or equally wrong: every kind
	// of packet of the traffic is there.
	for _, want := range []string{
		"PROTO=ICMP TYPE=8 CODE=0 ID=", "PROTO=ICMP TYPE=0 CODE=0 ID=",
		"PROTO=ICMPv6 TYPE=128 CODE=0 ID=", "PROTO=ICMPv6 TYPE=129 CODE=0 ID=",
		"PROTO=UDP SPT=40003 DPT=5002 LEN=22 ", "PROTO=ICMP TYPE=3 CODE=3 ",
		"PROTO=UDP SPT=40004 DPT=5002 LEN=22 ", "PROTO=ICMPv6 TYPE=1 CODE=4 ",
		"SPT=40001 DPT=5001 ", "SPT=5001 DPT=40001 ", "SPT=40002 DPT=5001 ", "SPT=5001 DPT=40002 ",
		" ACK SYN ", " SYN ", " ACK PSH ", " ACK FIN ",
	} {
		if !strings.Contains(strings.Join(ours, "\n"), want) {
			t.Errorf("no line of ours contains %q", want)
		}
	}
	if t.Failed() {
		t.Logf("the reference's lines:\n%s\nours:\n%s", dumpLines(got[0]), dumpLines(got[1]))
	}
}

// dumpLines is a debugging aid: the lines of a file, numbered.
func dumpLines(lines []string) string {
	var b strings.Builder
	for i, l := range lines {
		fmt.Fprintf(&b, "%3d %s\n", i+1, l)
	}
	return b.String()
}

// TestPacketDiffQuirks runs both daemons on packets where ulogd2 prints
// values docs/compat.md lists as wrong, and a few less common headers:
// an ICMP time exceeded and an ICMP redirect (P9), IPv4 and IPv6
// fragments seen before reassembly (P7), IPv4 options, a TOS/traffic
// class, and a TCP reset.
func TestPacketDiffQuirks(t *testing.T) {
	t.Parallel()
	const refGroup, oursGroup = 2, 1
	p := NewPacketNS(t, PacketRules{Groups: []int{refGroup, oursGroup}})
	// Fragments are logged at prerouting: without conntrack nothing
	// reassembles them before the input hook, which sees whole packets.
	logs := func(prefix string) string {
		return fmt.Sprintf("log prefix %q group %d log prefix %q group %d", prefix, refGroup, prefix, oursGroup)
	}
	p.Nft(t, p.A, fmt.Sprintf(`table inet ulogdfrag {
	chain pre {
		type filter hook prerouting priority 0;
		ip saddr %s ip frag-off & 0x3fff != 0 %s
		ip6 saddr %s exthdr frag exists %s
	}
}`, p.B4, logs("FRAG"), p.B6, logs("FRAG")))
	// 10.98.0.0/24 is routed A → B → A: B answers a TTL of 1 with a time
	// exceeded, and forwards a TTL of 2 back out of the interface it came
	// in on, with a redirect to A.
	p.Exec(t, p.A, "ip", "route", "add", "10.98.0.0/24", "via", p.B4.String())
	p.Exec(t, p.B, "ip", "route", "add", "10.98.0.0/24", "via", p.A4.String())
	p.Sysctl(t, p.B, "net.ipv4.ip_forward", "1")
	p.Sysctl(t, p.B, "net.ipv4.conf.all.send_redirects", "1")
	p.Sysctl(t, p.B, "net.ipv4.conf."+p.IfB+".send_redirects", "1")

	both := StartBothPacket(t, p, refGroup, oursGroup, func(group int, logfile, out string) string {
		return PacketConfig{Logfile: logfile, Group: group, Outputs: map[string]string{"emu1": out}}.String()
	})

	// Unanswered on purpose: ping exits non-zero.
	for _, ttl := range []string{"1", "2"} {
		_, _ = runCmd(commandTimeout, "ip", "netns", "exec", p.A, "ping", "-n", "-q", "-c", "1", "-W", "0.3", "-t", ttl, "10.98.0.5")
	}
	// Neighbour discovery: without its permanent entry A solicits B's
	// address (to a multicast address, not logged) and B's advertisement
	// comes back to A's address.
	p.Exec(t, p.A, "ip", "-6", "neigh", "del", p.B6.String(), "dev", p.IfA)
	p.Ping(t, true, 1)
	p.Exec(t, p.A, "ping", "-n", "-q", "-c", "1", "-s", "3000", p.B4.String())
	p.Exec(t, p.A, "ping", "-n", "-q", "-c", "1", "-s", "3000", "-6", p.B6.String())
	p.Exec(t, p.A, "ping", "-n", "-q", "-c", "1", "-R", p.B4.String())
	p.Exec(t, p.A, "ping", "-n", "-q", "-c", "1", "-Q", "0x28", p.B4.String())
	p.Exec(t, p.A, "ping", "-n", "-q", "-c", "1", "-Q", "0x28", "-6", p.B6.String())
	// TCP to a closed port: B answers the SYN with RST,ACK.
	if err := InNetns(p.A, func() error {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(p.B4, 5097).String(), commandTimeout)
		if err == nil {
			c.Close()
			return fmt.Errorf("connected to a closed port")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := p.PacketBarrier(t, both.RefOut, both.OursOut)

	host := ShortHostname(t)
	var ref, ours []string
	for i, lines := range got {
		for _, l := range lines {
			_, b, err := NormalizePacketLine(l, host, i == 0)
			if err != nil {
				t.Error(err)
				continue
			}
			if i == 0 {
				ref = append(ref, b)
			} else {
				ours = append(ours, b)
			}
		}
	}
	if diff := cmp.Diff(ref, ours); diff != "" {
		t.Errorf("outputs differ (-ref +ours):\n%s", diff)
	}
	for _, want := range []string{
		"PROTO=ICMP TYPE=11 CODE=0 ", "PROTO=ICMP TYPE=5 CODE=1 ",
		"FRAG ", " MF ", " FRAG:185 ", " FRAG: 0 ID: ", " FRAG: 1448 ID: ",
		"TOS=08 PREC=0x20 ", "TC=40 ", " ACK RST ", "PROTO=ICMPv6 TYPE=136 CODE=0 ",
	} {
		if !strings.Contains(strings.Join(ours, "\n"), want) {
			t.Errorf("no line of ours contains %q", want)
		}
	}
	if t.Failed() {
		t.Logf("the reference's lines:\n%s\nours:\n%s", dumpLines(got[0]), dumpLines(got[1]))
	}
}
