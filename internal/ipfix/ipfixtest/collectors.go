package ipfixtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/netnstest"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

// Row is one flow as a collector shows it. Fields a collector does not
// show stay zero (pmacct has no "out" counters; it shows ICMP only in
// DstPort).
type Row struct {
	Src, Dst                 netip.Addr
	SrcPort, DstPort         uint16
	Proto                    uint8
	Packets, Octets          uint64
	OutPackets, OutOctets    uint64 // nfdump's out_*, Wireshark's reverse elements
	Start, End               time.Time
	PostSrc, PostDst         netip.Addr
	PostSrcPort, PostDstPort uint16
	ICMP                     uint16 // type<<8 | code (nfdump, Wireshark)
	Zone                     uint32 // nfdump's ingress_vrf, Wireshark's Ingress VRFID
	Mark                     uint32 // Wireshark: ulogd2's applicationId, or an enterprise element 1
}

func (r Row) String() string {
	s := fmt.Sprintf("%d %s:%d > %s:%d pkts %d/%d bytes %d/%d %s..%s",
		r.Proto, r.Src, r.SrcPort, r.Dst, r.DstPort, r.Packets, r.OutPackets, r.Octets, r.OutOctets,
		r.Start.UTC().Format("15:04:05.000"), r.End.UTC().Format("15:04:05.000"))
	if r.PostSrc.IsValid() {
		s += fmt.Sprintf(" nat %s:%d > %s:%d", r.PostSrc, r.PostSrcPort, r.PostDst, r.PostDstPort)
	}
	if r.ICMP != 0 {
		s += fmt.Sprintf(" icmp %d.%d", r.ICMP>>8, r.ICMP&0xff)
	}
	return s
}

// Collector is a flow collector started by a test on loopback.
type Collector interface {
	// Name is the program ("nfcapd", "nfacctd", "tshark").
	Name() string
	// Addr is where to send: "127.0.0.1:port".
	Addr() string
	// Rows waits (bounded) until the collector has taken want records,
	// stops it and returns every flow it shows.
	Rows(t testing.TB, want int) []Row
}

// Timeouts of the harness's bounded waits.
const (
	startTimeout = 20 * time.Second
	rowsTimeout  = 20 * time.Second
	pollEvery    = 20 * time.Millisecond
)

// RequireTool skips t when the program is not installed.
func RequireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("needs %s (Debian package %s): %v", name, map[string]string{
			"nfcapd": "nfdump", "nfdump": "nfdump", "nfacctd": "pmacct", "tshark": "tshark",
		}[name], err)
	}
}

// command returns cmd run in network namespace netns ("" for the current).
func command(netns string, args ...string) *exec.Cmd {
	if netns != "" {
		args = append([]string{"ip", "netns", "exec", netns}, args...)
	}
	c := exec.Command(args[0], args[1:]...)
	c.Env = append(os.Environ(), "TZ=UTC")
	return c
}

// proc is a collector process, killed at cleanup.
type proc struct {
	cmd  *exec.Cmd
	sig  syscall.Signal // what stops it
	out  testutil.Buffer
	done chan struct{}
}

func startProc(t testing.TB, c *exec.Cmd, stop syscall.Signal) *proc {
	t.Helper()
	p := &proc{cmd: c, sig: stop, done: make(chan struct{})}
	c.Stdout, c.Stderr = &p.out, &p.out
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatalf("%s: %v", c.Args, err)
	}
	go func() { c.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends its stop signal to the process group and waits (bounded),
// then kills.
func (p *proc) stop(t testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, p.sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		t.Errorf("%s did not stop on %v; killed", p.cmd.Args, p.sig)
	}
}

// waitFor polls cond until it holds or timeout passes (then fails t with
// the process's output).
func (p *proc) waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-p.done:
			if cond() {
				return
			}
			t.Fatalf("%s exited while waiting for %s:\n%s", p.cmd.Args, what, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s within %v:\n%s", p.cmd.Args, what, timeout, p.out.String())
		}
		time.Sleep(pollEvery)
	}
}

