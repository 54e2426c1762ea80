// Package e2e runs the daemon against the real kernel, inside private
// network namespaces, and compares it with the reference ulogd2.
//
// The helpers in this file are meant to be reused by every plugin's
// end-to-end tests:
//
//	RequireRoot, RequireTools, OurBinary, RefBinary   skip (or fail) early
//	NewNSPair(t, NSOptions{...})                       two namespaces + veth, cleaned up
//	NewNS(t)                                           one namespace (lo only), cleaned up
//	(*NSPair).Exec, Command, Nft, Sysctl, FlushConntrack
//	(*NSPair).TCP, UDP, UDPFromGo, Ping; InNetns       bounded traffic A → B
//	(*NSPair).Barrier                                  "every earlier event is written"
//	WriteConfig, CanonicalConfig, StartDaemon, RunOnce
//	(*Daemon).Signal, Stop, Pid, Stderr, Dump
//	WaitFor, WaitLines, WaitLinesMatch, ReadLines      bounded polling
//	SplitPrefix, Bodies, NormalizeForDiff, NormalizeAll, DiffMultiset
//
// diff_test.go adds StartBoth (reference + ours on the same events) and
// CompareOutputs.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

// RefPath is the reference daemon (Debian package ulogd2 2.0.8).
const RefPath = "/usr/sbin/ulogd"

// Timeouts for bounded waits. Nothing in this suite sleeps to
// synchronise: it polls a condition until one of these runs out.
const (
	readyTimeout   = 10 * time.Second // daemon logs "initialization finished"
	linesTimeout   = 10 * time.Second // expected lines appear in an output file
	commandTimeout = 10 * time.Second // any helper command (ip, nc, ping…)
	stopTimeout    = 10 * time.Second // daemon exits after SIGTERM
)

var (
	ourBinary string // built by TestMain, or $ULOGD_E2E_BINARY
	buildErr  error
)

// TestMain builds our daemon once (CGO_ENABLED=0) into a temporary
// directory. ULOGD_E2E_BINARY=/path/to/ulogd tests a given binary instead.
func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if bin := os.Getenv("ULOGD_E2E_BINARY"); bin != "" {
		ourBinary = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "ulogd-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ourBinary = filepath.Join(dir, "ulogd")
	cmd := exec.Command("go", "build", "-o", ourBinary, "github.com/ulogd-go/ulogd/cmd/ulogd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build ./cmd/ulogd: %v\n%s", err, out)
	}
	return m.Run()
}

// OurBinary returns the path of the daemon under test; the test fails if
// it could not be built.
func OurBinary(t testing.TB) string {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return ourBinary
}

// RefBinary returns the reference ulogd2, or skips the test.
func RefBinary(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(RefPath); err != nil {
		t.Skipf("reference ulogd2 not installed (%v): apt-get install ulogd2", err)
	}
	return RefPath
}

// RequireRoot skips the test unless it runs as root (namespaces,
// netfilter sockets and sysctls need it; .ci/run runs as root).
func RequireRoot(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
}

// RequireTools skips the test when one of the named programs is missing.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	testutil.RequireTools(t, names...)
}

// baseTools are what NewNSPair and the traffic helpers use.
var baseTools = []string{"ip", "nft", "sysctl", "conntrack", "ping", "nc", "ss"}

// ShortHostname is gethostname() cut at the first dot, as LOGEMU prints it.
func ShortHostname(t testing.TB) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ = strings.Cut(h, ".")
	return h
}

// ---------------------------------------------------------------------
// Namespaces

// NSOptions says what a namespace pair needs besides addresses.
type NSOptions struct {
	// Conntrack installs an nft table in A whose rules use conntrack, so
	// that the kernel tracks flows in A (a fresh netns registers no
	// conntrack hooks until a ruleset needs them).
	Conntrack bool
	// Accounting and Timestamps set nf_conntrack_acct / _timestamp in A
	// (per namespace, 0 in a fresh one).
	Accounting bool
	Timestamps bool
}

