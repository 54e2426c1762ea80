package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

// TestSmoke runs a tiny load (500 flows, hash_enable=0) end to end through
// ulogd-go, and through ulogd2 when it is installed, with the LOGEMU and the
// JSON stack. Root only.
func TestSmoke(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTools(t, "ip", "nft", "conntrack")
	if testing.Short() {
		t.Skip("-short")
	}
	tmp := t.TempDir()
	o := &options{tmp: tmp, refBin: "/usr/sbin/ulogd", plugDir: "/usr/lib/x86_64-linux-gnu/ulogd",
		settle: 2 * time.Second, goBin: filepath.Join(tmp, "ulogd-go")}
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
			smokeOne(t, o, l, s, flowConf(o.plugDir, false, json))
		}
	}
}

func smokeOne(t *testing.T, o *options, l load, s string, conf stackConf) {
	t.Helper()
	r := runOne(o, l, s, conf)
	if r.Err != "" {
		t.Fatalf("%s %s: %s", s, conf.out, r.Err)
	}
	t.Logf("%s %s: flows %d expected %d logged %d (NEW/DESTROY: %s) drops %d cpu %.0f ms rss %d kB",
		s, conf.out, r.Flows, r.Expected, r.Logged, r.Extra, r.Drops, r.CPUms, r.HWMKB)
	if r.Flows != 500 || r.Expected != 1000 {
		t.Errorf("%s %s: ground truth %d flows, %d expected; want 500, 1000", s, conf.out, r.Flows, r.Expected)
	}
	if s == subjGo && (r.Logged != r.Expected || r.Extra != "NEW 500 DESTROY 500") {
		t.Errorf("ulogd-go %s: logged %d of %d records (%s)", conf.out, r.Logged, r.Expected, r.Extra)
	}
	if r.HWMKB == 0 {
		t.Errorf("%s %s: no peak RSS read", s, conf.out)
	}
}
