package e2e

// MYSQL fault tests on a real MariaDB: the server restarted while flows
// arrive (no row lost), a queue too small for the outage (rows lost =
// the drop counter), and SIGTERM with the server away (bounded exit,
// every row accounted for).

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/testdb"
)

// Destination ports of the load's flows (one flow per port).
const (
	loadPortFirst = 10000
	loadPortLast  = 59999
)

// flowLoadNS is a namespace pair whose A tracks connections and counts
// the load's new flows in counter "flows" of table inet ulogdload; B
// drops the load silently.
func flowLoadNS(t *testing.T) *NSPair {
	t.Helper()
	p := NewNSPair(t, NSOptions{Conntrack: true, Accounting: true, Timestamps: true})
	p.Nft(t, p.A, fmt.Sprintf(`table inet ulogdload {
	counter flows {
	}
	chain out {
		type filter hook output priority 0;
		udp dport %d-%d ct state new counter name "flows"
	}
}`, loadPortFirst, loadPortLast))
	p.Nft(t, p.B, fmt.Sprintf(`table inet ulogdload {
	chain in {
		type filter hook input priority 0;
		udp dport %d-%d drop
	}
}`, loadPortFirst, loadPortLast))
	return p
}

// flowLoad sends one UDP datagram per flow from A to B at rate flows/s
// for n flows (each to its own destination port, cycling), and flushes
// A's conntrack table every flushEvery so that every flow gets its
// DESTROY soon and the table stays small. It runs in the background; the
// channel gets its result when the n flows are sent.
func flowLoad(p *NSPair, rate, n int) <-chan error {
	const flushEvery = 500 * time.Millisecond
	done := make(chan error, 1)
	go func() {
		done <- InNetns(p.A, func() error {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.A4, 40000)))
			if err != nil {
				return err
			}
			defer c.Close()
			start := time.Now()
			lastFlush := start
			payload := []byte("load")
			for i := range n {
				due := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				}
				port := loadPortFirst + i%(loadPortLast-loadPortFirst+1)
				dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.B4, uint16(port)))
				if _, err := c.WriteToUDP(payload, dst); err != nil {
					return err
				}
				if time.Since(lastFlush) >= flushEvery {
					lastFlush = time.Now()
					if out, err := runCmd(3*commandTimeout, "conntrack", "-F"); err != nil { // slow on a busy host
						return fmt.Errorf("conntrack -F: %v %s", err, out)
					}
				}
			}
			return nil
		})
	}()
	return done
}

// flowSinkConfig is NFCT (event mode, events of mask: 5 is NEW and
// DESTROY) → IP2BIN → MYSQL INSERT_CT into db, with more MYSQL options.
func flowSinkConfig(logfile, db string, mask int, extra ...string) string {
	return fmt.Sprintf(`[global]
logfile=%q
loglevel=1
stack=ct1:NFCT,ip2bin1:IP2BIN,my1:MYSQL

[ct1]
hash_enable=0
event_mask=%d

%s`, logfile, mask, mysqlSection("my1", db, "conntrack", "INSERT_CT", extra...))
}

// waitEventsRead waits until NFCT (ct1) has read n events: each is then
// queued or dropped by the sink. It asks for the counters with SIGUSR1.
func waitEventsRead(t *testing.T, d *Daemon, logfile string, n int) {
	t.Helper()
	WaitFor(t, linesTimeout, "NFCT to read every event", func() bool {
		d.Signal(t, syscall.SIGUSR1)
		got, ok := lastCounter(t, logfile, "ct1", "events")
		return ok && got >= n
	})
}

// startFlowSink starts MariaDB with the full schema in database "ours",
// a load namespace and our daemon writing flows into it (NEW and
// DESTROY) with the given MYSQL options.
func startFlowSink(t *testing.T, extra ...string) (*testdb.MariaDB, *NSPair, *Daemon, string) {
	t.Helper()
	return startFlowSinkMask(t, 5, extra...)
}

// startFlowSinkMask is startFlowSink for the conntrack events of mask.
func startFlowSinkMask(t *testing.T, mask int, extra ...string) (*testdb.MariaDB, *NSPair, *Daemon, string) {
	t.Helper()
	m := startMariaDBWith(t, map[string]string{"ours": mysqlSchemaFull})
	p := flowLoadNS(t)
	dir := t.TempDir()
	logfile := filepath.Join(dir, "ours.log")
	conf := WriteConfig(t, filepath.Join(dir, "ours.conf"), flowSinkConfig(logfile, "ours", mask, extra...))
	d := StartDaemon(t, DaemonSpec{Name: "ours", Binary: OurBinary(t), Netns: p.A, Config: conf, Logfile: logfile})
	return m, p, d, logfile
}