// NSPair is two network namespaces joined by a veth pair:
// A (10.99.0.1/24, fd99::1/64) and B (10.99.0.2/24, fd99::2/64). The
// daemons run in A; traffic goes from A to B.
type NSPair struct {
	A, B             string
	A4, B4, A6, B6   netip.Addr
	IfA, IfB         string
	t                testing.TB
	tcpServersActive sync.WaitGroup
}

// NewNSPair creates a fresh pair of uniquely named namespaces
// (testutil.NewNetns); they are deleted in t.Cleanup, also when the test
// fails. Pairs share nothing, so
// tests that each make their own can run in parallel.
func NewNSPair(t testing.TB, o NSOptions) *NSPair {
	t.Helper()
	RequireRoot(t)
	RequireTools(t, baseTools...)
	p := &NSPair{
		A: testutil.NewNetns(t), B: testutil.NewNetns(t),
		A4: netip.MustParseAddr("10.99.0.1"), B4: netip.MustParseAddr("10.99.0.2"),
		A6: netip.MustParseAddr("fd99::1"), B6: netip.MustParseAddr("fd99::2"),
		IfA: "veth-a", IfB: "veth-b",
		t: t,
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := runCmd(commandTimeout, args...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// No IPv6 router solicitations: the kernel would send them on its own,
	// seconds after the links come up, in the middle of a test.
	for _, ns := range []string{p.A, p.B} {
		for _, c := range []string{"all", "default"} {
			run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+c+".router_solicitations=0")
		}
	}

	// Fixed MACs and permanent neighbour entries: no ARP/ND traffic and
	// no resolution delay on the first packet.
	const macA, macB = "02:99:00:00:00:01", "02:99:00:00:00:02"
	run("ip", "-n", p.A, "link", "add", p.IfA, "address", macA, "type", "veth",
		"peer", "name", p.IfB, "address", macB, "netns", p.B)
	for _, s := range []struct{ ns, ifc, a4, a6, peer4, peer6, peerMAC string }{
		{p.A, p.IfA, "10.99.0.1/24", "fd99::1/64", "10.99.0.2", "fd99::2", macB},
		{p.B, p.IfB, "10.99.0.2/24", "fd99::2/64", "10.99.0.1", "fd99::1", macA},
	} {
		run("ip", "-n", s.ns, "addr", "add", s.a4, "dev", s.ifc)
		run("ip", "-n", s.ns, "addr", "add", s.a6, "dev", s.ifc, "nodad")
		run("ip", "-n", s.ns, "link", "set", s.ifc, "up")
		run("ip", "-n", s.ns, "neigh", "replace", s.peer4, "lladdr", s.peerMAC, "dev", s.ifc, "nud", "permanent")
		run("ip", "-n", s.ns, "neigh", "replace", s.peer6, "lladdr", s.peerMAC, "dev", s.ifc, "nud", "permanent")
	}
	if o.Accounting {
		p.Sysctl(t, p.A, "net.netfilter.nf_conntrack_acct", "1")
	}
	if o.Timestamps {
		p.Sysctl(t, p.A, "net.netfilter.nf_conntrack_timestamp", "1")
	}
	if o.Conntrack {
		p.Nft(t, p.A, `table inet ulogdtest {
	chain out { type filter hook output priority 0; ct state new counter; }
	chain in { type filter hook input priority 0; ct state new counter; }
}`)
	}
	t.Cleanup(p.tcpServersActive.Wait)
	return p
}

// NewNS creates one fresh namespace with only its loopback up; it is
// deleted in t.Cleanup, also when the test fails.
func NewNS(t testing.TB) string {
	t.Helper()
	return testutil.NewNetns(t)
}

// runCmd runs a command with a deadline and returns its combined output.
func runCmd(timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timed out after %v)", err, timeout)
	}
	return out, err
}

// Command returns an unstarted command run in namespace ns.
func (p *NSPair) Command(ctx context.Context, ns string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
}

// Exec runs a command in namespace ns (bounded), fails the test on error
// and returns its combined output.
func (p *NSPair) Exec(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return ExecIn(t, ns, args...)
}

