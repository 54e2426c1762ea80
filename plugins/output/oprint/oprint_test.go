package oprint

import (
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

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
	{Name: "any", Type: keys.None},
}

func TestFormat(t *testing.T) {
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
				"any": 3,
			},
			// Addresses print the right way round (ulogd2 2.0.8: 1.0.99.10,
			// docs/compat.md T1); RAW, RAWSTR, INT64 and IP6ADDR print "default".
			want: "===>PACKET BOUNDARY\noob.prefix=OUT-LOG\nip.saddr=10.99.0.1\nip.daddr=10.99.0.2\n" +
				"s8=-5\ns16=-300\ns32=-70000\ns64=default\nu8=255\nu16=65535\nu32=4294967295\n" +
				"u64=9223372036854775808\nflag=1\nraw.pkt=default\nip.saddr.bin=default\nv6=default\nany=<none>\n",
		},
		{
			name: "invalid keys are left out",
			ev:   map[string]any{"u16": 7, "flag": false},
			want: "===>PACKET BOUNDARY\nu16=7\nflag=0\n",
		},
		{
			name: "IPv6 in full",
			ev:   map[string]any{"ip.saddr": []byte{0xfd, 0x99, 15: 1}, "ip.daddr": []byte{0xfd, 0x99, 15: 2}},
			want: "===>PACKET BOUNDARY\nip.saddr=fd99::1\nip.daddr=fd99::2\n",
		},
		{
			name: "nothing valid, boundary only",
			ev:   map[string]any{},
			want: "===>PACKET BOUNDARY\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := plugintest.NewFile(t, "op1:OPRINT", "oprint.log", "sync=1\n", provides)
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
	h := plugintest.NewFile(t, "ip2str1:IP2STR,op1:OPRINT", "oprint.log", "sync=1\n", src)
	want := "===>PACKET BOUNDARY\noob.family=2\noob.protocol=2048\nip.saddr=10.0.0.1\nip.saddr.str=10.0.0.1\nip.saddr.str=10.0.0.1\n"
	got := h.Log(map[string]any{"oob.family": 2, "oob.protocol": 0x0800, "ip.saddr": []byte{10, 0, 0, 1}, "ip.saddr.str": "shadowed"})
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("file (-want +got):\n%s", diff)
	}
}

func direct(t testing.TB, cfg *Config) (*sink, *keys.Record) {
	t.Helper()
	up, r := plugintest.Upstream(provides)
	env := &plugin.Env{ID: "op1", Plugin: "OPRINT", Config: cfg, Upstream: up, Log: slog.New(slog.DiscardHandler)}
	s := newSink(env, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(t.Context()) })
	r.SetString(0, "OUT-LOG")
	r.SetBytes(1, []byte{10, 99, 0, 1})
	r.SetBytes(2, []byte{0xfd, 0x99, 15: 2})
	r.SetInt(3, -5)
	r.SetInt(6, -1)
	for s := keys.Slot(7); s <= 10; s++ {
		r.SetUint(s, 40000)
	}
	r.SetBool(11, true)
	r.SetBytes(12, []byte{1, 2, 3})
	r.SetUint(15, 1)
	return s, r
}

func TestSync0BuffersUntilStop(t *testing.T) {
	h := plugintest.NewFile(t, "op1:OPRINT", "oprint.log", "", provides)
	if got := h.BuffersUntilStop(map[string]any{"u8": 1}); got != "===>PACKET BOUNDARY\nu8=1\n" {
		t.Fatalf("after stop file = %q", got)
	}
}

func TestReopenAfterRotate(t *testing.T) {
	h := plugintest.NewFile(t, "op1:OPRINT", "oprint.log", "sync=1\n", provides)
	old, cur := h.ReopenAfterRotate([]map[string]any{{"u8": 1}, {"u8": 2}}, []map[string]any{{"u8": 3}})
	if old != "===>PACKET BOUNDARY\nu8=1\n===>PACKET BOUNDARY\nu8=2\n" {
		t.Errorf("rotated file = %q", old)
	}
	if cur != "===>PACKET BOUNDARY\nu8=3\n" {
		t.Errorf("new file = %q", cur)
	}
}

func TestReopenFailureKeepsOldFile(t *testing.T) {
	got := plugintest.ReopenFailureKeepsOldFile(t, "oprint.log", func(path string) (plugintest.FileSink, *keys.Record) {
		return direct(t, &Config{File: path, Sync: 1})
	}, "can't open PKTLOG")
	if !strings.HasPrefix(got, "===>PACKET BOUNDARY\noob.prefix=OUT-LOG\n") {
		t.Errorf("old file = %q", got)
	}
}

func TestOpenFailureFailsStart(t *testing.T) {
	cfg := &Config{File: plugintest.MissingDir + "/oprint.log"}
	plugintest.StartFails(t, newSink(&plugin.Env{Config: cfg, Log: slog.New(slog.DiscardHandler)}, cfg), "can't open PKTLOG")
}

func TestZeroAllocsPerEvent(t *testing.T) {
	s, r := direct(t, &Config{File: filepath.Join(t.TempDir(), "oprint.log"), Sync: 1})
	plugintest.ZeroAllocsPerEvent(t, s, r)
}

func BenchmarkInterp(b *testing.B) {
	s, r := direct(b, &Config{File: filepath.Join(b.TempDir(), "oprint.log"), Sync: 1})
	plugintest.BenchInterp(b, s, r)
}
