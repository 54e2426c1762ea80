package main

import (
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one subject on one load.
type result struct {
	Scenario string
	Subject  string
	Offered  string  // offered rate ("20000/s", "max")
	Achieved float64 // generator rate (flows or packets per second)
	Flows    uint64  // ground truth: nft counter (new conntrack entries, or logged packets)
	Events   uint64  // kernel events the subject had to receive (2×flows for flows; packets)
	Expected uint64  // records that should be logged
	Logged   uint64
	Drops    uint64 // kernel socket drop counter (/proc/PID/net/netlink)
	SelfLost int64  // the daemon's own lost counter, -1 if unknown
	CPUms    float64
	SysMs    float64 // the system part of CPUms
	HWMKB    uint64
	Extra    string // burst time, GC wait, errors
	Err      string
	// Rounds holds every run of a -repeat measurement in round order
	// (median fills it), for ratios taken round by round.
	Rounds []result
}

func (r result) lost() int64 { return int64(r.Expected) - int64(r.Logged) }

func (r result) lostPct() float64 {
	if r.Expected == 0 {
		return 0
	}
	return 100 * float64(r.lost()) / float64(r.Expected)
}

// msPerLogged is the CPU per 1000 records the subject logged. Where the
// reference loses events it does not pay for them, so this is the fair
// comparison at rates it cannot keep up with.
func (r result) msPerLogged() float64 {
	if r.Logged == 0 {
		return 0
	}
	return r.CPUms * 1000 / float64(r.Logged)
}

// perFlow is ms of CPU per 1000 flows (or packets).
func (r result) perFlow(ms float64) float64 {
	if r.Flows == 0 {
		return 0
	}
	return ms * 1000 / float64(r.Flows)
}

func (r result) msPerK() float64 {
	if r.Events == 0 {
		return 0
	}
	return r.CPUms * 1000 / float64(r.Events)
}

func numCPU() int { return runtime.NumCPU() }

// The stacks, as Debian's ulogd.conf names them.
const (
	stackFlow     = "ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU"
	stackFlowJSON = "ct1:NFCT,ip2str1:IP2STR,json1:JSON"
	stackPkt      = "log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU"
	stackPktJSON  = "log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,mac2str1:HWHDR,json1:JSON"
)

// pluginSO is the ulogd2 shared object of each plugin the stacks use.
var pluginSO = map[string]string{
	"NFCT": "inpflow_NFCT", "NFLOG": "inppkt_NFLOG", "BASE": "raw2packet_BASE",
	"IFINDEX": "filter_IFINDEX", "IP2STR": "filter_IP2STR", "HWHDR": "filter_HWHDR",
	"PRINTFLOW": "filter_PRINTFLOW", "PRINTPKT": "filter_PRINTPKT",
	"LOGEMU": "output_LOGEMU", "JSON": "output_JSON",
	"PGSQL": "output_PGSQL", "SQLITE3": "output_SQLITE3",
}

// stackConf is a ulogd.conf that ulogd2 runs (it needs the plugin= lines)
// and ulogd-go accepts unchanged, and the output file it writes.
type stackConf struct {
	text string // with @DIR@ for the run directory
	out  string // name of the sink's file in the run directory
	// Database sinks: setup readies the database before each run (an
	// empty table), count returns the rows written (sql.go).
	setup func(dir string) error
	count func(dir string) (uint64, error)
	dbCPU func() uint64 // the database server's CPU ticks so far
	// serverPid, when set, is the database server's process: its CPU
	// during the run goes into the notes.
	serverPid func() int
	// unixPeer, when set, is the name of the Unix socket in the run
	// directory the sink sends to: the harness runs a consumer there
	// that counts the lines (overhead.go).
	unixPeer string
	// scrape, when set, is the metrics endpoint (address:port in the
	// server namespace) the harness scrapes once a second during the load
	// and the drain.
	scrape string
}

// newStackConf builds the config of one stack: the source (first instance)
// gets srcOpts, the sink (last instance) writes out with sync=1.
func newStackConf(plugDir, stack, srcOpts, out string) stackConf {
	var b strings.Builder
	b.WriteString("[global]\nlogfile=\"@DIR@/daemon.log\"\nloglevel=3\n")
	insts := strings.Split(stack, ",")
	for _, in := range insts {
		_, name, _ := strings.Cut(in, ":")
		fmt.Fprintf(&b, "plugin=\"%s/ulogd_%s.so\"\n", plugDir, pluginSO[name])
	}
	src, _, _ := strings.Cut(insts[0], ":")
	sink, _, _ := strings.Cut(insts[len(insts)-1], ":")
	fmt.Fprintf(&b, "stack=%s\n\n[%s]\n%s\n[%s]\nfile=\"@DIR@/%s\"\nsync=1\n", stack, src, srcOpts, sink, out)
	return stackConf{text: b.String(), out: out}
}

// flowConf is the conntrack stack: the canonical one (PRINTFLOW, LOGEMU) or
// the JSON one; hash=false sets event_mask=5 hash_enable=0, hash=true leaves
// every NFCT option at its default.
func flowConf(plugDir string, hash, json bool) stackConf {
	ct := "event_mask=5\nhash_enable=0\n"
	if hash {
		ct = ""
	}
	if json {
		return newStackConf(plugDir, stackFlowJSON, ct, "out.json")
	}
	return newStackConf(plugDir, stackFlow, ct, "out.log")
}

// pktConf is Debian's packet stack on group 0: kernel LOG emulation
// (PRINTPKT, LOGEMU) or JSON.
func pktConf(plugDir string, json bool) stackConf {
	group := fmt.Sprintf("group=%d\n", nflogGroup)
	if json {
		return newStackConf(plugDir, stackPktJSON, group, "out.json")
	}
	return newStackConf(plugDir, stackPkt, group, "out.log")
}

// flowScenarios are the conntrack scenarios run at each of -rates: NFCT's
// hash mode and the sink.
// ts turns on net.netfilter.nf_conntrack_timestamp in the server namespace
// (ulogd-go's hash mode then reads DESTROY events only).
var flowScenarios = map[string]struct{ hash, json, ts bool }{
	"nohash":       {false, false, false},
	"hash":         {true, false, false},
	"hash-ts":      {true, false, true},
	"json":         {false, true, false},
	"json-hash":    {true, true, false},
	"json-hash-ts": {true, true, true},
}

// pktScenarios are the NFLOG scenarios: whether the sink is JSON.
var pktScenarios = map[string]bool{"pkt": false, "pktjson": true}

// load describes what happens to the network while a subject runs.
type load struct {
	scenario string
	offered  string
	ruleset  string
	sysctls  []string
	gen      genConfig
	end      string // "none" (flows deleted by the generator), "expire", "flush"
	hash     bool
	packets  bool
	ipfix    bool   // the sink exports IPFIX to an in-process collector (ipfix.go)
	peer     string // a message-bus scenario's peer (kafka, nats), started in the server namespace
}

func (o *options) spec(kind string, conf stackConf, runDir string) subjectSpec {
	s := subjectSpec{kind: kind, refBin: o.refBin, goBin: o.goBin, baseBin: o.baseBin, self: o.self, conf: conf, floorSleep: o.floorSleep}
	if kind == subjGo && o.profileDir != "" {
		s.profile = filepath.Join(o.profileDir, filepath.Base(runDir)+".pprof")
	}
	return s
}

func runFlowScenario(o *options, sc string, rate int) []result {
	l, v := flowLoad(o, sc, rate)
	return runRounds(o, l, o.subjects, flowConf(o.plugDir, v.hash, v.json))
}

// flowLoad is the conntrack load of scenario sc at rate (0: max).
func flowLoad(o *options, sc string, rate int) (load, struct{ hash, json, ts bool }) {
	v := flowScenarios[sc]
	flows := o.flows
	offered := "max"
	if rate > 0 {
		offered = fmt.Sprintf("%d/s", rate)
	}
	if flows == 0 {
		if rate > 0 {
			flows = int(float64(rate) * o.seconds)
		} else {
			flows = 250000
		}
	}
	l := load{scenario: sc, offered: offered, ruleset: rulesetFlows, hash: v.hash,
		gen: genConfig{Flows: flows, Rate: rate, MaxTime: time.Duration(o.seconds*float64(time.Second)) + 2*time.Second}}
	lagRate := rate
	if lagRate == 0 {
		lagRate = 50000
	}
	switch o.deleteMode {
	case "expire":
		l.end = "expire"
		l.sysctls = []string{"net.netfilter.nf_conntrack_udp_timeout=1", "net.netfilter.nf_conntrack_udp_timeout_stream=1"}
	default:
		l.end = "none"
		l.gen.Delete = true
		l.gen.DeleteLag = max(1, int(o.deleteLag*float64(lagRate)))
	}
	if v.ts {
		l.sysctls = append(l.sysctls, "net.netfilter.nf_conntrack_timestamp=1")
	}
	return l, v
}

// runBurstScenario runs the burst; cgnat runs it in hash mode with
// hash_max_entries large enough for every flow (the default 32768 tracks
// only the first ones), to measure the table's memory per flow.
func runBurstScenario(o *options, cgnat bool) []result {
	l := load{scenario: "burst", offered: "max", ruleset: rulesetFlows, hash: o.burstHash || cgnat, end: "flush",
		sysctls: []string{"net.netfilter.nf_conntrack_udp_timeout=3600", "net.netfilter.nf_conntrack_udp_timeout_stream=3600"},
		gen:     genConfig{Flows: o.burstFlows, MaxTime: 120 * time.Second}}
	switch {
	case cgnat:
		l.scenario = "cgnat"
	case !l.hash:
		l.scenario = "burst-nohash"
	}
	// nf_conntrack_max is global (read-only in child namespaces): raise it
	// for the run and put it back.
	const maxPath = "/proc/sys/net/netfilter/nf_conntrack_max"
	old, err := readUintFile(maxPath)
	if err != nil {
		return []result{{Scenario: l.scenario, Err: "nf_conntrack_max: " + err.Error()}}
	}
	if want := uint64(o.burstFlows) + o.burstFlowsSlack(); old < want {
		if err := os.WriteFile(maxPath, []byte(fmt.Sprint(want)), 0o644); err != nil {
			return []result{{Scenario: l.scenario, Err: "nf_conntrack_max: " + err.Error()}}
		}
		restore := func() { os.WriteFile(maxPath, []byte(fmt.Sprint(old)), 0o644) }
		atCleanup(restore)
		defer restore()
	}
	conf := flowConf(o.plugDir, l.hash, false)
	if cgnat {
		conf = newStackConf(o.plugDir, stackFlow, fmt.Sprintf("hash_max_entries=%d\n", uint64(o.burstFlows)+o.burstFlowsSlack()), "out.log")
	}
	var rs []result
	for _, subj := range o.subjects {
		rs = append(rs, runOne(o, l, subj, conf))
	}
	return rs
}

func (o *options) burstFlowsSlack() uint64 { return 1000 + uint64(o.burstFlows)/10 }

func runPacketScenario(o *options, sc string) []result {
	l, subjects := packetLoad(o, sc)
	return runRounds(o, l, subjects, pktConf(o.plugDir, pktScenarios[sc]))
}

// packetLoad is the load of a packet scenario and its subjects.
func packetLoad(o *options, sc string) (load, []string) {
	l := load{scenario: sc, offered: "max", ruleset: rulesetPackets, packets: true, end: "none",
		gen: genConfig{Flows: o.pktMax, MaxTime: time.Duration(o.pktSeconds * float64(time.Second))}}
	var subjects []string
	for _, subj := range o.subjects {
		if subj != subjFloor { // no NFLOG floor listener
			subjects = append(subjects, subj)
		}
	}
	return l, subjects
}

// runRounds measures every subject -repeat times on the same load, in
// rounds: each round runs every subject once, so that a machine whose
// speed drifts (a VM's does, by 15–20 % in an hour) slows every subject
// alike rather than the one measured last. It returns, per subject, the run
// with the median CPU per 1000 events.
func runRounds(o *options, l load, subjects []string, conf stackConf) []result {
	cells := make([]cell, len(subjects))
	for i, subj := range subjects {
		cells[i] = cell{l: l, subject: subj, conf: conf}
	}
	return runCells(o, cells, false)
}

// cell is one subject on one load and config: what a round runs once.
type cell struct {
	l       load
	subject string
	conf    stackConf
}

// runCells runs every cell once per round, -repeat rounds, and returns per
// cell the run with the median CPU per 1000 events. With rotate, round i
// starts at cell i (mod the cells), so that no cell is always first.
func runCells(o *options, cells []cell, rotate bool) []result {
	runs := make([][]result, len(cells))
	for round := range max(o.repeat, 1) {
		for j := range cells {
			i := j
			if rotate {
				i = (j + round) % len(cells)
			}
			runs[i] = append(runs[i], runOne(o, cells[i].l, cells[i].subject, cells[i].conf))
		}
	}
	out := make([]result, len(cells))
	for i := range runs {
		out[i] = median(runs[i])
	}
	return out
}

// median returns the run with the median CPU per 1000 events. Its notes
// list every run's figure and the most any run lost, so that a loss in
// another run is not hidden.
func median(rs []result) result {
	if len(rs) == 1 {
		return rs[0]
	}
	rounds := rs
	rs = slices.Clone(rs)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].msPerK() < rs[j].msPerK() })
	med := rs[len(rs)/2]
	med.Rounds = rounds
	figs := make([]string, len(rs))
	var worst int64
	for i, r := range rs {
		figs[i] = fmt.Sprintf("%.2f", r.msPerK())
		worst = max(worst, r.lost())
		if r.Err != "" && med.Err == "" {
			med.Err = r.Err
		}
	}
	med.Extra = strings.TrimSpace(fmt.Sprintf("median of %d runs (ms/1k ev %s; most lost in one run %d) %s",
		len(rs), strings.Join(figs, ", "), worst, med.Extra))
	return med
}

