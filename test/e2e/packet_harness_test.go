package e2e

// Helpers for the packet path (NFLOG → BASE → … → PRINTPKT → LOGEMU):
//
//	PacketConfig                         a config for one or more NFLOG stacks
//	NewPacketNS                          a namespace pair whose A logs to NFLOG groups
//	PacketRuleset                        the nft ruleset NewPacketNS loads
//	(*NSPair).PacketBarrier              "every earlier packet line is written"
//	(*NSPair).UDPBurst, TCPLogin         bounded traffic A → B
//	NftRuleCounter                       packets counted by a named nft counter
//	MatchPacketLine, FindPacketLines     exact PRINTPKT lines with '#' for numbers
//	NormalizePacketLine                  the ONE packet-line normaliser (docs/compat.md)
//	StartBothPacket                      the reference and ours on different groups

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// CanonicalPacketStack is the kernel-LOG emulation stack (Debian's default).
const CanonicalPacketStack = "log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU"

// Prefixes of the log rules PacketRuleset installs.
const (
	OutPrefix = "OUT-LOG" // output hook, packets A → B
	InPrefix  = "IN-LOG"  // input hook, packets B → A
)

// MAC addresses NewNSPair gives the veth ends.
const (
	MacA = "02:99:00:00:00:01"
	MacB = "02:99:00:00:00:02"
)

// PacketConfig describes a config file with NFLOG stacks.
type PacketConfig struct {
	Logfile string
	// Stacks are the stack= values; nil means {CanonicalPacketStack}.
	Stacks []string
	// Group is [log1] group=; netlink_qthreshold=1 is always set so that
	// every packet is delivered at once (both daemons support it).
	Group int
	// NFLOG are more "key=value" lines for [log1].
	NFLOG []string
	// Outputs maps LOGEMU instance ids to their files (sync=1).
	Outputs map[string]string
	// Sections is more raw config text (e.g. "[mark1]\nmark=5").
	Sections []string
}

// String renders the config; both daemons accept it.
func (c PacketConfig) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[global]\nlogfile=%q\nloglevel=1\n", c.Logfile)
	stacks := c.Stacks
	if stacks == nil {
		stacks = []string{CanonicalPacketStack}
	}
	for _, s := range stacks {
		b.WriteString("stack=" + s + "\n")
	}
	fmt.Fprintf(&b, "\n[log1]\ngroup=%d\nnetlink_qthreshold=1\n", c.Group)
	for _, l := range c.NFLOG {
		b.WriteString(l + "\n")
	}
	ids := make([]string, 0, len(c.Outputs))
	for id := range c.Outputs {
		ids = append(ids, id)
	}
	// Stable order, so that config line numbers do not vary between runs.
	slices.Sort(ids)
	for _, id := range ids {
		fmt.Fprintf(&b, "\n[%s]\nfile=%q\nsync=1\n", id, c.Outputs[id])
	}
	for _, s := range c.Sections {
		b.WriteString("\n" + strings.TrimRight(s, "\n") + "\n")
	}
	return b.String()
}

// PacketRules says what PacketRuleset logs.
type PacketRules struct {
	// Groups: every logged packet is sent to each of these groups, in
	// this order, by one rule with one log statement per group.
	Groups []int
	// OutputFirst are statements (one per line) put at the start of the
	// output chain, e.g. "udp dport 5050 meta mark set 5".
	OutputFirst []string
	// NoInput leaves out the input-hook log rules.
	NoInput bool
	// Counter names a counter object counting every packet the output
	// rules log (read it with NftRuleCounter).
	Counter string
}

// PacketRuleset is the nft ruleset for A: every IPv4/IPv6 packet to B is
// logged with prefix OutPrefix at the output hook, every packet from B
// with InPrefix at the input hook.
func PacketRuleset(p *NSPair, r PacketRules) string {
	logs := func(prefix string) string {
		var s []string
		for _, g := range r.Groups {
			s = append(s, fmt.Sprintf("log prefix %q group %d", prefix, g))
		}
		return strings.Join(s, " ")
	}
	count := ""
	if r.Counter != "" {
		count = fmt.Sprintf("counter name %q ", r.Counter)
	}
	var b strings.Builder
	b.WriteString("table inet ulogdpkt {\n")
	if r.Counter != "" {
		fmt.Fprintf(&b, "\tcounter %s {\n\t}\n", r.Counter)
	}
	b.WriteString("\tchain out {\n\t\ttype filter hook output priority 0;\n")
	for _, s := range r.OutputFirst {
		b.WriteString("\t\t" + s + "\n")
	}
	fmt.Fprintf(&b, "\t\tip daddr %s %s%s\n", p.B4, count, logs(OutPrefix))
	fmt.Fprintf(&b, "\t\tip6 daddr %s %s%s\n", p.B6, count, logs(OutPrefix))
	b.WriteString("\t}\n")
	if !r.NoInput {
		b.WriteString("\tchain in {\n\t\ttype filter hook input priority 0;\n")
		fmt.Fprintf(&b, "\t\tip saddr %s %s\n", p.B4, logs(InPrefix))
		fmt.Fprintf(&b, "\t\tip6 saddr %s %s\n", p.B6, logs(InPrefix))
		b.WriteString("\t}\n")
	}
	b.WriteString("}")
	return b.String()
}

