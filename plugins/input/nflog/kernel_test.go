package nflog

// Real-kernel tests: each runs in a private network namespace (netnstest) and
// skips when not root.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/netnstest"
	"github.com/ulogd-go/ulogd/internal/nl/nflog"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

// outRules logs outgoing ICMP with a prefix and outgoing UDP to ports
// 5000-5099 without one (nft then sends an empty prefix), to group 5.
const outRules = `table inet t {
	chain out {
		type filter hook output priority 0;
		meta l4proto { icmp, ipv6-icmp } log prefix "OUT-LOG" group 5
		udp dport 5000-5099 log group 5
	}
}
`

// inRules logs incoming ICMP, to group 5.
const inRules = `table inet t {
	chain in {
		type filter hook input priority 0;
		meta l4proto icmp log prefix "IN-LOG" group 5
	}
}
`

func nft(t *testing.T, ns *netnstest.NS, rules string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "nft", "-f", f)
}

// harness is an NFLOG instance started in a namespace.
type harness struct {
	t   *testing.T
	ns  *netnstest.NS
	in  *instance
	log *testutil.Buffer
	em  *plugintest.Recorder
	src *plugintest.Source
}

func startNFLOG(t *testing.T, ns *netnstest.NS, c *Config) *harness {
	t.Helper()
	h := &harness{t: t, ns: ns, em: newTestEmitter()}
	h.in, h.log = newTest(t, c)
	var err error
	ns.Do(t, func() { err = h.in.Start(context.Background()) })
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	h.src = plugintest.NewSource(t, h.in)
	return h
}

func (h *harness) run()  { h.src.Run(context.Background(), h.em) }
func (h *harness) stop() { h.src.Stop() }

func (h *harness) wait(what string, cond func() bool) {
	h.t.Helper()
	h.em.Wait(h.t, what, 10*time.Second, cond)
}

func (h *harness) waitRecs(what string, n int, keep func(rec) bool) []rec {
	h.t.Helper()
	return h.em.WaitMatching(h.t, what, n, keep)
}

func is(key string, v any) func(rec) bool {
	return func(r rec) bool { return r[key] == v }
}

// sendUDP sends n datagrams from inside the namespace to 127.0.0.1:5000,
// where a socket is bound so that no ICMP error (itself logged) comes back.
func sendUDP(t *testing.T, ns *netnstest.NS, n int) {
	t.Helper()
	var sock, sink int
	var err, serr error
	ns.Do(t, func() {
		sink, serr = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if serr == nil {
			serr = unix.Bind(sink, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 5000})
		}
		sock, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	})
	if err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	defer unix.Close(sink)
	defer unix.Close(sock)
	to := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 5000}
	for range n {
		if err := unix.Sendto(sock, []byte("x"), 0, to); err != nil {
			t.Fatalf("sendto: %v", err)
		}
	}
}

