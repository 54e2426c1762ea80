package nflog

// Real-kernel tests: each runs in a private network namespace (netnstest) and
// skips when not root.

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/netnstest"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

var captureFlag = flag.Bool("nflog.capture", false, "rewrite testdata/packets.bin from the kernel (root)")

// testGroup is the log group the test rulesets use.
const testGroup = 5

// ruleset logs ICMP/ICMPv6 both ways (with prefixes), and UDP to ports
// 5000-5099 going out, with a mark and nft's default empty prefix.
const ruleset = `table inet nflogtest {
	chain out {
		type filter hook output priority 0;
		meta l4proto { icmp, ipv6-icmp } log prefix "OUT-LOG" group 5
		udp dport 5000-5099 meta mark set 42 log group 5
	}
	chain in {
		type filter hook input priority 0;
		meta l4proto { icmp, ipv6-icmp } log prefix "IN-LOG" group 5
	}
}
`

// nft loads a ruleset into ns from a file (nft 1.0.6 wants one statement
// per line).
func nft(t *testing.T, ns *netnstest.NS, rules string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "nft", "-f", f)
}

// openIn opens a NETLINK_NETFILTER socket inside ns.
func openIn(t *testing.T, ns *netnstest.NS) *nl.Conn {
	t.Helper()
	c := ns.OpenNetfilter(t)
	return c
}

func TestKernelControl(t *testing.T) {
	ns := netnstest.NewNS(t)
	c := openIn(t, ns)
	ct := NewControl(c)
	for _, pf := range []uint8{unix.AF_INET, unix.AF_INET6, unix.AF_BRIDGE} {
		if err := ct.PFUnbind(pf); err != nil {
			t.Errorf("PFUnbind(%d): %v", pf, err)
		}
		if err := ct.PFBind(pf); err != nil {
			t.Errorf("PFBind(%d): %v", pf, err)
		}
	}
	// Configuring a group nobody bound: ENODEV.
	if err := ct.SetQThresh(testGroup, 1); !errors.Is(err, unix.ENODEV) {
		t.Errorf("SetQThresh before Bind = %v, want ENODEV", err)
	}
	if err := ct.Bind(testGroup); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	for name, err := range map[string]error{
		"mode":     ct.SetMode(testGroup, CopyPacket, CopyRangeMax),
		"qthresh":  ct.SetQThresh(testGroup, 1),
		"timeout":  ct.SetTimeout(testGroup, 10),
		"nlbufsiz": ct.SetNlBufSiz(testGroup, 65536),
		"flags":    ct.SetFlags(testGroup, FlagSeq|FlagSeqGlobal),
	} {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The kernel here lacks CONFIG_NETFILTER_NETLINK_GLUE_CT.
	if err := ct.SetFlags(testGroup, FlagSeq|FlagConntrack); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("SetFlags(conntrack) = %v, want nil or EOPNOTSUPP", err)
	} else {
		t.Logf("SetFlags(conntrack) = %v", err)
	}
	// Another socket cannot take the group.
	c2 := openIn(t, ns)
	ct2 := NewControl(c2)
	err := ct2.Bind(testGroup)
	if err == nil {
		t.Fatal("second Bind of the same group succeeded")
	}
	if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EBUSY) {
		t.Errorf("second Bind = %v, want EPERM or EBUSY", err)
	}
	// Bind twice from the owner: EBUSY.
	if err := ct.Bind(testGroup); !errors.Is(err, unix.EBUSY) {
		t.Errorf("rebind = %v, want EBUSY", err)
	}
	if err := ct.Unbind(testGroup); err != nil {
		t.Errorf("Unbind: %v", err)
	}
	if err := ct2.Bind(testGroup); err != nil {
		t.Errorf("Bind after the owner's unbind: %v", err)
	}
}

