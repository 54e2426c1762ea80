package daemon

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

// metricsURL returns the base URL of the daemon's metrics endpoint, from
// the line its log has at start.
func metricsURL(t *testing.T, d *daemonRun) string {
	t.Helper()
	d.stderr.waitFor(t, "metrics endpoint listening")
	m := regexp.MustCompile(`metrics endpoint listening address=(\S+)`).FindStringSubmatch(d.stderr.String())
	if m == nil {
		t.Fatalf("no address in the log:\n%s", d.stderr.String())
	}
	return "http://" + m[1]
}

// httpGet returns the status and body of GET url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitHTTP polls GET url until cond holds, for at most 10 s (the JSON
// sink reconnects after a 1 s back-off).
func waitHTTP(t *testing.T, url string, cond func(code int, body string) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := httpGet(t, url)
		if cond(code, body) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d\n%s", url, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMetricsEndpointDaemon runs a daemon with metrics_listen= and a JSON
// sink sending to a Unix socket the test serves: /metrics has the stack's
// counters and the JSON queue's (promtool accepts the text), /ready fails
// while the peer is gone and recovers when it is back, and the reconnect
// is counted.
func TestMetricsEndpointDaemon(t *testing.T) {
	dir := testutil.ShortTempDir(t, 0o700)
	sock, peer := filepath.Join(dir, "u.sock"), filepath.Join(dir, "peer.sock")
	ln, err := net.Listen("unix", peer)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 4)
	serve := func(ln net.Listener) {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
			go io.Copy(io.Discard, c)
		}
	}
	go serve(ln)
	d := startDaemon(t, fmt.Sprintf(`[global]
metrics_listen="127.0.0.1:0"
stack=nuauth1:UNIXSOCK,base1:BASE,ip2str1:IP2STR,json1:JSON
[nuauth1]
socket_path=%q
[json1]
mode=unix
file=%q
`, sock, peer))
	base := metricsURL(t, d)
	conn := <-accepted

	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		if _, err := c.Write(nufwFrame(icmpEcho)); err != nil {
			t.Fatal(err)
		}
	}
	text := waitHTTP(t, base+"/metrics", func(code int, body string) bool {
		return code == 200 && strings.Contains(body, `ulogd_records_written_total{plugin="JSON",plugin_instance="json1"} 3`)
	})
	for _, want := range []string{
		`ulogd_events_received_total{plugin="UNIXSOCK",plugin_instance="nuauth1"} 3`,
		`ulogd_events_lost_total{plugin="UNIXSOCK",plugin_instance="nuauth1"} 0`,
		`ulogd_queue_depth_records{plugin="JSON",plugin_instance="json1"} 0`,
		`ulogd_reconnects_total{plugin="JSON",plugin_instance="json1"} 0`,
		`ulogd_instance_up{plugin="JSON",plugin_instance="json1"} 1`,
		"\nulogd_ready 1\n",
		"\ngo_goroutines ",
		"\nprocess_cpu_seconds_total ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, text)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not installed: the text format is not checked")
	}
	if code, body := httpGet(t, base+"/ready"); code != 200 || body != "ok\n" {
		t.Errorf("GET /ready: %d %q", code, body)
	}

	// The peer goes away: the next record finds it gone.
	ln.Close()
	conn.Close()
	if _, err := c.Write(nufwFrame(icmpEcho)); err != nil {
		t.Fatal(err)
	}
	body := waitHTTP(t, base+"/ready", func(code int, body string) bool { return code == 503 })
	if !strings.HasPrefix(body, "json1 (JSON) is down: not connected to ") {
		t.Errorf("GET /ready while the peer is gone: %q", body)
	}
	if code, _ := httpGet(t, base+"/healthz"); code != 503 {
		t.Errorf("GET /healthz while the peer is gone: %d", code)
	}

	ln, err = net.Listen("unix", peer)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serve(ln)
	waitHTTP(t, base+"/ready", func(code int, body string) bool { return code == 200 })
	text = waitHTTP(t, base+"/metrics", func(code int, body string) bool {
		return strings.Contains(body, `ulogd_reconnects_total{plugin="JSON",plugin_instance="json1"} 1`)
	})
	if !strings.Contains(text, `ulogd_events_received_total{plugin="JSON",plugin_instance="json1"} 4`) {
		t.Errorf("/metrics after the reconnect:\n%s", text)
	}
}