// ExecIn runs a command in namespace ns (bounded), fails the test on
// error and returns its combined output.
func ExecIn(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := runCmd(commandTimeout, append([]string{"ip", "netns", "exec", ns}, args...)...)
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Sysctl sets a sysctl inside namespace ns.
func (p *NSPair) Sysctl(t testing.TB, ns, key, value string) {
	t.Helper()
	p.Exec(t, ns, "sysctl", "-q", "-w", key+"="+value)
}

// Nft loads an nft ruleset inside namespace ns.
func (p *NSPair) Nft(t testing.TB, ns, ruleset string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ruleset.nft")
	if err := os.WriteFile(f, []byte(ruleset+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.Exec(t, ns, "nft", "-f", f)
}

// FlushConntrack deletes every flow in A: the kernel sends one DESTROY
// event per flow at once.
func (p *NSPair) FlushConntrack(t testing.TB) {
	t.Helper()
	p.Exec(t, p.A, "conntrack", "-F")
}

// InNetns runs fn on a fresh OS thread switched into namespace ns. Sockets
// created by fn stay in ns. The thread is discarded afterwards.
func InNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the Go runtime ends the thread with the goroutine.
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// ---------------------------------------------------------------------
// Traffic (only between the pair's own addresses, always bounded)

// Flow is one connection made by a traffic helper, with what PRINTFLOW
// prints for it.
type Flow struct {
	Proto        string // "TCP", "UDP", "ICMP", "ICMPv6"
	Src, Dst     netip.Addr
	SPort, DPort int
	// Packets and bytes the helper sent (orig) and got back (reply), when
	// known exactly; -1 when not.
	OrigPkts, OrigBytes, ReplyPkts, ReplyBytes int
}

func (f Flow) String() string {
	if f.SPort != 0 {
		return fmt.Sprintf("%s %s:%d->%s:%d", f.Proto, f.Src, f.SPort, f.Dst, f.DPort)
	}
	return fmt.Sprintf("%s %s->%s", f.Proto, f.Src, f.Dst)
}

// half renders one direction of a PRINTFLOW line (without counters).
func (f Flow) half(src, dst netip.Addr, sport, dport int) string {
	s := fmt.Sprintf("SRC=%s DST=%s ", src, dst)
	switch f.Proto {
	case "TCP", "UDP":
		s += fmt.Sprintf("PROTO=%s SPT=%d DPT=%d ", f.Proto, sport, dport)
	case "ICMP":
		// Echo request: type 8, code 0, under the right labels (ulogd2
		// swaps them, see NormalizeForDiff). Both halves print the
		// orig-direction icmp keys.
		s += "PROTO=ICMP TYPE=8 CODE=0 "
	case "ICMPv6":
		s += "PROTO=58 "
	}
	return s
}

// PrintflowLine is the exact PRINTFLOW text for this flow (without the
// LOGEMU prefix and without the newline).
func (f Flow) PrintflowLine(event string, origPkts, origBytes, replyPkts, replyBytes int) string {
	return fmt.Sprintf("[%s] ORIG: %sPKTS=%d BYTES=%d , REPLY: %sPKTS=%d BYTES=%d ",
		event,
		f.half(f.Src, f.Dst, f.SPort, f.DPort), origPkts, origBytes,
		f.half(f.Dst, f.Src, f.DPort, f.SPort), replyPkts, replyBytes)
}

// Match reports whether a PRINTFLOW body (no prefix) is about this flow,
// whatever the event and counters.
func (f Flow) Match(body string) bool {
	orig := "ORIG: " + f.half(f.Src, f.Dst, f.SPort, f.DPort)
	reply := "REPLY: " + f.half(f.Dst, f.Src, f.DPort, f.SPort)
	return strings.Contains(body, orig) && strings.Contains(body, reply)
}

func addrs(p *NSPair, v6 bool) (src, dst netip.Addr) {
	if v6 {
		return p.A6, p.B6
	}
	return p.A4, p.B4
}

// TCP makes one TCP connection A:sport → B:dport (nc -l in B, nc -N in A)
// carrying payload, and waits until both ends have exited.
func (p *NSPair) TCP(t testing.TB, v6 bool, sport, dport int, payload string) Flow {
	t.Helper()
	src, dst := addrs(p, v6)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	srv := p.Command(ctx, p.B, "nc", "-l", dst.String(), strconv.Itoa(dport))
	var got bytes.Buffer
	srv.Stdout = &got
	srv.Stdin = nil // /dev/null
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	p.tcpServersActive.Add(1)
	defer p.tcpServersActive.Done()
	// Wait for the listener without sending anything from A.
	WaitFor(t, commandTimeout, fmt.Sprintf("nc listening on %s:%d in %s", dst, dport, p.B), func() bool {
		out, _ := runCmd(commandTimeout, "ip", "netns", "exec", p.B, "ss", "-Hltn", fmt.Sprintf("sport = :%d", dport))
		return len(bytes.TrimSpace(out)) > 0
	})
	cli := p.Command(ctx, p.A, "nc", "-N", "-w", "5", "-p", strconv.Itoa(sport), dst.String(), strconv.Itoa(dport))
	cli.Stdin = strings.NewReader(payload)
	if out, err := cli.CombinedOutput(); err != nil {
		_ = srv.Process.Kill()
		_ = srv.Wait()
		t.Fatalf("nc client %s:%d: %v\n%s", dst, dport, err, out)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("nc server %s:%d: %v", dst, dport, err)
	}
	if got.String() != payload {
		t.Fatalf("nc server %s:%d received %q, want %q", dst, dport, got.String(), payload)
	}
	return Flow{Proto: "TCP", Src: src, Dst: dst, SPort: sport, DPort: dport,
		OrigPkts: -1, OrigBytes: -1, ReplyPkts: -1, ReplyBytes: -1}
}

// UDP sends one datagram A:sport → B:dport with nc -u (nobody listens: B
// answers with an ICMP port unreachable, which conntrack counts as
// related, not as a reply).
func (p *NSPair) UDP(t testing.TB, v6 bool, sport, dport int, payload string) Flow {
	t.Helper()
	src, dst := addrs(p, v6)
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cli := p.Command(ctx, p.A, "nc", "-u", "-q", "0", "-p", strconv.Itoa(sport), dst.String(), strconv.Itoa(dport))
	cli.Stdin = strings.NewReader(payload)
	if out, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("nc -u %s:%d: %v\n%s", dst, dport, err, out)
	}
	hdr := 28
	if v6 {
		hdr = 48
	}
	return Flow{Proto: "UDP", Src: src, Dst: dst, SPort: sport, DPort: dport,
		OrigPkts: 1, OrigBytes: hdr + len(payload), ReplyPkts: 0, ReplyBytes: 0}
}

// UDPFromGo sends one datagram A:sport → B:dport from a socket opened in
// A by this process (no fork: for many flows quickly).
func (p *NSPair) UDPFromGo(v6 bool, sport, dport int, payload []byte) (Flow, error) {
	src, dst := addrs(p, v6)
	err := InNetns(p.A, func() error {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, uint16(sport))),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(dport))))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	hdr := 28
	if v6 {
		hdr = 48
	}
	return Flow{Proto: "UDP", Src: src, Dst: dst, SPort: sport, DPort: dport,
		OrigPkts: 1, OrigBytes: hdr + len(payload), ReplyPkts: 0, ReplyBytes: 0}, err
}