// TestKernelReceive binds a group, generates traffic and checks that Decode
// reads what the rules log.
func TestKernelReceive(t *testing.T) {
	ns := netnstest.NewNS(t)
	nft(t, ns, ruleset)
	c := openIn(t, ns)
	ct := NewControl(c)
	if err := ct.Bind(testGroup); err != nil {
		t.Fatal(err)
	}
	mustOK(t, ct.SetMode(testGroup, CopyPacket, CopyRangeMax))
	mustOK(t, ct.SetQThresh(testGroup, 1))
	mustOK(t, ct.SetFlags(testGroup, FlagSeq))
	ns.Run(t, "ping", "-c", "1", "-W", "1", "127.0.0.1")
	b := nl.NewBatch(8, 150000)
	var pkts []Packet
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(pkts) < 2 {
		n, err := c.Receive(b)
		if err != nil {
			t.Fatalf("Receive: %v (got %d packets)", err, len(pkts))
		}
		for i := range n {
			for rest := b.Datagram(i); len(rest) > 0; {
				m, r, err := nl.NextMsg(rest)
				if err != nil {
					t.Fatal(err)
				}
				rest = r
				if m.Type != MsgTypePacket {
					continue
				}
				var p Packet
				if err := Decode(m, &p); err != nil {
					t.Fatal(err)
				}
				p.Payload = append([]byte(nil), p.Payload...)
				p.Prefix = append([]byte(nil), p.Prefix...)
				p.HwHeader, p.HwAddr, p.CT, p.L2Header = nil, nil, nil, nil
				pkts = append(pkts, p)
			}
		}
	}
	out, in := pkts[0], pkts[1]
	if string(out.Prefix) != "OUT-LOG" || out.Hook != 3 || out.Family != 2 || out.HwProtocol != 0x0800 ||
		len(out.Payload) != 84 || !out.HasUID || out.Seq != 0 || !out.HasSeq || out.Group != testGroup {
		t.Errorf("echo request: %+v", out)
	}
	if string(in.Prefix) != "IN-LOG" || in.Hook != 1 || in.Seq != 1 || !in.HasTimestamp || in.IfIndexIn != 1 {
		t.Errorf("echo reply: %+v", in)
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCapture rewrites testdata/packets.bin: the datagrams the kernel sends
// for IPv4 and IPv6 pings over loopback and a veth pair (with link-layer
// header and source address), and UDP with a mark and an empty prefix, with
// local and global sequence numbers, in batches of up to 4 packets.
func TestCapture(t *testing.T) {
	if !*captureFlag {
		t.Skip("run with -nflog.capture to rewrite testdata/packets.bin")
	}
	ns := netnstest.NewNS(t)
	peer := netnstest.NewNS(t)
	nft(t, ns, ruleset)
	ns.Run(t, "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", peer.Name)
	ns.Run(t, "ip", "addr", "add", "10.9.0.1/24", "dev", "v0")
	ns.Run(t, "ip", "link", "set", "v0", "up")
	peer.Run(t, "ip", "addr", "add", "10.9.0.2/24", "dev", "v1")
	peer.Run(t, "ip", "link", "set", "v1", "up")
	c := openIn(t, ns)
	ct := NewControl(c)
	mustOK(t, ct.Bind(testGroup))
	mustOK(t, ct.SetMode(testGroup, CopyPacket, CopyRangeMax))
	mustOK(t, ct.SetQThresh(testGroup, 4))
	mustOK(t, ct.SetTimeout(testGroup, 5))
	mustOK(t, ct.SetFlags(testGroup, FlagSeq|FlagSeqGlobal))
	var mu sync.Mutex
	var out []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := nl.NewBatch(16, 150000)
		for {
			n, err := c.Receive(b)
			if errors.Is(err, nl.ErrClosed) {
				return
			}
			if err != nil {
				t.Errorf("Receive: %v", err)
				return
			}
			mu.Lock()
			for i := range n {
				dg := b.Datagram(i)
				out = testutil.AppendDatagram(out, dg)
			}
			mu.Unlock()
		}
	}()
	ns.Run(t, "ping", "-c", "2", "-i", "0.2", "-W", "1", "127.0.0.1")
	ns.Run(t, "ping", "-6", "-c", "1", "-W", "1", "::1")
	ns.Run(t, "ping", "-c", "1", "-s", "1400", "-W", "1", "127.0.0.1")
	peer.Run(t, "ping", "-c", "2", "-i", "0.2", "-W", "1", "10.9.0.1")
	ns.Run(t, "sh", "-c", "echo hello | nc -u -w 1 -q 0 127.0.0.1 5001 || true")
	time.Sleep(500 * time.Millisecond)
	c.Close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(out) == 0 {
		t.Fatal("nothing captured")
	}
	if err := os.WriteFile(filepath.Join("testdata", "packets.bin"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d bytes", len(out))
}
