package nfct

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

// ---------------------------------------------------------------------------
// Test helpers

// rec is one emitted event: key name → value (uint64 for integers, the
// text form for addresses, the length for raw data). Invalid keys are
// absent.
type rec = plugintest.Values

// value is how the tests see a key's value (see rec).
func value(k keys.Spec, r *keys.Record, s keys.Slot) any {
	switch k.Type {
	case keys.IPAddr:
		return string(keys.AppendIP(nil, r.Bytes(s)))
	case keys.Raw:
		return len(r.Bytes(s))
	default:
		return r.Uint(s)
	}
}

// newTestEmitter returns an emitter that records a copy of every emitted
// event.
func newTestEmitter() *plugintest.Recorder { return plugintest.NewRecorder(outputKeys[:], value) }

func snapshot(r *keys.Record) rec { return plugintest.Snapshot(outputKeys[:], r, value) }

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newTest builds an instance through the descriptor, as the stack does.
func newTest(t testing.TB, c *Config) *instance {
	t.Helper()
	d := Descriptor()
	if _, _, err := d.Keys(c); err != nil {
		t.Fatalf("Keys: %v", err)
	}
	env := &plugin.Env{ID: "ct1", Plugin: "NFCT", Config: c, Log: testLogger(t)}
	for i := range numKeys {
		env.Out = append(env.Out, keys.Slot(i))
	}
	inst, err := d.New(env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return inst.(*instance)
}

func cfgWith(mod func(*Config)) *Config {
	c := defaultConfig()
	if mod != nil {
		mod(c)
	}
	return c
}

// ---------------------------------------------------------------------------
// Descriptor, config, keys

func TestDescriptor(t *testing.T) {
	d := Descriptor()
	if d.Name != "NFCT" || d.Kind != plugin.Source || d.Input != plugin.DTSource || d.Output != plugin.DTFlow {
		t.Errorf("descriptor = %+v", d)
	}
	if got, ok := plugin.Default.Lookup("NFCT"); !ok || got.Name != "NFCT" {
		t.Errorf("NFCT not registered in plugin.Default")
	}
	want := &Config{
		PollInterval: 0, HashEnable: 1, HashBuckets: 8192, HashMaxEntries: 32768, EventMask: 5,
		BufferSize: 0, BufferMaxSize: 0, ResyncTimeout: 60, Reliable: 0,
	}
	if diff := cmp.Diff(want, d.NewConfig()); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestOutputKeys(t *testing.T) {
	want := []string{
		"orig.ip.saddr IP addr", "orig.ip.daddr IP addr", "orig.ip.protocol unsigned int 8",
		"orig.l4.sport unsigned int 16", "orig.l4.dport unsigned int 16",
		"orig.raw.pktlen unsigned int 64", "orig.raw.pktcount unsigned int 64",
		"reply.ip.saddr IP addr", "reply.ip.daddr IP addr", "reply.ip.protocol unsigned int 8",
		"reply.l4.sport unsigned int 16", "reply.l4.dport unsigned int 16",
		"reply.raw.pktlen unsigned int 64", "reply.raw.pktcount unsigned int 64",
		"icmp.code unsigned int 8", "icmp.type unsigned int 8",
		"ct.mark unsigned int 32", "ct.id unsigned int 32", "ct.event unsigned int 32",
		"flow.start.sec unsigned int 32", "flow.start.usec unsigned int 32",
		"flow.end.sec unsigned int 32", "flow.end.usec unsigned int 32",
		"oob.family unsigned int 8", "oob.protocol unsigned int 8", "ct raw data",
		"icmpv6.type unsigned int 8", "icmpv6.code unsigned int 8", "ct.zone unsigned int 16",
	}
	in, out, err := Descriptor().Keys(defaultConfig())
	if err != nil || in != nil {
		t.Fatalf("Keys = %v, _, %v", in, err)
	}
	var got []string
	for _, k := range out {
		got = append(got, k.Name+" "+k.Type.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("output keys (-want +got):\n%s", diff)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" = no error
	}{
		{"defaults", nil, ""},
		{"polling", func(c *Config) { c.PollInterval = 10 }, ""},
		{"polling without hash", func(c *Config) { c.PollInterval = 10; c.HashEnable = 0 }, "NFCT polling mode requires the hashtable"},
		{"negative poll", func(c *Config) { c.PollInterval = -1 }, "pollinterval=-1"},
		{"zero entries", func(c *Config) { c.HashMaxEntries = 0 }, "hash_max_entries=0"},
		{"zero entries without hash", func(c *Config) { c.HashMaxEntries = 0; c.HashEnable = 0 }, ""},
		// ulogd2 accepts every mask (a legacy netlink group mask).
		{"guide mask", func(c *Config) { c.EventMask = 0x85 }, ""},
		{"all bits", func(c *Config) { c.EventMask = -1 }, ""},
		{"negative buffer", func(c *Config) { c.BufferSize = -1 }, "netlink_socket_buffer_size=-1"},
		{"bad src", func(c *Config) { c.AcceptSrcFilter = "10.0.0.1" }, `"10.0.0.1": no network specified`},
		{"bad dst", func(c *Config) { c.AcceptDstFilter = "10.0.0.0/8,fd00::1" }, `accept_dst_filter: entry "fd00::1"`},
		{"bad proto", func(c *Config) { c.AcceptProtoFilter = "tcp,300" }, `"300" is not a protocol number`},
		{"both bad", func(c *Config) { c.AcceptSrcFilter = "x/8"; c.AcceptProtoFilter = "," }, "accept_src_filter: entry \"x/8\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Descriptor().Keys(cfgWith(tt.mod))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"", nil, ""},
		{"  ", nil, ""},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}, ""},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}, ""}, // host bits cleared
		{"10.0.0.0/8, 192.168.1.1/32 ,fd00::/8", []string{"10.0.0.0/8", "192.168.1.1/32", "fd00::/8"}, ""},
		{"::/0", []string{"::/0"}, ""},
		{"10.0.0.1", nil, `entry "10.0.0.1": no network specified`},
		{"10.0.0.1,10.0.0.0/8", nil, `entry "10.0.0.1": no network specified`}, // ulogd2 mis-parses this
		{"10.0.0.0/33", nil, `entry "10.0.0.0/33"`},
		{"fd00::/129", nil, `entry "fd00::/129"`},
		{"host/8", nil, `entry "host/8"`},
		{"10.0.0.0/8,", nil, "empty entry"},
		{"::ffff:10.0.0.0/104", nil, "IPv4-mapped"},
	}
	for _, tt := range tests {
		got, err := parsePrefixes("accept_src_filter", tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.Contains(err.Error(), "accept_src_filter") {
				t.Errorf("parsePrefixes(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parsePrefixes(%q): %v", tt.in, err)
			continue
		}
		var gs []string
		for _, p := range got {
			gs = append(gs, p.String())
		}
		if diff := cmp.Diff(tt.want, gs); diff != "" {
			t.Errorf("parsePrefixes(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

const protocolsSample = `# protocols
ip	0	IP		# internet protocol
icmp	1	ICMP		# internet control message protocol
tcp	6	TCP		# transmission control protocol
udp	17	UDP
ipv6-icmp 58	IPv6-ICMP	# ICMP for IPv6
udplite	136	UDPLite
bogus	999	BOGUS
short
`

func TestParseProtocols(t *testing.T) {
	m, err := parseProtocolsFile(strings.NewReader(protocolsSample))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m["bogus"]; ok {
		t.Errorf("out-of-range number accepted")
	}
	resolve := func(name string) (uint8, bool) {
		n, ok := m[strings.ToLower(name)]
		return n, ok
	}
	tests := []struct {
		in   string
		want []uint8
		err  string
	}{
		{"", nil, ""},
		{"tcp,udp,icmp", []uint8{6, 17, 1}, ""},
		{"TCP", []uint8{6}, ""},
		{" udplite , ipv6-icmp ", []uint8{136, 58}, ""},
		{"47,tcp", []uint8{47, 6}, ""},
		{"sctp", nil, `unknown protocol "sctp"`},
		{"256", nil, `"256" is not a protocol number`},
		{"6x", nil, `"6x" is not a protocol number`},
		{"tcp,", nil, "empty entry"},
		{"tcp/udp", nil, `"tcp/udp" is not a protocol name`},
	}
	for _, tt := range tests {
		got, names, err := parseProtocols(tt.in, resolve)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseProtocols(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseProtocols(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("parseProtocols(%q) (-want +got):\n%s", tt.in, diff)
		}
		if len(names) != len(got) {
			t.Errorf("parseProtocols(%q): %d names for %d numbers", tt.in, len(names), len(got))
		}
	}
	// Without a resolver (the pure check), names are accepted unresolved.
	if _, _, err := parseProtocols("anything,tcp,6", nil); err != nil {
		t.Errorf("syntax-only check: %v", err)
	}
}

func TestProtocolsFallback(t *testing.T) {
	resolve := systemProtocols(filepath.Join(t.TempDir(), "missing"))
	for name, want := range map[string]uint8{
		"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "sctp": 132, "udplite": 136,
		"dccp": 33, "gre": 47, "esp": 50, "ah": 51, "UDP": 17,
	} {
		if got, ok := resolve(name); !ok || got != want {
			t.Errorf("builtin %q = %d, %v; want %d", name, got, ok, want)
		}
	}
	if _, ok := resolve("nosuch"); ok {
		t.Errorf("nosuch resolved")
	}
	// The file, when present, is used (with the built-in table behind it).
	p := filepath.Join(t.TempDir(), "protocols")
	if err := os.WriteFile(p, []byte("myproto 253 MYPROTO\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resolve = systemProtocols(p)
	if got, ok := resolve("myproto"); !ok || got != 253 {
		t.Errorf("myproto = %d, %v", got, ok)
	}
	if got, ok := resolve("tcp"); !ok || got != 6 {
		t.Errorf("tcp via fallback = %d, %v", got, ok)
	}
}

func TestStartResolvesProtocols(t *testing.T) {
	in := newTest(t, cfgWith(func(c *Config) {
		c.AcceptProtoFilter = "tcp,udp,icmp"
		c.AcceptSrcFilter = "10.0.0.0/8"
	}))
	// The constructor reads no file: the names wait for Start.
	in.protocols = filepath.Join(t.TempDir(), "protocols")
	if err := os.WriteFile(in.protocols, []byte("tcp 6\nudp 17\nicmp 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !in.flt.empty() {
		t.Fatalf("filters resolved by the constructor: %+v", in.flt)
	}
	if err := in.resolveFilters(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint8{6, 17, 1}, in.flt.protos); diff != "" {
		t.Errorf("protos (-want +got):\n%s", diff)
	}
	if len(in.flt.src) != 1 || in.flt.src[0] != netip.MustParsePrefix("10.0.0.0/8") {
		t.Errorf("src = %v", in.flt.src)
	}
	d := Descriptor()
	env := &plugin.Env{Config: cfgWith(func(c *Config) { c.AcceptProtoFilter = "nosuchproto" }), Out: make([]keys.Slot, numKeys)}
	inst, err := d.New(env)
	if err != nil {
		t.Fatalf("New with an unknown protocol name: %v; want the error at Start", err)
	}
	if err := inst.(*instance).resolveFilters(); err == nil || !strings.Contains(err.Error(), `unknown protocol "nosuchproto"`) {
		t.Errorf("Start with unknown protocol: %v", err)
	}
}

// TestExtraMaskBits checks the start-up warning's account of the bits
// beyond NEW, UPDATE and DESTROY, in nfnetlink group numbering.
func TestExtraMaskBits(t *testing.T) {
	for mask, want := range map[int]string{
		5:    "",
		7:    "",
		0x85: "0x80 is nfnetlink group 8 (NFNLGRP_ACCT_QUOTA, nfacct quota notifications)",
		0x38: "0x8 is nfnetlink group 4 (NFNLGRP_CONNTRACK_EXP_NEW, expectation NEW events); " +
			"0x10 is nfnetlink group 5 (NFNLGRP_CONNTRACK_EXP_UPDATE, expectation UPDATE events); " +
			"0x20 is nfnetlink group 6 (NFNLGRP_CONNTRACK_EXP_DESTROY, expectation DESTROY events)",
		0x141: "0x40 is nfnetlink group 7 (NFNLGRP_NFTABLES, nftables ruleset changes); " +
			"0x100 is nfnetlink group 9 (NFNLGRP_NFTRACE, nftables trace events)",
		0x200:      "0x200 is no nfnetlink group (the kernel ignores it)",
		0x80000004: "0x80000000 is no nfnetlink group (the kernel ignores it)",
	} {
		if got := extraMaskBits(mask); got != want {
			t.Errorf("extraMaskBits(%#x) = %q, want %q", mask, got, want)
		}
	}
	if g := groupsOf(0x85); !slices.Equal(g, []uint32{ctnl.GroupNew, ctnl.GroupDestroy}) {
		t.Errorf("groupsOf(0x85) = %v, want NEW and DESTROY only", g)
	}
}

func TestGroups(t *testing.T) {
	for mask, want := range map[int][]uint32{
		0: nil, 1: {ctnl.GroupNew}, 5: {ctnl.GroupNew, ctnl.GroupDestroy},
		7: {ctnl.GroupNew, ctnl.GroupUpdate, ctnl.GroupDestroy}, 0x3c: {ctnl.GroupDestroy},
	} {
		if diff := cmp.Diff(want, groupsOf(mask)); diff != "" {
			t.Errorf("groupsOf(%#x) (-want +got):\n%s", mask, diff)
		}
	}
}

// ---------------------------------------------------------------------------
// Timestamps

func TestTimestamps(t *testing.T) {
	if got, want := nsToTimeval(1_700_000_000_123_456_789), (timeval{1_700_000_000, 123_456}); got != want {
		t.Errorf("nsToTimeval = %v, want %v", got, want)
	}
	if got := nsToTimeval(999); got.sec != 0 {
		t.Errorf("sub-second = %v", got)
	}
	tm := time.Unix(1_700_000_001, 987_654_321)
	if got, want := timeToTimeval(tm), (timeval{1_700_000_001, 987_654}); got != want {
		t.Errorf("timeToTimeval = %v, want %v", got, want)
	}
	fb := timeval{5, 6}
	if got := (timeval{}).or(fb); got != fb {
		t.Errorf("unset.or = %v", got)
	}
	if got := (timeval{0, 7}).or(fb); got != fb {
		t.Errorf("zero seconds means unset: got %v", got)
	}
	if got := (timeval{1, 0}).or(fb); got != (timeval{1, 0}) {
		t.Errorf("set.or = %v", got)
	}

	var sl slots
	for i := range sl {
		sl[i] = keys.Slot(i)
	}
	e := newTestEmitter()
	r := e.NewRecord()
	sl.setStart(r, timeval{0, 5}) // zero seconds: not set
	sl.setEnd(r, timeval{10, 20})
	got := snapshot(r)
	if diff := cmp.Diff(rec{"flow.end.sec": uint64(10), "flow.end.usec": uint64(20)}, got); diff != "" {
		t.Errorf("times (-want +got):\n%s", diff)
	}
}

// ---------------------------------------------------------------------------
// Events built by hand

var (
	v4a = []byte{10, 0, 0, 1}
	v4b = []byte{10, 0, 0, 2}
	v6a = netip.MustParseAddr("fd00::1").AsSlice()
	v6b = netip.MustParseAddr("fd00::2").AsSlice()
)

func tcpEvent(typ ctnl.EventType, sport uint16) *ctnl.Event {
	return &ctnl.Event{
		Type: typ, Family: unix.AF_INET,
		Orig:        ctnl.Tuple{Src: v4a, Dst: v4b, Proto: 6, SrcPort: sport, DstPort: 80, HasPorts: true},
		Reply:       ctnl.Tuple{Src: v4b, Dst: v4a, Proto: 6, SrcPort: 80, DstPort: sport, HasPorts: true},
		OrigPackets: 5, OrigBytes: 274, ReplyPackets: 3, ReplyBytes: 164, HasCounters: true,
		Mark: 7, HasMark: true, ID: 0xdeadbeef, HasID: true, Zone: 3,
	}
}

func TestFill(t *testing.T) {
	var sl slots
	for i := range sl {
		sl[i] = keys.Slot(i)
	}
	common := func(m rec) rec {
		m["ct.mark"] = uint64(0)
		m["ct.id"] = uint64(0)
		m["oob.protocol"] = uint64(0)
		m["ct.zone"] = uint64(0)
		m["orig.raw.pktlen"], m["orig.raw.pktcount"] = uint64(0), uint64(0)
		m["reply.raw.pktlen"], m["reply.raw.pktcount"] = uint64(0), uint64(0)
		return m
	}
	tests := []struct {
		name  string
		ev    *ctnl.Event
		event uint32
		raw   []byte
		want  rec
	}{
		{
			name: "tcp", ev: tcpEvent(ctnl.Destroy, 40000), event: 4, raw: make([]byte, 120),
			want: rec{
				"orig.ip.saddr": "10.0.0.1", "orig.ip.daddr": "10.0.0.2", "orig.ip.protocol": uint64(6),
				"orig.l4.sport": uint64(40000), "orig.l4.dport": uint64(80),
				"orig.raw.pktlen": uint64(274), "orig.raw.pktcount": uint64(5),
				"reply.ip.saddr": "10.0.0.2", "reply.ip.daddr": "10.0.0.1", "reply.ip.protocol": uint64(6),
				"reply.l4.sport": uint64(80), "reply.l4.dport": uint64(40000),
				"reply.raw.pktlen": uint64(164), "reply.raw.pktcount": uint64(3),
				"ct.mark": uint64(7), "ct.id": uint64(0xdeadbeef), "ct.event": uint64(4),
				"oob.family": uint64(2), "oob.protocol": uint64(0), "ct": 120, "ct.zone": uint64(3),
			},
		},
		{
			name: "icmp without counters", event: 1,
			ev: &ctnl.Event{Type: ctnl.New, Family: unix.AF_INET,
				Orig:  ctnl.Tuple{Src: v4a, Dst: v4b, Proto: 1, ICMPType: 8, ICMPCode: 0, ICMPID: 99, HasICMP: true},
				Reply: ctnl.Tuple{Src: v4b, Dst: v4a, Proto: 1, ICMPType: 0, ICMPCode: 0, ICMPID: 99, HasICMP: true}},
			want: common(rec{
				"orig.ip.saddr": "10.0.0.1", "orig.ip.daddr": "10.0.0.2", "orig.ip.protocol": uint64(1),
				"reply.ip.saddr": "10.0.0.2", "reply.ip.daddr": "10.0.0.1", "reply.ip.protocol": uint64(1),
				"icmp.type": uint64(8), "icmp.code": uint64(0),
				"ct.event": uint64(1), "oob.family": uint64(2),
			}),
		},
		{
			name: "icmpv6", event: 1,
			ev: &ctnl.Event{Type: ctnl.New, Family: unix.AF_INET6,
				Orig:  ctnl.Tuple{Src: v6a, Dst: v6b, Proto: 58, ICMPType: 128, ICMPCode: 0, ICMPID: 5, HasICMP: true},
				Reply: ctnl.Tuple{Src: v6b, Dst: v6a, Proto: 58, ICMPType: 129, ICMPCode: 0, ICMPID: 5, HasICMP: true}},
			want: common(rec{
				"orig.ip.saddr": "fd00::1", "orig.ip.daddr": "fd00::2", "orig.ip.protocol": uint64(58),
				"reply.ip.saddr": "fd00::2", "reply.ip.daddr": "fd00::1", "reply.ip.protocol": uint64(58),
				"icmpv6.type": uint64(128), "icmpv6.code": uint64(0),
				"ct.event": uint64(1), "oob.family": uint64(10),
			}),
		},
		{
			name: "gre has no port keys", event: 4,
			ev: &ctnl.Event{Type: ctnl.Destroy, Family: unix.AF_INET,
				Orig:  ctnl.Tuple{Src: v4a, Dst: v4b, Proto: 47, SrcPort: 1, DstPort: 2},
				Reply: ctnl.Tuple{Src: v4b, Dst: v4a, Proto: 47, SrcPort: 2, DstPort: 1}},
			want: common(rec{
				"orig.ip.saddr": "10.0.0.1", "orig.ip.daddr": "10.0.0.2", "orig.ip.protocol": uint64(47),
				"reply.ip.saddr": "10.0.0.2", "reply.ip.daddr": "10.0.0.1", "reply.ip.protocol": uint64(47),
				"ct.event": uint64(4), "oob.family": uint64(2),
			}),
		},
		{
			name: "udplite ports, no addresses", event: 4,
			ev: &ctnl.Event{Type: ctnl.Destroy, Family: unix.AF_INET,
				Orig:  ctnl.Tuple{Proto: 136, SrcPort: 1, DstPort: 2, HasPorts: true},
				Reply: ctnl.Tuple{Proto: 136, SrcPort: 2, DstPort: 1, HasPorts: true}},
			want: common(rec{
				"orig.ip.protocol": uint64(136), "orig.l4.sport": uint64(1), "orig.l4.dport": uint64(2),
				"reply.ip.protocol": uint64(136), "reply.l4.sport": uint64(2), "reply.l4.dport": uint64(1),
				"ct.event": uint64(4), "oob.family": uint64(2),
			}),
		},
	}
	e := newTestEmitter()
	r := e.NewRecord()
	for _, tt := range tests {
		sl.fill(r, tt.ev, tt.event, tt.raw)
		got := snapshot(r)
		r.Reset()
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

// ---------------------------------------------------------------------------
// Flow table

func TestFlowTable(t *testing.T) {
	tb := newFlowTable(16, 3)
	now := timeval{100, 1}
	a := tcpEvent(ctnl.New, 1)
	a.HasCounters, a.OrigPackets = false, 0
	if ok, _ := tb.upsert(a, now); !ok {
		t.Fatal("insert a")
	}
	// The stored copy does not alias the caller's buffers.
	src := append([]byte(nil), v4a...)
	b := tcpEvent(ctnl.New, 2)
	b.Orig.Src = src
	b.HasStart, b.Start = true, 200_500_000_000
	if ok, _ := tb.upsert(b, now); !ok {
		t.Fatal("insert b")
	}
	src[0] = 99
	if st, ok := tb.lookupStart(tcpEvent(ctnl.Update, 2)); !ok || st != (timeval{200, 500_000}) {
		t.Errorf("b start = %v, %v; want kernel start", st, ok)
	}
	// Update refreshes the copy but keeps the start; counters kept when
	// the update has none.
	u := tcpEvent(ctnl.Update, 1)
	u.OrigPackets = 9
	tb.upsert(u, timeval{150, 0})
	u2 := tcpEvent(ctnl.Update, 1)
	u2.HasCounters, u2.OrigPackets = false, 0
	tb.upsert(u2, timeval{160, 0})
	if st, _ := tb.lookupStart(u); st != now {
		t.Errorf("a start = %v, want %v (first seen)", st, now)
	}
	refs := tb.snapshot(nil)
	if len(refs) != 2 {
		t.Fatalf("snapshot has %d refs", len(refs))
	}
	for i := range refs {
		var p ctnl.Event
		refs[i].probe(&p)
		if p.Orig.SrcPort == 1 {
			f := tb.remove(&refs[i])
			if f == nil {
				t.Fatal("remove a")
			}
			if f.ev.OrigPackets != 9 || !f.ev.HasCounters {
				t.Errorf("stored counters = %d, %v; want 9 kept from the last update with counters", f.ev.OrigPackets, f.ev.HasCounters)
			}
			if got := string(keys.AppendIP(nil, f.ev.Orig.Src)); got != "10.0.0.1" {
				t.Errorf("stored src = %s", got)
			}
			tb.put(f)
			if tb.remove(&refs[i]) != nil {
				t.Error("removed twice")
			}
		} else if p.Orig.SrcPort != 2 || !p.Orig.HasPorts || p.Family != unix.AF_INET || len(p.Orig.Src) != 4 || p.Zone != 3 {
			t.Errorf("probe = %+v", p.Orig)
		}
	}
	// Max entries: 3 fit, the 4th is not tracked and the first such is
	// reported once.
	tb.upsert(tcpEvent(ctnl.New, 3), now)
	tb.upsert(tcpEvent(ctnl.New, 4), now)
	if tb.Len() != 3 {
		t.Fatalf("Len = %d", tb.Len())
	}
	ok, first := tb.upsert(tcpEvent(ctnl.New, 5), now)
	if ok || !first {
		t.Errorf("full table: ok=%v first=%v", ok, first)
	}
	ok, first = tb.upsert(tcpEvent(ctnl.New, 6), now)
	if ok || first {
		t.Errorf("full table again: ok=%v first=%v", ok, first)
	}
	if tb.Untracked() != 2 {
		t.Errorf("untracked = %d", tb.Untracked())
	}
	// A known flow is still refreshed when the table is full.
	if ok, _ := tb.upsert(tcpEvent(ctnl.Update, 3), now); !ok {
		t.Error("refresh in a full table")
	}
	// Delete, and a reused entry is a different generation.
	if _, ok := tb.take(tcpEvent(ctnl.Destroy, 3)); !ok {
		t.Error("take 3")
	}
	if _, ok := tb.take(tcpEvent(ctnl.Destroy, 3)); ok {
		t.Error("take 3 twice")
	}
	old := tb.snapshot(nil)
	for i := range old {
		if f := tb.remove(&old[i]); f != nil {
			tb.put(f)
		}
	}
	if tb.Len() != 0 {
		t.Fatalf("Len = %d after removing all", tb.Len())
	}
	tb.upsert(tcpEvent(ctnl.New, 4), now)
	for i := range old {
		if f := tb.remove(&old[i]); f != nil {
			t.Errorf("stale ref removed a new entry")
		}
	}
	// Zones and families are part of the key.
	z := tcpEvent(ctnl.New, 4)
	z.Zone = 9
	tb.upsert(z, now)
	if tb.Len() != 2 {
		t.Errorf("zone not part of the key: Len = %d", tb.Len())
	}
}

func TestFlowTableNoAllocs(t *testing.T) {
	tb := newFlowTable(1024, 1024)
	evs := make([]*ctnl.Event, 512)
	for i := range evs {
		evs[i] = tcpEvent(ctnl.New, uint16(i+1))
	}
	now := timeval{1, 0}
	// Warm up: the first slab and the map.
	for _, ev := range evs {
		tb.upsert(ev, now)
	}
	for _, ev := range evs {
		tb.take(ev)
	}
	allocs := testing.AllocsPerRun(10, func() {
		for _, ev := range evs {
			tb.upsert(ev, now)
		}
		for _, ev := range evs {
			tb.take(ev)
		}
	})
	if allocs != 0 {
		t.Errorf("flow table: %v allocations per insert/delete round", allocs)
	}
}

// ---------------------------------------------------------------------------
// Emission rules, without the kernel

func TestEmissionNoHash(t *testing.T) {
	in := newTest(t, cfgWith(func(c *Config) { c.HashEnable = 0; c.EventMask = 7 }))
	e := newTestEmitter()
	r := e.NewRecord()
	before := uint64(time.Now().Unix())

	n := tcpEvent(ctnl.New, 1)
	in.event(r, e, n, nil) // no kernel timestamp: start = now
	upd := tcpEvent(ctnl.Update, 1)
	in.event(r, e, upd, nil) // not emitted
	d := tcpEvent(ctnl.Destroy, 1)
	d.HasStart, d.Start = true, 1_000_000_000_000_000_000
	d.HasStop, d.Stop = true, 1_000_000_060_000_001_000
	in.event(r, e, d, make([]byte, 64))
	d2 := tcpEvent(ctnl.Destroy, 2) // no timestamps: end = now, no start
	in.event(r, e, d2, nil)

	got := e.Records()
	if len(got) != 3 {
		t.Fatalf("%d records, want 3: %v", len(got), got)
	}
	if got[0]["ct.event"] != uint64(1) || got[0]["flow.start.sec"].(uint64) < before || got[0]["flow.end.sec"] != nil {
		t.Errorf("NEW = %v", got[0])
	}
	if got[0]["ct"] != nil {
		t.Errorf("NEW has ct without a raw message")
	}
	if got[1]["ct.event"] != uint64(4) || got[1]["flow.start.sec"] != uint64(1_000_000_000) ||
		got[1]["flow.end.sec"] != uint64(1_000_000_060) || got[1]["flow.end.usec"] != uint64(1) || got[1]["ct"] != 64 {
		t.Errorf("DESTROY = %v", got[1])
	}
	if got[2]["flow.start.sec"] != nil || got[2]["flow.end.sec"].(uint64) < before {
		t.Errorf("DESTROY without timestamps = %v", got[2])
	}
	if in.rx.updates != 1 {
		t.Errorf("updates = %d", in.rx.updates)
	}
}

func TestEmissionHash(t *testing.T) {
	in := newTest(t, cfgWith(nil))
	e := newTestEmitter()
	r := e.NewRecord()

	n := tcpEvent(ctnl.New, 1)
	n.HasStart, n.Start = true, 1_000_000_000_500_000_000
	in.event(r, e, n, nil)
	in.event(r, e, tcpEvent(ctnl.Update, 1), nil)
	if len(e.Records()) != 0 {
		t.Fatalf("NEW/UPDATE emitted in hash mode: %v", e.Records())
	}
	d := tcpEvent(ctnl.Destroy, 1)
	d.HasStop, d.Stop = true, 1_000_000_010_000_000_000
	in.event(r, e, d, nil)
	// Unknown flow: the kernel's start is kept (ulogd2 drops it: docs/compat.md N4).
	u := tcpEvent(ctnl.Destroy, 2)
	u.HasStart, u.Start = true, 1_000_000_005_000_000_000
	in.event(r, e, u, nil)
	// Unknown flow without timestamps: no start, end = now.
	in.event(r, e, tcpEvent(ctnl.Destroy, 3), nil)

	got := e.Records()
	if len(got) != 3 {
		t.Fatalf("%d records, want 3", len(got))
	}
	if got[0]["ct.event"] != uint64(4) || got[0]["flow.start.sec"] != uint64(1_000_000_000) ||
		got[0]["flow.start.usec"] != uint64(500_000) || got[0]["flow.end.sec"] != uint64(1_000_000_010) {
		t.Errorf("DESTROY of a known flow = %v", got[0])
	}
	if got[1]["flow.start.sec"] != uint64(1_000_000_005) {
		t.Errorf("DESTROY of an unknown flow = %v", got[1])
	}
	if got[2]["flow.start.sec"] != nil || got[2]["flow.end.sec"] == nil {
		t.Errorf("DESTROY of an unknown flow without timestamps = %v", got[2])
	}
	if in.table.Len() != 0 {
		t.Errorf("table has %d flows left", in.table.Len())
	}
}

// ---------------------------------------------------------------------------
// Captured kernel messages: decode → record, allocations, benchmark

// loadCaptured reads testdata/events.bin: datagrams as received from the
// kernel's conntrack groups, each prefixed by its length (u32, little
// endian; the messages themselves are in host order, captured on amd64).
func loadCaptured(t testing.TB) [][]byte {
	t.Helper()
	return testutil.ReadDatagrams(t, filepath.Join("testdata", "events.bin"))
}

func TestCapturedDecode(t *testing.T) {
	dgs := loadCaptured(t)
	in := newTest(t, cfgWith(func(c *Config) { c.HashEnable = 0; c.EventMask = 5 }))
	e := newTestEmitter()
	r := e.NewRecord()
	for _, dg := range dgs {
		in.datagram(r, e, dg)
	}
	if in.rx.loop.Errors().Decode != 0 {
		t.Errorf("%d decode errors", in.rx.loop.Errors().Decode)
	}
	got := e.Records()
	if len(got) == 0 {
		t.Fatal("no record from the captured events")
	}
	seen := map[uint64]bool{}
	for _, g := range got {
		p := g["orig.ip.protocol"].(uint64)
		seen[p] = true
		if g["ct"] == nil || g["ct.id"] == nil || g["oob.family"] == nil {
			t.Errorf("record without ct/ct.id/oob.family: %v", g)
		}
		_, hasPort := g["orig.l4.sport"]
		if hasPort != (p == 6 || p == 17) {
			t.Errorf("proto %d: port keys valid = %v: %v", p, hasPort, g)
		}
		_, hasICMP := g["icmp.type"]
		if hasICMP != (p == 1) {
			t.Errorf("proto %d: icmp keys valid = %v", p, hasICMP)
		}
		_, hasICMP6 := g["icmpv6.type"]
		if hasICMP6 != (p == 58) {
			t.Errorf("proto %d: icmpv6 keys valid = %v", p, hasICMP6)
		}
	}
	for _, p := range []uint64{1, 6, 17, 58} {
		if !seen[p] {
			t.Errorf("no captured event for protocol %d", p)
		}
	}
}

// TestZeroAllocsPerEvent asserts the event path (walk, decode, fill,
// emit) allocates nothing, in both emission modes.
func TestZeroAllocsPerEvent(t *testing.T) {
	dgs := loadCaptured(t)
	for _, hash := range []int{0, 1} {
		in := newTest(t, cfgWith(func(c *Config) { c.HashEnable = hash; c.EventMask = 7 }))
		in.log = slog.New(slog.NewTextHandler(io.Discard, nil))
		e := plugintest.NewDiscard(outputKeys[:])
		r := e.NewRecord()
		run := func() {
			for _, dg := range dgs {
				in.datagram(r, e, dg)
			}
		}
		run() // warm up: table slab, map buckets, rate-limited notices
		allocs := testing.AllocsPerRun(100, run)
		if allocs != 0 {
			t.Errorf("hash_enable=%d: %v allocations per run of %d datagrams", hash, allocs, len(dgs))
		}
		if e.Emitted == 0 {
			t.Errorf("hash_enable=%d: nothing emitted", hash)
		}
	}
}

func BenchmarkDecodeToRecord(b *testing.B) {
	dgs := loadCaptured(b)
	in := newTest(b, cfgWith(func(c *Config) { c.HashEnable = 0; c.EventMask = 5 }))
	in.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	e := plugintest.NewDiscard(outputKeys[:])
	r := e.NewRecord()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		in.datagram(r, e, dgs[i%len(dgs)])
		i++
	}
	b.ReportMetric(float64(e.Emitted)/float64(i), "events/op")
}

// ---------------------------------------------------------------------------
// Stop without Start, Run after Stop

func TestStopEndsRun(t *testing.T) {
	in := newTest(t, cfgWith(func(c *Config) { c.PollInterval = 3600 }))
	done := make(chan error, 1)
	go func() { done <- in.Run(context.Background(), newTestEmitter()) }()
	in.Stop(context.Background())
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Stop")
	}
	// ctx cancellation ends Run too.
	in = newTest(t, cfgWith(func(c *Config) { c.PollInterval = 3600 }))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- in.Run(ctx, newTestEmitter()) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := in.openAux(); !errors.Is(err, nl.ErrClosed) {
		t.Errorf("openAux after stop = %v", err)
	}
}

// A message that cannot be decoded is lost, and counted as lost; the
// messages around it are still logged.
func TestUndecodableMessageCountedLost(t *testing.T) {
	dgs := loadCaptured(t)
	in := newTest(t, cfgWith(func(c *Config) { c.HashEnable = 0; c.EventMask = 5 }))
	e := newTestEmitter()
	r := e.NewRecord()
	good := dgs[0]
	// A conntrack message whose first attribute claims more bytes than
	// the message holds.
	bad := append([]byte(nil), good...)
	binary.NativeEndian.PutUint16(bad[nl.HeaderLen+4:], 0xfff0)
	in.datagram(r, e, append(append(append([]byte(nil), good...), bad...), good...))
	if in.rx.loop.Errors().Decode != 1 || e.LostCount() != 1 || len(e.Records()) != 2 {
		t.Fatalf("%d decode errors, lost %d, %d records: want 1, 1, 2", in.rx.loop.Errors().Decode, e.LostCount(), len(e.Records()))
	}
	// A datagram cut in its last message: the whole ones are logged and
	// the cut one is lost, counted once.
	in.rx.loop.Datagram(e, &receiver{in, r, e}, append(append([]byte(nil), good...), good[:len(good)-8]...), true)
	if e.LostCount() != 2 || len(e.Records()) != 3 {
		t.Fatalf("after a cut datagram: lost %d, %d records: want 2, 3", e.LostCount(), len(e.Records()))
	}
}

// datagram feeds one captured datagram through the receive loop's message
// walk, as the loop does for every datagram it receives.
func (in *instance) datagram(rec *keys.Record, e plugin.Emitter, dg []byte) {
	if in.rx.h.rec != rec || in.rx.h.e != e {
		in.rx.h = receiver{in: in, rec: rec, e: e}
	}
	in.rx.loop.Datagram(e, &in.rx.h, dg, false)
}
