package nfacct

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/netnstest"
	"github.com/ulogd-go/ulogd/internal/nl/nfacct"
	"github.com/ulogd-go/ulogd/internal/nl/nfacct/nfaccttest"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/stack"

	_ "github.com/ulogd-go/ulogd/plugins/output/gprint"
)

// TestConfigErrors: NFACCT has no default poll interval. Out-of-range
// values are refused by Keys, 0 (the default, for --info) by New; the
// stack builder runs both for --check.
func TestConfigErrors(t *testing.T) {
	d := Descriptor()
	for _, pi := range []int{0, -1, 1 << 31} {
		c := defaultConfig()
		c.PollInterval = pi
		if _, _, err := d.Keys(c); (err == nil) != (pi == 0) || (err != nil && !strings.Contains(err.Error(), fmt.Sprintf("pollinterval=%d", pi))) {
			t.Errorf("pollinterval=%d: Keys: %v", pi, err)
		}
		if _, err := d.New(&plugin.Env{Config: c, Out: make([]keys.Slot, numKeys)}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("pollinterval=%d", pi)) {
			t.Errorf("pollinterval=%d: New: %v", pi, err)
		}
	}
	c := defaultConfig()
	c.PollInterval = 1
	if _, out, err := d.Keys(c); err != nil || len(out) != numKeys {
		t.Errorf("pollinterval=1: %d keys, %v", len(out), err)
	}
}

// value is what the recorder keeps of a key: numbers, or text for strings
// and raw data.
func value(k keys.Spec, r *keys.Record, s keys.Slot) any {
	if k.Type.IsInteger() {
		return r.Uint(s)
	}
	return string(r.Bytes(s))
}

// testTime is the clock of the kernel tests.
var testTime = time.Unix(1_796_000_000, 123_456_789)

type running struct {
	in    *instance
	rec   *plugintest.Recorder
	ticks chan time.Time
	n     int // records emitted so far
}

