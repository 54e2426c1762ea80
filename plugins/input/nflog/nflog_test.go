package nflog

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/nl/nflog"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

// ---------------------------------------------------------------------------
// Test helpers

// rec is one emitted event: key name → value (uint64 for integers, string
// for oob.prefix, the bytes for raw data). Invalid keys are absent.
type rec = plugintest.Values

// value is how the tests see a key's value (see rec).
func value(k keys.Spec, r *keys.Record, s keys.Slot) any {
	switch k.Type {
	case keys.String:
		return string(r.Bytes(s))
	case keys.Raw:
		return append([]byte(nil), r.Bytes(s)...)
	default:
		return r.Uint(s)
	}
}

// newTestEmitter returns an emitter that keeps a snapshot of every emitted
// record.
func newTestEmitter() *plugintest.Recorder { return plugintest.NewRecorder(outputKeys[:], value) }

func snapshot(r *keys.Record) rec { return plugintest.Snapshot(outputKeys[:], r, value) }

// newTest builds an instance through the descriptor, as the stack does.
func newTest(t testing.TB, c *Config) (*instance, *testutil.Buffer) {
	t.Helper()
	d := Descriptor()
	if _, _, err := d.Keys(c); err != nil {
		t.Fatalf("Keys: %v", err)
	}
	lb := &testutil.Buffer{Echo: t}
	env := &plugin.Env{ID: "log1", Plugin: "NFLOG", Config: c,
		Log: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for i := range numKeys {
		env.Out = append(env.Out, keys.Slot(i))
	}
	inst, err := d.New(env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return inst.(*instance), lb
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
	if d.Name != "NFLOG" || d.Kind != plugin.Source || d.Input != plugin.DTSource || d.Output != plugin.DTRaw {
		t.Errorf("descriptor = %+v", d)
	}
	if got, ok := plugin.Default.Lookup("NFLOG"); !ok || got.Name != "NFLOG" {
		t.Error("NFLOG not registered in plugin.Default")
	}
	want := []config.Option{
		{Name: "bufsize", Integer: true, Default: "150000"},
		{Name: "group", Integer: true, Default: "0"},
		{Name: "unbind", Integer: true, Default: "1"},
		{Name: "bind", Integer: true, Default: "0"},
		{Name: "seq_local", Integer: true, Default: "0"},
		{Name: "seq_global", Integer: true, Default: "0"},
		{Name: "numeric_label", Integer: true, Default: "0"},
		{Name: "netlink_socket_buffer_size", Integer: true, Default: "0"},
		{Name: "netlink_socket_buffer_maxsize", Integer: true, Default: "0"},
		{Name: "netlink_qthreshold", Integer: true, Default: "0"},
		{Name: "netlink_qtimeout", Integer: true, Default: "0"},
		{Name: "attach_conntrack", Integer: true, Default: "0"},
	}
	if diff := cmp.Diff(want, config.Options(d.NewConfig())); diff != "" {
		t.Errorf("options (-want +got):\n%s", diff)
	}
	if got := d.Resources(cfgWith(func(c *Config) { c.Group = 7 })); !cmp.Equal(got, []string{"nflog-group:7"}) {
		t.Errorf("Resources = %v", got)
	}
	if got := d.Resources(nil); !cmp.Equal(got, []string{"nflog-group:0"}) {
		t.Errorf("Resources(nil) = %v", got)
	}
}

func TestOutputKeys(t *testing.T) {
	want := []string{
		"raw.mac raw data", "raw.pkt raw data", "raw.pktlen unsigned int 32", "raw.pktcount unsigned int 32",
		"oob.prefix string", "oob.time.sec unsigned int 32", "oob.time.usec unsigned int 32",
		"oob.mark unsigned int 32", "oob.ifindex_in unsigned int 32", "oob.ifindex_out unsigned int 32",
		"oob.hook unsigned int 8", "raw.mac_len unsigned int 16", "oob.seq.local unsigned int 32",
		"oob.seq.global unsigned int 32", "oob.family unsigned int 8", "oob.protocol unsigned int 16",
		"oob.uid unsigned int 32", "oob.gid unsigned int 32", "raw.label unsigned int 8",
		"raw.type unsigned int 16", "raw.mac.saddr raw data", "raw.mac.addrlen unsigned int 16",
		"raw raw data", "ct raw data",
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
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.BufSize = 100 }, "bufsize=100"},
		{func(c *Config) { c.Group = 65536 }, "group=65536"},
		{func(c *Config) { c.Group = -1 }, "group=-1"},
		{func(c *Config) { c.NumericLabel = 256 }, "numeric_label=256"},
		{func(c *Config) { c.BufferSize = -1 }, "netlink_socket_buffer_size=-1"},
		{func(c *Config) { c.BufferMaxSize = -1 }, "netlink_socket_buffer_maxsize=-1"},
		{func(c *Config) { c.QThreshold = -1 }, "netlink_qthreshold=-1"},
		{func(c *Config) { c.QTimeout = -1 }, "netlink_qtimeout=-1"},
	} {
		_, _, err := Descriptor().Keys(cfgWith(tc.mod))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
	if _, _, err := Descriptor().Keys(cfgWith(func(c *Config) { c.Group = 65535; c.NumericLabel = 255 })); err != nil {
		t.Errorf("limits: %v", err)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want uint16
	}{
		{nil, 0},
		{func(c *Config) { c.SeqLocal = 1 }, 1},
		{func(c *Config) { c.SeqGlobal = 5 }, 2},
		{func(c *Config) { c.AttachConntrack = 1; c.SeqLocal = 1 }, 5},
	} {
		if got := cfgWith(tc.mod).flags(); got != tc.want {
			t.Errorf("flags = %#x, want %#x", got, tc.want)
		}
	}
}

// ---------------------------------------------------------------------------
// Filling keys

func TestFill(t *testing.T) {
	fixed := time.Unix(1800000000, 654321000)
	now := func() time.Time { return fixed }
	raw := []byte("the message")
	for _, tc := range []struct {
		name string
		p    nflog.Packet
		want rec
	}{
		{
			name: "minimal",
			p:    nflog.Packet{Family: 2},
			want: rec{"oob.family": uint64(2), "raw.label": uint64(7), "raw.pktcount": uint64(1),
				"oob.time.sec": uint64(1800000000), "oob.time.usec": uint64(654321), "oob.mark": uint64(0),
				"raw": raw},
		},
		{
			name: "local out",
			p: nflog.Packet{Family: 2, HasHdr: true, HwProtocol: 0x0800, Hook: 3, IfIndexOut: 1,
				Payload: []byte{0x45, 1, 2}, HasPayload: true, Prefix: []byte{}, HasPrefix: true,
				UID: 1000, GID: 1001, HasUID: true, HasGID: true, Seq: 4, HasSeq: true, SeqGlobal: 9, HasSeqGlobal: true,
				Mark: 42, HasMark: true,
				// A zero kernel timestamp is ignored.
				HasTimestamp: true, TimestampUsec: 5},
			want: rec{"oob.family": uint64(2), "raw.label": uint64(7), "raw.pktcount": uint64(1),
				"oob.hook": uint64(3), "oob.protocol": uint64(2048), "oob.ifindex_out": uint64(1),
				"raw.pkt": []byte{0x45, 1, 2}, "raw.pktlen": uint64(3), "oob.prefix": "",
				"oob.uid": uint64(1000), "oob.gid": uint64(1001), "oob.seq.local": uint64(4), "oob.seq.global": uint64(9),
				"oob.mark": uint64(42), "oob.time.sec": uint64(1800000000), "oob.time.usec": uint64(654321), "raw": raw},
		},
		{
			name: "ethernet in",
			p: nflog.Packet{Family: 10, HasHdr: true, HwProtocol: 0x86dd, Hook: 1, IfIndexIn: 2,
				HasTimestamp: true, TimestampSec: 1700000000, TimestampUsec: 99,
				HwAddr: []byte{1, 2, 3, 4, 5, 6}, HwAddrLen: 6, HasHwAddr: true,
				HwType: 1, HasHwType: true, HwHeader: make([]byte, 14), HwHeaderLen: 14, HasHwHeader: true, HasHwLen: true,
				CT: []byte{9}, HasCT: true, Payload: []byte{}, HasPayload: true},
			want: rec{"oob.family": uint64(10), "raw.label": uint64(7), "raw.pktcount": uint64(1),
				"oob.hook": uint64(1), "oob.protocol": uint64(34525), "oob.ifindex_in": uint64(2),
				"oob.time.sec": uint64(1700000000), "oob.time.usec": uint64(99), "oob.mark": uint64(0),
				"raw.mac.saddr": []byte{1, 2, 3, 4, 5, 6}, "raw.mac.addrlen": uint64(6),
				"raw.mac": make([]byte, 14), "raw.mac_len": uint64(14), "raw.type": uint64(1),
				"ct": []byte{9}, "raw.pkt": []byte(nil), "raw.pktlen": uint64(0), "raw": raw},
		},
		{
			name: "hw header without length",
			p:    nflog.Packet{Family: 7, HwType: 1, HasHwType: true, HwHeader: []byte{1}, HasHwHeader: true},
			want: rec{"oob.family": uint64(7), "raw.label": uint64(7), "raw.pktcount": uint64(1),
				"oob.time.sec": uint64(1800000000), "oob.time.usec": uint64(654321), "oob.mark": uint64(0), "raw": raw},
		},
	} {
		var sl slots
		for i := range sl {
			sl[i] = keys.Slot(i)
		}
		e := newTestEmitter()
		r := e.NewRecord()
		sl.fill(r, &tc.p, raw, 7, now)
		if diff := cmp.Diff(tc.want, snapshot(r)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

// ---------------------------------------------------------------------------
// Datagrams: sequence gaps, truncation, control messages

// packetMsg builds an NFULNL_MSG_PACKET with a sequence number.
func packetMsg(seq uint32, hasSeq bool) []byte {
	b := nl.AppendHeader(nil, nflog.MsgTypePacket, 0, 0)
	b = append(b, 2, 0, 0, 5)
	b = nl.AppendAttr(b, 1, []byte{8, 0, 3, 0}) // NFULA_PACKET_HDR
	if hasSeq {
		b = nl.AppendBE32(b, 12, seq) // NFULA_SEQ
	}
	b = nl.AppendAttr(b, 9, []byte{0x45, 0, 0, 20}) // NFULA_PAYLOAD
	return nl.FinishMsg(b, 0)
}

func doneMsg() []byte { return nl.FinishMsg(nl.AppendHeader(nil, 3, 2, 0), 0) }

func TestSequenceGaps(t *testing.T) {
	in, _ := newTest(t, cfgWith(func(c *Config) { c.SeqLocal = 1 }))
	e := newTestEmitter()
	r := e.NewRecord()
	var dg []byte
	for _, s := range []uint32{2, 3, 4, 7, 8, 8, 1} { // 2 lost before the first, 2 after 4
		dg = append(dg, packetMsg(s, true)...)
	}
	dg = append(dg, doneMsg()...)
	in.datagram(r, e, dg, false)
	if got := len(e.Records()); got != 7 {
		t.Errorf("%d records, want 7", got)
	}
	if got := e.LostCount(); got != 4 {
		t.Errorf("lost = %d, want 4", got)
	}
	if got := e.Records()[3]["oob.seq.local"]; got != uint64(7) {
		t.Errorf("seq = %v", got)
	}
	// Without seq_local, sequence numbers are not checked.
	in, _ = newTest(t, cfgWith(func(c *Config) { c.SeqGlobal = 1 }))
	e = newTestEmitter()
	in.datagram(e.NewRecord(), e, append(packetMsg(5, true), packetMsg(9, true)...), false)
	if got := e.LostCount(); got != 0 {
		t.Errorf("seq_global: lost = %d", got)
	}
}

func TestTruncatedAndMalformed(t *testing.T) {
	in, lb := newTest(t, cfgWith(nil))
	e := newTestEmitter()
	r := e.NewRecord()
	full := append(packetMsg(0, false), packetMsg(1, false)...)
	in.datagram(r, e, full[:len(full)-5], true)
	if len(e.Records()) != 1 || e.LostCount() != 1 || in.rx.loop.Errors().Truncated != 1 || in.rx.loop.Errors().Decode != 0 {
		t.Errorf("truncated: %d records, lost %d, truncated %d, decode errors %d",
			len(e.Records()), e.LostCount(), in.rx.loop.Errors().Truncated, in.rx.loop.Errors().Decode)
	}
	if !strings.Contains(lb.String(), "truncated") {
		t.Error("no warning about the truncated datagram")
	}
	// A malformed (not truncated) datagram is a decode error; the packets
	// before it are emitted.
	in.datagram(r, e, full[:len(full)-5], false)
	if len(e.Records()) != 2 || in.rx.loop.Errors().Decode != 1 || e.LostCount() != 2 {
		t.Errorf("malformed: %d records, %d decode errors, lost %d (want 2, 1, 2)", len(e.Records()), in.rx.loop.Errors().Decode, e.LostCount())
	}
	// An attribute too short: decode error, next message still handled.
	bad := nl.AppendHeader(nil, nflog.MsgTypePacket, 0, 0)
	bad = append(bad, 2, 0, 0, 5)
	bad = nl.FinishMsg(nl.AppendAttr(bad, 1, []byte{8}), 0)
	in.datagram(r, e, append(bad, packetMsg(0, false)...), false)
	if len(e.Records()) != 3 || in.rx.loop.Errors().Decode != 2 || e.LostCount() != 3 {
		t.Errorf("bad attribute: %d records, %d decode errors, lost %d (want 3, 2, 3)", len(e.Records()), in.rx.loop.Errors().Decode, e.LostCount())
	}
	// The "raw" key is the whole message.
	if got := e.Records()[2]["raw"].([]byte); len(got) != len(packetMsg(0, false)) {
		t.Errorf("raw = %d bytes", len(got))
	}
}

// ---------------------------------------------------------------------------
// Captured kernel messages: decode → record without allocating

// loadCaptured returns the datagrams captured by the nflog package's
// TestCapture.
func loadCaptured(t testing.TB) [][]byte {
	t.Helper()
	return testutil.ReadDatagrams(t, filepath.Join("..", "..", "..", "internal", "nl", "nflog", "testdata", "packets.bin"))
}

func TestCapturedToRecords(t *testing.T) {
	in, _ := newTest(t, cfgWith(func(c *Config) { c.SeqLocal = 1 }))
	e := newTestEmitter()
	r := e.NewRecord()
	for _, dg := range loadCaptured(t) {
		in.datagram(r, e, dg, false)
	}
	got := e.Records()
	if len(got) < 20 || in.rx.loop.Errors().Decode != 0 || e.LostCount() != 0 {
		t.Fatalf("%d records, %d decode errors, %d lost", len(got), in.rx.loop.Errors().Decode, e.LostCount())
	}
	first := got[0]
	for k, v := range map[string]any{"oob.prefix": "OUT-LOG", "oob.hook": uint64(3), "oob.family": uint64(2),
		"oob.protocol": uint64(2048), "raw.pktlen": uint64(84), "oob.seq.local": uint64(0), "oob.uid": uint64(0),
		"oob.ifindex_out": uint64(1)} {
		if first[k] != v {
			t.Errorf("first record %s = %v, want %v", k, first[k], v)
		}
	}
	for _, g := range got {
		if _, ok := g["raw.mac"]; ok != (g["oob.hook"] == uint64(1)) {
			t.Errorf("raw.mac valid only on input: %v", g)
		}
	}
}

func TestZeroAllocsPerPacket(t *testing.T) {
	dgs := loadCaptured(t)
	in, _ := newTest(t, cfgWith(func(c *Config) { c.SeqLocal = 1 }))
	in.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	e := plugintest.NewDiscard(outputKeys[:])
	r := e.NewRecord()
	run := func() {
		for _, dg := range dgs {
			in.datagram(r, e, dg, false)
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("%v allocations per run of %d datagrams", n, len(dgs))
	}
	if e.Emitted == 0 {
		t.Error("nothing emitted")
	}
}

func BenchmarkDecodeToRecord(b *testing.B) {
	dgs := loadCaptured(b)
	in, _ := newTest(b, cfgWith(nil))
	in.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	e := plugintest.NewDiscard(outputKeys[:])
	r := e.NewRecord()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		in.datagram(r, e, dgs[i%len(dgs)], false)
		i++
	}
	b.ReportMetric(float64(e.Emitted)/float64(i), "packets/op")
}

// ---------------------------------------------------------------------------
// Lifecycle without a kernel

func TestStopEndsRun(t *testing.T) {
	in, _ := newTest(t, cfgWith(nil))
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
	in, _ = newTest(t, cfgWith(nil))
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
}

// datagram feeds one datagram through the receive loop's message walk, as
// the loop does for every datagram it receives.
func (in *instance) datagram(rec *keys.Record, e plugin.Emitter, dg []byte, truncated bool) {
	if in.rx.h.rec != rec || in.rx.h.e != e {
		in.rx.h = receiver{in: in, rec: rec, e: e}
	}
	in.rx.loop.Datagram(e, &in.rx.h, dg, truncated)
}
