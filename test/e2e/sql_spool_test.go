package e2e

// The SQL sinks' queue options on a real PostgreSQL: overflow=spool keeps
// every row across an outage and a restart of the daemon; overflow=drop
// with a small queue_records counts exactly what it drops.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/testpg"
)

// sqlQueueTest is our daemon writing the NEW events of the load's flows
// (flowLoadNS) through IP2STR into PGSQL's ulog2_ct (flat schema) of a
// private PostgreSQL, with more PGSQL options.
type sqlQueueTest struct {
	t    *testing.T
	s    *testpg.Server
	p    *NSPair
	spec DaemonSpec
}

func newSQLQueueTest(t *testing.T, pgOptions string) *sqlQueueTest {
	t.Helper()
	RequireRoot(t)
	RequireTools(t, baseTools...)
	q := &sqlQueueTest{t: t, s: testpg.Start(t), p: flowLoadNS(t)}
	q.s.CreateDB("flows", pgFlatSchema)
	dir := t.TempDir()
	logfile := filepath.Join(dir, "ours.log")
	conf := WriteConfig(t, filepath.Join(dir, "ours.conf"), pgFlowConfig(logfile, q.s.Dir, pgOptions))
	q.spec = DaemonSpec{Name: "ours", Binary: OurBinary(t), Netns: q.p.A, Config: conf, Logfile: logfile}
	return q
}

// flows makes one new UDP flow from A to B for each destination port
// from..to-1 (within the load's ports), at 2000 a second, and returns
// once they are sent.
func (q *sqlQueueTest) flows(from, to int) {
	q.t.Helper()
	done := make(chan error, 1)
	go func() { // (in its own thread: pg_ctl must not start in A)
		done <- InNetns(q.p.A, func() error {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(q.p.A4, 40001)))
			if err != nil {
				return err
			}
			defer c.Close()
			start := time.Now()
			for port := from; port < to; port++ {
				if d := time.Until(start.Add(time.Duration(port-from) * time.Second / 2000)); d > 0 {
					time.Sleep(d)
				}
				if _, err := c.WriteToUDP([]byte("q"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(q.p.B4, uint16(port)))); err != nil {
					return err
				}
			}
			return nil
		})
	}()
	if err := <-done; err != nil {
		q.t.Fatal(err)
	}
}

// waitReceived waits until PGSQL (pg1) has received n rows since the
// daemon started: each is then queued, spooled or dropped.
func (q *sqlQueueTest) waitReceived(d *Daemon, n int) {
	q.t.Helper()
	WaitFor(q.t, linesTimeout, fmt.Sprintf("PGSQL to receive %d rows", n), func() bool {
		d.Signal(q.t, syscall.SIGUSR1)
		got, ok := lastCounter(q.t, q.spec.Logfile, "pg1", "received")
		return ok && got >= n
	})
}

// rows returns the load's rows in ulog2_ct and their distinct
// destination ports.
func (q *sqlQueueTest) rows() (rows, distinct int) {
	q.t.Helper()
	c := q.s.Connect("flows")
	err := c.QueryRow(context.Background(), fmt.Sprintf(
		"select count(*), count(distinct orig_l4_dport) from ulog2_ct where orig_ip_protocol = 17 and orig_l4_dport between %d and %d",
		loadPortFirst, loadPortLast)).Scan(&rows, &distinct)
	if err != nil {
		q.t.Fatal(err)
	}
	return rows, distinct
}

// stop stops the daemon and returns the exit counters of ct1 (lost) and
// pg1 (written, dropped).
func (q *sqlQueueTest) stop(d *Daemon) (lost, written, dropped int) {
	q.t.Helper()
	if _, err := d.Stop(); err != nil {
		q.t.Fatal(err)
	}
	c := exitCounters(q.t, q.spec.Logfile)
	return c["ct1"][1], c["pg1"][1], c["pg1"][2]
}

func (q *sqlQueueTest) dumpOnFailure() {
	if !q.t.Failed() {
		return
	}
	for _, l := range ReadLines(q.t, q.spec.Logfile) {
		if strings.Contains(l, "PGSQL") || strings.Contains(l, "counters") {
			q.t.Log(l)
		}
	}
}

