package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Pair is the reference ulogd2 and ours running at the same time in the
// same namespace, on the same config apart from file names, so they see
// the same kernel events.
type Pair struct {
	Ref, Ours       *Daemon
	RefOut, OursOut string
}

// StartBoth starts the reference and ours in p.A, each with config(logfile,
// out) written to its own file.
func StartBoth(t *testing.T, p *NSPair, config func(logfile, out string) string) *Pair {
	t.Helper()
	ref := RefBinary(t)
	ours := OurBinary(t)
	dir := t.TempDir()
	r := &Pair{RefOut: filepath.Join(dir, "ref.out"), OursOut: filepath.Join(dir, "ours.out")}
	refLog, oursLog := filepath.Join(dir, "ref.log"), filepath.Join(dir, "ours.log")
	refConf := WriteConfig(t, filepath.Join(dir, "ref.conf"), config(refLog, r.RefOut))
	oursConf := WriteConfig(t, filepath.Join(dir, "ours.conf"), config(oursLog, r.OursOut))
	r.Ref = StartDaemon(t, DaemonSpec{Name: "ref", Binary: ref, Netns: p.A, Config: refConf, Logfile: refLog})
	r.Ours = StartDaemon(t, DaemonSpec{Name: "ours", Binary: ours, Netns: p.A, Config: oursConf, Logfile: oursLog})
	return r
}

// CompareOutputs normalises both outputs (NormalizeForDiff), then requires
// them to be equal as multisets and in order. It returns the normalised
// lines of ours.
func CompareOutputs(t *testing.T, refLines, oursLines []string) []string {
	t.Helper()
	host := ShortHostname(t)
	ref := NormalizeAll(t, refLines, host, true)
	ours := NormalizeAll(t, oursLines, host, false)
	if diff := DiffMultiset(ref, ours); diff != "" {
		t.Errorf("outputs differ as multisets (-ref +ours):\n%s", diff)
		return ours
	}
	// Each daemon reads its own event socket; the kernel queues the same
	// multicast events in the same order on both.
	if diff := cmp.Diff(ref, ours); diff != "" {
		t.Errorf("same lines, different order (-ref +ours):\n%s", diff)
	}
	return ours
}

func TestDiffCanonical(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opts    NFCTOptions
		barrier string
		// events expected per flow
		news, destroys int
	}{
		{"new-only", NFCTOptions{EventMask: 1, HashEnable: Int(0)}, "NEW", 1, 0},
		{"new+destroy", NFCTOptions{EventMask: 5, HashEnable: Int(0)}, "DESTROY", 1, 1},
		{"hash", NFCTOptions{}, "DESTROY", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewNSPair(t, NSOptions{Conntrack: true, Accounting: true, Timestamps: true})
			both := StartBoth(t, p, func(logfile, out string) string {
				return CanonicalConfig(logfile, out, tc.opts)
			})
			flows := standardTraffic(t, p)
			got := p.Barrier(t, tc.barrier, both.RefOut, both.OursOut)
			ours := CompareOutputs(t, got[0], got[1])
			// Guard against both being equally empty or wrong.
			var n, d int
			for _, l := range ours {
				n += btoi(strings.HasPrefix(l, "[NEW] "))
				d += btoi(strings.HasPrefix(l, "[DESTROY] "))
			}
			if n != tc.news*len(flows) || d != tc.destroys*len(flows) {
				t.Errorf("%d [NEW] and %d [DESTROY] lines, want %d and %d:\n%s",
					n, d, tc.news*len(flows), tc.destroys*len(flows), strings.Join(ours, "\n"))
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
