package nfct

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

// ctnlCaptures are the kernel's messages captured by the ctnl package, one
// datagram per file.
func ctnlCaptures(t testing.TB) map[string][]byte {
	t.Helper()
	return testutil.ReadFiles(t, filepath.Join("..", "..", "..", "internal", "nl", "ctnl", "testdata", "*.bin"))
}

// decodeOne decodes the single conntrack message of a captured datagram.
func decodeOne(t testing.TB, dg []byte) *ctnl.Event {
	t.Helper()
	m, _, err := nl.NextMsg(dg)
	if err != nil {
		t.Fatal(err)
	}
	ev := new(ctnl.Event)
	if err := ctnl.Decode(m, ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func destroyOnlyInstance(t testing.TB) *instance {
	in := newTest(t, cfgWith(nil)) // hash mode, event_mask=5
	in.destroyOnly.Store(true)
	return in
}

// TestDestroyOnlyCaptured feeds the captured DESTROY events, with and
// without CTA_TIMESTAMP, to DESTROY-only mode and to today's hash mode
// (after the flow's NEW event): the records have the same keys and values,
// except flow.start, which is the kernel's start in DESTROY-only mode (hash
// mode stores the time it read the NEW event, which carries no timestamp).
func TestDestroyOnlyCaptured(t *testing.T) {
	caps := ctnlCaptures(t)
	var timed, untimed int
	for _, name := range slices.Sorted(maps.Keys(caps)) {
		if !strings.HasPrefix(name, "DESTROY-") {
			continue
		}
		dg := caps[name]
		ev := decodeOne(t, dg)
		// Hash mode: the flow's NEW (built from the DESTROY: the
		// captured NEW of the same flow would do), then its DESTROY.
		hash := newTest(t, cfgWith(nil))
		he := newTestEmitter()
		hr := he.NewRecord()
		nw := *ev
		nw.Type, nw.HasStart, nw.HasStop = ctnl.New, false, false
		before := uint64(time.Now().Unix())
		hash.event(hr, he, &nw, nil)
		hash.datagram(hr, he, dg)

		do := destroyOnlyInstance(t)
		de := newTestEmitter()
		dr := de.NewRecord()
		do.datagram(dr, de, dg)

		hs, ds := he.Records(), de.Records()
		if len(hs) != 1 || len(ds) != 1 {
			t.Fatalf("%s: %d hash-mode and %d DESTROY-only records, want 1 and 1", name, len(hs), len(ds))
		}
		h, d := hs[0], ds[0]
		if do.tracked() != 0 || hash.tracked() != 0 {
			t.Errorf("%s: flows left in the tables", name)
		}
		if ev.HasStart {
			timed++
			want := nsToTimeval(ev.Start)
			if d["flow.start.sec"] != uint64(want.sec) || d["flow.start.usec"] != uint64(want.usec) {
				t.Errorf("%s: DESTROY-only flow.start = %v.%v, want the kernel's %v", name, d["flow.start.sec"], d["flow.start.usec"], want)
			}
			if do.rx.untimed != 0 {
				t.Errorf("%s: counted as untimed", name)
			}
		} else {
			untimed++
			if d["flow.start.sec"] != nil || d["flow.start.usec"] != nil {
				t.Errorf("%s: DESTROY without a start has flow.start %v", name, d["flow.start.sec"])
			}
			if do.rx.untimed != 1 {
				t.Errorf("%s: untimed = %d, want 1", name, do.rx.untimed)
			}
		}
		if s, ok := h["flow.start.sec"].(uint64); !ok || s < before {
			t.Errorf("%s: hash-mode flow.start = %v, want the time the NEW was read", name, h["flow.start.sec"])
		}
		for _, k := range []string{"flow.start.sec", "flow.start.usec"} {
			delete(h, k)
			delete(d, k)
		}
		if ev.HasStop {
			if d["flow.end.sec"] != uint64(nsToTimeval(ev.Stop).sec) {
				t.Errorf("%s: flow.end = %v, want the kernel's stop", name, d["flow.end.sec"])
			}
		} else {
			// Both are the time the event was read.
			for _, r := range []rec{h, d} {
				if s, ok := r["flow.end.sec"].(uint64); !ok || s < before {
					t.Errorf("%s: flow.end = %v", name, r["flow.end.sec"])
				}
				delete(r, "flow.end.sec")
				delete(r, "flow.end.usec")
			}
		}
		if !maps.EqualFunc(h, d, func(a, b any) bool { return equalValue(a, b) }) {
			t.Errorf("%s: records differ\nhash:         %v\nDESTROY-only: %v", name, h, d)
		}
	}
	if timed == 0 || untimed == 0 {
		t.Fatalf("captures: %d DESTROY with a start, %d without; want both", timed, untimed)
	}
}

// equalValue compares record values, byte slices by content.
func equalValue(a, b any) bool {
	if x, ok := a.([]byte); ok {
		y, ok := b.([]byte)
		return ok && string(x) == string(y)
	}
	return a == b
}

// TestDestroyOnlyTableFlows: a flow the table holds (from the initial
// dump) keeps its stored start in DESTROY-only mode, and a lost DESTROY
// schedules no resync.
func TestDestroyOnlyTableFlows(t *testing.T) {
	in := destroyOnlyInstance(t)
	e := newTestEmitter()
	r := e.NewRecord()
	dumped := tcpEvent(ctnl.Update, 1)
	dumped.HasStart, dumped.Start = true, 1_000_000_000_000_000_000
	in.table.learn(dumped, now())
	d := tcpEvent(ctnl.Destroy, 1)
	in.event(r, e, d, nil)
	got := e.Records()
	if len(got) != 1 || got[0]["flow.start.sec"] != uint64(1_000_000_000) {
		t.Fatalf("records = %v", got)
	}
	if in.tracked() != 0 || in.rx.untimed != 0 {
		t.Errorf("table %d flows, untimed %d", in.tracked(), in.rx.untimed)
	}
	in.rx.h = receiver{in: in}
	in.rx.h.Overrun()
	select {
	case <-in.resync:
		t.Error("an overrun in DESTROY-only mode scheduled a resync")
	default:
	}
}

// TestDestroyOnlyGroups: DESTROY-only mode joins the DESTROY group alone,
// whatever else event_mask selects; without it, event_mask decides.
func TestDestroyOnlyGroups(t *testing.T) {
	in := newTest(t, cfgWith(func(c *Config) { c.EventMask = 7 }))
	if g := in.eventGroups(); !slices.Equal(g, []uint32{ctnl.GroupNew, ctnl.GroupUpdate, ctnl.GroupDestroy}) {
		t.Errorf("hash mode groups = %v", g)
	}
	in.destroyOnly.Store(true)
	if g := in.eventGroups(); !slices.Equal(g, []uint32{ctnl.GroupDestroy}) {
		t.Errorf("DESTROY-only groups = %v", g)
	}
	for _, c := range []*Config{
		cfgWith(func(c *Config) { c.HashEnable = 0 }),
		cfgWith(func(c *Config) { c.PollInterval = 10 }),
		cfgWith(func(c *Config) { c.EventMask = 1 }),
	} {
		if newTest(t, c).canSkipNew() {
			t.Errorf("%+v: DESTROY-only possible", *c)
		}
	}
	if !newTest(t, cfgWith(nil)).canSkipNew() {
		t.Error("defaults: DESTROY-only not possible")
	}
}

// TestDestroyOnlyZeroAllocs: the DESTROY-only event path allocates
// nothing, with and without a start time.
func TestDestroyOnlyZeroAllocs(t *testing.T) {
	caps := ctnlCaptures(t)
	var dgs [][]byte
	for name, dg := range caps {
		if strings.HasPrefix(name, "DESTROY-") {
			dgs = append(dgs, dg)
		}
	}
	checkZeroAllocs(t, "DESTROY-only", destroyOnlyInstance(t), dgs)
}