// Ports B drops silently (no ICMP error comes back): the barrier port and
// the burst port of the loss test.
const (
	BurstPort     = 5998
	dropPortFirst = 5990
)

// NewPacketNS creates a namespace pair, loads PacketRuleset(r) in A, and
// makes B drop UDP to ports 5990–5999 without answering, so that barrier
// and burst datagrams cause no logged ICMP errors.
func NewPacketNS(t testing.TB, r PacketRules) *NSPair {
	t.Helper()
	p := NewNSPair(t, NSOptions{})
	p.Nft(t, p.A, PacketRuleset(p, r))
	p.Nft(t, p.B, fmt.Sprintf(`table inet ulogddrop {
	chain in {
		type filter hook input priority 0;
		udp dport %d-%d drop
	}
}`, dropPortFirst, BarrierPort))
	return p
}

var packetBarrierSport atomic.Int64

// PacketBarrier sends one UDP datagram A → B:BarrierPort (logged by the
// output rule) and waits until every file has its line. Each file is
// written by one daemon from one NFLOG group, in packet order, so every
// packet logged before the barrier is then in the file. It returns each
// file's lines before the barrier's, without barrier lines.
func (p *NSPair) PacketBarrier(t testing.TB, files ...string) [][]string {
	t.Helper()
	sport := 31000 + int(packetBarrierSport.Add(1))
	if _, err := p.UDPFromGo(false, sport, BarrierPort, []byte("barrier")); err != nil {
		t.Fatalf("barrier datagram: %v", err)
	}
	marker := fmt.Sprintf(" SPT=%d DPT=%d ", sport, BarrierPort)
	res := make([][]string, len(files))
	for i, f := range files {
		lines := WaitLinesMatch(t, f, linesTimeout, "packet barrier line", func(l string) bool {
			return strings.Contains(l, marker)
		})
		for _, l := range lines {
			if !strings.Contains(l, fmt.Sprintf(" DPT=%d ", BarrierPort)) {
				res[i] = append(res[i], l)
			}
		}
	}
	return res
}

// UDPBurst sends n datagrams A:sport → B:dport from one unconnected
// socket opened in A (ICMP errors do not stop it).
func (p *NSPair) UDPBurst(v6 bool, sport, dport, n int, payload []byte) error {
	src, dst := addrs(p, v6)
	return InNetns(p.A, func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, uint16(sport))))
		if err != nil {
			return err
		}
		defer c.Close()
		to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(dport)))
		for i := range n {
			if _, err := c.WriteToUDP(payload, to); err != nil {
				return fmt.Errorf("datagram %d of %d: %w", i+1, n, err)
			}
		}
		return nil
	})
}

