package gprint

import (
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	_ "github.com/ulogd-go/ulogd/plugins/filter/ip2str" // for the duplicate-key test
)

// provides has one key of every type.
var provides = []keys.Spec{
	{Name: "oob.prefix", Type: keys.String},
	{Name: "ip.saddr", Type: keys.IPAddr},
	{Name: "ip.daddr", Type: keys.IPAddr},
	{Name: "s8", Type: keys.Int8},
	{Name: "s16", Type: keys.Int16},
	{Name: "s32", Type: keys.Int32},
	{Name: "s64", Type: keys.Int64},
	{Name: "u8", Type: keys.Uint8},
	{Name: "u16", Type: keys.Uint16},
	{Name: "u32", Type: keys.Uint32},
	{Name: "u64", Type: keys.Uint64},
	{Name: "flag", Type: keys.Bool},
	{Name: "raw.pkt", Type: keys.Raw},
	{Name: "ip.saddr.bin", Type: keys.RawStr},
	{Name: "v6", Type: keys.IP6Addr},
}

func TestLineFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   map[string]any
		want string
	}{
		{
			name: "every type",
			ev: map[string]any{
				"oob.prefix": "OUT-LOG", "ip.saddr": []byte{10, 99, 0, 1}, "ip.daddr": []byte{10, 99, 0, 2},
				"s8": -5, "s16": -300, "s32": -70000, "s64": -1,
				"u8": 255, "u16": 65535, "u32": 4294967295, "u64": uint64(1) << 63,
				"flag": true, "raw.pkt": []byte{1, 2}, "ip.saddr.bin": "0x0a630001", "v6": make([]byte, 16),
			},
			// RAW, RAWSTR, INT64 and IP6ADDR are skipped, as in ulogd2.
			want: "oob.prefix=OUT-LOG,ip.saddr=10.99.0.1,ip.daddr=10.99.0.2,s8=-5,s16=-300,s32=-70000," +
				"u8=255,u16=65535,u32=4294967295,u64=9223372036854775808,flag=1\n",
		},
		{
			name: "invalid keys are left out",
			ev:   map[string]any{"u16": 7, "flag": false},
			want: "u16=7,flag=0\n",
		},
		{
			name: "IPv6 in full",
			ev: map[string]any{
				"ip.saddr": []byte{0xfd, 0x99, 15: 1}, "ip.daddr": []byte{0xfd, 0x99, 15: 2},
			},
			want: "ip.saddr=fd99::1,ip.daddr=fd99::2\n",
		},
		{
			name: "strings are not quoted",
			ev:   map[string]any{"oob.prefix": "a=b, c"},
			want: "oob.prefix=a=b, c\n",
		},
		{
			name: "nothing valid, nothing written",
			ev:   map[string]any{"raw.pkt": []byte{1}},
			want: "",
		},
		{
			name: "no 4 KiB limit",
			ev:   map[string]any{"oob.prefix": strings.Repeat("x", 5000), "u8": 1},
			want: "oob.prefix=" + strings.Repeat("x", 5000) + ",u8=1\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := plugintest.NewFile(t, "gp1:GPRINT", "gprint.log", "sync=1\n", provides)
			if diff := cmp.Diff(tc.want, h.Log(tc.ev)); diff != "" {
				t.Errorf("file (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDuplicatesShowNearestProvider: a key provided twice is printed twice,
// both times with the nearest provider's value.
func TestDuplicatesShowNearestProvider(t *testing.T) {
	src := []keys.Spec{
		{Name: "oob.family", Type: keys.Uint8},
		{Name: "oob.protocol", Type: keys.Uint16},
		{Name: "ip.saddr", Type: keys.IPAddr},
		{Name: "ip.saddr.str", Type: keys.String},
	}
	h := plugintest.NewFile(t, "ip2str1:IP2STR,gp1:GPRINT", "gprint.log", "sync=1\n", src)
	want := "oob.family=2,oob.protocol=2048,ip.saddr=10.0.0.1,ip.saddr.str=10.0.0.1,ip.saddr.str=10.0.0.1\n"
	got := h.Log(map[string]any{"oob.family": 2, "oob.protocol": 0x0800, "ip.saddr": []byte{10, 0, 0, 1}, "ip.saddr.str": "shadowed"})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("file (-want +got):\n%s", diff)
	}
}

// direct builds a sink on a record laid out like provides, without the
// stack engine, for the timestamp, allocation and benchmark tests.
func direct(t testing.TB, cfg *Config) (*sink, *keys.Record) {
	t.Helper()
	up, r := plugintest.Upstream(provides)
	env := &plugin.Env{ID: "gp1", Plugin: "GPRINT", Config: cfg, Upstream: up, Log: slog.New(slog.DiscardHandler)}
	s := newSink(env, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(t.Context()) })
	fill(r)
	return s, r
}

// fill sets a typical packet's worth of values.
func fill(r *keys.Record) {
	r.SetString(0, "OUT-LOG")
	r.SetBytes(1, []byte{10, 99, 0, 1})
	r.SetBytes(2, []byte{0xfd, 0x99, 15: 2})
	r.SetInt(3, -5)
	r.SetInt(5, -70000)
	for s := keys.Slot(7); s <= 10; s++ {
		r.SetUint(s, 40000)
	}
	r.SetBool(11, true)
	r.SetBytes(12, []byte{1, 2, 3})
}

func TestTimestamp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gprint.log")
	s, r := direct(t, &Config{File: path, Sync: 1, Timestamp: 1})
	s.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.Local) }
	s.Interp(r)
	r.Reset()
	r.SetUint(8, 1)
	s.Interp(r)
	s.Flush()
	want := "timestamp=2026/01/02-03:04:05,oob.prefix=OUT-LOG,ip.saddr=10.99.0.1,ip.daddr=fd99::2,s8=-5,s32=-70000," +
		"u8=40000,u16=40000,u32=40000,u64=40000,flag=1\n" +
		"timestamp=2026/01/02-03:04:05,u16=1\n"
	if diff := cmp.Diff(want, plugintest.ReadFile(t, path)); diff != "" {
		t.Errorf("file (-want +got):\n%s", diff)
	}
}

