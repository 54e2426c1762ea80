package main

// The overhead scenarios: what the sink queue and the metrics endpoint add
// to the JSON file stack. json-queue sends the json scenario's records
// through the queue (mode=unix) to a consumer the harness runs
// ("ulogd-bench sockpeer", which reads and counts lines); json-metrics is
// the json scenario with metrics_listen= set, scraped once a second. They
// run with json in the same rounds, on the same load, and printOverhead
// divides their CPU per 1000 events by json's, round by round.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// overheadScenarios are the variants of json measured against it.
var overheadScenarios = []string{"json-queue", "json-metrics"}

// Where the variants' peers are: the consumer's socket in the run
// directory, the metrics endpoint on the server namespace's loopback (the
// port docs/compat.md D19 suggests).
const (
	queueSock   = "q.sock"
	metricsAddr = "127.0.0.1:19756"
	// queueBytes is the json-queue sink's queue bound: 256 MiB, so that a
	// consumer that falls behind at max shows as queue depth, not drops.
	queueBytes = 256 << 20
)

// queueConf is the json scenario's config with the sink in mode=unix to
// the consumer's socket: the records go through the queue and its writer
// goroutine. sync= is a file-mode option and stays as it is.
func queueConf(plugDir string) stackConf {
	c := flowConf(plugDir, false, true)
	c.text = strings.Replace(c.text, "file=\"@DIR@/out.json\"\n",
		fmt.Sprintf("mode=\"unix\"\nfile=\"@DIR@/%s\"\nqueue_bytes=%d\n", queueSock, queueBytes), 1)
	c.unixPeer = queueSock
	return c
}

// metricsConf is the json scenario's config with metrics_listen= set; the
// harness scrapes /metrics once a second while the load runs.
func metricsConf(plugDir string) stackConf {
	c := flowConf(plugDir, false, true)
	c.text = strings.Replace(c.text, "loglevel=3\n", fmt.Sprintf("loglevel=3\nmetrics_listen=%q\n", metricsAddr), 1)
	c.scrape = metricsAddr
	return c
}

// overheadGroup returns json and the overhead scenarios among scs, in that
// order, when an overhead scenario is asked for: they run together.
func overheadGroup(scs []string) []string {
	var g []string
	for _, sc := range append([]string{"json"}, overheadScenarios...) {
		if contains(scs, sc) {
			g = append(g, sc)
		}
	}
	if len(g) == 1 && g[0] == "json" {
		return nil
	}
	return g
}

// overheadCells are the runs of one round of the group at rate: json for
// every subject, the variants for the ulogd-go binaries only (ulogd2 has
// neither the queue nor the endpoint).
func overheadCells(o *options, group []string, rate int) []cell {
	var cells []cell
	for _, sc := range group {
		l, _ := flowLoad(o, sc, rate)
		conf := flowConf(o.plugDir, false, true)
		subjects := o.subjects
		switch sc {
		case "json-queue":
			conf, subjects = queueConf(o.plugDir), goSubjects(o.subjects)
		case "json-metrics":
			// The scrape's TCP connection on loopback must not
			// become a flow: loopback is not tracked (as in ipfix).
			conf, subjects = metricsConf(o.plugDir), goSubjects(o.subjects)
			l.ruleset = rulesetIPFIX
		}
		for _, s := range subjects {
			cells = append(cells, cell{l: l, subject: s, conf: conf})
		}
	}
	return cells
}

func goSubjects(subjects []string) []string {
	var out []string
	for _, s := range subjects {
		if s == subjGo || s == subjBase {
			out = append(out, s)
		}
	}
	return out
}

// runOverheadScenario runs the group at rate in rounds; each round starts
// one run later in the list than the one before, so that no variant is
// always measured first or last.
func runOverheadScenario(o *options, group []string, rate int) []result {
	return runCells(o, overheadCells(o, group, rate), true)
}

// printOverhead divides the CPU per 1000 kernel events of json-queue and
// json-metrics by json's, per subject and rate, round by round; and per
// 1000 records logged, the fair figure when a run lost events (a lost
// event costs the daemon nothing).
func printOverhead(w io.Writer, rs []result) {
	order, by := groupResults(rs, func(r result) ([2]string, string, bool) {
		return [2]string{r.Subject, r.Offered}, r.Scenario, r.Scenario == "json" || slices.Contains(overheadScenarios, r.Scenario)
	})
	fmt.Fprintln(w)
	fmt.Fprintln(w, "overhead against the JSON file sink (json), CPU per 1000 kernel events of the daemon:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "subject\toffered\tjson ms/1k\tjson-queue ms/1k\tqueue/file\tuser q/f\tsys q/f\tq/f per logged\tjson-metrics ms/1k\tmetrics/file\tm/f per logged\tlost (file, queue, metrics)")
	for _, k := range order {
		m := by[k]
		f, ok := m["json"]
		if !ok || f.Err != "" {
			continue
		}
		q, hasQ := m["json-queue"]
		mt, hasM := m["json-metrics"]
		ms := func(ok bool, r result) string {
			if !ok || r.msPerK() == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", r.msPerK())
		}
		lost := func(ok bool, r result) string {
			if !ok {
				return "-"
			}
			return fmt.Sprint(worstLost(r))
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s, %s, %s\n", k[0], k[1], f.msPerK(),
			ms(hasQ, q), ratioCell(hasQ, q, f, result.msPerK),
			ratioCell(hasQ, q, f, result.userPerK), ratioCell(hasQ, q, f, result.sysPerK),
			ratioCell(hasQ, q, f, result.msPerLogged),
			ms(hasM, mt), ratioCell(hasM, mt, f, result.msPerK), ratioCell(hasM, mt, f, result.msPerLogged),
			lost(true, f), lost(hasQ, q), lost(hasM, mt))
	}
	tw.Flush()
}

// worstLost is the most records any run of r lost (r itself without
// -repeat).
func worstLost(r result) int64 {
	n := r.lost()
	for _, x := range r.Rounds {
		n = max(n, x.lost())
	}
	return n
}

func (r result) userPerK() float64 {
	if r.Events == 0 {
		return 0
	}
	return (r.CPUms - r.SysMs) * 1000 / float64(r.Events)
}

func (r result) sysPerK() float64 {
	if r.Events == 0 {
		return 0
	}
	return r.SysMs * 1000 / float64(r.Events)
}

// sockPeer is the json-queue consumer: a helper process listening on a
// Unix socket that counts the lines it reads.
type sockPeer struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	c    lineCounter
}