// ---------------------------------------------------------------------
// nfdump's nfcapd

// Nfcapd is nfcapd (UDP only) writing into a temporary directory, read
// back with nfdump -o json.
type Nfcapd struct {
	p    *proc
	dir  string
	addr string
}

// StartNfcapd starts nfcapd on 127.0.0.1:port in netns.
func StartNfcapd(t testing.TB, netns string, port int) *Nfcapd {
	t.Helper()
	RequireTool(t, "nfcapd")
	RequireTool(t, "nfdump")
	dir := t.TempDir()
	// -E prints every record as it is stored: the harness counts them to
	// know when everything sent has arrived (stdbuf: line by line).
	args := []string{"nfcapd", "-E", "-w", dir, "-b", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "3600"}
	if _, err := exec.LookPath("stdbuf"); err == nil {
		args = append([]string{"stdbuf", "-oL"}, args...)
	}
	n := &Nfcapd{dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	n.p = startProc(t, command(netns, args...), syscall.SIGTERM)
	n.p.waitFor(t, startTimeout, "startup", func() bool { return strings.Contains(n.p.out.String(), "Startup nfcapd.") })
	return n
}

func (n *Nfcapd) Name() string { return "nfcapd" }
func (n *Nfcapd) Addr() string { return n.addr }

// Rows implements Collector.
func (n *Nfcapd) Rows(t testing.TB, want int) []Row {
	t.Helper()
	n.p.waitFor(t, rowsTimeout, fmt.Sprintf("%d records", want), func() bool {
		return strings.Count(n.p.out.String(), "Flow Record:") >= want
	})
	n.p.stop(t)
	out, err := command("", "nfdump", "-q", "-R", n.dir, "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("nfdump -R %s: %v\n%s", n.dir, err, out)
	}
	// With -q, nfdump prints the objects without the enclosing array.
	if out = bytes.TrimSpace(out); len(out) > 0 && out[0] != '[' {
		out = append(append([]byte{'['}, out...), ']')
	}
	var recs []map[string]any
	if err := json.Unmarshal(out, &recs); err != nil {
		t.Fatalf("nfdump json: %v\n%s", err, out)
	}
	rows := make([]Row, 0, len(recs))
	for _, m := range recs {
		var r Row
		r.Src = addrOf(m, "src4_addr", "src6_addr")
		r.Dst = addrOf(m, "dst4_addr", "dst6_addr")
		r.SrcPort = uint16(numOf(m, "src_port"))
		r.DstPort = uint16(numOf(m, "dst_port"))
		r.Proto = uint8(numOf(m, "proto"))
		r.Packets, r.Octets = numOf(m, "in_packets"), numOf(m, "in_bytes")
		r.OutPackets, r.OutOctets = numOf(m, "out_packets"), numOf(m, "out_bytes")
		r.Start = timeOf(t, m, "first", "2006-01-02T15:04:05.000")
		r.End = timeOf(t, m, "last", "2006-01-02T15:04:05.000")
		r.PostSrc = addrOf(m, "src4_xlt_ip", "src6_xlt_ip")
		r.PostDst = addrOf(m, "dst4_xlt_ip", "dst6_xlt_ip")
		r.PostSrcPort = uint16(numOf(m, "src_xlt_port"))
		r.PostDstPort = uint16(numOf(m, "dst_xlt_port"))
		if _, ok := m["icmp_type"]; ok {
			r.ICMP = uint16(numOf(m, "icmp_type"))<<8 | uint16(numOf(m, "icmp_code"))
		}
		r.Zone = uint32(numOf(m, "ingress_vrf"))
		rows = append(rows, r)
	}
	return rows
}

func addrOf(m map[string]any, names ...string) netip.Addr {
	for _, n := range names {
		if s, ok := m[n].(string); ok {
			if a, err := netip.ParseAddr(s); err == nil {
				return a
			}
		}
	}
	return netip.Addr{}
}

// numOf reads a number that nfdump or pmacct prints as a JSON number or a
// string.
func numOf(m map[string]any, name string) uint64 {
	switch v := m[name].(type) {
	case float64:
		return uint64(v)
	case string:
		n, _ := strconv.ParseUint(v, 10, 64)
		return n
	}
	return 0
}

func timeOf(t testing.TB, m map[string]any, name, layout string) time.Time {
	s, _ := m[name].(string)
	if s == "" {
		return time.Time{}
	}
	tm, err := time.ParseInLocation(layout, s, time.UTC)
	if err != nil {
		t.Errorf("%s %q: %v", name, s, err)
	}
	return tm
}

// ---------------------------------------------------------------------
// pmacct's nfacctd

// Nfacctd is nfacctd (UDP only) with its print plugin writing JSON lines.
type Nfacctd struct {
	p    *proc
	file string
	addr string
}

// StartNfacctd starts nfacctd on 127.0.0.1:port in netns.
func StartNfacctd(t testing.TB, netns string, port int) *Nfacctd {
	t.Helper()
	RequireTool(t, "nfacctd")
	dir := t.TempDir()
	n := &Nfacctd{file: filepath.Join(dir, "flows.json"), addr: fmt.Sprintf("127.0.0.1:%d", port)}
	conf := filepath.Join(dir, "nfacctd.conf")
	text := fmt.Sprintf(`daemonize: false
pidfile: %s/nfacctd.pid
nfacctd_ip: 127.0.0.1
nfacctd_port: %d
plugins: print
print_output: json
print_output_file: %s
print_output_file_append: true
print_refresh_time: 1
timestamps_utc: true
aggregate: src_host, dst_host, src_port, dst_port, proto, timestamp_start, timestamp_end, post_nat_src_host, post_nat_dst_host, post_nat_src_port, post_nat_dst_port
`, dir, port, n.file)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	// nfacctd stops on SIGINT (not on SIGTERM). Records that arrive
	// before its print plugin has written its (empty) cache once are
	// lost: wait for that.
	n.p = startProc(t, command(netns, "nfacctd", "-f", conf), syscall.SIGINT)
	n.p.waitFor(t, startTimeout, "startup", func() bool {
		return strings.Contains(n.p.out.String(), "Purging cache - END")
	})
	return n
}

func (n *Nfacctd) Name() string { return "nfacctd" }
func (n *Nfacctd) Addr() string { return n.addr }

// lines returns the complete lines written so far.
func (n *Nfacctd) lines() []string {
	b, _ := os.ReadFile(n.file)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	return strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
}

// Rows implements Collector. The print plugin writes its cache every
// second.
func (n *Nfacctd) Rows(t testing.TB, want int) []Row {
	t.Helper()
	n.p.waitFor(t, rowsTimeout, fmt.Sprintf("%d records in %s", want, n.file), func() bool {
		return len(n.lines()) >= want
	})
	// What nfacctd writes at exit repeats rows already written: read
	// before stopping it.
	lines := n.lines()
	n.p.stop(t)
	var rows []Row
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("nfacctd json %q: %v", l, err)
		}
		var r Row
		r.Src, r.Dst = addrOf(m, "ip_src"), addrOf(m, "ip_dst")
		r.SrcPort, r.DstPort = uint16(numOf(m, "port_src")), uint16(numOf(m, "port_dst"))
		r.Proto = protoNumber(m["ip_proto"])
		r.Packets, r.Octets = numOf(m, "packets"), numOf(m, "bytes")
		r.Start = timeOf(t, m, "timestamp_start", "2006-01-02 15:04:05.000000")
		r.End = timeOf(t, m, "timestamp_end", "2006-01-02 15:04:05.000000")
		r.PostSrc, r.PostDst = addrOf(m, "post_nat_ip_src"), addrOf(m, "post_nat_ip_dst")
		r.PostSrcPort, r.PostDstPort = uint16(numOf(m, "post_nat_port_src")), uint16(numOf(m, "post_nat_port_dst"))
		rows = append(rows, r)
	}
	return rows
}