func TestKernelICMP(t *testing.T) {
	ns := netnstest.NewNS(t)
	nft(t, ns, outRules)
	h := startNFLOG(t, ns, cfgWith(func(c *Config) {
		c.Group = 5
		c.QThreshold = 1
		c.QTimeout = 10
		c.SeqLocal = 1
		c.SeqGlobal = 1
		c.NumericLabel = 3
	}))
	h.run()
	before := time.Now()
	ns.Run(t, "ping", "-c", "2", "-i", "0.2", "-W", "1", "127.0.0.1")
	got := h.waitRecs("4 ICMP records", 4, is("oob.prefix", "OUT-LOG"))
	r := got[0]
	want := map[string]any{
		"oob.prefix": "OUT-LOG", "oob.hook": uint64(3), "oob.mark": uint64(0), "oob.family": uint64(2),
		"oob.protocol": uint64(2048), "raw.pktlen": uint64(84), "raw.pktcount": uint64(1), "raw.label": uint64(3),
		"oob.uid": uint64(0), "oob.gid": uint64(0), "oob.ifindex_out": uint64(1), "oob.seq.local": uint64(0),
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %v, want %v", k, r[k], v)
		}
	}
	for _, k := range []string{"oob.ifindex_in", "raw.mac", "raw.mac_len", "raw.type", "raw.mac.saddr", "raw.mac.addrlen", "ct"} {
		if _, ok := r[k]; ok {
			t.Errorf("%s valid on a locally sent packet: %v", k, r[k])
		}
	}
	if pkt := r["raw.pkt"].([]byte); len(pkt) != 84 || pkt[0] != 0x45 || pkt[20] != 8 {
		t.Errorf("raw.pkt is not the echo request: % x", pkt)
	}
	if raw := r["raw"].([]byte); len(raw) < 84+16 {
		t.Errorf("raw = %d bytes", len(raw))
	}
	sec := int64(r["oob.time.sec"].(uint64))
	if sec < before.Unix()-1 || sec > time.Now().Unix()+1 || r["oob.time.usec"].(uint64) >= 1e6 {
		t.Errorf("oob.time = %v.%v, now %v", sec, r["oob.time.usec"], time.Now().Unix())
	}
	for i := 1; i < len(got); i++ {
		if got[i]["oob.seq.local"] != got[i-1]["oob.seq.local"].(uint64)+1 {
			t.Errorf("seq.local %v after %v", got[i]["oob.seq.local"], got[i-1]["oob.seq.local"])
		}
		if _, ok := got[i]["oob.seq.global"]; !ok {
			t.Error("no oob.seq.global")
		}
	}
	// UDP: nft's log without prefix sends an empty one.
	sendUDP(t, ns, 1)
	u := h.waitRecs("UDP record", 1, is("oob.prefix", ""))[0]
	if u["raw.pktlen"] != uint64(29) || u["oob.hook"] != uint64(3) {
		t.Errorf("UDP record: %v", u)
	}
	// Every record is flushed once the source waits again.
	h.em.Wait(t, "a flush after the UDP record", 2*time.Second, func() bool {
		return h.em.FlushedThrough() == len(h.em.Records())
	})
	if h.em.LostCount() != 0 {
		t.Errorf("lost %d", h.em.LostCount())
	}
	logs := h.log.String()
	for _, s := range []string{"NFLOG netlink queue threshold has been set to 1", "NFLOG netlink queue timeout has been set to 10",
		"NFLOG netlink buffer size has been set to"} {
		if !strings.Contains(logs, s) {
			t.Errorf("log lacks %q", s)
		}
	}
	if strings.Contains(logs, "forcing unbind") {
		t.Error("per-family unbind for group 5 without bind=1")
	}
}

// TestKernelForeignSender checks that a packet message another process
// sends to the NFLOG socket is dropped and counted, not logged.
func TestKernelForeignSender(t *testing.T) {
	ns := netnstest.NewNS(t)
	nft(t, ns, outRules)
	h := startNFLOG(t, ns, cfgWith(func(c *Config) { c.Group = 5; c.QThreshold = 1 }))
	h.run()
	ns.SendFromUser(t, unix.NETLINK_NETFILTER, h.in.conn.PortID(), packetMsg(0, false), packetMsg(1, false))
	sendUDP(t, ns, 1)
	h.waitRecs("UDP record", 1, is("oob.prefix", ""))
	h.stop()
	if got := h.em.Records(); len(got) != 1 {
		t.Errorf("%d records, want the UDP packet's only: %v", len(got), got)
	}
	if h.in.rx.loop.Errors().Foreign != 2 || h.em.LostCount() != 0 {
		t.Errorf("foreign datagrams counted %d, lost %d; want 2, 0", h.in.rx.loop.Errors().Foreign, h.em.LostCount())
	}
	if !strings.Contains(h.log.String(), "NFLOG ignored netlink datagrams that the kernel did not send") {
		t.Errorf("no warning in the log:\n%s", h.log.String())
	}
}

