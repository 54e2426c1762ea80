package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

var destPortRE = regexp.MustCompile(`"dest_port": (\d+)`)

// queueTest is a namespace pair whose A logs UDP datagrams to B (dest
// ports 30000-39999) to NFLOG group 1, counted by the nft counter
// "logged", a TCP collector on 127.0.0.1 in A, and a socket in A to send
// the datagrams.
type queueTest struct {
	t    *testing.T
	p    *NSPair
	col  *keyCollector // keys: the dest_port of every record
	sock *net.UDPConn
	dir  string
}

// keyCollector is a TCP collector on 127.0.0.1 in p.A that keeps a number
// taken from every record it reads (key), in order.
type keyCollector struct {
	*testutil.Collector
	mu   sync.Mutex
	keys []int
}

func newKeyCollector(t *testing.T, p *NSPair, key func(line []byte) (int, bool)) *keyCollector {
	c := &keyCollector{}
	c.Collector = testutil.NewCollector(t, "127.0.0.1:0", func(addr string) (ln net.Listener, err error) {
		err = InNetns(p.A, func() error {
			ln, err = net.Listen("tcp", addr)
			return err
		})
		return ln, err
	}, func(l []byte) {
		if k, ok := key(l); ok {
			c.mu.Lock()
			c.keys = append(c.keys, k)
			c.mu.Unlock()
		}
	})
	return c
}

// received returns the keys read so far.
func (c *keyCollector) received() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.keys...)
}

// count returns how many keys were read so far.
func (c *keyCollector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.keys)
}

// destPort is the dest_port of a JSON record.
func destPort(l []byte) (int, bool) {
	m := destPortRE.FindSubmatch(l)
	if m == nil {
		return 0, false
	}
	port, err := strconv.Atoi(string(m[1]))
	return port, err == nil
}

func newQueueTest(t *testing.T) *queueTest {
	q := &queueTest{t: t, p: NewNSPair(t, NSOptions{}), dir: t.TempDir()}
	p := q.p
	p.Nft(t, p.A, fmt.Sprintf(`table inet ulogdpkt {
	counter logged {}
	chain out {
		type filter hook output priority 0;
		ip daddr %s udp dport 30000-39999 counter name "logged" log group 1
	}
}`, p.B4))
	p.Nft(t, p.B, `table inet ulogdqueuedrop {
	chain in { type filter hook input priority 0; udp dport 30000-39999 drop; }
}`)
	q.col = newKeyCollector(t, p, destPort)
	if err := InNetns(p.A, func() (err error) {
		q.sock, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.A4, 0)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.sock.Close() })
	return q
}

func (q *queueTest) received() []int { return q.col.received() }

// send sends one datagram to each dest port from..to-1, pausing 10 ms
// after every burst datagrams (burst 50: 5000 a second); burst 0 sends as
// fast as the socket takes them.
func (q *queueTest) send(from, to, burst int) {
	for port := from; port < to; port++ {
		if _, err := q.sock.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(q.p.B4, uint16(port))); err != nil {
			q.t.Fatal(err)
		}
		if burst > 0 && (port-from+1)%burst == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// config writes the daemon's config: NFLOG → BASE → JSON over TCP to the
// collector, with more lines for [log1] and [json1].
func (q *queueTest) config(nflog, json string) DaemonSpec {
	logfile := filepath.Join(q.dir, "ulogd.log")
	conf := WriteConfig(q.t, filepath.Join(q.dir, "ulogd.conf"), fmt.Sprintf(
		"[global]\nlogfile=%q\nloglevel=1\nstack=log1:NFLOG,base1:BASE,json1:JSON\n\n[log1]\ngroup=1\n%s\n"+
			"[json1]\nmode=\"tcp\"\nhost=\"127.0.0.1\"\nport=\"%d\"\ntimestamp=0\n%s",
		logfile, nflog, q.col.Port(), json))
	return DaemonSpec{Name: "ours", Binary: OurBinary(q.t), Netns: q.p.A, Config: conf, Logfile: logfile}
}

// wantInOrder checks that the collector got the records of dest ports
// from, from+1, … once each, in order (n of them when n ≥ 0).
func (q *queueTest) wantInOrder(from, n int) {
	q.t.Helper()
	wantInOrder(q.t, q.received(), from, n)
}

// wantInOrder checks that got is from, from+1, … (n of them when n ≥ 0).
func wantInOrder(t *testing.T, got []int, from, n int) {
	t.Helper()
	if n >= 0 && len(got) != n {
		t.Fatalf("%d records received, want %d", len(got), n)
	}
	for i, k := range got {
		if k != from+i {
			t.Fatalf("record %d is %d, want %d (lost, repeated or out of order)", i, k, from+i)
		}
	}
}

// TestJSONSpoolAcrossOutageAndRestart: NFLOG packets to JSON over TCP
// with overflow=spool. The collector goes down; the records logged
// meanwhile are spooled; the daemon is stopped with SIGTERM and started
// again while the collector is still down; once it is back, every record
// arrives exactly once and in order (docs/compat.md J8).
func TestJSONSpoolAcrossOutageAndRestart(t *testing.T) {
	t.Parallel()
	q := newQueueTest(t)
	const base, n = 30000, 600 // dest ports base..base+3n-1, one packet each
	spool := filepath.Join(q.dir, "spool")
	spec := q.config("", fmt.Sprintf("queue_records=32\noverflow=\"spool\"\nspool_dir=%q\n", spool))
	d := StartDaemon(t, spec)

	q.send(base, base+n, 50)
	WaitFor(t, linesTimeout, "the first records at the collector", func() bool { return len(q.received()) == n })
	q.col.Down()
	q.send(base+n, base+2*n, 50)
	// Every packet of the outage reached the sink (spooled) before the stop.
	allIn := regexp.MustCompile(fmt.Sprintf(`instance=json1 plugin=JSON received=%d `, 2*n))
	WaitFor(t, linesTimeout, "the sink to have every record", func() bool {
		d.Signal(t, syscall.SIGUSR1)
		time.Sleep(50 * time.Millisecond)
		b, _ := os.ReadFile(spec.Logfile)
		return allIn.Match(b)
	})
	if _, err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(spool, "*.spool"))
	if len(segs) == 0 {
		t.Fatal("nothing spooled at the stop")
	}

	// The next start, with the collector still down.
	if err := os.Truncate(spec.Logfile, 0); err != nil {
		t.Fatal(err)
	}
	d = StartDaemon(t, spec)
	q.send(base+2*n, base+3*n, 50)
	q.col.Up()
	WaitFor(t, 30*time.Second, "every record at the collector", func() bool { return len(q.received()) >= 3*n })
	if _, err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	q.wantInOrder(base, 3*n)
	b, _ := os.ReadFile(spec.Logfile)
	if !regexp.MustCompile(`instance=json1 plugin=JSON .*written=\d+ dropped=0`).Match(b) {
		t.Errorf("no dropped=0 in the exit counters:\n%s", b)
	}
}

