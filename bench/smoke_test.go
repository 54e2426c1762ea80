package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

// TestMain lets the test binary stand for the harness's: the runs start
// their helpers (the json-queue consumer) as os.Executable() SUBCOMMAND.
func TestMain(m *testing.M) {
	if code, ok := subcommand(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestSmoke runs a tiny load (500 flows, hash_enable=0) end to end through
// ulogd-go, and through ulogd2 when it is installed, with the LOGEMU and the
// JSON stack; ulogd-go's JSON through the queue to the harness's consumer
// (json-queue) and with its metrics endpoint scraped (json-metrics); then
// ulogd-go's hash mode with kernel timestamps (the hash-ts
// scenario), which must join the DESTROY group only. Root only.
func TestSmoke(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTools(t, "ip", "nft", "conntrack")
	if testing.Short() {
		t.Skip("-short")
	}
	tmp := t.TempDir()
	self, err := os.Executable() // the test binary: TestMain runs the helpers
	if err != nil {
		t.Fatal(err)
	}
	o := &options{tmp: tmp, refBin: "/usr/sbin/ulogd", plugDir: "/usr/lib/x86_64-linux-gnu/ulogd",
		settle: 2 * time.Second, goBin: filepath.Join(tmp, "ulogd-go"), self: self}
	if out, err := exec.Command("go", "build", "-o", o.goBin, "../cmd/ulogd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Cleanup(cleanupAll)
	subjects := []string{subjGo}
	if _, err := os.Stat(o.refBin); err == nil {
		subjects = append(subjects, subjRef)
	}
	l := load{scenario: "smoke", offered: "5000/s", ruleset: rulesetFlows, end: "none",
		gen: genConfig{Flows: 500, Rate: 5000, MaxTime: 5 * time.Second, Delete: true, DeleteLag: 50}}
	for _, json := range []bool{false, true} {
		for _, s := range subjects {
			smokeOne(t, o, l, s, flowConf(o.plugDir, false, json), 1000, "NEW 500 DESTROY 500; groups 0x5")
		}
	}
	// The overhead variants: through the queue to the harness's consumer,
	// and with the metrics endpoint scraped.
	for _, c := range []struct {
		conf stackConf
		note string
	}{{queueConf(o.plugDir), "consumer CPU "}, {metricsConf(o.plugDir), " scrapes of "}} {
		l := l
		if c.conf.scrape != "" {
			l.ruleset = rulesetIPFIX
		}
		r := runOne(o, l, subjGo, c.conf)
		t.Logf("ulogd-go %q: flows %d expected %d logged %d (%s)", c.note, r.Flows, r.Expected, r.Logged, r.Extra)
		if r.Err != "" || r.Flows != 500 || r.Logged != 1000 || !strings.Contains(r.Extra, c.note) ||
			!strings.HasSuffix(r.Extra, "NEW 500 DESTROY 500; groups 0x5") {
			t.Errorf("%q: flows %d, logged %d of 1000 (%s) %s", c.note, r.Flows, r.Logged, r.Extra, r.Err)
		}
	}
	// hash-ts: hash mode with kernel timestamps joins DESTROY only.
	l.scenario, l.hash = "smoke-hash-ts", true
	l.sysctls = []string{"net.netfilter.nf_conntrack_timestamp=1"}
	smokeOne(t, o, l, subjGo, flowConf(o.plugDir, true, false), 500, "NEW 0 DESTROY 500; groups 0x4")
}

func smokeOne(t *testing.T, o *options, l load, s string, conf stackConf, expected uint64, extra string) {
	t.Helper()
	r := runOne(o, l, s, conf)
	if r.Err != "" {
		t.Fatalf("%s %s: %s", s, conf.out, r.Err)
	}
	t.Logf("%s %s: flows %d expected %d logged %d (NEW/DESTROY: %s) drops %d cpu %.0f ms rss %d kB",
		s, conf.out, r.Flows, r.Expected, r.Logged, r.Extra, r.Drops, r.CPUms, r.HWMKB)
	if r.Flows != 500 || r.Expected != expected {
		t.Errorf("%s %s: ground truth %d flows, %d expected; want 500, %d", s, conf.out, r.Flows, r.Expected, expected)
	}
	if s == subjGo && (r.Logged != r.Expected || r.Extra != extra) {
		t.Errorf("ulogd-go %s: logged %d of %d records (%s)", conf.out, r.Logged, r.Expected, r.Extra)
	}
	if r.HWMKB == 0 {
		t.Errorf("%s %s: no peak RSS read", s, conf.out)
	}
}