// protoNumber maps pmacct's protocol names back to numbers.
func protoNumber(v any) uint8 {
	switch v := v.(type) {
	case float64:
		return uint8(v)
	case string:
		switch v {
		case "icmp":
			return 1
		case "tcp":
			return 6
		case "udp":
			return 17
		case "ipv6-icmp":
			return 58
		}
		n, _ := strconv.Atoi(v)
		return uint8(n)
	}
	return 0
}

// ---------------------------------------------------------------------
// Wireshark's dissector, behind a listener of our own

// Tshark is a UDP or TCP listener that keeps the IPFIX messages it
// receives; Rows writes them into a pcap file (one UDP datagram per
// message) and reads that back with tshark's IPFIX dissector. The
// listener also decodes every message (Decoder), so Rows knows when the
// records have arrived, and Messages gives them to the test.
type Tshark struct {
	l *Listener
}

// StartTshark starts the listener on 127.0.0.1 (network "udp" or "tcp")
// in netns.
func StartTshark(t testing.TB, netns, network string) *Tshark {
	t.Helper()
	RequireTool(t, "tshark")
	return &Tshark{l: Listen(t, netns, network)}
}

func (s *Tshark) Name() string { return "tshark" }
func (s *Tshark) Addr() string { return s.l.Addr() }