// TCPLogin opens a TCP connection A:sport → B:dport to a tiny server run
// by this process in B and sends "USER <user>\r\n" and "PASS <pass>\r\n"
// as two segments (each waits for the server's one-line reply), then
// closes.
func (p *NSPair) TCPLogin(t testing.TB, v6 bool, sport, dport int, user, pass string) {
	t.Helper()
	src, dst := addrs(p, v6)
	var ln net.Listener
	if err := InNetns(p.B, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(dst, uint16(dport)).String())
		return err
	}); err != nil {
		t.Fatalf("login server in %s: %v", p.B, err)
	}
	defer ln.Close()
	deadline := time.Now().Add(commandTimeout)
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		r := newLineReader(c)
		for _, reply := range []string{"331 password please\r\n", "230 logged in\r\n"} {
			if _, err := r.line(); err != nil {
				srvErr <- err
				return
			}
			if _, err := c.Write([]byte(reply)); err != nil {
				srvErr <- err
				return
			}
		}
		_, err = r.line() // EOF when the client closes
		if err != nil && !errors.Is(err, io.EOF) {
			srvErr <- err
			return
		}
		srvErr <- nil
	}()
	err := InNetns(p.A, func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, uint16(sport))), Deadline: deadline}
		c, err := d.Dial("tcp", netip.AddrPortFrom(dst, uint16(dport)).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		r := newLineReader(c)
		for _, cmd := range []string{"USER " + user + "\r\n", "PASS " + pass + "\r\n"} {
			if _, err := c.Write([]byte(cmd)); err != nil {
				return err
			}
			if _, err := r.line(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("login client %s:%d: %v", dst, dport, err)
	}
	if err := <-srvErr; err != nil {
		t.Fatalf("login server %s:%d: %v", dst, dport, err)
	}
}

type lineReader struct {
	c   net.Conn
	buf []byte
}

func newLineReader(c net.Conn) *lineReader { return &lineReader{c: c} }

// line reads up to and including the next '\n'.
func (r *lineReader) line() (string, error) {
	for {
		if i := strings.IndexByte(string(r.buf), '\n'); i >= 0 {
			l := string(r.buf[:i+1])
			r.buf = r.buf[i+1:]
			return l, nil
		}
		b := make([]byte, 512)
		n, err := r.c.Read(b)
		r.buf = append(r.buf, b[:n]...)
		if err != nil {
			return "", err
		}
	}
}

// NftRuleCounter returns the packets counted by the named counter object
// of table inet ulogdpkt in namespace ns.
func NftRuleCounter(t testing.TB, p *NSPair, ns, name string) int {
	t.Helper()
	out := p.Exec(t, ns, "nft", "-j", "list", "counter", "inet", "ulogdpkt", name)
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Packets int    `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j list counter: %v\n%s", err, out)
	}
	for _, o := range doc.Nftables {
		if o.Counter != nil && o.Counter.Name == name {
			return o.Counter.Packets
		}
	}
	t.Fatalf("counter %q not in nft output:\n%s", name, out)
	return 0
}

// ---------------------------------------------------------------------
// Matching PRINTPKT lines

// MatchPacketLine matches a PRINTPKT body (no LOGEMU prefix) against a
// pattern that is the exact text except that each '#' stands for a
// decimal number; it returns those numbers.
func MatchPacketLine(pattern, body string) ([]int, bool) {
	parts := strings.Split(pattern, "#")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	re := regexp.MustCompile("^" + strings.Join(parts, `(\d+)`) + "$")
	m := re.FindStringSubmatch(body)
	if m == nil {
		return nil, false
	}
	nums := make([]int, len(m)-1)
	for i, s := range m[1:] {
		nums[i], _ = strconv.Atoi(s)
	}
	return nums, true
}

// FindPacketLines returns the numbers of every body matching pattern.
func FindPacketLines(pattern string, bodies []string) [][]int {
	var res [][]int
	for _, b := range bodies {
		if n, ok := MatchPacketLine(pattern, b); ok {
			res = append(res, n)
		}
	}
	return res
}

// PacketBodies splits every line into its time stamp (local time, this
// year or the previous one, whichever is closer to now) and its body
// after the host name, failing the test on a malformed prefix.
func PacketBodies(t testing.TB, lines []string, host string) (stamps []time.Time, bodies []string) {
	t.Helper()
	for _, l := range lines {
		ts, body, err := splitPacketLine(l, host)
		if err != nil {
			t.Error(err)
			continue
		}
		stamps = append(stamps, ts)
		bodies = append(bodies, body)
	}
	return stamps, bodies
}

// StampedBodies is PacketBodies for lines that must be stamped within
// [before, after], the time of the traffic they log; a line outside it is
// an error.
func StampedBodies(t testing.TB, lines []string, host string, before, after time.Time) []string {
	t.Helper()
	stamps, bodies := PacketBodies(t, lines, host)
	for i, ts := range stamps {
		if ts.Before(before) || ts.After(after) {
			t.Errorf("line %q stamped %s, outside the traffic's time [%s, %s]",
				bodies[i], ts.Format(time.Stamp), before.Format(time.Stamp), after.Format(time.Stamp))
		}
	}
	return bodies
}

func splitPacketLine(line, host string) (time.Time, string, error) {
	_, body, err := SplitPrefix(line, host)
	if err != nil {
		return time.Time{}, "", err
	}
	ts, err := time.ParseInLocation(time.Stamp, line[:15], time.Local)
	if err != nil {
		return time.Time{}, "", err
	}
	now := time.Now()
	ts = ts.AddDate(now.Year(), 0, 0)
	if ts.Sub(now) > 180*24*time.Hour {
		ts = ts.AddDate(-1, 0, 0)
	}
	return ts, body, nil
}

// NormalizePacketLine turns one LOGEMU line of a PRINTPKT stack into its
// time stamp and the text in which the reference ulogd2's and ours must be
// equal. It is the ONE place that lists what may differ on packet lines;
// each rule names its docs/compat.md entry, and only the rules the tested
// traffic needs are here:
//
//  1. F2: the "Mon dd hh:mm:ss host " prefix is split off (and checked to
//     be well formed); the caller compares the two stamps loosely. Both
//     daemons use the packet's kernel time stamp when there is one, but
//     locally sent packets carry none and are stamped when read, which
//     can straddle a second.
//  2. P9 (reference): ulogd2 picks the ICMP extras by the code, so an ICMP
//     message that is not an echo but has code 0 or 8 (time exceeded
//     11/0) gets "ID=<n> SEQ=<n> " from keys BASE never set. Removed.
//  3. P9 (ours): we print "GATEWAY=<addr> " for every redirect (type 5);
//     ulogd2 only for code 5, which no redirect has. Removed from our
//     redirect lines whose code is not 5.
//  4. P7 (reference): ulogd2 decodes the payload of a non-first IPv4
//     fragment (" FRAG:<n> " with n > 0) as a transport header and prints
//     made-up fields; we print "INCOMPLETE" (glued to the next field, as
//     ulogd2 does for missing headers). The reference's made-up fields are
//     replaced by "INCOMPLETE".
func NormalizePacketLine(line, host string, reference bool) (time.Time, string, error) {
	ts, body, err := splitPacketLine(line, host)
	if err != nil {
		return ts, body, err
	}
	if m := icmpExtrasRE.FindStringSubmatchIndex(body); m != nil {
		typ, code := body[m[2]:m[3]], body[m[4]:m[5]]
		extras := body[m[6]:m[7]]
		echo := typ == "0" || typ == "8"
		switch {
		case reference && !echo && (code == "0" || code == "8"): // rule 2
			extras = bogusEchoRE.ReplaceAllString(extras, "")
		case !reference && typ == "5" && code != "5": // rule 3
			extras = gatewayRE.ReplaceAllString(extras, "")
		}
		body = body[:m[6]] + extras + body[m[7]:]
	}
	if reference { // rule 4
		body = fragPayloadRE.ReplaceAllString(body, "${1}INCOMPLETE${2}")
	}
	return ts, body, nil
}

var (
	// PRINTPKT's IPv4 ICMP fields: type, code, then the extras up to the
	// UID=/GID=/MARK= trailer.
	icmpExtrasRE = regexp.MustCompile(` PROTO=ICMP TYPE=(\d+) CODE=(\d+) (.*?)(?:UID=|GID=|MARK=|$)`)
	bogusEchoRE  = regexp.MustCompile(`^ID=\d+ SEQ=\d+ `)
	gatewayRE    = regexp.MustCompile(`^GATEWAY=\S+ `)
	// A non-first IPv4 fragment's transport fields.
	fragPayloadRE = regexp.MustCompile(`^(.* FRAG:[1-9]\d* PROTO=(?:ICMP|TCP|UDP|SCTP) ).*?((?:UID=|GID=|MARK=).*)?$`)
)

// StartBothPacket starts the reference bound to NFLOG group refGroup and
// ours bound to oursGroup, both in p.A, each with config(group, logfile,
// out) written to its own file.
func StartBothPacket(t *testing.T, p *NSPair, refGroup, oursGroup int, config func(group int, logfile, out string) string) *Pair {
	t.Helper()
	ref := RefBinary(t)
	ours := OurBinary(t)
	dir := t.TempDir()
	r := &Pair{RefOut: filepath.Join(dir, "ref.out"), OursOut: filepath.Join(dir, "ours.out")}
	refLog, oursLog := filepath.Join(dir, "ref.log"), filepath.Join(dir, "ours.log")
	refConf := WriteConfig(t, filepath.Join(dir, "ref.conf"), config(refGroup, refLog, r.RefOut))
	oursConf := WriteConfig(t, filepath.Join(dir, "ours.conf"), config(oursGroup, oursLog, r.OursOut))
	r.Ref = StartDaemon(t, DaemonSpec{Name: "ref", Binary: ref, Netns: p.A, Config: refConf, Logfile: refLog})
	r.Ours = StartDaemon(t, DaemonSpec{Name: "ours", Binary: ours, Netns: p.A, Config: oursConf, Logfile: oursLog})
	return r
}

// startOurPacket starts our daemon in p.A with the config c (Logfile is
// filled in) and returns it with its log file.
func startOurPacket(t *testing.T, p *NSPair, c PacketConfig) (*Daemon, string) {
	t.Helper()
	bin := OurBinary(t)
	dir := t.TempDir()
	c.Logfile = filepath.Join(dir, "ours.log")
	conf := WriteConfig(t, filepath.Join(dir, "ours.conf"), c.String())
	d := StartDaemon(t, DaemonSpec{Name: "ours", Binary: bin, Netns: p.A, Config: conf, Logfile: c.Logfile})
	return d, c.Logfile
}