// startSockPeer starts the consumer on path and waits until it listens.
func startSockPeer(self, path, dir string) (*sockPeer, error) {
	p := &sockPeer{cmd: exec.Command(self, "sockpeer", "-listen", path), done: make(chan struct{})}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	logf, err := os.Create(filepath.Join(dir, "peer.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	p.cmd.Stderr = logf
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "peer ready" {
				close(ready)
				continue
			}
			var c lineCounter
			if _, err := fmt.Sscanf(sc.Text(), "count %d %d %d", &c.Lines, &c.New, &c.Destroy); err == nil {
				p.mu.Lock()
				p.c = c
				p.mu.Unlock()
			}
		}
	}()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
	case <-time.After(15 * time.Second):
	}
	p.stop()
	return nil, fmt.Errorf("consumer did not start: %s", tail(filepath.Join(dir, "peer.log")))
}

// counts returns what the consumer has read so far.
func (p *sockPeer) counts() lineCounter {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c
}

func (p *sockPeer) stop() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	p.cmd.Wait()
}

// sockPeerMain listens on a Unix stream socket at path, reads every
// connection and prints "count LINES NEW DESTROY" every 50 ms while the
// count changes, until SIGTERM.
func sockPeerMain(path string) int {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer ln.Close()
	var (
		mu sync.Mutex
		c  lineCounter
	)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 1<<20)
				for {
					n, err := conn.Read(buf)
					mu.Lock()
					c.feed(buf[:n])
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("peer ready")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last uint64
	for {
		select {
		case <-sig:
			return 0
		case <-tick.C:
			mu.Lock()
			cur := c
			mu.Unlock()
			if cur.Lines != last {
				fmt.Printf("count %d %d %d\n", cur.Lines, cur.New, cur.Destroy)
				last = cur.Lines
			}
		}
	}
}

// scraper fetches http://addr/metrics in namespace ns once a second, as
// Prometheus would, until stop.
type scraper struct {
	stopc chan struct{}
	done  chan struct{}
	ok    int
	fails int
	bytes int
	last  string // the last body
	err   error
}

func startScraper(ns, addr string) *scraper {
	s := &scraper{stopc: make(chan struct{}), done: make(chan struct{})}
	cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		// Dial inside the server namespace (its loopback); the
		// connection is kept alive between scrapes, as Prometheus does.
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			var c net.Conn
			err := inNamespace(ns, func() (err error) {
				c, err = (&net.Dialer{}).DialContext(ctx, network, a)
				return err
			})
			return c, err
		},
	}}
	go func() {
		defer close(s.done)
		defer cl.CloseIdleConnections()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			s.scrape(cl, "http://"+addr+"/metrics")
			select {
			case <-s.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *scraper) scrape(cl *http.Client, url string) {
	resp, err := cl.Get(url)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		if err == nil {
			s.ok++
			s.bytes += len(b)
			s.last = string(b)
			return
		}
	}
	s.fails++
	s.err = err
}

// stop ends the scrapes and describes them for the notes: how many, their
// size, and the records the sink json1 had written at the last one.
func (s *scraper) stop() string {
	close(s.stopc)
	<-s.done
	if s.ok == 0 {
		return fmt.Sprintf("no scrape succeeded (%d failed: %v)", s.fails, s.err)
	}
	note := fmt.Sprintf("%d scrapes of %d kB, the last: written %s", s.ok, s.bytes/s.ok/1024, scrapedWritten(s.last))
	if s.fails > 0 {
		note += fmt.Sprintf(", %d failed: %v", s.fails, s.err)
	}
	return note
}

var writtenRE = regexp.MustCompile(`(?m)^ulogd_records_written_total\{[^}]*plugin_instance="json1"[^}]*\} (\S+)$`)

// scrapedWritten is json1's records_written_total in a scrape, or "?".
func scrapedWritten(body string) string {
	m := writtenRE.FindStringSubmatch(body)
	if m == nil {
		return "?"
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return "?"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