// Listener returns the listener behind the dissector.
func (s *Tshark) Listener() *Listener { return s.l }

// Rows implements Collector.
func (s *Tshark) Rows(t testing.TB, want int) []Row {
	t.Helper()
	return parseTshark(t, s.Text(t, want))
}

// Text waits (bounded) until want records arrived and returns tshark's
// verbose decoding (-V) of every message.
func (s *Tshark) Text(t testing.TB, want int) string {
	t.Helper()
	s.l.WaitRecords(t, want)
	msgs := s.l.Raw()
	pcap := filepath.Join(t.TempDir(), "ipfix.pcap")
	if err := os.WriteFile(pcap, pcapOf(msgs, 4739), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "tshark", "-n", "-r", pcap, "-d", "udp.port==4739,cflow", "-V", "-O", "cflow")
	c.Env = append(os.Environ(), "TZ=UTC")
	out, err := c.Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v\n%s", pcap, err, out)
	}
	return string(out)
}

// parseTshark reads the "Flow N" blocks of tshark -V.
func parseTshark(t testing.TB, out string) []Row {
	var rows []Row
	var r *Row
	for _, line := range strings.Split(out, "\n") {
		s := strings.TrimSpace(line)
		if strings.HasPrefix(s, "Flow ") && !strings.Contains(s, ":") {
			rows = append(rows, Row{})
			r = &rows[len(rows)-1]
			continue
		}
		if strings.HasPrefix(s, "Set ") || strings.HasPrefix(s, "Frame ") {
			r = nil
			continue
		}
		if r == nil {
			continue
		}
		k, v, ok := strings.Cut(s, ": ")
		if !ok {
			continue
		}
		switch k {
		case "Enterprise Private entry":
			// "(name) Type 1: Value (hex bytes): 00 00 00 2a"
			if _, hex, ok := strings.Cut(v, "Type 1: Value (hex bytes): "); ok {
				n, err := strconv.ParseUint(strings.ReplaceAll(hex, " ", ""), 16, 32)
				if err != nil {
					t.Errorf("tshark %s: %q: %v", k, v, err)
				}
				r.Mark = uint32(n)
			}
			continue
		case "Classification Engine ID": // applicationId (95), "invalid (0)"
			if i, j := strings.LastIndex(v, "("), strings.LastIndex(v, ")"); i >= 0 && j > i {
				n, _ := strconv.ParseUint(v[i+1:j], 10, 8)
				r.Mark |= uint32(n) << 24
			}
			continue
		case "Selector ID": // applicationId's other 3 bytes, in hex
			n, err := strconv.ParseUint(v, 16, 32)
			if err != nil {
				t.Errorf("tshark %s: %q: %v", k, v, err)
			}
			r.Mark |= uint32(n) & 0xffffff
			continue
		}
		reverse := strings.Contains(v, "(Reverse ")
		if i := strings.Index(v, " ("); i >= 0 && k != "Protocol" {
			v = v[:i]
		}
		u := func() uint64 {
			n, err := strconv.ParseUint(v, 0, 64)
			if err != nil {
				t.Errorf("tshark %s: %q: %v", k, v, err)
			}
			return n
		}
		tm := func() time.Time {
			x, err := time.Parse("Jan _2, 2006 15:04:05.000000000 MST", v)
			if err != nil {
				t.Errorf("tshark %s: %q: %v", k, v, err)
			}
			return x
		}
		switch k {
		case "SrcAddr":
			r.Src, _ = netip.ParseAddr(v)
		case "DstAddr":
			r.Dst, _ = netip.ParseAddr(v)
		case "SrcPort":
			r.SrcPort = uint16(u())
		case "DstPort":
			r.DstPort = uint16(u())
		case "Protocol":
			if i, j := strings.LastIndex(v, "("), strings.LastIndex(v, ")"); i >= 0 && j > i {
				v = v[i+1 : j]
			}
			r.Proto = uint8(u())
		case "Octets":
			if reverse {
				r.OutOctets = u()
			} else {
				r.Octets = u()
			}
		case "Packets":
			if reverse {
				r.OutPackets = u()
			} else {
				r.Packets = u()
			}
		case "Permanent Octets": // octetTotalCount (85), ulogd2's
			r.Octets = u()
		case "Permanent Packets": // packetTotalCount (86)
			r.Packets = u()
		case "StartTime":
			r.Start = tm()
		case "EndTime":
			r.End = tm()
		case "Post NAT Source IPv4 Address", "Post NAT Source IPv6 Address":
			r.PostSrc, _ = netip.ParseAddr(v)
		case "Post NAT Destination IPv4 Address", "Post NAT Destination IPv6 Address":
			r.PostDst, _ = netip.ParseAddr(v)
		case "Post NAPT Source Transport Port":
			r.PostSrcPort = uint16(u())
		case "Post NAPT Destination Transport Port":
			r.PostDstPort = uint16(u())
		case "ICMP Type":
			r.ICMP = uint16(u())
		case "IPv6 ICMP Type":
			r.ICMP |= uint16(u()) << 8
		case "IPv6 ICMP Code":
			r.ICMP |= uint16(u())
		case "Ingress VRFID":
			r.Zone = uint32(u())
		}
	}
	return rows
}