// loadRows counts the load's rows in ulog2_ct.
func loadRows(t *testing.T, m *testdb.MariaDB, db string) int {
	t.Helper()
	r := m.Query(t, db, fmt.Sprintf("SELECT count(*) FROM ulog2_ct WHERE orig_l4_dport BETWEEN %d AND %d", loadPortFirst, loadPortLast))
	var n int
	fmt.Sscan(r[0][0], &n)
	return n
}

// TestMySQLRestartNoRowLost: 5000 flows/s for 16 s; MariaDB is stopped
// after 3 s and started again 10 s later. With a queue large enough for
// the outage, the DESTROY event of every flow is a row.
//
// One row per flow: a busy 2-core test machine's MariaDB writes about
// 2500 INSERT_CT rows/s (measured with the mariadb client alone), so the
// 80,000 rows take it half a minute or more after the load; NEW and
// DESTROY rows (twice as many) are the other tests' load and the
// benchmark's.
func TestMySQLRestartNoRowLost(t *testing.T) {
	if testing.Short() {
		t.Skip("16 s of load")
	}
	m, p, d, logfile := startFlowSinkMask(t, 4, "backlog_memcap=268435456", "reconnect=1")

	const rate, seconds = 5000, 16
	load := flowLoad(p, rate, rate*seconds)
	time.Sleep(3 * time.Second) // the outage is timed against the load
	m.Stop(t)
	time.Sleep(10 * time.Second)
	m.Start(t)
	if err := <-load; err != nil {
		t.Fatal(err)
	}
	p.FlushConntrack(t)
	flows := nftCounter(t, p, "ulogdload", "flows")
	if flows < rate*seconds*9/10 {
		t.Fatalf("only %d of %d flows made", flows, rate*seconds)
	}
	mysqlFlowBarrierTimeout(t, p, m, 4*time.Minute, "ours")
	got := loadRows(t, m, "ours")
	if _, err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	lost, dropped := counterOf(t, logfile, "ct1", "lost"), counterOf(t, logfile, "my1", "dropped")
	if got != flows || lost != 0 || dropped != 0 {
		t.Errorf("%d rows for %d flows (want one each); NFCT lost %d, MYSQL dropped %d", got, flows, lost, dropped)
	}
}

// TestMySQLSmallMemcapDropsCounted: the server is away while flows
// arrive, with a queue of 64 KiB: what does not fit is dropped, and the
// rows written plus the drop counter are exactly the events.
func TestMySQLSmallMemcapDropsCounted(t *testing.T) {
	m, p, d, logfile := startFlowSink(t, "backlog_memcap=65536", "reconnect=1")
	m.Stop(t)
	if err := <-flowLoad(p, 2000, 4000); err != nil {
		t.Fatal(err)
	}
	p.FlushConntrack(t)
	flows := nftCounter(t, p, "ulogdload", "flows")
	waitEventsRead(t, d, logfile, 2*flows)
	m.Start(t)
	// No barrier flow: its rows would find the queue still full until
	// the writer reconnects. Wait until the sink has settled every row.
	WaitFor(t, 60*time.Second, "MYSQL to write or drop every row", func() bool {
		d.Signal(t, syscall.SIGUSR1)
		w, ok1 := lastCounter(t, logfile, "my1", "written")
		dr, ok2 := lastCounter(t, logfile, "my1", "dropped")
		return ok1 && ok2 && w+dr >= 2*flows
	})
	got := loadRows(t, m, "ours")
	if _, err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	lost, dropped := counterOf(t, logfile, "ct1", "lost"), counterOf(t, logfile, "my1", "dropped")
	written := counterOf(t, logfile, "my1", "written")
	if dropped == 0 || got == 0 || lost != 0 || got+dropped != 2*flows || got != written {
		t.Errorf("%d rows (written counter %d) + %d dropped, want %d (2 × %d flows) with both > 0; NFCT lost %d",
			got, written, dropped, 2*flows, flows, lost)
	}
}

// TestMySQLStopWithServerAway: SIGTERM while the server is away: the
// daemon exits within its drain bound and counts every queued row as
// dropped.
func TestMySQLStopWithServerAway(t *testing.T) {
	m, p, d, logfile := startFlowSink(t)
	m.Stop(t)
	if err := <-flowLoad(p, 1000, 500); err != nil {
		t.Fatal(err)
	}
	p.FlushConntrack(t)
	flows := nftCounter(t, p, "ulogdload", "flows")
	waitEventsRead(t, d, logfile, 2*flows)
	start := time.Now()
	if _, err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("exit took %v with the server away", took)
	}
	if dropped := counterOf(t, logfile, "my1", "dropped"); dropped != 2*flows {
		t.Errorf("dropped %d at exit, want %d (2 × %d flows, none written)", dropped, 2*flows, flows)
	}
}