func TestKernelIPv6(t *testing.T) {
	ns := netnstest.NewNS(t)
	nft(t, ns, outRules)
	h := startNFLOG(t, ns, cfgWith(func(c *Config) { c.Group = 5; c.QThreshold = 1 }))
	h.run()
	ns.Run(t, "ping", "-6", "-c", "1", "-W", "1", "::1")
	r := h.waitRecs("IPv6 record", 1, is("oob.family", uint64(10)))[0]
	if r["oob.protocol"] != uint64(34525) || r["oob.prefix"] != "OUT-LOG" || r["raw.pktlen"] != uint64(104) || r["raw.pkt"].([]byte)[0]>>4 != 6 {
		t.Errorf("IPv6 record: %v", r)
	}
}

// TestKernelEthernet checks the link-layer keys of a packet received on a
// veth from another namespace.
func TestKernelEthernet(t *testing.T) {
	ns := netnstest.NewNS(t)
	peer := netnstest.NewNS(t)
	nft(t, ns, inRules)
	ns.Run(t, "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", peer.Name)
	ns.Run(t, "ip", "addr", "add", "10.9.0.1/24", "dev", "v0")
	ns.Run(t, "ip", "link", "set", "v0", "up")
	peer.Run(t, "ip", "addr", "add", "10.9.0.2/24", "dev", "v1")
	peer.Run(t, "ip", "link", "set", "v1", "up")
	h := startNFLOG(t, ns, cfgWith(func(c *Config) { c.Group = 5; c.QThreshold = 1 }))
	h.run()
	before := time.Now()
	peer.Run(t, "ping", "-c", "1", "-W", "2", "10.9.0.1")
	r := h.waitRecs("echo request in", 1, is("oob.prefix", "IN-LOG"))[0]
	if r["oob.hook"] != uint64(1) || r["raw.type"] != uint64(1) || r["raw.mac_len"] != uint64(14) ||
		r["raw.mac.addrlen"] != uint64(6) || len(r["raw.mac"].([]byte)) != 14 || len(r["raw.mac.saddr"].([]byte)) != 6 {
		t.Errorf("link-layer keys: %v", r)
	}
	if _, ok := r["oob.ifindex_in"]; !ok {
		t.Error("no oob.ifindex_in")
	}
	if _, ok := r["oob.uid"]; ok {
		t.Error("oob.uid on a forwarded-in ICMP packet")
	}
	// The kernel stamps received packets.
	if sec := int64(r["oob.time.sec"].(uint64)); sec < before.Unix()-1 || sec > time.Now().Unix()+1 {
		t.Errorf("oob.time.sec = %d", sec)
	}
	mac := r["raw.mac"].([]byte)
	if string(mac[6:12]) != string(r["raw.mac.saddr"].([]byte)) || mac[12] != 8 || mac[13] != 0 {
		t.Errorf("raw.mac % x vs saddr % x", mac, r["raw.mac.saddr"])
	}
}

func TestKernelGroupConflict(t *testing.T) {
	ns := netnstest.NewNS(t)
	c := ns.OpenNetfilter(t)
	if err := nflog.NewControl(c).Bind(5); err != nil {
		t.Fatal(err)
	}
	in, _ := newTest(t, cfgWith(func(c *Config) { c.Group = 5 }))
	var err error
	ns.Do(t, func() { err = in.Start(context.Background()) })
	if err == nil {
		in.Stop(context.Background())
		t.Fatal("Start succeeded on a group another socket has bound")
	}
	if !strings.Contains(err.Error(), "unable to bind to log group 5") {
		t.Errorf("err = %v", err)
	}
	t.Logf("Start: %v", err)
	// Once the other socket lets go, the instance starts, and at stop the
	// group is free again.
	c.Close()
	h := startNFLOG(t, ns, cfgWith(func(c *Config) { c.Group = 5 }))
	h.run()
	h.stop()
	c2 := ns.OpenNetfilter(t)
	if err := nflog.NewControl(c2).Bind(5); err != nil {
		t.Errorf("group still bound after Stop: %v", err)
	}
}

