// Command ulogd-bench is the end-to-end benchmark of ulogd-go against the
// reference ulogd2 and a bare-listener floor on the same kernel load. See
// README.md. It must run as root.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if code, ok := subcommand(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(benchMain(os.Args[1:]))
}

// subcommand runs the helpers the harness starts as processes of its own
// binary (the floor, the bus peer, the Unix-socket consumer, the
// in-process driver); ok is false when args name none.
func subcommand(args []string) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "floor":
		fs := flag.NewFlagSet("floor", flag.ExitOnError)
		groups := fs.Uint("groups", 5, "legacy multicast group bitmask (1 NEW, 2 UPDATE, 4 DESTROY)")
		rcvbuf := fs.Int("rcvbuf", 256<<20, "SO_RCVBUFFORCE bytes")
		coalesce := fs.Duration("coalesce", 0, "sleep this long after a read that emptied the socket of 2 datagrams or more")
		fs.Parse(args[1:])
		return floorMain(uint32(*groups), *rcvbuf, *coalesce), true
	case "buspeer":
		fs := flag.NewFlagSet("buspeer", flag.ExitOnError)
		kind := fs.String("kind", "kafka", "kafka or nats")
		dir := fs.String("dir", ".", "run directory (out.json)")
		fs.Parse(args[1:])
		return busPeerMain(*kind, *dir), true
	case "sockpeer":
		fs := flag.NewFlagSet("sockpeer", flag.ExitOnError)
		listen := fs.String("listen", "q.sock", "Unix socket path")
		fs.Parse(args[1:])
		return sockPeerMain(*listen), true
	case "inproc":
		fs := flag.NewFlagSet("inproc", flag.ExitOnError)
		conf := fs.String("c", "/etc/ulogd.conf", "ulogd.conf")
		prof := fs.String("cpuprofile", "cpu.pprof", "CPU profile output")
		fs.Parse(args[1:])
		return inprocMain(*conf, *prof), true
	}
	return 0, false
}

// options are the harness flags.
type options struct {
	scenarios  []string
	rates      []int // 0 = as fast as possible
	flows      int
	seconds    float64
	burstFlows int
	burstHash  bool
	pktSeconds float64
	pktMax     int
	subjects   []string
	refBin     string
	goBin      string
	baseBin    string // -ulogd-go-base: a second ulogd-go binary
	floorSleep time.Duration
	plugDir    string
	deleteMode string
	deleteLag  float64
	expireWait time.Duration
	settle     time.Duration
	profileDir string
	keep       bool
	self       string
	tmp        string

	repeat int // runs per subject in the rate and packet scenarios (median kept)
}