// TestSQLSpoolAcrossOutageAndRestart: PGSQL with overflow=spool and a
// queue of 64 rows. PostgreSQL is stopped; the rows of the flows made
// meanwhile go to the spool; the daemon is stopped with SIGTERM and
// started again (the server still away: this run cannot read the table's
// columns, the spool's rows must still decode), more flows come, the
// server comes back, and every flow the kernel made is one row, none
// dropped (docs/compat.md S13).
func TestSQLSpoolAcrossOutageAndRestart(t *testing.T) {
	spool := filepath.Join(t.TempDir(), "spool")
	q := newSQLQueueTest(t, fmt.Sprintf("queue_records=64\noverflow=\"spool\"\nspool_dir=%q\n", spool))
	defer q.dumpOnFailure()
	const first, outage, restarted = 500, 3000, 1000
	port := loadPortFirst
	d := StartDaemon(t, q.spec)
	q.flows(port, port+first)
	port += first
	WaitFor(t, 20*time.Second, "the first rows in the table", func() bool { r, _ := q.rows(); return r == first })

	q.s.Stop()
	q.flows(port, port+outage)
	port += outage
	q.waitReceived(d, first+outage)
	lost, written, dropped := q.stop(d)
	if lost != 0 || written != first || dropped != 0 {
		t.Fatalf("first run: NFCT lost %d, PGSQL written %d dropped %d; want 0, %d, 0", lost, written, dropped, first)
	}
	segs, _ := filepath.Glob(filepath.Join(spool, "*.spool"))
	if len(segs) == 0 {
		t.Fatal("nothing spooled at the stop")
	}

	if err := os.Truncate(q.spec.Logfile, 0); err != nil {
		t.Fatal(err)
	}
	d = StartDaemon(t, q.spec)
	q.flows(port, port+restarted)
	port += restarted
	q.waitReceived(d, restarted)
	q.s.Start()
	flows := nftCounter(t, q.p, "ulogdload", "flows")
	if flows != port-loadPortFirst {
		t.Fatalf("nft counted %d new flows, %d made", flows, port-loadPortFirst)
	}
	WaitFor(t, 30*time.Second, "every flow in the table", func() bool { r, _ := q.rows(); return r >= flows })
	lost, written, dropped = q.stop(d)
	rows, distinct := q.rows()
	t.Logf("flows %d (nft); second run: NFCT lost %d, PGSQL written %d dropped %d; rows %d (distinct %d)",
		flows, lost, written, dropped, rows, distinct)
	if rows != flows || distinct != flows {
		t.Errorf("%d rows (%d distinct) for %d flows", rows, distinct, flows)
	}
	if lost != 0 || dropped != 0 || written != outage+restarted {
		t.Errorf("second run: NFCT lost %d, PGSQL written %d dropped %d; want 0, %d, 0", lost, written, dropped, outage+restarted)
	}
}

// TestSQLQueueRecordsDropCounted: PGSQL with overflow=drop and
// queue_records=300 while PostgreSQL is away: the rows that do not fit
// are dropped, and rows in the table plus the drop counter are exactly
// the flows the kernel made.
func TestSQLQueueRecordsDropCounted(t *testing.T) {
	q := newSQLQueueTest(t, "queue_records=300\noverflow=\"drop\"\n")
	defer q.dumpOnFailure()
	const n = 2000
	d := StartDaemon(t, q.spec)
	q.s.Stop()
	q.flows(loadPortFirst, loadPortFirst+n)
	q.waitReceived(d, n)
	q.s.Start()
	flows := nftCounter(t, q.p, "ulogdload", "flows")
	WaitFor(t, 30*time.Second, "PGSQL to write or drop every row", func() bool {
		d.Signal(t, syscall.SIGUSR1)
		w, ok1 := lastCounter(t, q.spec.Logfile, "pg1", "written")
		dr, ok2 := lastCounter(t, q.spec.Logfile, "pg1", "dropped")
		return ok1 && ok2 && w+dr >= flows
	})
	lost, written, dropped := q.stop(d)
	rows, distinct := q.rows()
	t.Logf("flows %d (nft), NFCT lost %d, PGSQL written %d dropped %d, rows %d (distinct %d)",
		flows, lost, written, dropped, rows, distinct)
	if flows != n || lost != 0 {
		t.Fatalf("nft counted %d flows of %d, NFCT lost %d", flows, n, lost)
	}
	if rows != distinct || rows != written || rows+dropped != flows {
		t.Errorf("rows %d (distinct %d, written %d) + dropped %d != %d flows", rows, distinct, written, dropped, flows)
	}
	if dropped < n-300-64 || rows < 300 {
		t.Errorf("dropped %d, rows %d: a queue of 300 records during an outage of %d rows", dropped, rows, n)
	}
}