func TestTimestampIsNow(t *testing.T) {
	h := plugintest.NewFile(t, "gp1:GPRINT", "gprint.log", "sync=1\ntimestamp=1\n", provides)
	before := time.Now().Truncate(time.Second)
	h.Event(map[string]any{"u8": 1})
	h.Flush()
	m := regexp.MustCompile(`^timestamp=(\d{4}/\d\d/\d\d-\d\d:\d\d:\d\d),u8=1\n$`).FindStringSubmatch(h.Read())
	if m == nil {
		t.Fatalf("file = %q", h.Read())
	}
	ts, err := time.ParseInLocation("2006/01/02-15:04:05", m[1], time.Local)
	if err != nil {
		t.Fatal(err)
	}
	if d := ts.Sub(before); d < 0 || d > 5*time.Second {
		t.Errorf("timestamp %v is not now (%v)", ts, before)
	}
}

func TestSync0BuffersUntilStop(t *testing.T) {
	h := plugintest.NewFile(t, "gp1:GPRINT", "gprint.log", "", provides)
	if got := h.BuffersUntilStop(map[string]any{"u8": 1}); got != "u8=1\n" {
		t.Fatalf("after stop file = %q", got)
	}
}

func TestReopenAfterRotate(t *testing.T) {
	h := plugintest.NewFile(t, "gp1:GPRINT", "gprint.log", "sync=1\n", provides)
	// logrotate renames, then signals; buffered lines belong to the old file.
	old, cur := h.ReopenAfterRotate([]map[string]any{{"u8": 1}, {"u8": 2}}, []map[string]any{{"u8": 3}})
	if old != "u8=1\nu8=2\n" {
		t.Errorf("rotated file = %q", old)
	}
	if cur != "u8=3\n" {
		t.Errorf("new file = %q", cur)
	}
}

func TestReopenFailureKeepsOldFile(t *testing.T) {
	got := plugintest.ReopenFailureKeepsOldFile(t, "gprint.log", func(path string) (plugintest.FileSink, *keys.Record) {
		return direct(t, &Config{File: path, Sync: 1})
	}, "can't open GPRINT log file")
	if !strings.HasPrefix(got, "oob.prefix=OUT-LOG,") {
		t.Errorf("old file = %q", got)
	}
}

func TestOpenFailureFailsStart(t *testing.T) {
	cfg := &Config{File: plugintest.MissingDir + "/gprint.log"}
	plugintest.StartFails(t, newSink(&plugin.Env{Config: cfg, Log: slog.New(slog.DiscardHandler)}, cfg), "can't open GPRINT log file")
}

func TestZeroAllocsPerEvent(t *testing.T) {
	s, r := direct(t, &Config{File: filepath.Join(t.TempDir(), "gprint.log"), Sync: 1, Timestamp: 1})
	plugintest.ZeroAllocsPerEvent(t, s, r)
}

func BenchmarkInterp(b *testing.B) {
	s, r := direct(b, &Config{File: filepath.Join(b.TempDir(), "gprint.log"), Sync: 1, Timestamp: 1})
	plugintest.BenchInterp(b, s, r)
}
