package nfacct

import (
	"encoding/json"
	"errors"
	"flag"
	"net"
	"os"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/netnstest"
	"github.com/ulogd-go/ulogd/internal/nl/nfacct/nfaccttest"
)

var capture = flag.Bool("capture", false, "capture a real nfacct dump into testdata/ and rewrite testdata/golden.json (needs root)")

// nsFD opens ns and returns its file descriptor, closed at cleanup.
func nsFD(t *testing.T, ns *netnstest.NS) int {
	t.Helper()
	f, err := os.Open(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

// dialIn opens a Conn inside ns.
func dialIn(t *testing.T, ns *netnstest.NS) *Conn {
	t.Helper()
	c, err := Dial(nsFD(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dumpAll(t *testing.T, c *Conn, zero bool) []Object {
	t.Helper()
	var got []Object
	if err := c.Dump(zero, func(o Object, p []byte) {
		if d, err := Decode(p); err != nil || d != o {
			t.Errorf("payload decodes to %+v, %v; want %+v", d, err, o)
		}
		got = append(got, o)
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// fixture is the object set of the kernel tests and the capture: a plain
// object, 64-bit counters beyond 2^32 and near 2^64, and two quotas.
var fixture = []Object{
	{Name: "plain", Pkts: 3, Bytes: 252},
	{Name: "big-64bit", Pkts: 1<<40 + 7, Bytes: 1<<64 - 2},
	{Name: "quota-pkts", Pkts: 1, Bytes: 60, Flags: FlagQuotaPkts, Quota: 100},
	{Name: "quota.bytes 31-byte-long-name..", Pkts: 0, Bytes: 0, Flags: FlagQuotaBytes, Quota: 1 << 33},
}

func addFixture(t *testing.T, c *Conn) []Object {
	t.Helper()
	want := make([]Object, len(fixture))
	for i, o := range fixture {
		if err := c.Add(o); err != nil {
			t.Fatal(err)
		}
		want[i] = o
		want[i].Use = 1
	}
	return want
}

// TestKernelDump: objects come back in creation order with their 64-bit
// counters, flags and quotas; a plain dump leaves the counters, a zeroing
// dump reports them and leaves zeros.
func TestKernelDump(t *testing.T) {
	ns := netnstest.NewNS(t)
	c := dialIn(t, ns)
	if got := dumpAll(t, c, false); len(got) != 0 {
		t.Fatalf("fresh namespace has objects: %+v", got)
	}
	want := addFixture(t, c)
	for i, zero := range []bool{false, false, true} {
		if diff := cmp.Diff(want, dumpAll(t, c, zero)); diff != "" {
			t.Fatalf("dump %d (zero=%v) (-want +got):\n%s", i, zero, diff)
		}
	}
	for i := range want {
		want[i].Pkts, want[i].Bytes = 0, 0
	}
	if diff := cmp.Diff(want, dumpAll(t, c, false)); diff != "" {
		t.Fatalf("after a zeroing dump (-want +got):\n%s", diff)
	}
	if err := c.Add(Object{Name: "plain"}); !errors.Is(err, unix.EEXIST) {
		t.Errorf("adding an existing name: %v, want EEXIST", err)
	}
	if err := c.Add(Object{Name: "this-name-is-thirty-two-bytes-xx"}); err == nil {
		t.Error("a 32-byte name was accepted")
	}
	if err := c.Del("plain"); err != nil {
		t.Fatal(err)
	}
	if got := dumpAll(t, c, false); len(got) != len(want)-1 || got[0].Name != "big-64bit" {
		t.Errorf("after deleting plain: %+v", got)
	}
	if err := c.Del(""); err != nil {
		t.Fatal(err)
	}
	if got := dumpAll(t, c, false); len(got) != 0 {
		t.Errorf("after deleting all: %+v", got)
	}
}

// TestKernelCountsTraffic: a rule with the xtables nfacct match counts real
// (ICMP) packets, and the rule's reference shows in Use. A zeroing dump between
// two pings splits the counts exactly.
func TestKernelCountsTraffic(t *testing.T) {
	ns := netnstest.NewNS(t)
	c := dialIn(t, ns)
	if err := c.Add(Object{Name: "ping"}); err != nil {
		t.Fatal(err)
	}
	if err := nfaccttest.Count(nsFD(t, ns), "ping"); err != nil {
		t.Fatal(err)
	}
	// 84-byte IPv4 echo requests and replies, both sent locally; the rule
	// counts ICMP only, not the UDP datagrams (sent to a bound port: no
	// ICMP port unreachable either).
	var err error
	ns.Do(t, func() {
		var u *net.UDPConn
		if u, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			return
		}
		defer u.Close()
		for range 5 {
			if _, err = u.WriteTo([]byte("x"), u.LocalAddr()); err != nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "ping", "-c", "3", "-i", "0.01", "-q", "127.0.0.1")
	want := []Object{{Name: "ping", Pkts: 6, Bytes: 6 * 84, Use: 2}}
	if diff := cmp.Diff(want, dumpAll(t, c, true)); diff != "" {
		t.Fatalf("after 3 pings, zeroing (-want +got):\n%s", diff)
	}
	ns.Run(t, "ping", "-c", "2", "-i", "0.01", "-q", "127.0.0.1")
	want[0].Pkts, want[0].Bytes = 4, 4*84
	if diff := cmp.Diff(want, dumpAll(t, c, false)); diff != "" {
		t.Fatalf("2 more pings (-want +got):\n%s", diff)
	}
	if err := c.Del("ping"); !errors.Is(err, unix.EBUSY) {
		t.Errorf("deleting an object a rule uses: %v, want EBUSY", err)
	}
}

// TestCapture (with -capture) writes a real dump answer to testdata/ and
// its decoding to the golden file.
func TestCapture(t *testing.T) {
	if !*capture {
		t.Skip("run with -capture to refresh testdata/")
	}
	ns := netnstest.NewNS(t)
	c := dialIn(t, ns)
	addFixture(t, c)
	if err := nfaccttest.Count(nsFD(t, ns), "plain"); err != nil {
		t.Fatal(err)
	}
	golden := map[string][]Object{}
	for _, zero := range []bool{false, true} {
		msgs, err := c.dump(zero)
		if err != nil {
			t.Fatal(err)
		}
		// The answer as the kernel sent it: the objects, then NLMSG_DONE
		// (which Execute consumes), rebuilt with its header.
		var raw []byte
		for _, m := range append(msgs, netlink.Message{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi}, Data: []byte{0, 0, 0, 0}}) {
			if m.Header.Length == 0 {
				m.Header.Length = uint32(16 + len(m.Data))
			}
			b, err := m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			raw = append(raw, b...)
		}
		name := "dump-zero-" + strconv.FormatBool(zero) + ".bin"
		if err := os.WriteFile("testdata/"+name, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		var objs []Object
		if err := DecodeMessages(raw, func(o Object) { objs = append(objs, o) }); err != nil {
			t.Fatal(err)
		}
		golden[name] = objs
	}
	b, err := json.MarshalIndent(golden, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenFile, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}