// startIn builds an instance with cfg (its clock is testTime, its polls
// come from r.ticks), starts it in ns and runs it with a Recorder.
func startIn(t *testing.T, ns *netnstest.NS, cfg Config) *running {
	t.Helper()
	out := make([]keys.Slot, numKeys)
	for i := range out {
		out[i] = keys.Slot(i)
	}
	inst, err := Descriptor().New(&plugin.Env{ID: "acct1", Plugin: "NFACCT", Config: &cfg, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	r := &running{in: inst.(*instance), rec: plugintest.NewRecorder(OutputKeys(), value), ticks: make(chan time.Time)}
	r.in.now = func() time.Time { return testTime }
	r.in.ticks = func(d time.Duration) (<-chan time.Time, func()) {
		if d != time.Duration(cfg.PollInterval)*time.Second {
			t.Errorf("poll interval %v, want %d s", d, cfg.PollInterval)
		}
		return r.ticks, func() {}
	}
	ns.Do(t, func() { err = r.in.Start(context.Background()) })
	if err != nil {
		t.Fatal(err)
	}
	plugintest.NewSource(t, r.in).Run(context.Background(), r.rec)
	return r
}

// poll triggers one poll (a tick, or SIGUSR2) and returns its n records.
func (r *running) poll(t *testing.T, usr2 bool, n int) []plugintest.Values {
	t.Helper()
	flushes := r.rec.Flushes()
	if usr2 {
		r.in.Signal(syscall.SIGUSR2)
	} else {
		r.ticks <- time.Now()
	}
	r.rec.Wait(t, "the poll's flush", 10*time.Second, func() bool { return r.rec.Flushes() > flushes })
	got := r.rec.Records()[r.n:]
	if len(got) != n {
		t.Fatalf("poll emitted %d records, want %d: %v", len(got), n, got)
	}
	r.n += n
	for _, g := range got {
		if g["sum"] == "" {
			t.Errorf("record without the object message (sum): %v", g)
		}
		delete(g, "sum")
	}
	return got
}

func rec(name string, pkts, bytes uint64, stamped bool) plugintest.Values {
	v := plugintest.Values{"sum.name": name, "sum.pkts": pkts, "sum.bytes": bytes}
	if stamped {
		v["oob.time.sec"] = uint64(testTime.Unix())
		v["oob.time.usec"] = uint64(123_456)
	}
	return v
}

// addObjects creates the objects in ns, "icmp" counting locally sent
// IPv4 packets.
func addObjects(t *testing.T, ns *netnstest.NS, objs ...nfacct.Object) {
	t.Helper()
	f, err := os.Open(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nfacct.Dial(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, o := range objs {
		if err := c.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	if err := nfaccttest.Count(int(f.Fd()), "icmp"); err != nil {
		t.Fatal(err)
	}
}

// TestKernelZeroCounter: with zerocounter=1 every poll reports the packets
// counted since the previous one (64-bit values intact), on the timer and
// on SIGUSR2, with the time of the dump.
func TestKernelZeroCounter(t *testing.T) {
	ns := netnstest.NewNS(t)
	addObjects(t, ns, nfacct.Object{Name: "icmp"}, nfacct.Object{Name: "big", Pkts: 1<<40 + 1, Bytes: 1<<63 + 3})
	r := startIn(t, ns, Config{PollInterval: 7, ZeroCounter: 1, Timestamp: 1})
	ns.Run(t, "ping", "-c", "3", "-i", "0.01", "-q", "127.0.0.1")
	want := []plugintest.Values{rec("icmp", 6, 6*84, true), rec("big", 1<<40+1, 1<<63+3, true)}
	if diff := cmp.Diff(want, r.poll(t, false, 2)); diff != "" {
		t.Fatalf("first poll (-want +got):\n%s", diff)
	}
	want = []plugintest.Values{rec("icmp", 0, 0, true), rec("big", 0, 0, true)}
	if diff := cmp.Diff(want, r.poll(t, false, 2)); diff != "" {
		t.Fatalf("second poll (-want +got):\n%s", diff)
	}
	ns.Run(t, "ping", "-c", "2", "-i", "0.01", "-q", "127.0.0.1")
	want = []plugintest.Values{rec("icmp", 4, 4*84, true), rec("big", 0, 0, true)}
	if diff := cmp.Diff(want, r.poll(t, true, 2)); diff != "" {
		t.Fatalf("SIGUSR2 poll (-want +got):\n%s", diff)
	}
}

// TestKernelRunningTotals: with zerocounter=0 the counters keep growing
// and, without timestamp, records carry no time.
func TestKernelRunningTotals(t *testing.T) {
	ns := netnstest.NewNS(t)
	addObjects(t, ns, nfacct.Object{Name: "icmp"})
	r := startIn(t, ns, Config{PollInterval: 1, ZeroCounter: 0})
	ns.Run(t, "ping", "-c", "1", "-q", "127.0.0.1")
	if diff := cmp.Diff([]plugintest.Values{rec("icmp", 2, 168, false)}, r.poll(t, true, 1)); diff != "" {
		t.Fatalf("first poll (-want +got):\n%s", diff)
	}
	ns.Run(t, "ping", "-c", "1", "-q", "127.0.0.1")
	if diff := cmp.Diff([]plugintest.Values{rec("icmp", 4, 336, false)}, r.poll(t, false, 1)); diff != "" {
		t.Fatalf("second poll (-want +got):\n%s", diff)
	}
}

// TestKernelNoObjects: a poll of an empty object set emits nothing but
// still ends its batch.
func TestKernelNoObjects(t *testing.T) {
	ns := netnstest.NewNS(t)
	r := startIn(t, ns, Config{PollInterval: 1, ZeroCounter: 1})
	r.poll(t, true, 0)
}

// TestSharedInstanceTimestamps: two stacks sharing one NFACCT instance
// both get the dump's time (ulogd2 gives it to the first stack only, and
// zeros to the others: compat.md NFACCT-1).
func TestSharedInstanceTimestamps(t *testing.T) {
	ns := netnstest.NewNS(t)
	addObjects(t, ns, nfacct.Object{Name: "icmp", Pkts: 5, Bytes: 420})
	dir := t.TempDir()
	f1, f2 := filepath.Join(dir, "one.log"), filepath.Join(dir, "two.log")
	text := fmt.Sprintf(`[global]
stack=acct1:NFACCT,gp1:GPRINT
stack=acct1:NFACCT,gp2:GPRINT

[acct1]
pollinterval=3600
timestamp=1

[gp1]
file=%q
sync=1

[gp2]
file=%q
sync=1
`, f1, f2)
	cf, err := config.Parse("shared.conf", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	g, err := stack.Build(cf, plugin.Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ns.Do(t, func() { err = g.Start(ctx) })
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		g.Stop(context.Background())
	}()
	before := time.Now().Unix()
	g.Signal(syscall.SIGUSR2)
	for _, f := range []string{f1, f2} {
		var line string
		deadline := time.Now().Add(10 * time.Second)
		for line == "" {
			b, _ := os.ReadFile(f)
			line, _, _ = strings.Cut(string(b), "\n")
			if line == "" && time.Now().After(deadline) {
				t.Fatalf("%s: no record after SIGUSR2", f)
			}
			if line == "" {
				time.Sleep(20 * time.Millisecond)
			}
		}
		var sec int64 = -1
		for _, kv := range strings.Split(line, ",") {
			if v, ok := strings.CutPrefix(kv, "oob.time.sec="); ok {
				fmt.Sscan(v, &sec)
			}
		}
		if !strings.Contains(line, "sum.name=icmp,sum.pkts=5,sum.bytes=420") || sec < before || sec > time.Now().Unix() {
			t.Errorf("%s: %q: want icmp's counters and the time of the poll", f, line)
		}
	}
}
