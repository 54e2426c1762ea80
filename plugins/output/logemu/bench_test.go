package logemu

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// benchLine is a PRINTFLOW line, as the canonical conntrack stack gives
// LOGEMU.
const benchLine = "[DESTROY] ORIG: SRC=10.99.0.1 DST=10.99.0.2 PROTO=TCP SPT=48142 DPT=443 PKTS=12 BYTES=1874 , " +
	"REPLY: SRC=10.99.0.2 DST=10.99.0.1 PROTO=TCP SPT=443 DPT=48142 PKTS=10 BYTES=18231 \n"

// startBench starts a LOGEMU instance with sync=1 writing a file in a
// temporary directory, and returns it with a record laid out for its
// inputs (print, oob.time.sec) and the file's path.
func startBench(b *testing.B) (plugin.Instance, *keys.Record, string) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "emu.log")
	inst, err := desc().New(envFor(&Config{File: path, Sync: 1}))
	if err != nil {
		b.Fatal(err)
	}
	plugintest.Started(b, inst)
	return inst, keys.NewRecord([]keys.Type{keys.String, keys.Uint32}), path
}

// BenchmarkLOGEMU writes one line per op, with sync=1 and the end of a
// batch every 64 lines: "flow" as behind NFCT (no packet time, the line
// is stamped now), "packet" with the packet's oob.time.sec (NFLOG).
func BenchmarkLOGEMU(b *testing.B) {
	host := hostname(b)
	ts := time.Date(2026, 11, 5, 8, 1, 2, 0, time.Local)
	for _, tc := range []struct {
		name string
		sec  bool // oob.time.sec valid
	}{{"flow", false}, {"packet", true}} {
		b.Run(tc.name, func(b *testing.B) {
			inst, r, path := startBench(b)
			s := inst.(*sink)
			line := []byte(benchLine)
			event := func() plugin.Verdict {
				r.SetBytes(0, line)
				if tc.sec {
					r.SetUint(1, uint64(ts.Unix()))
				}
				v := s.Interp(r)
				r.Reset()
				return v
			}
			plugintest.BenchFirst(b, event, s.Flush)
			got := plugintest.ReadFile(b, path)
			stamp := "Nov  5 08:01:02"
			if !tc.sec {
				stamp = got[:len(time.Stamp)] // now: checked by TestLineFormatAndSync
				if _, err := time.Parse(time.Stamp, stamp); err != nil {
					b.Fatalf("line %q: %v", got, err)
				}
			}
			want := stamp + " " + host + " " + benchLine
			if got != want {
				b.Fatalf("file = %q, want %q", got, want)
			}
			n := plugintest.BenchBatches(b, event, s.Flush)
			// Every line is in the file, whole.
			fi, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			if fi.Size() != int64(n*len(want)) {
				b.Fatalf("file size %d, want %d lines of %d bytes", fi.Size(), n, len(want))
			}
		})
	}
}
