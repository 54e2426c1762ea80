package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Addresses of the test network. The generator sends from spoofed sources in
// srcNet (one address and port pair per flow) to serverAddr:dstPort.
const (
	clientAddr = "10.201.0.1"
	serverAddr = "10.201.0.2"
	srcNet     = "10.200.0.0/16"
	dstPort    = 9
	nflogGroup = 0
)

// testNet is a pair of private network namespaces joined by a veth pair. The
// daemon under test runs in the server namespace, where the nft ruleset is.
type testNet struct {
	Client, Server string // namespace names
	dir            string
}

// run executes a command and returns its combined output in the error.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// inNS runs a command inside namespace ns.
func inNS(ns string, name string, args ...string) (string, error) {
	return run("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// rulesetFlows counts new conntrack entries (the ground truth for flows; a ct
// rule is also what makes conntrack track anything in a fresh namespace) and
// keeps the server from answering the spoofed sources with ICMP errors.
const rulesetFlows = `table inet ubench {
	chain pre {
		type filter hook prerouting priority 0; policy accept;
		ct state new counter
	}
	chain out {
		type filter hook output priority 0; policy accept;
		meta l4proto icmp drop
	}
}
`

// rulesetPackets logs every generator datagram to an NFLOG group; the counter
// on the logging rule is the ground truth for packets.
var rulesetPackets = fmt.Sprintf(`table inet ubench {
	chain in {
		type filter hook input priority 0; policy accept;
		udp dport %d counter log group %d
	}
	chain out {
		type filter hook output priority 0; policy accept;
		meta l4proto icmp drop
	}
}
`, dstPort, nflogGroup)

var nsSeq int

// newTestNet creates the namespaces, the veth pair, the addresses and routes,
// and loads ruleset into the server namespace.
func newTestNet(dir, ruleset string) (*testNet, error) {
	nsSeq++
	base := fmt.Sprintf("ubench-%d-%d", os.Getpid(), nsSeq)
	n := &testNet{Client: base + "c", Server: base + "s", dir: dir}
	atCleanup(n.Close)
	if err := n.setup(ruleset); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *testNet) setup(ruleset string) error {
	steps := [][]string{
		{"ip", "netns", "add", n.Client},
		{"ip", "netns", "add", n.Server},
		{"ip", "-n", n.Client, "link", "add", "ubc0", "type", "veth", "peer", "name", "ubs0", "netns", n.Server},
		{"ip", "-n", n.Client, "addr", "add", clientAddr + "/24", "dev", "ubc0"},
		{"ip", "-n", n.Server, "addr", "add", serverAddr + "/24", "dev", "ubs0"},
		{"ip", "-n", n.Client, "link", "set", "lo", "up"},
		{"ip", "-n", n.Server, "link", "set", "lo", "up"},
		{"ip", "-n", n.Client, "link", "set", "ubc0", "up"},
		{"ip", "-n", n.Server, "link", "set", "ubs0", "up"},
		{"ip", "-n", n.Server, "route", "add", srcNet, "via", clientAddr},
		{"ip", "netns", "exec", n.Server, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.ubs0.rp_filter=0"},
	}
	for _, s := range steps {
		if _, err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	f := filepath.Join(n.dir, "ruleset.nft")
	if err := os.WriteFile(f, []byte(ruleset), 0o644); err != nil {
		return err
	}
	_, err := inNS(n.Server, "nft", "-f", f)
	return err
}

// Close deletes both namespaces (and with them the veth pair, the ruleset
// and every conntrack entry).
func (n *testNet) Close() {
	for _, ns := range []string{n.Client, n.Server} {
		run("ip", "netns", "del", ns)
	}
}

// sysctl writes a sysctl in the server namespace.
func (n *testNet) sysctl(kv string) error {
	_, err := inNS(n.Server, "sysctl", "-qw", kv)
	return err
}

// conntrackCount is the number of entries in the server's table.
func (n *testNet) conntrackCount() (uint64, error) {
	out, err := inNS(n.Server, "cat", "/proc/sys/net/netfilter/nf_conntrack_count")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(out), 10, 64)
}

// counter reads the packet count of the ruleset's only counter.
func (n *testNet) counter() (uint64, error) {
	out, err := inNS(n.Server, "nft", "list", "table", "inet", "ubench")
	if err != nil {
		return 0, err
	}
	return parseNftCounter(out)
}

var counterRE = regexp.MustCompile(`counter packets (\d+) bytes \d+`)

func parseNftCounter(text string) (uint64, error) {
	m := counterRE.FindStringSubmatch(text)
	if m == nil {
		return 0, errors.New("nft: no counter in ruleset")
	}
	return strconv.ParseUint(m[1], 10, 64)
}

// inNamespace runs fn on an OS thread switched into namespace ns, so that
// sockets fn creates belong to ns; the thread is restored afterwards.
func inNamespace(ns string, fn func() error) error {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", ns))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns, err)
	}
	ferr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the wrong namespace: leave it locked so
		// that it dies with the goroutine instead of being reused.
		return fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}
