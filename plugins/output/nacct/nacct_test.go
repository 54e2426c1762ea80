package nacct

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

func TestLineFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   map[string]any
		want string
	}{
		{
			name: "TCP: ports, reply counters",
			ev: map[string]any{
				"orig.ip.saddr.str": "10.99.0.1", "orig.ip.daddr.str": "10.99.0.2", "orig.ip.protocol": 6,
				"orig.l4.sport": 48142, "orig.l4.dport": 5001, "reply.raw.pktlen": 164, "reply.raw.pktcount": 3,
				"flow.start.sec": 1795630392, "flow.end.sec": 1795630411,
			},
			want: "1795630411\t6\t10.99.0.1\t48142\t10.99.0.2\t5001\t3\t164\n",
		},
		{
			name: "ICMP: type and code instead of ports",
			ev: map[string]any{
				"orig.ip.saddr.str": "10.99.0.1", "orig.ip.daddr.str": "10.99.0.2", "orig.ip.protocol": 1,
				"orig.l4.sport": 99, "orig.l4.dport": 98, "icmp.type": 8, "icmp.code": 0,
				"reply.raw.pktlen": 168, "reply.raw.pktcount": 2, "flow.end.sec": 1795630411,
			},
			want: "1795630411\t1\t10.99.0.1\t8\t10.99.0.2\t0\t2\t168\n",
		},
		{
			name: "ICMPv6 is not ICMP",
			ev: map[string]any{
				"orig.ip.saddr.str": "fd99::1", "orig.ip.daddr.str": "fd99::2", "orig.ip.protocol": 58,
				"icmp.type": 128, "reply.raw.pktlen": 104, "reply.raw.pktcount": 1, "flow.end.sec": 1795630411,
			},
			want: "1795630411\t58\tfd99::1\t0\tfd99::2\t0\t1\t104\n",
		},
		{
			name: "invalid numbers print 0, invalid addresses nothing",
			ev:   map[string]any{"orig.ip.protocol": 17},
			want: "0\t17\t\t0\t\t0\t0\t0\n",
		},
		{
			name: "64-bit counters",
			ev:   map[string]any{"orig.ip.protocol": 6, "reply.raw.pktlen": uint64(1) << 40, "reply.raw.pktcount": uint64(1) << 33},
			want: "0\t6\t\t0\t\t0\t8589934592\t1099511627776\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := plugintest.NewFile(t, "na1:NACCT", "nacct.log", "sync=1\n", inputs)
			if diff := cmp.Diff(tc.want, h.Log(tc.ev)); diff != "" {
				t.Errorf("file (-want +got):\n%s", diff)
			}
		})
	}
}

func direct(t testing.TB, cfg *Config) (*sink, *keys.Record) {
	t.Helper()
	in, r := plugintest.Inputs(inputs)
	d, _ := plugin.Default.Lookup("NACCT")
	inst, err := d.New(&plugin.Env{ID: "na1", Plugin: "NACCT", Config: cfg, In: in, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s := inst.(*sink)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(t.Context()) })
	r.SetString(inSaddr, "10.99.0.1")
	r.SetString(inDaddr, "10.99.0.2")
	r.SetUint(inProto, 6)
	r.SetUint(inSport, 48142)
	r.SetUint(inDport, 5001)
	r.SetUint(inPktlen, 164)
	r.SetUint(inPktcount, 3)
	r.SetUint(inEnd, 1795630411)
	return s, r
}

func TestSync0BuffersUntilStop(t *testing.T) {
	h := plugintest.NewFile(t, "na1:NACCT", "nacct.log", "", inputs)
	if got := h.BuffersUntilStop(map[string]any{"orig.ip.protocol": 6}); got != "0\t6\t\t0\t\t0\t0\t0\n" {
		t.Fatalf("after stop file = %q", got)
	}
}

func TestReopenAfterRotate(t *testing.T) {
	h := plugintest.NewFile(t, "na1:NACCT", "nacct.log", "sync=1\n", inputs)
	old, cur := h.ReopenAfterRotate(
		[]map[string]any{{"orig.ip.protocol": 1}, {"orig.ip.protocol": 2}},
		[]map[string]any{{"orig.ip.protocol": 3}})
	if old != "0\t1\t\t0\t\t0\t0\t0\n0\t2\t\t0\t\t0\t0\t0\n" {
		t.Errorf("rotated file = %q", old)
	}
	if cur != "0\t3\t\t0\t\t0\t0\t0\n" {
		t.Errorf("new file = %q", cur)
	}
}

// TestReopenFailureKeepsOldFile: ulogd2 closes the file first and crashes
// on the next event when the open fails (docs/compat.md T4); here the old file stays.
func TestReopenFailureKeepsOldFile(t *testing.T) {
	got := plugintest.ReopenFailureKeepsOldFile(t, "nacct.log", func(path string) (plugintest.FileSink, *keys.Record) {
		return direct(t, &Config{File: path, Sync: 1})
	}, "nacct.log")
	if got != "1795630411\t6\t10.99.0.1\t48142\t10.99.0.2\t5001\t3\t164\n" {
		t.Errorf("old file = %q", got)
	}
}

func TestOpenFailureFailsStart(t *testing.T) {
	d, _ := plugin.Default.Lookup("NACCT")
	cfg := &Config{File: plugintest.MissingDir + "/nacct.log"}
	inst, err := d.New(&plugin.Env{Config: cfg, In: make([]keys.Slot, len(inputs)), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	plugintest.StartFails(t, inst, cfg.File)
}

func TestZeroAllocsPerEvent(t *testing.T) {
	s, r := direct(t, &Config{File: filepath.Join(t.TempDir(), "nacct.log"), Sync: 1})
	plugintest.ZeroAllocsPerEvent(t, s, r)
}

func BenchmarkInterp(b *testing.B) {
	s, r := direct(b, &Config{File: filepath.Join(b.TempDir(), "nacct.log"), Sync: 1})
	plugintest.BenchInterp(b, s, r)
}