// Ping sends count echo requests of the default size (56 data bytes: 84
// bytes per IPv4 packet, 104 per IPv6 packet) from A to B, all in one
// conntrack flow, and checks every one was answered.
func (p *NSPair) Ping(t testing.TB, v6 bool, count int) Flow {
	t.Helper()
	src, dst := addrs(p, v6)
	args := []string{"ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.01", "-W", "2"}
	proto, size := "ICMP", 84
	if v6 {
		args = append(args, "-6")
		proto, size = "ICMPv6", 104
	}
	args = append(args, dst.String())
	out := p.Exec(t, p.A, args...)
	if !strings.Contains(out, fmt.Sprintf("%d packets transmitted, %d received", count, count)) {
		t.Fatalf("ping %s: not every echo was answered:\n%s", dst, out)
	}
	return Flow{Proto: proto, Src: src, Dst: dst,
		OrigPkts: count, OrigBytes: count * size, ReplyPkts: count, ReplyBytes: count * size}
}

// BarrierPort is the destination port of barrier flows; tests must not
// use it for their own traffic.
const BarrierPort = 5999

var barrierSport atomic.Int64

// Barrier makes sure every event that happened before it has been written
// to each of files, and returns each file's lines without barrier lines.
//
// It makes a marker flow (UDP to BarrierPort) and waits until every file
// has the marker's [event] line. A daemon writes the events of one netlink
// socket in order, so once the marker is out, so is everything earlier.
// With event "DESTROY" it first flushes the conntrack table (one DESTROY
// per flow, in hash-table order), then makes the marker and deletes just
// that flow, so that its DESTROY comes after all the others.
func (p *NSPair) Barrier(t testing.TB, event string, files ...string) [][]string {
	t.Helper()
	if event == "DESTROY" {
		p.FlushConntrack(t)
	}
	sport := 30000 + int(barrierSport.Add(1))
	f, err := p.UDPFromGo(false, sport, BarrierPort, []byte("barrier"))
	if err != nil {
		t.Fatalf("barrier flow: %v", err)
	}
	if event == "DESTROY" {
		p.Exec(t, p.A, "conntrack", "-D", "-p", "udp", "--sport", strconv.Itoa(sport), "--dport", strconv.Itoa(BarrierPort))
	}
	res := make([][]string, len(files))
	for i, file := range files {
		lines := WaitLinesMatch(t, file, linesTimeout, "barrier "+event+" line", func(l string) bool {
			return strings.Contains(l, "["+event+"] ") && f.Match(l)
		})
		for _, l := range lines {
			if !strings.Contains(l, fmt.Sprintf("DPT=%d ", BarrierPort)) && !strings.Contains(l, fmt.Sprintf("SPT=%d ", BarrierPort)) {
				res[i] = append(res[i], l)
			}
		}
	}
	return res
}

