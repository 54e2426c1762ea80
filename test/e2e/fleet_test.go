package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

// metricsAddr is where the daemons of these tests serve their metrics
// (in namespace A, so no other test's daemon is in the way).
const metricsAddr = "127.0.0.1:19756"

// nsClient is an HTTP client whose connections are made in namespace ns
// (whose loopback the daemon and Prometheus listen on).
func nsClient(ns string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var c net.Conn
				err := InNetns(ns, func() error {
					var err error
					c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
					return err
				})
				return c, err
			},
		},
	}
}

// get returns the body of GET u, failing the test on a transport error.
func get(t testing.TB, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startPrometheus runs the Debian package's Prometheus in namespace ns,
// scraping metricsAddr every second, with its storage in a temporary
// directory; it returns the base URL of its API.
func startPrometheus(t *testing.T, p *NSPair, c *http.Client) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus)")
	}
	dir := t.TempDir()
	conf := WriteConfig(t, filepath.Join(dir, "prometheus.yml"), fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: ulogd
    static_configs:
      - targets: [%q]
`, metricsAddr))
	const listen = "127.0.0.1:9090"
	ctx, cancel := context.WithCancel(context.Background())
	cmd := p.Command(ctx, p.A, bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	var out testutil.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	base := "http://" + listen
	WaitFor(t, 30*time.Second, "prometheus ready", func() bool {
		code, _ := get(t, c, base+"/-/ready")
		return code == 200
	})
	return base
}

// promValue queries Prometheus for an instant vector of one series and
// returns its value; ok is false while it has none.
func promValue(t testing.TB, c *http.Client, base, query string) (v float64, ok bool) {
	t.Helper()
	code, body := get(t, c, base+"/api/v1/query?query="+url.QueryEscape(query))
	if code != 200 {
		return 0, false
	}
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("query %s: %v\n%s", query, err, body)
	}
	if r.Status != "success" || len(r.Data.Result) != 1 {
		return 0, false
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// nfctLogemu is a daemon config: ct1:NFCT (NEW events only) →
// LOGEMU, with the metrics endpoint, plus extra stack lines and sections.
func nfctLogemu(logfile, out, extraStacks, extraSections string) string {
	return fmt.Sprintf(`[global]
logfile=%q
loglevel=3
metrics_listen=%q
stack=ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU
%s
[ct1]
event_mask=1
hash_enable=0

[emu1]
file=%q
%s`, logfile, metricsAddr, extraStacks, out, extraSections)
}

// TestPrometheusScrapesDaemon: a real Prometheus scrapes the daemon every
// second while conntrack flows are created in a private namespace; once
// the traffic stops, Prometheus' own API reports as many events received
// by NFCT, and records written by LOGEMU, as the file has lines.
func TestPrometheusScrapesDaemon(t *testing.T) {
	p := NewNSPair(t, NSOptions{Conntrack: true})
	// The scrapes and queries on loopback are not flows to log.
	p.Nft(t, p.A, `table inet metricsnotrack {
	chain out { type filter hook output priority raw; oif lo notrack; }
	chain pre { type filter hook prerouting priority raw; iif lo notrack; }
}`)
	c := nsClient(p.A)
	dir := t.TempDir()
	logfile, out := filepath.Join(dir, "ulogd.log"), filepath.Join(dir, "ct.log")
	conf := WriteConfig(t, filepath.Join(dir, "ulogd.conf"), nfctLogemu(logfile, out, "", ""))
	StartDaemon(t, DaemonSpec{Name: "ours", Binary: OurBinary(t), Netns: p.A, Config: conf, Logfile: logfile})
	base := startPrometheus(t, p, c)

	code, text := get(t, c, "http://"+metricsAddr+"/metrics")
	if code != 200 || !strings.Contains(text, `ulogd_events_received_total{plugin="NFCT",plugin_instance="ct1"}`) {
		t.Fatalf("GET /metrics: %d\n%s", code, text)
	}
	if code, body := get(t, c, "http://"+metricsAddr+"/ready"); code != 200 {
		t.Errorf("GET /ready: %d %s", code, body)
	}
	// Traffic over several scrapes, from the first one on.
	WaitFor(t, 30*time.Second, "the first scrape", func() bool {
		v, ok := promValue(t, c, base, `up{job="ulogd"}`)
		return ok && v == 1
	})
	const flows = 200
	for i := range flows {
		if _, err := p.UDPFromGo(false, 20000+i, 7000, []byte("x")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	lines := p.Barrier(t, "NEW", out)[0]
	if len(lines) != flows {
		t.Fatalf("%d lines for %d flows", len(lines), flows)
	}
	total := len(lines) + 1 // and the barrier's
	for _, q := range []string{
		`ulogd_events_received_total{plugin_instance="ct1",plugin="NFCT"}`,
		`ulogd_records_written_total{plugin_instance="emu1",plugin="LOGEMU"}`,
	} {
		var got float64
		WaitFor(t, 30*time.Second, q+" = "+strconv.Itoa(total)+" in Prometheus", func() bool {
			got, _ = promValue(t, c, base, q)
			return got == float64(total)
		})
	}
	for q, want := range map[string]func(float64) bool{
		`ulogd_events_lost_total{plugin_instance="ct1"}`:   func(v float64) bool { return v == 0 },
		`ulogd_decode_errors_total{plugin_instance="ct1"}`: func(v float64) bool { return v == 0 },
		// The daemon asks for 64 MiB; the kernel reports twice that.
		`ulogd_socket_receive_buffer_bytes{plugin_instance="ct1"}`: func(v float64) bool { return v >= 64<<20 },
		`ulogd_ready`: func(v float64) bool { return v == 1 },
	} {
		if v, ok := promValue(t, c, base, q); !ok || !want(v) {
			t.Errorf("%s: %v (%v)", q, v, ok)
		}
	}
	if v, ok := promValue(t, c, base, `up{job="ulogd"}`); !ok || v != 1 {
		t.Errorf("up: %v %v", v, ok)
	}
	// The traffic was seen as it flowed: the count grew over several
	// scrapes.
	if v, ok := promValue(t, c, base, `changes(ulogd_events_received_total{plugin_instance="ct1"}[1m])`); !ok || v < 2 {
		_, raw := get(t, c, base+"/api/v1/query?query="+url.QueryEscape(`ulogd_events_received_total{plugin_instance="ct1"}[1m]`))
		t.Errorf("the count changed %v times (%v) over the scrapes:\n%s", v, ok, raw)
	}
}

// TestReloadNFCTUnderTraffic: conntrack flows are created at a steady
// rate while the daemon reloads 20 times (SIGWINCH, as systemctl reload
// sends it), alternately adding and removing a second stack on the same
// NFCT source and a stack on a second NFCT source: the persisting stack
// writes one line per flow, none lost across the reloads.
func TestReloadNFCTUnderTraffic(t *testing.T) {
	p := NewNSPair(t, NSOptions{Conntrack: true})
	dir := t.TempDir()
	logfile, out := filepath.Join(dir, "ulogd.log"), filepath.Join(dir, "ct.log")
	small := nfctLogemu(logfile, out, "", "")
	big := nfctLogemu(logfile, out,
		"stack=ct1:NFCT,ip2str2:IP2STR,print2:PRINTFLOW,emu2:LOGEMU\nstack=ct2:NFCT,ip2str3:IP2STR,print3:PRINTFLOW,emu3:LOGEMU\n",
		fmt.Sprintf("[emu2]\nfile=%q\n[ct2]\nevent_mask=4\nhash_enable=0\n[emu3]\nfile=%q\n", filepath.Join(dir, "extra.log"), filepath.Join(dir, "destroy.log")))
	conf := WriteConfig(t, filepath.Join(dir, "ulogd.conf"), small)
	d := StartDaemon(t, DaemonSpec{Name: "ours", Binary: OurBinary(t), Netns: p.A, Config: conf, Logfile: logfile})

	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		defer func() { done <- n }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			if _, err := p.UDPFromGo(false, 20000+n, 7000, []byte("x")); err != nil {
				t.Errorf("flow %d: %v", n, err)
				return
			}
			n++
		}
	}()
	reloaded := func() int {
		b, _ := os.ReadFile(logfile)
		return strings.Count(string(b), "configuration reloaded")
	}
	for i := 1; i <= 20; i++ {
		text := big
		if i%2 == 0 {
			text = small
		}
		WriteConfig(t, conf, text)
		d.Signal(t, syscall.SIGWINCH)
		WaitFor(t, 10*time.Second, fmt.Sprintf("reload %d", i), func() bool { return reloaded() >= i })
		time.Sleep(50 * time.Millisecond) // flows between reloads too
	}
	close(stop)
	flows := <-done
	lines := p.Barrier(t, "NEW", out)[0]
	if len(lines) != flows {
		t.Errorf("%d flows, %d lines in %s", flows, len(lines), out)
	}
	if b, _ := os.ReadFile(logfile); !strings.Contains(string(b), "kept_sources=ct1 kept_stacks=[1]") {
		t.Errorf("the log does not say ct1 and stack 1 were kept:\n%s", b)
	}
	t.Logf("%d flows through 20 reloads", flows)
}
