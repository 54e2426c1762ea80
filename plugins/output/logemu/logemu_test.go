package logemu

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

var provides = []keys.Spec{
	{Name: "print", Type: keys.String},
	{Name: "oob.time.sec", Type: keys.Uint32},
}

func hostname(t testing.TB) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ = strings.Cut(h, ".")
	return h
}

func TestLineFormatAndSync(t *testing.T) {
	h := plugintest.NewFile(t, "emu1:LOGEMU", "emu.log", "sync=1\n", provides)
	ts := time.Date(2026, 11, 5, 8, 1, 2, 0, time.Local)
	h.Event(map[string]any{"print": "[NEW] ORIG: SRC=10.0.0.1 \n", "oob.time.sec": int(ts.Unix())})
	if got := h.Read(); got != "" {
		t.Fatalf("written before the end of the batch: %q", got)
	}
	h.Flush()
	want := "Nov  5 08:01:02 " + hostname(t) + " [NEW] ORIG: SRC=10.0.0.1 \n"
	if got := h.Read(); got != want {
		t.Fatalf("file = %q, want %q", got, want)
	}
	// Without oob.time.sec the line is stamped with the current time.
	before := time.Now().Truncate(time.Second)
	h.Event(map[string]any{"print": "x\n"})
	h.Flush()
	lines := strings.Split(strings.TrimSuffix(h.Read(), "\n"), "\n")
	stamp, err := time.ParseInLocation(time.Stamp, lines[1][:15], time.Local)
	if err != nil {
		t.Fatalf("second line %q: %v", lines[1], err)
	}
	stamp = stamp.AddDate(before.Year(), 0, 0)
	if d := stamp.Sub(before); d < 0 || d > 5*time.Second {
		t.Errorf("stamp %v is not now (%v)", stamp, before)
	}
}

func TestSync0BuffersUntilStop(t *testing.T) {
	h := plugintest.NewFile(t, "emu1:LOGEMU", "emu.log", "", provides)
	if got := h.BuffersUntilStop(map[string]any{"print": "a\n", "oob.time.sec": 1}); !strings.HasSuffix(got, " a\n") {
		t.Fatalf("after stop file = %q, want the buffered line", got)
	}
}

func TestReopenAfterRotate(t *testing.T) {
	h := plugintest.NewFile(t, "emu1:LOGEMU", "emu.log", "sync=1\n", provides)
	// logrotate renames, then signals; lines still buffered belong to the
	// old file.
	old, cur := h.ReopenAfterRotate(
		[]map[string]any{{"print": "one\n", "oob.time.sec": 1}, {"print": "two\n", "oob.time.sec": 1}},
		[]map[string]any{{"print": "three\n", "oob.time.sec": 1}})
	if strings.Count(old, "\n") != 2 || !strings.HasSuffix(old, " two\n") {
		t.Errorf("rotated file = %q, want lines one and two", old)
	}
	if strings.Count(cur, "\n") != 1 || !strings.HasSuffix(cur, " three\n") {
		t.Errorf("new file = %q, want line three", cur)
	}
}

func TestOpenFailureFailsStart(t *testing.T) {
	f, err := os.Open(plugintest.MissingDir + "/x")
	if err == nil {
		f.Close()
		t.Skip("path unexpectedly exists")
	}
	d, cfg := desc(), &Config{File: plugintest.MissingDir + "/emu.log"}
	inst, err := d.New(envFor(cfg))
	if err != nil {
		t.Fatal(err)
	}
	plugintest.StartFails(t, inst, "can't open syslogemu")
}

// On a full disk LOGEMU keeps the lines and writes them once there is
// room: each walk ends well (failed stays 0, it counted 59292 held lines
// before), and written counts every line.
func TestFullDiskIsNotFailure(t *testing.T) {
	dir := plugintest.SmallTmpfs(t, "256k")
	filler := plugintest.FillDisk(t, dir)
	cfg := &Config{File: filepath.Join(dir, "emu.log"), Sync: 1}
	inst, err := desc().New(envFor(cfg))
	if err != nil {
		t.Fatal(err)
	}
	s := plugintest.Started(t, inst).(*sink)
	r := keys.NewRecord([]keys.Type{keys.String, keys.Uint32})
	const total = 400 // ~80 KB: past the buffer's flush threshold
	for i := range total {
		r.SetString(0, fmt.Sprintf("line %d %s\n", i, strings.Repeat("x", 160)))
		r.SetUint(1, 1)
		if v := s.Interp(r); v != plugin.Continue {
			t.Fatalf("line %d on a full disk: verdict %v, want Continue (kept)", i, v)
		}
		r.Reset()
	}
	if s.Written() != 0 || s.Dropped() != 0 {
		t.Fatalf("written %d, dropped %d on a full disk", s.Written(), s.Dropped())
	}
	os.Remove(filler)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if s.Written() != total || s.Dropped() != 0 {
		t.Errorf("written %d, dropped %d; want %d, 0", s.Written(), s.Dropped(), total)
	}
	if n := strings.Count(plugintest.ReadFile(t, cfg.File), "\n"); n != total {
		t.Errorf("file holds %d lines", n)
	}
}