// TestKernelLegacyGroup0: group 0 (also the default) binds the protocol
// families first, with ulogd's notices.
func TestKernelLegacyGroup0(t *testing.T) {
	ns := netnstest.NewNS(t)
	h := startNFLOG(t, ns, cfgWith(nil))
	logs := h.log.String()
	for _, pf := range []int{2, 10, 7} {
		if s := fmt.Sprintf("forcing unbind of existing log handler for protocol %d", pf); !strings.Contains(logs, s) {
			t.Errorf("log lacks %q", s)
		}
	}
	// bind=1 does the same for another group; unbind=0 skips the unbind.
	h2 := startNFLOG(t, ns, cfgWith(func(c *Config) { c.Group = 6; c.Bind = 1; c.Unbind = 0 }))
	if l := h2.log.String(); strings.Contains(l, "forcing unbind") || !strings.Contains(l, "binding to protocol family 7") {
		t.Errorf("bind=1 unbind=0 log:\n%s", l)
	}
}

func TestKernelAttachConntrack(t *testing.T) {
	ns := netnstest.NewNS(t)
	nft(t, ns, outRules)
	h := startNFLOG(t, ns, cfgWith(func(c *Config) {
		c.Group = 5
		c.QThreshold = 1
		c.AttachConntrack = 1
		c.SeqLocal = 1
	}))
	h.run()
	ns.Run(t, "ping", "-c", "1", "-W", "1", "127.0.0.1")
	r := h.waitRecs("record", 1, is("oob.prefix", "OUT-LOG"))[0]
	if _, ok := r["oob.seq.local"]; !ok {
		t.Error("seq_local lost with the conntrack flag")
	}
	logs := h.log.String()
	if strings.Contains(logs, "conntrack information is not available") {
		if _, ok := r["ct"]; ok {
			t.Error("ct valid although the kernel refused the flag")
		}
		t.Log("kernel without CONFIG_NETFILTER_NETLINK_GLUE_CT: warned and went on")
	} else if _, ok := r["ct"]; !ok {
		t.Error("kernel accepted the conntrack flag but sent no ct")
	}
}

// TestKernelOverrun fills a tiny socket buffer with a burst of logged
// packets before reading: the losses are counted, exactly.
func TestKernelOverrun(t *testing.T) {
	for _, seq := range []int{0, 1} {
		t.Run(fmt.Sprintf("seq_local=%d", seq), func(t *testing.T) {
			ns := netnstest.NewNS(t)
			nft(t, ns, outRules)
			h := startNFLOG(t, ns, cfgWith(func(c *Config) {
				c.Group = 5
				c.QThreshold = 1
				c.SeqLocal = seq
				c.BufferSize = 4096
			}))
			const n = 2000
			sendUDP(t, ns, n)
			h.run()
			udp := func(r rec) bool { return r["oob.prefix"] == "" }
			if seq == 0 {
				// The drop counter is read once the queue has drained.
				h.wait("every packet received or counted lost", func() bool {
					return len(h.em.Matching(udp))+int(h.em.LostCount()) >= n
				})
			}
			// The socket keeps working; with seq_local the gap shows
			// when the next packet arrives.
			ns.Run(t, "ping", "-c", "1", "-W", "1", "127.0.0.1")
			h.waitRecs("packet after the overrun", 2, is("oob.prefix", "OUT-LOG"))
			got, lost := len(h.em.Matching(udp)), h.em.LostCount()
			h.in.mu.Lock()
			drops, err := h.in.conn.Drops()
			h.in.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d packets: %d received, %d counted lost, kernel drop counter %d", n, got, lost, drops)
			if got+int(lost) != n {
				t.Errorf("received %d + lost %d != %d sent", got, lost, n)
			}
			if lost != drops {
				t.Errorf("lost %d != kernel drops %d", lost, drops)
			}
			if !strings.Contains(h.log.String(), "We are losing events") {
				t.Error("no overrun notice")
			}
		})
	}
}

func TestKernelStopPrompt(t *testing.T) {
	ns := netnstest.NewNS(t)
	h := startNFLOG(t, ns, cfgWith(func(c *Config) { c.Group = 9 }))
	h.run()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	h.stop()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Stop took %v", d)
	}
}