// TestJSONBlockOverrunCountedBySource: overflow=block with the collector
// down: the sink's queue fills, the walk waits, NFLOG's small socket
// buffer overruns, and the kernel's drops are counted as the source's
// lost. Nothing the source read is dropped by the sink: once the
// collector is back, it gets every record the source counted, in order,
// and events + lost is what nft logged.
func TestJSONBlockOverrunCountedBySource(t *testing.T) {
	t.Parallel()
	q := newQueueTest(t)
	const base, first, burst = 30000, 100, 3000
	// (netlink_qthreshold=1: one packet a message, so that the kernel's
	// drops count packets.)
	spec := q.config("netlink_qthreshold=1\nnetlink_socket_buffer_size=8192\nnetlink_socket_buffer_maxsize=0\n",
		"queue_records=16\noverflow=\"block\"\n")
	d := StartDaemon(t, spec)
	// settled waits until the daemon has read every packet nft logged (or
	// counted it lost) and the collector has a record for every event.
	settled := func(what string, want int) {
		t.Helper()
		if logged := NftRuleCounter(t, q.p, q.p.A, "logged"); logged != want {
			t.Fatalf("nft logged %d packets, want %d", logged, want)
		}
		WaitFor(t, 60*time.Second, what, func() bool {
			d.Signal(t, syscall.SIGUSR1)
			time.Sleep(100 * time.Millisecond)
			e, l, ok := lastCounters(t, spec.Logfile)
			return ok && e+l == want && len(q.received()) == e
		})
	}
	q.send(base, base+first, 2) // slowly: the buffer holds few packets
	settled("the first records at the collector", first)
	q.col.Down()
	q.send(base+first, base+first+burst, 0)
	q.col.Up()
	settled("every logged packet read or counted lost, every event at the collector", first+burst)
	if _, err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	events, lost, _ := lastCounters(t, spec.Logfile)
	logged := first + burst
	t.Logf("nft logged %d; NFLOG events=%d lost=%d; %d records at the collector", logged, events, lost, len(q.received()))
	if lost == 0 {
		t.Errorf("lost=0: a blocked sink and an 8 KiB buffer lost nothing of a burst of %d?", burst)
	}
	if events+lost != logged {
		t.Errorf("events %d + lost %d != %d logged", events, lost, logged)
	}
	got := q.received()
	if len(got) != events {
		t.Errorf("%d records at the collector, %d events", len(got), events)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("port %d after %d", got[i], got[i-1])
		}
	}
	b, _ := os.ReadFile(spec.Logfile)
	if !regexp.MustCompile(`instance=json1 plugin=JSON .*dropped=0`).Match(b) {
		t.Errorf("the sink dropped records under block:\n%s", b)
	}
}