// ---------------------------------------------------------------------
// Output files

// ReadLines returns the lines of path (without newlines); a missing file
// has no lines.
func ReadLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// WaitFor polls cond until it is true, failing the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, timeout, what, cond)
}

// WaitLines waits until path has at least n lines and returns all of them.
func WaitLines(t testing.TB, path string, n int, timeout time.Duration) []string {
	t.Helper()
	var lines []string
	if !testutil.Eventually(timeout, func() bool {
		lines = ReadLines(t, path)
		return len(lines) >= n
	}) {
		t.Fatalf("timed out after %v waiting for %d lines in %s; got %d:\n%s",
			timeout, n, path, len(lines), strings.Join(lines, "\n"))
	}
	return lines
}

// WaitLinesMatch waits until some line of path satisfies match and
// returns every line up to and including the first such line.
func WaitLinesMatch(t testing.TB, path string, timeout time.Duration, what string, match func(string) bool) []string {
	t.Helper()
	var lines []string
	found := -1
	if !testutil.Eventually(timeout, func() bool {
		lines = ReadLines(t, path)
		found = slices.IndexFunc(lines, match)
		return found >= 0
	}) {
		t.Fatalf("timed out after %v waiting for %s in %s; it has %d lines:\n%s",
			timeout, what, path, len(lines), strings.Join(lines, "\n"))
	}
	return lines[:found+1]
}

// ---------------------------------------------------------------------
// Daemons