func runOne(o *options, l load, kind string, conf stackConf) (r result) {
	r = result{Scenario: l.scenario, Subject: kind, Offered: l.offered, SelfLost: -1}
	fmt.Fprintf(os.Stderr, "-- %s %s %s ...\n", l.scenario, l.offered, kind)
	defer func() {
		if r.Err != "" {
			fmt.Fprintf(os.Stderr, "   error: %s\n", r.Err)
		}
	}()
	// Write back what earlier runs left dirty in the page cache (a JSON
	// run leaves over 100 MB), so that no run pays for the writeback of
	// another one's output.
	unix.Sync()
	dir, err := os.MkdirTemp(o.tmp, fmt.Sprintf("%s-%s-%s-", l.scenario, strings.TrimSuffix(l.offered, "/s"), kind))
	if err != nil {
		r.Err = err.Error()
		return r
	}
	if !o.keep {
		// Free the run's output now (registered first, so it runs after
		// the daemon, the generator and the namespaces are gone). Kept
		// until the end, the outputs of a full invocation fill gigabytes
		// of page cache; on a VM every later run then writes into guest
		// memory the host has not backed yet, and pays the host's page
		// faults inside write(2): 1 → 4.5 ms per MB written here.
		defer os.RemoveAll(dir)
	}
	n, err := newTestNet(dir, l.ruleset)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer n.Close()
	for _, kv := range l.sysctls {
		if err := n.sysctl(kv); err != nil {
			r.Err = err.Error()
			return r
		}
	}
	if l.ipfix && kind != subjFloor {
		c, err := startCollector(n.Server, filepath.Join(dir, conf.out))
		if err != nil {
			r.Err = err.Error()
			return r
		}
		defer func() {
			if e := c.stop(); e > 0 {
				r.Extra = strings.TrimSpace(r.Extra + fmt.Sprintf("; %d IPFIX messages not decoded", e))
			}
		}()
	}
	if l.peer != "" {
		stop, err := startBusPeer(o.self, n.Server, l.peer, dir)
		if err != nil {
			r.Err = err.Error()
			return r
		}
		defer stop()
	}
	var peer *sockPeer
	if conf.unixPeer != "" && kind != subjFloor {
		if peer, err = startSockPeer(o.self, filepath.Join(dir, conf.unixPeer), dir); err != nil {
			r.Err = err.Error()
			return r
		}
		defer peer.stop()
	}
	g, err := newGenerator(n, l.gen.Delete)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer g.Close()
	if conf.setup != nil && kind != subjFloor {
		if err := conf.setup(dir); err != nil {
			r.Err = err.Error()
			return r
		}
	}
	var dbBefore uint64
	if conf.dbCPU != nil {
		dbBefore = conf.dbCPU()
	}
	spec := o.spec(kind, conf, dir)
	if peer != nil {
		spec.lines = peer.counts
	}
	s, err := startSubject(spec, n.Server, dir)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer s.Stop()
	var server procSample
	if conf.serverPid != nil {
		server, _ = sampleProc(conf.serverPid())
	}
	before, err := sampleProc(s.pid)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	var peerBefore procSample
	if peer != nil {
		peerBefore, _ = sampleProc(peer.cmd.Process.Pid)
	}
	var scr *scraper
	if conf.scrape != "" && kind != subjFloor {
		scr = startScraper(n.Server, conf.scrape)
	}

	gr, err := g.run(l.gen)
	r.Achieved = gr.Rate()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	var extra []string
	if gr.DeleteErrs > 0 {
		extra = append(extra, fmt.Sprintf("delete errors %d", gr.DeleteErrs))
	}
	switch l.end {
	case "expire":
		t0 := time.Now()
		for time.Since(t0) < o.expireWait {
			if c, err := n.conntrackCount(); err == nil && c == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		extra = append(extra, fmt.Sprintf("gc wait %.1fs", time.Since(t0).Seconds()))
	case "flush":
		c, _ := n.conntrackCount()
		if kind != subjFloor {
			extra = append(extra, perFlowMemory(s.pid, before, c))
		}
		t0 := time.Now()
		if _, err := inNS(n.Server, "conntrack", "-F"); err != nil {
			r.Err = err.Error()
			return r
		}
		d := time.Since(t0)
		extra = append(extra, fmt.Sprintf("flush of %d took %.2fs (%.0f/s)", c, d.Seconds(), float64(c)/d.Seconds()))
	}
	if !l.packets {
		// Whatever is still in the table now ends with a flush, so that
		// every flow has exactly one DESTROY.
		if c, err := n.conntrackCount(); err == nil && c > 0 {
			inNS(n.Server, "conntrack", "-F")
			extra = append(extra, fmt.Sprintf("%d flushed at end", c))
		}
	}
	if r.Flows, err = n.counter(); err != nil {
		r.Err = err.Error()
		return r
	}
	switch {
	case l.packets:
		r.Events, r.Expected = r.Flows, r.Flows
	case l.hash && kind != subjFloor:
		r.Events, r.Expected = 2*r.Flows, r.Flows
	default:
		r.Events, r.Expected = 2*r.Flows, 2*r.Flows
	}

	// Drain: wait until everything is logged, or nothing new for -settle.
	last, lastAt := s.logged().Lines, time.Now()
	hard := time.Now().Add(5 * time.Minute)
	for time.Now().Before(hard) && s.alive() {
		c := s.logged().Lines
		if c >= r.Expected {
			time.Sleep(200 * time.Millisecond) // catch duplicates
			break
		}
		if c != last {
			last, lastAt = c, time.Now()
		} else if time.Since(lastAt) > o.settle {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !s.alive() {
		r.Err = "subject exited during the run: " + tail(filepath.Join(dir, "stderr.log"))
	}
	var scrapeNote string
	if scr != nil {
		scrapeNote = scr.stop()
	}
	after, err := sampleProc(s.pid)
	if err == nil {
		r.CPUms = float64(after.CPUTicks-before.CPUTicks) * 1000 / clockTicks
		r.SysMs = float64(after.SysTicks-before.SysTicks) * 1000 / clockTicks
		r.HWMKB = after.HWMKB
		r.Drops = after.Drops
	} else if r.Err == "" {
		r.Err = err.Error()
	}
	lc := s.logged()
	r.Logged = lc.Lines
	if conf.dbCPU != nil && kind != subjFloor && r.Logged > 0 {
		ms := float64(conf.dbCPU()-dbBefore) * 1000 / clockTicks
		extra = append(extra, fmt.Sprintf("db CPU %.0f ms, %.2f ms/1k rows", ms, ms*1000/float64(r.Logged)))
	}
	if peer != nil {
		if a, err := sampleProc(peer.cmd.Process.Pid); err == nil {
			extra = append(extra, fmt.Sprintf("consumer CPU %.0f ms", float64(a.CPUTicks-peerBefore.CPUTicks)*1000/clockTicks))
		}
	}
	if scrapeNote != "" {
		extra = append(extra, scrapeNote)
	}
	if conf.serverPid != nil {
		if after, err := sampleProc(conf.serverPid()); err == nil {
			ms := float64(after.CPUTicks-server.CPUTicks) * 1000 / clockTicks
			extra = append(extra, fmt.Sprintf("server CPU %.0f ms (%.1f ms/1k rows)", ms, ms*1000/float64(max(lc.Lines, 1))))
		}
	}
	if kind == subjFloor {
		s.mu.Lock()
		if e := s.floor[2]; e > 0 {
			extra = append(extra, fmt.Sprintf("ENOBUFS %d", e))
		}
		s.mu.Unlock()
	} else if !l.packets {
		extra = append(extra, fmt.Sprintf("NEW %d DESTROY %d", lc.New, lc.Destroy))
	}
	if err == nil && !l.packets && kind != subjFloor {
		// 0x1 NEW, 0x2 UPDATE, 0x4 DESTROY.
		extra = append(extra, fmt.Sprintf("groups %#x", after.Groups))
	}
	s.Stop()
	if kind == subjGo || kind == subjBase {
		r.SelfLost = s.selfReportedLost()
	}
	r.Extra = strings.Join(extra, "; ")
	return r
}

func printTable(w io.Writer, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tsubject\toffered\tachieved/s\tflows|pkts\texpected\tlogged\tlost\tlost%\tkern drops\tself lost\tCPU ms\tms/1k ev\tuser/1k\tsys/1k\tpeak RSS MB\t notes")
	for _, r := range rs {
		if r.Err != "" && r.Logged == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\t\t\t\t\t\t\t\t\t\t\t ERROR: %s\n", r.Scenario, r.Subject, r.Offered, oneLine(r.Err))
			continue
		}
		self := "-"
		if r.SelfLost >= 0 {
			self = fmt.Sprint(r.SelfLost)
		}
		notes := r.Extra
		if r.Err != "" {
			notes += " ERROR: " + oneLine(r.Err)
		}
		user, sys := r.perFlow(r.CPUms-r.SysMs), r.perFlow(r.SysMs)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%d\t%d\t%d\t%d\t%.2f\t%d\t%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.1f\t %s\n",
			r.Scenario, r.Subject, r.Offered, r.Achieved, r.Flows, r.Expected, r.Logged, r.lost(), r.lostPct(),
			r.Drops, self, r.CPUms, r.msPerK(), user, sys, float64(r.HWMKB)/1024, notes)
	}
	tw.Flush()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " | ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// printRatios compares ulogd-go with ulogd2 and the floor, per load, and
// with the other ulogd-go binary (-ulogd-go-base) when there is one.
func printRatios(w io.Writer, rs []result) {
	order, by := groupResults(rs, func(r result) ([2]string, string, bool) {
		return [2]string{r.Scenario, r.Offered}, r.Subject, true
	})
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ratios (ulogd-go / other), CPU per 1000 kernel events:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	base := false
	for _, r := range rs {
		base = base || r.Subject == subjBase
	}
	head := "scenario\toffered\tgo ms/1k\tulogd2 ms/1k\tgo/ulogd2\tfloor ms/1k\tgo/floor\tgo lost%\tulogd2 lost%\tgo/ulogd2 per logged"
	if base {
		head += "\tbase ms/1k\tgo/base"
	}
	fmt.Fprintln(tw, head)
	for _, k := range order {
		m := by[k]
		g, ok := m[subjGo]
		if !ok || g.Err != "" {
			continue
		}
		ref, hasRef := m[subjRef]
		fl, hasFloor := m[subjFloor]
		ms := func(ok bool, r result) string {
			if !ok || r.msPerK() == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", r.msPerK())
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s", k[0], k[1], g.msPerK(),
			ms(hasRef, ref), ratioCell(hasRef, g, ref, result.msPerK),
			ms(hasFloor, fl), ratioCell(hasFloor, g, fl, result.msPerK),
			g.lostPct(), lostCell(hasRef, ref), ratioCell(hasRef, g, ref, result.msPerLogged))
		if base {
			b, hasBase := m[subjBase]
			fmt.Fprintf(tw, "\t%s\t%s", ms(hasBase, b), ratioCell(hasBase, g, b, result.msPerK))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// groupResults files each result under key(r)'s first value (in the order
// first seen) and its second: a table's rows and the results of a row.
// Results for which key says false are left out.
func groupResults(rs []result, key func(result) ([2]string, string, bool)) ([][2]string, map[[2]string]map[string]result) {
	by := map[[2]string]map[string]result{}
	var order [][2]string
	for _, r := range rs {
		k, name, ok := key(r)
		if !ok {
			continue
		}
		if by[k] == nil {
			by[k] = map[string]result{}
			order = append(order, k)
		}
		by[k][name] = r
	}
	return order, by
}

// ratioCell is the ratio of a's figure to b's. For -repeat measurements it
// is taken round by round (a run of each subject back to back, on the same
// machine state) and the median of those is shown, followed by every
// round's ratio: a VM's speed drifts between rounds more than between two
// adjacent runs, and this cancels the drift.
func ratioCell(ok bool, a, b result, fig func(result) float64) string {
	if !ok || fig(b) <= 0 {
		return "-"
	}
	if len(a.Rounds) < 2 || len(a.Rounds) != len(b.Rounds) {
		return fmt.Sprintf("%.2f×", fig(a)/fig(b))
	}
	var rs []float64
	for i, ra := range a.Rounds {
		// A failed run on either side leaves its round out.
		rb := b.Rounds[i]
		if n, d := fig(ra), fig(rb); n > 0 && d > 0 && ra.Err == "" && rb.Err == "" {
			rs = append(rs, n/d)
		}
	}
	if len(rs) == 0 {
		return "-"
	}
	figs := make([]string, len(rs))
	for i, r := range rs {
		figs[i] = fmt.Sprintf("%.2f", r)
	}
	slices.Sort(rs)
	return fmt.Sprintf("%.2f× (%s)", rs[len(rs)/2], strings.Join(figs, ", "))
}

func lostCell(ok bool, r result) string {
	if !ok || r.Err != "" && r.Logged == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", r.lostPct())
}

// perFlowMemory waits until the daemon has read the NEW events of a filled
// table (its CPU time stands still for a second), then describes its
// resident set against the one it had empty: the flow table's memory per
// tracked flow, when the daemon keeps one.
func perFlowMemory(pid int, empty procSample, flows uint64) string {
	var last procSample
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		cur, err := sampleProc(pid)
		if err != nil {
			return "RSS: " + err.Error()
		}
		if cur.CPUTicks == last.CPUTicks {
			break
		}
		last = cur
	}
	if flows == 0 {
		return "RSS: no flow"
	}
	grown := int64(last.RSSKB) - int64(empty.RSSKB)
	return fmt.Sprintf("RSS empty %.1f MB, full %.1f MB: %.0f B/flow", float64(empty.RSSKB)/1024, float64(last.RSSKB)/1024,
		float64(grown)*1024/float64(flows))
}
