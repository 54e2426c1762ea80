package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestScenarioConfigsCheck runs `ulogd --check` on the config of every
// flow scenario and of the overhead variants, as the harness writes them,
// and checks that each variant differs from json by its one change.
func TestScenarioConfigsCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds ./cmd/ulogd")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "ulogd")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/ulogd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const plugDir = "/usr/lib/x86_64-linux-gnu/ulogd"
	confs := map[string]stackConf{
		"json-queue":   queueConf(plugDir),
		"json-metrics": metricsConf(plugDir),
	}
	for sc, v := range flowScenarios {
		confs[sc] = flowConf(plugDir, v.hash, v.json)
	}
	for sc := range busScenarios {
		confs[sc] = busConf(sc)
	}
	for sc, json := range pktScenarios {
		confs[sc] = pktConf(plugDir, json)
	}
	for sc, c := range confs {
		dir := filepath.Join(tmp, sc)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		conf := filepath.Join(dir, "ulogd.conf")
		if err := os.WriteFile(conf, []byte(strings.ReplaceAll(c.text, "@DIR@", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "--check", "-c", conf).CombinedOutput(); err != nil {
			t.Errorf("%s: ulogd --check: %v\n%s\n%s", sc, err, out, c.text)
		}
	}

	// Each variant is json's config with one change: undoing it gives
	// json's text back.
	json := confs["json"].text
	for sc, change := range map[string][2]string{
		"json-queue":   {"mode=\"unix\"\nfile=\"@DIR@/q.sock\"\nqueue_bytes=268435456\n", "file=\"@DIR@/out.json\"\n"},
		"json-metrics": {"metrics_listen=\"127.0.0.1:19756\"\n", ""},
	} {
		c := confs[sc].text
		if !strings.Contains(c, change[0]) || strings.Replace(c, change[0], change[1], 1) != json {
			t.Errorf("%s is not json's config with %q:\n%s", sc, change[0], c)
		}
	}
	if q := confs["json-queue"]; q.unixPeer != queueSock || q.scrape != "" {
		t.Errorf("json-queue: unixPeer %q scrape %q", q.unixPeer, q.scrape)
	}
	if m := confs["json-metrics"]; m.scrape != metricsAddr || m.unixPeer != "" {
		t.Errorf("json-metrics: unixPeer %q scrape %q", m.unixPeer, m.scrape)
	}
}

// TestOverheadGroup checks which scenarios run together in rounds.
func TestOverheadGroup(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"nohash,json,pkt", ""},
		{"json-metrics,nohash,json", "json,json-metrics"},
		{"json-queue", "json-queue"},
		{"json,json-queue,json-metrics", "json,json-queue,json-metrics"},
	} {
		if got := strings.Join(overheadGroup(splitList(c.in)), ","); got != c.want {
			t.Errorf("overheadGroup(%s) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestPrintOverhead checks the overhead table: the variants' CPU per 1000
// events over json's, round by round, and the most any run lost.
func TestPrintOverhead(t *testing.T) {
	run := func(sc string, cpu, sys float64, logged uint64) result {
		return result{Scenario: sc, Subject: subjGo, Offered: "20000/s", Events: 100000, Expected: 100000, Logged: logged, CPUms: cpu, SysMs: sys}
	}
	file := median([]result{run("json", 400, 200, 100000), run("json", 500, 250, 100000), run("json", 420, 200, 100000)})
	queue := median([]result{run("json-queue", 440, 200, 100000), run("json-queue", 600, 250, 99990), run("json-queue", 420, 210, 100000)})
	met := median([]result{run("json-metrics", 404, 200, 100000), run("json-metrics", 505, 250, 100000), run("json-metrics", 420, 200, 100000)})
	var b strings.Builder
	printOverhead(&b, []result{file, queue, met})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	got := strings.Join(strings.Fields(lines[len(lines)-1]), " ")
	// json median 4.20; queue rounds 1.10, 1.20, 1.00 (median 1.10),
	// user 1.20, 1.40, 0.95, sys 1.00, 1.00, 1.05; metrics 1.01, 1.01,
	// 1.00; the queue lost 10 in its second run.
	// Per logged record the queue's second round is 600/99990 over
	// 500/100000: 1.20 still.
	want := "ulogd-go 20000/s 4.20 4.40 1.10× (1.10, 1.20, 1.00) 1.20× (1.20, 1.40, 0.95) 1.00× (1.00, 1.00, 1.05) 1.10× (1.10, 1.20, 1.00) " +
		"4.20 1.01× (1.01, 1.01, 1.00) 1.01× (1.01, 1.01, 1.00) 0, 10, 0"
	if got != want {
		t.Errorf("overhead row\n got %q\nwant %q\n%s", got, want, b.String())
	}
}
