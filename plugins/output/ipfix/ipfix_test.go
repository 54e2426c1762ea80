package ipfix

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/ipfix"
	"github.com/ulogd-go/ulogd/internal/ipfix/ipfixtest"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/stack"
	"github.com/ulogd-go/ulogd/internal/testutil"
	"github.com/ulogd-go/ulogd/plugins/input/nfct"
)

const pen = 64242

// testTunables are the defaults but for holdMax: every Flush queues what
// is held.
func testTunables() tunables {
	tun := defaultTunables()
	tun.holdMax = 0
	return tun
}

// start builds TESTSRC (NFCT's keys) → IPFIX sending to l.
func start(t *testing.T, l *ipfixtest.Listener, network, extra string) *plugintest.Harness {
	t.Helper()
	host, port, _ := net.SplitHostPort(l.Addr())
	l.SetMarkPEN(pen)
	return harness(t, fmt.Sprintf(
		"[ipfix1]\noid=42\nhost=%s\nport=%s\nproto=%s\nmark_pen=%d\n%s\n", host, port, network, pen, extra))
}

// harness builds TESTSRC (NFCT's keys) → ipfix1:IPFIX configured by
// section, started, with holdMax 0 on the instance. The stack built the
// instance with the default tunables; setting holdMax now is safe: the
// stack's flushes read it only while records are held, and records are
// held only by the walks the test makes after this, under the lock those
// flushes take.
func harness(t *testing.T, section string) *plugintest.Harness {
	t.Helper()
	h := plugintest.New(t, "ipfix1:IPFIX", section, nfct.OutputKeys())
	n := 0
	for _, src := range h.Graph.Sources {
		for _, st := range src.Stacks {
			for _, in := range st.Instances {
				if s, ok := in.Inst.(*sink); ok {
					s.tun.holdMax = 0
					n++
				}
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d IPFIX instances in the harness, want 1", n)
	}
	return h
}

func ip(s string) []byte { return netip.MustParseAddr(s).AsSlice() }

// A DNAT'd TCP flow (10.0.0.1:40000 → 10.0.0.100:80, served by
// 192.168.1.2:8080), a DESTROY event with times and counters.
var tcpNAT = map[string]any{
	"orig.ip.saddr": ip("10.0.0.1"), "orig.ip.daddr": ip("10.0.0.100"),
	"orig.ip.protocol": 6, "orig.l4.sport": 40000, "orig.l4.dport": 80,
	"orig.raw.pktlen": 600, "orig.raw.pktcount": 6,
	"reply.ip.saddr": ip("192.168.1.2"), "reply.ip.daddr": ip("10.0.0.1"),
	"reply.ip.protocol": 6, "reply.l4.sport": 8080, "reply.l4.dport": 40000,
	"reply.raw.pktlen": 4000, "reply.raw.pktcount": 5,
	"flow.start.sec": 1795630400, "flow.start.usec": 250000,
	"flow.end.sec": 1795630410, "flow.end.usec": 999,
	"ct.mark": 7, "ct.id": 1234, "ct.event": 4, "ct.zone": 3, "oob.family": 2,
}

// An IPv6 ping, no NAT.
var ping6 = map[string]any{
	"orig.ip.saddr": ip("fd00::1"), "orig.ip.daddr": ip("fd00::2"),
	"orig.ip.protocol": 58, "icmpv6.type": 128, "icmpv6.code": 0,
	"orig.raw.pktlen": 104, "orig.raw.pktcount": 1,
	"reply.ip.saddr": ip("fd00::2"), "reply.ip.daddr": ip("fd00::1"), "reply.ip.protocol": 58,
	"reply.raw.pktlen": 104, "reply.raw.pktcount": 1,
	"flow.start.sec": 1795630400, "flow.start.usec": 0,
	"flow.end.sec": 1795630401, "flow.end.usec": 0,
	"ct.mark": 0, "ct.id": 99, "ct.event": 4, "oob.family": 10,
}

func flows(t *testing.T, l *ipfixtest.Listener) []ipfix.Flow {
	t.Helper()
	d := ipfixtest.NewDecoder(pen)
	var fs []ipfix.Flow
	for _, m := range l.Messages() {
		for i := range m.Records {
			f, err := d.Flow(&m.Records[i])
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, f)
		}
	}
	return fs
}

var cmpAddr = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestRecords(t *testing.T) {
	a := netip.MustParseAddr
	const base = ipfix.HasTimes | ipfix.HasFlowID | ipfix.HasEndReason | ipfix.HasMark
	tcpOrig := ipfix.Flow{
		Src: a("10.0.0.1"), Dst: a("10.0.0.100"), SrcPort: 40000, DstPort: 80, Proto: 6, Octets: 600, Packets: 6,
		Has:     base | ipfix.HasNAT | ipfix.HasZone | ipfix.HasDirection,
		StartMs: 1795630400250, EndMs: 1795630410000,
		PostSrc: a("10.0.0.1"), PostDst: a("192.168.1.2"), PostSrcPort: 40000, PostDstPort: 8080,
		FlowID: 1234, Direction: 1, EndReason: ipfix.EndOfFlowDetected, Zone: 3, Mark: 7,
	}
	tcpReply := tcpOrig
	tcpReply.Src, tcpReply.Dst, tcpReply.SrcPort, tcpReply.DstPort = a("192.168.1.2"), a("10.0.0.1"), 8080, 40000
	tcpReply.Octets, tcpReply.Packets, tcpReply.Direction = 4000, 5, 2
	tcpReply.PostSrc, tcpReply.PostDst, tcpReply.PostSrcPort, tcpReply.PostDstPort = a("10.0.0.100"), a("10.0.0.1"), 80, 40000
	pingOrig := ipfix.Flow{
		Src: a("fd00::1"), Dst: a("fd00::2"), DstPort: 128 << 8, Proto: 58, Octets: 104, Packets: 1,
		Has:     base | ipfix.HasICMP | ipfix.HasDirection,
		StartMs: 1795630400000, EndMs: 1795630401000, ICMPType: 128,
		FlowID: 99, Direction: 1, EndReason: ipfix.EndIdleTimeout,
	}
	pingReply := pingOrig
	pingReply.Src, pingReply.Dst, pingReply.DstPort, pingReply.ICMPType, pingReply.Direction = a("fd00::2"), a("fd00::1"), 129<<8, 129, 2

	tcpBi := tcpOrig
	tcpBi.Has = tcpBi.Has&^ipfix.HasDirection | ipfix.HasReverse
	tcpBi.Direction, tcpBi.RevOctets, tcpBi.RevPackets = 0, 4000, 5
	pingBi := pingOrig
	pingBi.Has = pingBi.Has&^ipfix.HasDirection | ipfix.HasReverse
	pingBi.Direction, pingBi.RevOctets, pingBi.RevPackets = 0, 104, 1

	for _, tc := range []struct {
		network, extra string
		want           []ipfix.Flow
	}{
		{"udp", "", []ipfix.Flow{tcpOrig, tcpReply, pingOrig, pingReply}},
		{"tcp", "", []ipfix.Flow{tcpOrig, tcpReply, pingOrig, pingReply}},
		{"udp", "biflow=1", []ipfix.Flow{tcpBi, pingBi}},
	} {
		t.Run(tc.network+tc.extra, func(t *testing.T) {
			l := ipfixtest.Listen(t, "", tc.network)
			h := start(t, l, tc.network, tc.extra)
			h.Event(tcpNAT)
			h.Event(ping6)
			h.Flush()
			l.WaitRecords(t, len(tc.want))
			if diff := cmp.Diff(tc.want, flows(t, l), cmpAddr); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			for _, m := range l.Messages() {
				if m.Domain != 42 {
					t.Errorf("observation domain %d, want 42", m.Domain)
				}
			}
		})
	}
}

// TestSequence: each message's sequence number counts the data records of
// the messages before it; messages stay within the MTU.
func TestSequence(t *testing.T) {
	l := ipfixtest.Listen(t, "", "udp")
	h := start(t, l, "udp", "mtu=300")
	for i := range 50 {
		ev := map[string]any{}
		for k, v := range tcpNAT {
			ev[k] = v
		}
		ev["orig.l4.sport"] = 1000 + i
		h.Event(ev)
		if i%7 == 0 {
			h.Flush()
		}
	}
	h.Flush()
	l.WaitRecords(t, 100)
	var seq uint32
	for i, m := range l.Messages() {
		if m.Sequence != seq {
			t.Fatalf("message %d: sequence %d, want %d", i, m.Sequence, seq)
		}
		if m.Length > 300 {
			t.Fatalf("message %d: %d bytes, MTU 300", i, m.Length)
		}
		seq += uint32(len(m.Records))
	}
	if seq != 100 {
		t.Fatalf("%d records, want 100", seq)
	}
}

// TestTCPReconnect: when the collector drops the connection, the sink
// connects again and the new session starts with its templates and
// sequence number 0.
func TestTCPReconnect(t *testing.T) {
	l := ipfixtest.Listen(t, "", "tcp")
	h := start(t, l, "tcp", "")
	h.Event(tcpNAT)
	h.Flush()
	l.WaitRecords(t, 2)
	l.DropConnections()
	// The writer notices the closed connection (its reader returns) and
	// dials again; a flow sent meanwhile stays queued for the new one.
	h.Event(ping6)
	h.Flush()
	l.WaitConnections(t, 2)
	h.Event(tcpNAT)
	h.Flush()
	tcpTemplate := ipfix.TemplateID(false, ipfix.HasTimes|ipfix.HasFlowID|ipfix.HasEndReason|ipfix.HasMark|
		ipfix.HasNAT|ipfix.HasZone|ipfix.HasDirection)
	testutil.WaitFor(t, 10*time.Second, "the TCP flow on the new connection", func() bool {
		for _, m := range l.Messages() {
			for _, r := range m.Records {
				if m.Session == "tcp#2" && r.Template == tcpTemplate {
					return true
				}
			}
		}
		return false
	})
	if err := l.Err(); err != nil {
		t.Fatal(err) // a data set without its template on the new session
	}
	// The second session starts at sequence 0 with the templates its
	// records need (the decoder of each session would have failed
	// otherwise).
	var second []*ipfixtest.Message
	for _, m := range l.Messages() {
		if m.Session == "tcp#2" {
			second = append(second, m)
		}
	}
	if len(second) == 0 || second[0].Sequence != 0 || len(second[0].Templates) == 0 {
		t.Fatalf("the second session does not start at sequence 0 with a template: %+v", second)
	}
}

// TestNeverBlocks: a collector that reads nothing fills the socket and
// then the queue; the walk goes on and the records that did not fit are
// counted as dropped.
func TestNeverBlocks(t *testing.T) {
	l := ipfixtest.Listen(t, "", "tcp")
	l.Stall()
	h := start(t, l, "tcp", "queue_records=100")
	n := 200000
	begin := time.Now()
	for i := range n {
		ev := tcpNAT
		if i%2 == 1 {
			ev = ping6
		}
		h.Event(ev)
		if i%64 == 63 {
			h.Flush()
		}
	}
	h.Flush()
	if d := time.Since(begin); d > 30*time.Second {
		t.Fatalf("%d events took %v: the walk waited for the collector", n, d)
	}
	var dropped uint64
	for _, src := range h.Graph.Sources {
		for _, st := range src.Stacks {
			for _, in := range st.Instances {
				if d, ok := in.Inst.(plugin.Dropper); ok {
					dropped += d.Dropped()
				}
			}
		}
	}
	if dropped == 0 {
		t.Fatal("no record counted as dropped")
	}
}

// TestCheck: --check reports bad values with the file and line.
func TestCheck(t *testing.T) {
	for _, tc := range []struct{ opts, want string }{
		{"oid=0\nhost=127.0.0.1", "invalid Observation ID 0"},
		{"oid=1\nhost=\"not an address\"", `host "not an address" is neither an IP address nor a host name`},
		{"oid=1", "no destination host specified"},
		{"oid=1\nhost=::1\nproto=sctp", "unsupported protocol 'sctp'"},
		{"oid=1\nhost=::1\nmtu=100", "mtu 100 out of range"},
		{"oid=1\nhost=::1\nport=70000", "port 70000 out of range"},
		{"oid=1\nhost=::1\noverflow=spool", "overflow=spool needs a spool_dir"},
		{"oid=1\nhost=::1\noverflow=spool\nspool_dir=spool", `spool_dir "spool" must be an absolute path`},
		{"oid=1\nhost=::1\noverflow=later", "overflow"},
		{"oid=1\nhost=::1\nqueue_records=0", "queue_records 0 out of range"},
		{"oid=1\nhost=::1\nqueue_bytes=-1", "queue_bytes must be positive"},
	} {
		text := "[global]\nstack=ct1:NFCT,ipfix1:IPFIX\n\n[ipfix1]\n" + tc.opts + "\n"
		f, err := config.Parse("test.conf", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		_, err = stack.Build(f, plugin.Default, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "test.conf:") {
			t.Errorf("%q: error %v, want one with test.conf:<line> and %q", tc.opts, err, tc.want)
		}
	}
	for _, ok := range []string{"::1", "[fd00::1]", "collector.example.org", "10.0.0.1", "localhost",
		"::1\noverflow=spool\nspool_dir=/var/spool/ulogd/ipfix1", "::1\nqueue_records=1048576\nqueue_bytes=1000000"} {
		text := "[global]\nstack=ct1:NFCT,ipfix1:IPFIX\n\n[ipfix1]\noid=1\nproto=udp\nhost=" + ok + "\n"
		f, err := config.Parse("test.conf", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stack.Build(f, plugin.Default, nil); err != nil {
			t.Errorf("host=%s: %v", ok, err)
		}
	}
}

// TestTemplateRefresh: over UDP the templates come again once
// template_refresh seconds have passed, and not before.
func TestTemplateRefresh(t *testing.T) {
	tun := testTunables()
	var fake atomic.Int64
	fake.Store(time.Unix(1795630400, 0).UnixNano())
	tun.now = func() time.Time { return time.Unix(0, fake.Load()) }
	l := ipfixtest.Listen(t, "", "udp")
	s, r := startAt(t, l.Addr(), "udp", tun, func(cfg *Config) { cfg.TemplateRefresh = 60 })
	setEvent(r, ping6)
	want := []int{1, 0, 0, 1, 0}
	advance := []time.Duration{0, 59 * time.Second, 0, 2 * time.Second, 30 * time.Second}
	seen := 0
	for i := range want {
		fake.Add(int64(advance[i]))
		s.Interp(r)
		s.Flush()
		// The flow's two records come in one message or two (the writer
		// may take the first alone); both records have one template.
		l.WaitRecords(t, 2*(i+1))
		msgs := l.Messages()
		templates := 0
		for _, m := range msgs[seen:] {
			templates += len(m.Templates)
		}
		seen = len(msgs)
		if templates != want[i] {
			t.Errorf("flow %d (after %v more): %d templates, want %d", i, advance[i], templates, want[i])
		}
	}
}

// standalone builds an IPFIX instance outside a stack with tun, started,
// sending to l, with r holding the event ev.
func standalone(t *testing.T, l *ipfixtest.Listener, network string, tun tunables, ev map[string]any) (*sink, *keys.Record) {
	t.Helper()
	s, r := startAt(t, l.Addr(), network, tun, nil)
	setEvent(r, ev)
	return s, r
}

// startAt builds an IPFIX instance outside a stack, with oid 1 and an MTU
// of 1400 and the options that set changes, and tun, started, sending to
// addr (stopped at cleanup); r is laid out as its inputs.
func startAt(t *testing.T, addr, network string, tun tunables, set func(*Config)) (s *sink, r *keys.Record) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cfg := newConfig()
	cfg.OID, cfg.Host, cfg.Proto, cfg.MTU = 1, host, network, 1400
	cfg.Port, _ = strconv.Atoi(port)
	if set != nil {
		set(cfg)
	}
	in, r := plugintest.Inputs(inputs[:])
	inst, err := newSink(&plugin.Env{In: in}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s = inst.(*sink)
	s.tun = tun
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s, r
}

// TestInterpAllocs: a flow costs no allocation once the buffers have
// grown (the queue copies the records).
func TestInterpAllocs(t *testing.T) {
	l := ipfixtest.Listen(t, "", "udp")
	s, r := standalone(t, l, "udp", testTunables(), tcpNAT)
	for range 1000 {
		s.Interp(r)
	}
	if n := testutil.AllocsPerCall(1000, func() { s.Interp(r) }); n > 0 {
		t.Fatalf("%.2f allocations per flow", n)
	}
}

// TestHeldUntilAge: records that do not fill a message wait in the walk
// until the oldest is holdMax old, then leave at the next Flush.
func TestHeldUntilAge(t *testing.T) {
	tun := defaultTunables()
	tun.holdMax = time.Second
	var fake atomic.Int64
	fake.Store(time.Unix(1795630400, 0).UnixNano())
	tun.now = func() time.Time { return time.Unix(0, fake.Load()) }
	l := ipfixtest.Listen(t, "", "udp")
	s, r := standalone(t, l, "udp", tun, ping6)
	s.Interp(r)
	s.Flush()
	fake.Add(int64(999 * time.Millisecond))
	s.Interp(r)
	s.Flush()
	if got := s.q.Stats().Enqueued; got != 0 {
		t.Fatalf("%d records queued before the oldest was a second old", got)
	}
	fake.Add(int64(time.Millisecond))
	s.Flush()
	if got := s.q.Stats().Enqueued; got != 4 {
		t.Fatalf("%d records queued once the oldest was a second old, want 4", got)
	}
	l.WaitRecords(t, 4)
}

// TestReopen: SIGHUP starts a new TCP connection, whose first message
// carries the templates again.
func TestReopen(t *testing.T) {
	l := ipfixtest.Listen(t, "", "tcp")
	s, r := standalone(t, l, "tcp", testTunables(), ping6)
	s.Interp(r)
	s.Flush()
	l.WaitRecords(t, 2)
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.WaitConnections(t, 2)
	s.Interp(r)
	s.Flush()
	l.WaitRecords(t, 4)
	var first *ipfixtest.Message
	for _, m := range l.Messages() {
		if m.Session == "tcp#2" {
			first = m
			break
		}
	}
	if first == nil || first.Sequence != 0 || len(first.Templates) == 0 {
		t.Fatalf("after Reopen, the new connection's first message: %+v; want sequence 0 and a template", first)
	}
}

// TestHosts: an IPv6 collector, in brackets or not, and a name.
func TestHosts(t *testing.T) {
	for _, tc := range []struct{ listen, proto, host string }{
		{"udp6", "udp", "::1"},
		{"tcp6", "tcp", "[::1]"},
		{"tcp", "tcp", "localhost"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			l := ipfixtest.Listen(t, "", tc.listen)
			_, port, _ := net.SplitHostPort(l.Addr())
			l.SetMarkPEN(pen)
			h := harness(t, fmt.Sprintf("[ipfix1]\noid=1\nhost=%q\nport=%s\nproto=%s\n", tc.host, port, tc.proto))
			h.Event(ping6)
			h.Flush()
			l.WaitRecords(t, 2)
		})
	}
}

// TestLostWithConnection: the records of messages the collector's kernel
// had not acknowledged when the connection was reset are counted as
// dropped, and every record is counted once: written, dropped or still
// queued.
func TestLostWithConnection(t *testing.T) {
	// Not parallel: the reset must find the writer blocked in its send,
	// which the other tests' load on the CPUs can delay.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			// A tiny receive window: most of what is sent stays unacknowledged.
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1024)
		})
	}}
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	cfg := newConfig()
	cfg.OID, cfg.Host, cfg.Proto, cfg.MTU, cfg.QueueRecords = 1, host, "tcp", 1400, 100000
	cfg.Port, _ = strconv.Atoi(port)
	in, r := plugintest.Inputs(inputs[:])
	inst, err := newSink(&plugin.Env{In: in}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := inst.(*sink)
	s.tun = testTunables()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	conn := <-accepted
	setEvent(r, tcpNAT)
	for range 20000 {
		s.Interp(r)
	}
	s.Flush()
	// The writer blocks once the window and its send buffer are full.
	testutil.WaitFor(t, 10*time.Second, "a blocked writer", func() bool {
		st := s.q.Stats()
		return st.Depth > 0 && st.Enqueued == 40000
	})
	ln.Close() // no reconnection
	conn.(*net.TCPConn).SetLinger(0)
	conn.Close() // unread data: a reset
	testutil.WaitFor(t, 30*time.Second, "records counted as lost", func() bool { return s.q.Stats().Dropped > 0 })
	t.Logf("after the reset: %+v", s.q.Stats())
	if err := s.Stop(context.Background()); err == nil {
		t.Error("Stop reported no record left unsent")
	}
	st := s.q.Stats()
	if st.Depth != 0 || st.Written+st.Dropped != st.Enqueued || st.Enqueued != 40000 {
		t.Fatalf("counters %+v: every one of 40000 records must be written or dropped", st)
	}
}

// setEvent sets r's slots (laid out as inputs) from ev.
func setEvent(r *keys.Record, ev map[string]any) {
	for i, k := range inputs {
		switch v := ev[k.Name].(type) {
		case int:
			r.SetUint(keys.Slot(i), uint64(v))
		case []byte:
			r.SetBytes(keys.Slot(i), v)
		}
	}
}