// WriteConfig writes a config file (text gets a final newline if it lacks
// one: ulogd2 2.0.8 drops a last line without it) and returns its path.
func WriteConfig(t testing.TB, path, text string) string {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// NFCTOptions are the [ct1] options of the canonical stack; zero values
// are left out (the plugin default applies).
type NFCTOptions struct {
	EventMask  int // 0: default (5)
	HashEnable *int
	Extra      []string // more "key=value" lines for [ct1]
}

// Int returns a pointer to v, for optional config values.
func Int(v int) *int { return &v }

// CanonicalConfig is the config of ct1:NFCT,ip2str1:IP2STR,
// print1:PRINTFLOW,emu1:LOGEMU logging to logfile and writing to out. Both
// daemons accept it.
func CanonicalConfig(logfile, out string, o NFCTOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[global]\nlogfile=%q\nloglevel=1\n", logfile)
	b.WriteString("stack=ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU\n\n[ct1]\n")
	if o.EventMask != 0 {
		fmt.Fprintf(&b, "event_mask=%d\n", o.EventMask)
	}
	if o.HashEnable != nil {
		fmt.Fprintf(&b, "hash_enable=%d\n", *o.HashEnable)
	}
	for _, l := range o.Extra {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, "\n[emu1]\nfile=%q\nsync=1\n", out)
	return b.String()
}

// DaemonSpec says how to start a daemon.
type DaemonSpec struct {
	Name    string   // for messages: "ours", "ref"
	Binary  string   // OurBinary(t) or RefBinary(t)
	Netns   string   // run inside this namespace ("" = current)
	Config  string   // path of the config file (-c)
	Logfile string   // its logfile, polled for readiness
	Args    []string // more arguments (e.g. -p pidfile)
}

// Daemon is a running daemon; it is stopped with SIGTERM in t.Cleanup.
type Daemon struct {
	DaemonSpec
	Cmd    *exec.Cmd
	stderr *testutil.Buffer
	done   chan struct{}
	state  *os.ProcessState
	err    error
}

// StartDaemon starts the daemon in the foreground and waits until its log
// says "initialization finished". Its stderr and log are shown if the
// test fails.
func StartDaemon(t testing.TB, s DaemonSpec) *Daemon {
	t.Helper()
	args := append([]string{"-c", s.Config}, s.Args...)
	var cmd *exec.Cmd
	if s.Netns != "" {
		// ip netns exec execs the command: the pid is the daemon's.
		cmd = exec.Command("ip", append([]string{"netns", "exec", s.Netns, s.Binary}, args...)...)
	} else {
		cmd = exec.Command(s.Binary, args...)
	}
	d := &Daemon{DaemonSpec: s, Cmd: cmd, stderr: &testutil.Buffer{}, done: make(chan struct{})}
	cmd.Stdout = d.stderr
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", s.Name, err)
	}
	go func() {
		d.err = cmd.Wait()
		d.state = cmd.ProcessState
		close(d.done)
	}()
	t.Cleanup(func() {
		if !d.Exited() {
			if _, err := d.Stop(); err != nil {
				t.Errorf("%s: %v", s.Name, err)
			}
		}
		if t.Failed() {
			d.Dump(t)
		}
	})
	ready := false
	testutil.Eventually(readyTimeout, func() bool {
		b, _ := os.ReadFile(s.Logfile)
		ready = bytes.Contains(b, []byte("initialization finished"))
		return ready || d.Exited()
	})
	switch {
	case ready:
		return d
	case d.Exited():
		d.Dump(t)
		t.Fatalf("%s exited before it was ready: %v", s.Name, d.err)
	default:
		d.Dump(t)
		t.Fatalf("%s: no \"initialization finished\" in %s after %v", s.Name, s.Logfile, readyTimeout)
	}
	return nil
}

// Dump logs the daemon's stderr and the tail of its log.
func (d *Daemon) Dump(t testing.TB) {
	t.Helper()
	log, _ := os.ReadFile(d.Logfile)
	lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	t.Logf("%s stderr:\n%s\n%s log (tail):\n%s", d.Name, d.stderr.String(), d.Name, strings.Join(lines, "\n"))
}

// Stderr is what the daemon wrote on stdout and stderr so far.
func (d *Daemon) Stderr() string { return d.stderr.String() }

// Pid is the daemon's process id.
func (d *Daemon) Pid() int { return d.Cmd.Process.Pid }

// Exited reports whether the process has ended.
func (d *Daemon) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the daemon.
func (d *Daemon) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := d.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %v: %v", d.Name, sig, err)
	}
}

// Stop sends SIGTERM and waits (bounded) for the exit; it returns the
// exit code (-1 if killed by a signal).
func (d *Daemon) Stop() (int, error) {
	if !d.Exited() {
		_ = d.Cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-d.done:
	case <-time.After(stopTimeout):
		_ = d.Cmd.Process.Kill()
		<-d.done
		return -1, fmt.Errorf("%s did not exit within %v of SIGTERM (killed)", d.Name, stopTimeout)
	}
	return d.state.ExitCode(), nil
}

// RunOnce runs a binary to completion (bounded) and returns its exit code,
// stdout and stderr.
func RunOnce(t testing.TB, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: timed out after %v\nstdout:\n%s\nstderr:\n%s", bin, strings.Join(args, " "), commandTimeout, o.String(), e.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", bin, err)
	}
	return cmd.ProcessState.ExitCode(), o.String(), e.String()
}