func benchMain(args []string) int {
	fs := flag.NewFlagSet("ulogd-bench", flag.ExitOnError)
	var o options
	scen := fs.String("scenarios", "nohash,hash,json,json-hash,pkt,pktjson,burst", "comma list of: nohash (canonical stack, hash_enable=0: NEW+DESTROY lines), hash (canonical stack, default hash_enable=1: DESTROY lines), burst (conntrack -F of a full table), cgnat (the burst in hash mode with a table for every flow: memory per tracked flow), hash-ts, json-hash-ts (hash and json-hash with nf_conntrack_timestamp=1), pkt (NFLOG packet path), json, json-hash, pktjson (nohash, hash and pkt with the JSON sink), kafka, nats (nohash's flows to KAFKA on kfake, to NATS on a JetStream nats-server; ulogd-go only), json-queue, json-metrics (json through the sink queue to a Unix-socket consumer, json with metrics_listen= scraped every second; ulogd-go only, run in the same rounds as json, with an overhead table; not in the default list), pgsql, pgsql-spool, pgsql-ct, sqlite3, mysql, pktpgsql (nohash into PostgreSQL's flat ulog2_ct (pgsql-spool: with overflow=spool, ulogd-go only), through INSERT_CT, into SQLite's ulog_ct; pkt through INSERT_PACKET_FULL: not in the default list)")
	rates := fs.String("rates", "20000,max", "comma list of flow rates per second for nohash/hash/json/json-hash; max = as fast as the generator goes")
	fs.IntVar(&o.flows, "flows", 0, "flows per rate run (0 = rate × -seconds; 250000 for max)")
	fs.IntVar(&o.repeat, "repeat", 1, "runs per subject and rate (flow and packet scenarios); the run with the median CPU per 1000 events is shown")
	fs.Float64Var(&o.seconds, "seconds", 5, "load duration per rate run (bounds the flow count)")
	fs.IntVar(&o.burstFlows, "burst-flows", 1000000, "table size for the burst scenario")
	fs.BoolVar(&o.burstHash, "burst-hash", true, "burst scenario with the default hash_enable=1 (false: hash_enable=0)")
	fs.Float64Var(&o.pktSeconds, "pkt-seconds", 5, "packet scenario: send flat out for this long")
	fs.IntVar(&o.pktMax, "pkt-max", 2000000, "packet scenario: at most this many packets")
	subj := fs.String("subjects", "ulogd2,ulogd-go,floor", "what to measure: ulogd2, ulogd-go, floor")
	fs.StringVar(&o.refBin, "ulogd2", "/usr/sbin/ulogd", "reference ulogd2 binary")
	fs.DurationVar(&o.floorSleep, "floor-coalesce", 0, "make the floor read as ulogd-go does: sleep this long (ulogd-go: up to 4ms) after a read that emptied the socket of 2 datagrams or more (a diagnostic: the floor the issue describes reads as events arrive)")
	fs.StringVar(&o.goBin, "ulogd-go", "", "ulogd-go binary (default: go build ./cmd/ulogd into the run directory)")
	fs.StringVar(&o.baseBin, "ulogd-go-base", "", "a second ulogd-go binary (e.g. built from main) measured in the same rounds as subject ulogd-go-base; the ratio table adds go/base")
	fs.StringVar(&o.plugDir, "plugindir", "/usr/lib/x86_64-linux-gnu/ulogd", "ulogd2 plugin directory (plugin= lines)")
	fs.StringVar(&o.deleteMode, "delete", "ctnetlink", "how flows end in rate runs: ctnetlink (the generator deletes each flow shortly after creating it) or expire (1 s UDP timeout, conntrack GC, bounded by -expire-wait, rest flushed)")
	fs.Float64Var(&o.deleteLag, "delete-lag", 0.1, "ctnetlink mode: seconds between a flow's creation and its deletion")
	fs.DurationVar(&o.expireWait, "expire-wait", 60*time.Second, "expire mode: longest wait for the conntrack GC")
	fs.DurationVar(&o.settle, "settle", 3*time.Second, "drain: stop waiting when nothing new was logged for this long")
	fs.StringVar(&o.profileDir, "profile", "", "run ulogd-go in-process (same stacks) with a CPU profile per run written to this directory")
	fs.BoolVar(&o.keep, "keep", false, "keep the run directory (configs, daemon logs, outputs)")
	fs.Parse(args)

	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "ulogd-bench: must run as root (namespaces, nft, conntrack)")
		return 2
	}
	o.scenarios = splitList(*scen)
	o.subjects = splitList(*subj)
	if o.baseBin != "" && !contains(o.subjects, subjBase) {
		o.subjects = append(o.subjects, subjBase)
	}
	for _, r := range splitList(*rates) {
		if r == "max" {
			o.rates = append(o.rates, 0)
			continue
		}
		v, err := strconv.Atoi(r)
		if err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "ulogd-bench: bad rate %q\n", r)
			return 2
		}
		o.rates = append(o.rates, v)
	}
	var err error
	if o.self, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if o.tmp, err = os.MkdirTemp("", "ulogd-bench-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if o.profileDir != "" {
		if o.profileDir, err = filepath.Abs(o.profileDir); err == nil {
			err = os.MkdirAll(o.profileDir, 0o755)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	onSignalCleanup()
	defer cleanupAll()
	if !o.keep {
		atCleanup(func() { os.RemoveAll(o.tmp) })
	} else {
		fmt.Printf("run directory: %s\n", o.tmp)
	}
	if contains(o.subjects, subjGo) && o.goBin == "" && o.profileDir == "" {
		o.goBin = filepath.Join(o.tmp, "ulogd-go")
		if out, err := exec.Command("go", "build", "-o", o.goBin, "./cmd/ulogd").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "ulogd-bench: building ulogd-go (run from the repository root or pass -ulogd-go): %v\n%s", err, out)
			return 1
		}
	}
	printMachine()

	var all []result
	group := overheadGroup(o.scenarios)
	ran := map[string]bool{}
	for _, sc := range o.scenarios {
		if ran[sc] {
			continue
		}
		ran[sc] = true
		var rs []result
		_, flow := flowScenarios[sc]
		_, pkt := pktScenarios[sc]
		_, sqlSc := sqlScenarios[sc]
		switch {
		case contains(group, sc):
			for _, g := range group {
				ran[g] = true
			}
			for _, rate := range o.rates {
				rs = append(rs, runOverheadScenario(&o, group, rate)...)
			}
		case sqlSc:
			rs = runSQLScenario(&o, sc)
		case sc == "mysql":
			rs = runMySQLScenario(&o)
		case flow:
			for _, rate := range o.rates {
				rs = append(rs, runFlowScenario(&o, sc, rate)...)
			}
		case busScenarios[sc] != "":
			if err := checkBusTools(sc); err != nil {
				fmt.Fprintf(os.Stderr, "ulogd-bench: %s: %v\n", sc, err)
				return 2
			}
			for _, rate := range o.rates {
				rs = append(rs, runBusScenario(&o, sc, rate)...)
			}
		case sc == "burst", sc == "cgnat":
			rs = runBurstScenario(&o, sc == "cgnat")
		case sc == "ipfix":
			for _, rate := range o.rates {
				rs = append(rs, runIPFIXScenario(&o, rate)...)
			}
		case pkt:
			rs = runPacketScenario(&o, sc)
		default:
			fmt.Fprintf(os.Stderr, "ulogd-bench: unknown scenario %q\n", sc)
			return 2
		}
		printTable(os.Stdout, rs)
		all = append(all, rs...)
	}
	fmt.Println()
	fmt.Println("== summary ==")
	printTable(os.Stdout, all)
	printRatios(os.Stdout, all)
	if group != nil {
		printOverhead(os.Stdout, all)
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func printMachine() {
	host, _ := os.Hostname()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, cpu, _ = strings.Cut(l, ":")
				break
			}
		}
	}
	fmt.Printf("machine: %s, kernel %s, %d CPUs (%s), %s\n", host, strings.TrimSpace(string(kernel)),
		numCPU(), strings.TrimSpace(cpu), time.Now().Format("2006-01-02 15:04"))
}

// Cleanup: namespaces and sysctls are undone on return and on SIGINT/SIGTERM.
var (
	cleanMu  sync.Mutex
	cleanups []func()
)

func atCleanup(f func()) {
	cleanMu.Lock()
	cleanups = append(cleanups, f)
	cleanMu.Unlock()
}

func cleanupAll() {
	cleanMu.Lock()
	fs := cleanups
	cleanups = nil
	cleanMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func onSignalCleanup() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-c
		fmt.Fprintf(os.Stderr, "ulogd-bench: %v, cleaning up\n", sig)
		cleanupAll()
		os.Exit(130)
	}()
}
