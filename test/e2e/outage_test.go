package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

// The long outage of TestQueuePoliciesAcrossLongOutage: the collectors
// are down for outageLong while outageRate packets a second are logged
// (outageShort with ULOGD_E2E_SHORT=1, to iterate; CI runs the long one).
const (
	outageLong  = 60 * time.Second
	outageShort = 10 * time.Second
	outageRate  = 5000
)

func outageLength() time.Duration {
	if os.Getenv("ULOGD_E2E_SHORT") == "1" {
		return outageShort
	}
	return outageLong
}

// seqSender numbers the datagrams it sends: datagram k goes from socket
// k/10000 to dest port 30000+k%10000, so that a record's src_port and
// dest_port give k back (key).
type seqSender struct {
	t     *testing.T
	p     *NSPair
	socks []*net.UDPConn
	index map[int]int // socket's port → its index
}

// newSeqSender opens the sockets for n datagrams, in p.A.
func newSeqSender(t *testing.T, p *NSPair, n int) *seqSender {
	s := &seqSender{t: t, p: p, index: map[int]int{}}
	for i := 0; i*10000 < n; i++ {
		var c *net.UDPConn
		if err := InNetns(p.A, func() (err error) {
			c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.A4, 0)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s.index[c.LocalAddr().(*net.UDPAddr).Port] = i
		s.socks = append(s.socks, c)
	}
	return s
}

var srcPortRE = regexp.MustCompile(`"src_port": (\d+)`)

// key is the number of the datagram a JSON record is about.
func (s *seqSender) key(l []byte) (int, bool) {
	dport, ok := destPort(l)
	m := srcPortRE.FindSubmatch(l)
	if !ok || m == nil {
		return 0, false
	}
	sport, _ := strconv.Atoi(string(m[1]))
	i, ok := s.index[sport]
	return i*10000 + dport - 30000, ok
}

// sendFor sends datagrams next, next+1, … at outageRate a second for d
// and returns the number of the next one. The pace is kept against the
// clock: a late wake-up is made up by a larger burst.
func (s *seqSender) sendFor(next int, d time.Duration) int {
	n := int(d.Seconds() * outageRate)
	if (next+n+9999)/10000 > len(s.socks) {
		s.t.Fatalf("%d datagrams: more than the sockets opened for", next+n)
	}
	start := time.Now()
	for i := 0; i < n; {
		due := min(n, int(time.Since(start).Seconds()*outageRate)+1)
		for ; i < due; i++ {
			k := next + i
			if _, err := s.socks[k/10000].WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(s.p.B4, uint16(30000+k%10000))); err != nil {
				s.t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return next + n
}

var counterLineRE = regexp.MustCompile(`counters instance=(\S+) plugin=\S+((?: \w+=\d+)+)`)

// daemonCounters returns, per instance, the numbers of its last counters
// line in the daemon log (SIGUSR1 and exit).
func daemonCounters(t *testing.T, logfile string) map[string]map[string]int {
	t.Helper()
	c := map[string]map[string]int{}
	for _, l := range ReadLines(t, logfile) {
		m := counterLineRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		kv := map[string]int{}
		for _, f := range strings.Fields(m[2]) {
			k, v, _ := strings.Cut(f, "=")
			kv[k], _ = strconv.Atoi(v)
		}
		c[m[1]] = kv
	}
	return c
}

// pollCounters makes d log its counters (SIGUSR1) and returns them.
func pollCounters(t *testing.T, d *Daemon, logfile string) map[string]map[string]int {
	t.Helper()
	d.Signal(t, syscall.SIGUSR1)
	time.Sleep(200 * time.Millisecond)
	return daemonCounters(t, logfile)
}

// TestQueuePoliciesAcrossLongOutage: one NFLOG source feeds three JSON
// sinks over TCP, each to its own collector; the collectors are down for
// a minute while 5000 packets a second are logged. At its end the daemon
// is stopped with SIGTERM and started again while the spool sinks'
// collectors are still down (docs/compat.md J8):
//   - spool (a queue of 4096 records; the rest goes to disk): every
//     record arrives exactly once and in order, the spooled ones after
//     the restart;
//   - drop (a queue of 4096 records): the records received plus the
//     sink's dropped counters of both runs are what nft logged;
//   - spool to a 2 MiB tmpfs: the disk fills, the records it cannot take
//     are dropped and counted (received + dropped = logged, dropped > 0,
//     the full disk logged), and the sink keeps sending afterwards.
//
// Every record the sinks saw came from NFLOG, which must lose none:
// events = what nft logged.
func TestQueuePoliciesAcrossLongOutage(t *testing.T) {
	t.Parallel()
	outage := outageLength()
	const before, after = 3 * time.Second, 5 * time.Second
	q := newQueueTest(t)
	s := newSeqSender(t, q.p, int((before+outage+after).Seconds()*outageRate))
	policies := []string{"spool", "drop", "disk"} // json1, json2, json3
	cols := map[string]*keyCollector{}
	for _, pol := range policies {
		cols[pol] = newKeyCollector(t, q.p, s.key)
	}

	spoolDir := filepath.Join(q.dir, "spool")
	tiny := filepath.Join(q.dir, "tiny")
	if err := os.Mkdir(tiny, 0o700); err != nil {
		t.Fatal(err)
	}
	diskOpts := fmt.Sprintf("spool_dir=%q\n", filepath.Join(tiny, "spool"))
	onTmpfs := true
	if err := syscall.Mount("tmpfs", tiny, "tmpfs", 0, "size=2m,mode=0700"); err != nil {
		// The spool's size cap instead: the same counted drops, without
		// the write error.
		t.Logf("no tmpfs (%v): the third sink's spool is capped with spool_size=2097152 instead", err)
		onTmpfs = false
		diskOpts += "spool_size=2097152\n"
	} else {
		t.Cleanup(func() { _ = syscall.Unmount(tiny, syscall.MNT_DETACH) })
	}

	logfile := filepath.Join(q.dir, "ulogd.log")
	var conf strings.Builder
	fmt.Fprintf(&conf, "[global]\nlogfile=%q\nloglevel=1\n", logfile)
	for i := range policies {
		fmt.Fprintf(&conf, "stack=log1:NFLOG,base%d:BASE,json%d:JSON\n", i+1, i+1)
	}
	conf.WriteString("\n[log1]\ngroup=1\n")
	for i, pol := range policies {
		fmt.Fprintf(&conf, "\n[json%d]\nmode=\"tcp\"\nhost=\"127.0.0.1\"\nport=\"%d\"\ntimestamp=0\nqueue_records=4096\n",
			i+1, cols[pol].Port())
		switch pol {
		case "spool":
			fmt.Fprintf(&conf, "overflow=\"spool\"\nspool_dir=%q\n", spoolDir)
		case "drop":
			conf.WriteString("overflow=\"drop\"\n")
		case "disk":
			conf.WriteString("overflow=\"spool\"\n" + diskOpts)
		}
	}
	spec := DaemonSpec{Name: "ours", Binary: OurBinary(t), Netns: q.p.A, Logfile: logfile,
		Config: WriteConfig(t, filepath.Join(q.dir, "ulogd.conf"), conf.String())}
	poll := func(d *Daemon) map[string]map[string]int { return pollCounters(t, d, logfile) }
	// accounted: NFLOG read the want packets, and each of their records
	// is at its collector or counted dropped (runs: the counters of
	// each daemon run).
	accounted := func(want int, runs ...map[string]map[string]int) bool {
		sum := func(id, name string) int {
			n := 0
			for _, r := range runs {
				n += r[id][name]
			}
			return n
		}
		if sum("log1", "events") != want {
			return false
		}
		for i, pol := range policies {
			if cols[pol].count()+sum(fmt.Sprintf("json%d", i+1), "dropped") != want {
				return false
			}
		}
		return true
	}
	began := time.Now()
	d := StartDaemon(t, spec)

	next := s.sendFor(0, before)
	WaitFor(t, 60*time.Second, "the first records at every collector or counted dropped", func() bool {
		return accounted(next, poll(d))
	})
	downAt := time.Now()
	for _, c := range cols {
		c.Down()
	}
	next = s.sendFor(next, outage)

	// The end of the outage: the drop sink's collector comes back (a
	// sink that does not spool needs its peer to start), and the daemon
	// is stopped with SIGTERM once NFLOG has read every packet logged,
	// and started again while the spool sinks' collectors are down.
	WaitFor(t, 60*time.Second, "NFLOG to have read every packet before the stop", func() bool {
		return poll(d)["log1"]["events"] == next
	})
	if segs, _ := filepath.Glob(filepath.Join(spoolDir, "*.spool")); len(segs) == 0 {
		t.Error("nothing spooled during the outage")
	}
	cols["drop"].Up()
	dropDown := time.Since(downAt)
	if _, err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	run1 := daemonCounters(t, logfile)
	log1, _ := os.ReadFile(logfile)
	if onTmpfs && !regexp.MustCompile(`send queue full, dropping records.*no space left on device`).Match(log1) {
		t.Errorf("no full disk in the log of the first run:\n%s", tail(log1, 40))
	}
	if segs, _ := filepath.Glob(filepath.Join(spoolDir, "*.spool")); len(segs) == 0 {
		t.Fatal("nothing spooled at the stop")
	}
	if err := os.Truncate(logfile, 0); err != nil {
		t.Fatal(err)
	}
	restartedAt := time.Now()
	d = StartDaemon(t, spec)
	restart := time.Since(restartedAt)
	cols["spool"].Up()
	cols["disk"].Up()
	down := time.Since(downAt)
	upAt := time.Now()
	next = s.sendFor(next, after)

	logged := NftRuleCounter(t, q.p, q.p.A, "logged")
	if logged != next {
		t.Fatalf("nft logged %d packets, %d sent", logged, next)
	}
	WaitFor(t, 100*time.Second, "every record at its collector or counted dropped", func() bool {
		return accounted(logged, run1, poll(d))
	})
	settled := time.Since(upAt)
	if _, err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	run2 := daemonCounters(t, logfile)
	t.Logf("%d packets logged (%v before, %v with the collectors down (drop: %v), %v after; a restart of %v); "+
		"every record at its collector or counted %v after the collectors came back; %v in all",
		logged, before, down.Round(time.Millisecond), dropDown.Round(time.Millisecond), after, restart.Round(time.Millisecond),
		settled.Round(time.Millisecond), time.Since(began).Round(time.Second))
	for i, pol := range policies {
		id := fmt.Sprintf("json%d", i+1)
		t.Logf("%s (%s): %d received; run 1: %v; run 2: %v", id, pol, cols[pol].count(), run1[id], run2[id])
	}
	if !accounted(logged, run1, run2) {
		t.Errorf("the exit counters do not account for every record: run 1 %v, run 2 %v", run1, run2)
	}
	if l := run1["log1"]["lost"] + run2["log1"]["lost"]; l != 0 {
		t.Errorf("NFLOG lost %d packets", l)
	}

	// spool: all of them, once, in order.
	wantInOrder(t, cols["spool"].received(), 0, logged)
	for _, pol := range []string{"drop", "disk"} {
		got := cols[pol].received()
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("%s: record %d after %d", pol, got[i], got[i-1])
			}
		}
		if dropped := logged - len(got); dropped == 0 {
			t.Errorf("%s: nothing dropped in a %v outage", pol, down)
		}
		// The sink still works after its losses: the last record arrived.
		if len(got) == 0 || got[len(got)-1] != logged-1 {
			t.Errorf("%s: the last record (%d) is not at the collector", pol, logged-1)
		}
	}
	if b, _ := os.ReadFile(logfile); onTmpfs &&
		!regexp.MustCompile(`send queue full, dropping records.*no space left on device`).Match(b) {
		t.Errorf("no full disk in the log of the second run:\n%s", tail(b, 40))
	}
}

// tail returns the last n lines of b.
func tail(b []byte, n int) []byte {
	lines := strings.SplitAfter(string(b), "\n")
	return []byte(strings.Join(lines[max(0, len(lines)-n):], ""))
}

// natsInA is a JetStream nats-server on 127.0.0.1 in p.A, with its store
// in dir, that a test stops and starts again.
type natsInA struct {
	t    *testing.T
	p    *NSPair
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

func startNATSInA(t *testing.T, p *NSPair, dir string) *natsInA {
	testutil.RequireTools(t, "nats-server")
	s := &natsInA{t: t, p: p, dir: dir}
	if err := InNetns(p.A, func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			s.port = ln.Addr().(*net.TCPAddr).Port
			ln.Close()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *natsInA) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

func (s *natsInA) start() {
	s.t.Helper()
	s.cmd = exec.Command("ip", "netns", "exec", s.p.A, "nats-server",
		"-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", s.dir)
	out := &testutil.Buffer{}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan struct{})
	s.done = done
	go func() { _ = s.cmd.Wait(); close(done) }()
	WaitFor(s.t, 30*time.Second, "nats-server ready", func() bool {
		return strings.Contains(out.String(), "Server is ready")
	})
}

// stop stops the server with SIGTERM and waits for it.
func (s *natsInA) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// connect is a client of the server, from the test (in p.A).
func (s *natsInA) connect() *nats.Conn {
	s.t.Helper()
	nc, err := nats.Connect(s.url(), nats.SetCustomDialer(netnsDialer{s.p.A}))
	if err != nil {
		s.t.Fatal(err)
	}
	return nc
}

// netnsDialer dials in a network namespace.
type netnsDialer struct{ ns string }

func (d netnsDialer) Dial(network, address string) (c net.Conn, err error) {
	err = InNetns(d.ns, func() (err error) {
		c, err = net.DialTimeout(network, address, 5*time.Second)
		return err
	})
	return c, err
}

// TestNATSSpoolAcrossOutageAndRestart: NFLOG packets to NATS JetStream
// with overflow=spool and a small queue. The server is stopped; the
// records logged meanwhile are spooled; the daemon is stopped with SIGTERM
// and started again while the server is still down; once it is back, the
// stream holds every record once, in order (docs/compat.md B2, J8).
func TestNATSSpoolAcrossOutageAndRestart(t *testing.T) {
	t.Parallel()
	q := newQueueTest(t)
	srv := startNATSInA(t, q.p, filepath.Join(q.dir, "js"))
	nc := srv.connect()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PKT", Subjects: []string{"ulogd.>"},
		Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	const base, n = 30000, 2000 // dest ports base..base+3n-1, one packet each
	logfile := filepath.Join(q.dir, "ulogd.log")
	spec := DaemonSpec{Name: "ours", Binary: OurBinary(t), Netns: q.p.A, Logfile: logfile,
		Config: WriteConfig(t, filepath.Join(q.dir, "ulogd.conf"), fmt.Sprintf(
			"[global]\nlogfile=%q\nloglevel=1\nstack=log1:NFLOG,base1:BASE,nats1:NATS\n\n[log1]\ngroup=1\n\n"+
				"[nats1]\nurl=%q\nsubject=\"ulogd.pkt\"\njetstream=1\ntimeout=2\ntimestamp=0\n"+
				"queue_records=64\noverflow=\"spool\"\nspool_dir=%q\n",
			logfile, srv.url(), filepath.Join(q.dir, "spool")))}
	// sinkHas waits until the sink has received and written (the
	// server acknowledged) so many records and dropped none.
	sinkHas := func(d *Daemon, received, written int) {
		t.Helper()
		WaitFor(t, 90*time.Second, fmt.Sprintf("the sink to have received %d records and written %d", received, written), func() bool {
			c := pollCounters(t, d, logfile)["nats1"]
			return c["received"] == received && c["written"] == written && c["dropped"] == 0
		})
	}
	d := StartDaemon(t, spec)
	q.send(base, base+n, 50)
	sinkHas(d, n, n)
	srv.stop()
	q.send(base+n, base+2*n, 50)
	sinkHas(d, 2*n, n)
	if _, err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if segs, _ := filepath.Glob(filepath.Join(q.dir, "spool", "*.spool")); len(segs) == 0 {
		t.Fatal("nothing spooled at the stop")
	}
	if err := os.Truncate(logfile, 0); err != nil {
		t.Fatal(err)
	}
	d = StartDaemon(t, spec) // the server still down
	q.send(base+2*n, base+3*n, 50)
	sinkHas(d, n, 0)
	srv.start()
	sinkHas(d, n, 2*n) // what was spooled in the first run, and the rest
	if _, err := d.Stop(); err != nil {
		t.Fatal(err)
	}

	nc = srv.connect()
	defer nc.Close()
	js, _ = jetstream.New(nc)
	st, err := js.Stream(ctx, "PKT")
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	var got []int
	for len(got) < int(info.State.Msgs) {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for m := range batch.Messages() {
			port, ok := destPort(m.Data())
			if !ok {
				t.Fatalf("no dest_port in %s", m.Data())
			}
			got = append(got, port)
			k++
		}
		if k == 0 {
			t.Fatalf("read %d of the stream's %d records", len(got), info.State.Msgs)
		}
	}
	wantInOrder(t, got, base, 3*n)
}