// pcapOf returns a pcap file (link type RAW) with each message in an
// IPv4/UDP datagram 127.0.0.1:4739 → 127.0.0.1:port.
func pcapOf(msgs [][]byte, port uint16) []byte {
	b := []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 101, 0, 0, 0}
	le := func(v uint32) { b = append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24)) }
	for i, m := range msgs {
		n := 20 + 8 + len(m)
		le(uint32(i))
		le(0)
		le(uint32(n))
		le(uint32(n))
		b = append(b, 0x45, 0, byte(n>>8), byte(n), 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1)
		u := 8 + len(m)
		b = append(b, 0x12, 0x83, byte(port>>8), byte(port), byte(u>>8), byte(u), 0, 0)
		b = append(b, m...)
	}
	return b
}

// FreePort returns a UDP port on 127.0.0.1 that is free at the time of
// the call, in netns ("" for the current namespace).
func FreePort(t testing.TB, netns string) int {
	t.Helper()
	var port int
	var err error
	get := func() {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err == nil {
			port = pc.LocalAddr().(*net.UDPAddr).Port
			pc.Close()
		}
	}
	inNetns(t, netns, get)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// inNetns runs fn in network namespace netns ("": here).
func inNetns(t testing.TB, netns string, fn func()) {
	t.Helper()
	if netns == "" {
		fn()
		return
	}
	(&netnstest.NS{Name: netns, Path: "/var/run/netns/" + netns}).Do(t, fn)
}
