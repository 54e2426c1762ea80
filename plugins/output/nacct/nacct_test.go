package nacct

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

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
			path := filepath.Join(t.TempDir(), "nacct.log")
			h := plugintest.New(t, "na1:NACCT", "[na1]\nfile=\""+path+"\"\nsync=1\n", inputs)
			h.Event(tc.ev)
			h.Flush()
			if diff := cmp.Diff(tc.want, read(t, path)); diff != "" {
				t.Errorf("file (-want +got):\n%s", diff)
			}
		})
	}
}

func direct(t testing.TB, cfg *Config) (*sink, *keys.Record) {
	t.Helper()
	types := make([]keys.Type, len(inputs))
	in := make([]keys.Slot, len(inputs))
	for i, p := range inputs {
		types[i] = p.Type
		in[i] = keys.Slot(i)
	}
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
	r := keys.NewRecord(types)
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
	path := filepath.Join(t.TempDir(), "nacct.log")
	h := plugintest.New(t, "na1:NACCT", "[na1]\nfile=\""+path+"\"\n", inputs)
	h.Event(map[string]any{"orig.ip.protocol": 6})
	h.Flush()
	if got := read(t, path); got != "" {
		t.Fatalf("sync=0 wrote at once: %q", got)
	}
	h.Graph.Stop(t.Context())
	if got := read(t, path); got != "0\t6\t\t0\t\t0\t0\t0\n" {
		t.Fatalf("after stop file = %q", got)
	}
}

func TestReopenAfterRotate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nacct.log")
	h := plugintest.New(t, "na1:NACCT", "[na1]\nfile=\""+path+"\"\nsync=1\n", inputs)
	h.Event(map[string]any{"orig.ip.protocol": 1})
	h.Event(map[string]any{"orig.ip.protocol": 2})
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := h.Reopen(); err != nil {
		t.Fatal(err)
	}
	h.Event(map[string]any{"orig.ip.protocol": 3})
	h.Flush()
	if got := read(t, path+".1"); got != "0\t1\t\t0\t\t0\t0\t0\n0\t2\t\t0\t\t0\t0\t0\n" {
		t.Errorf("rotated file = %q", got)
	}
	if got := read(t, path); got != "0\t3\t\t0\t\t0\t0\t0\n" {
		t.Errorf("new file = %q", got)
	}
}

// TestReopenFailureKeepsOldFile: ulogd2 closes the file first and crashes
// on the next event when the open fails (Q34); here the old file stays.
func TestReopenFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	s, r := direct(t, &Config{File: filepath.Join(sub, "nacct.log"), Sync: 1})
	os.Rename(sub, filepath.Join(dir, "moved"))
	if err := s.Reopen(); err == nil || !strings.Contains(err.Error(), "nacct.log") {
		t.Fatalf("Reopen = %v", err)
	}
	if v := s.Interp(r); v != plugin.Continue {
		t.Fatalf("Interp after failed reopen = %v", v)
	}
	s.Flush()
	if got := read(t, filepath.Join(dir, "moved", "nacct.log")); got != "1795630411\t6\t10.99.0.1\t48142\t10.99.0.2\t5001\t3\t164\n" {
		t.Errorf("old file = %q", got)
	}
}

func TestOpenFailureFailsStart(t *testing.T) {
	d, _ := plugin.Default.Lookup("NACCT")
	cfg := &Config{File: "/nonexistent-dir-ulogd-test/nacct.log"}
	inst, err := d.New(&plugin.Env{Config: cfg, In: make([]keys.Slot, len(inputs)), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.Start(t.Context()); err == nil || !strings.Contains(err.Error(), cfg.File) {
		t.Fatalf("Start = %v", err)
	}
}

func TestZeroAllocsPerEvent(t *testing.T) {
	s, r := direct(t, &Config{File: filepath.Join(t.TempDir(), "nacct.log"), Sync: 1})
	n := testing.AllocsPerRun(10000, func() {
		s.Interp(r)
		s.Flush()
	})
	if n != 0 {
		t.Errorf("%v allocations per event, want 0", n)
	}
}

func BenchmarkInterp(b *testing.B) {
	s, r := direct(b, &Config{File: filepath.Join(b.TempDir(), "nacct.log"), Sync: 1})
	b.ReportAllocs()
	for b.Loop() {
		s.Interp(r)
	}
	s.Flush()
}