// ---------------------------------------------------------------------
// Comparing outputs

// SplitPrefix splits a LOGEMU line into its "Mon dd hh:mm:ss host " prefix
// and the rest, checking the prefix's shape (month name, space-padded day,
// time, host = hostname up to the first dot).
func SplitPrefix(line, host string) (prefix, body string, err error) {
	// "Nov 25 18:13:11 " is 16 bytes.
	if len(line) < 16 {
		return "", "", fmt.Errorf("line too short for a LOGEMU prefix: %q", line)
	}
	ts := line[:15]
	if _, err := time.Parse(time.Stamp, ts); err != nil || line[15] != ' ' {
		return "", "", fmt.Errorf("bad LOGEMU time stamp %q in %q", ts, line)
	}
	rest, ok := strings.CutPrefix(line[16:], host+" ")
	if !ok {
		return "", "", fmt.Errorf("host %q missing after the time stamp in %q", host, line)
	}
	return line[:len(line)-len(rest)], rest, nil
}

// NormalizeForDiff turns one LOGEMU line of the canonical NFCT stack into
// the form in which the reference ulogd2's and ours must be equal. This is
// the ONE place that lists what may differ; every item must be documented
// in docs/compat.md:
//
//  1. The "Mon dd hh:mm:ss host " prefix is removed (the two daemons stamp
//     lines with "now", which may differ by a second), after checking it
//     is well formed.
//  2. ICMP type/code (docs/compat.md F1): ulogd2's PRINTFLOW prints
//     "TYPE=<icmp.code> CODE=<icmp.type>"; we print the values under the
//     right labels. In reference lines the two values are swapped back.
func NormalizeForDiff(line, host string, reference bool) (string, error) {
	_, body, err := SplitPrefix(line, host)
	if err != nil {
		return "", err
	}
	if reference {
		body = swapICMPTypeCode(body)
	}
	return body, nil
}

// swapICMPTypeCode exchanges the values of every "TYPE=a CODE=b" pair.
func swapICMPTypeCode(s string) string {
	f := strings.Split(s, " ")
	for i := 0; i+1 < len(f); i++ {
		ty, ok1 := strings.CutPrefix(f[i], "TYPE=")
		co, ok2 := strings.CutPrefix(f[i+1], "CODE=")
		if ok1 && ok2 {
			f[i], f[i+1] = "TYPE="+co, "CODE="+ty
			i++
		}
	}
	return strings.Join(f, " ")
}

// NormalizeAll applies NormalizeForDiff to every line, failing the test
// on a malformed prefix.
func NormalizeAll(t testing.TB, lines []string, host string, reference bool) []string {
	t.Helper()
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		n, err := NormalizeForDiff(l, host, reference)
		if err != nil {
			t.Error(err)
			continue
		}
		out = append(out, n)
	}
	return out
}

// DiffMultiset compares two line lists ignoring order; "" means equal.
func DiffMultiset(want, got []string) string {
	w, g := slices.Clone(want), slices.Clone(got)
	slices.Sort(w)
	slices.Sort(g)
	return cmp.Diff(w, g)
}

// Bodies strips and checks the LOGEMU prefix of every line of ours: well
// formed, and its local time within two minutes of now (NFCT lines are
// stamped when written).
func Bodies(t testing.TB, lines []string, host string) []string {
	t.Helper()
	now := time.Now()
	for _, l := range lines {
		if len(l) < 15 {
			continue // NormalizeAll reports it
		}
		ts, err := time.ParseInLocation(time.Stamp, l[:15], time.Local)
		if err != nil {
			continue
		}
		ts = ts.AddDate(now.Year(), 0, 0)
		if d := now.Sub(ts); d > 2*time.Minute || d < -2*time.Minute {
			if d > 300*24*time.Hour || d < -300*24*time.Hour {
				continue // around New Year
			}
			t.Errorf("time stamp %q is %v away from now (%s)", l[:15], d, now.Format(time.Stamp))
		}
	}
	return NormalizeAll(t, lines, host, false)
}
