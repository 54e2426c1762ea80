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

// TestJSONSpoolAcrossOutageAndRestart: NFLOG packets to JSON over TCP
// with overflow=spool. The collector goes down; the records logged
// meanwhile are spooled; the daemon is stopped with SIGTERM and started
// again while the collector is still down; once it is back, every record
// arrives exactly once and in order (docs/compat.md J8).
func TestJSONSpoolAcrossOutageAndRestart(t *testing.T) {
	t.Parallel()
	p := NewNSPair(t, NSOptions{})
	const base, n = 30000, 600 // dest ports base..base+3n-1, one packet each
	p.Nft(t, p.A, fmt.Sprintf(`table inet ulogdspool {
	chain out {
		type filter hook output priority 0;
		ip daddr %s udp dport %d-%d log group 1
	}
}`, p.B4, base, base+3*n-1))
	p.Nft(t, p.B, `table inet ulogdspooldrop {
	chain in { type filter hook input priority 0; udp dport 30000-40000 drop; }
}`)
	var (
		mu    sync.Mutex
		ports []int // the dest_port of every record, in order
	)
	col := testutil.NewCollector(t, "127.0.0.1:0", func(addr string) (ln net.Listener, err error) {
		err = InNetns(p.A, func() error {
			ln, err = net.Listen("tcp", addr)
			return err
		})
		return ln, err
	}, func(l []byte) {
		if m := destPortRE.FindSubmatch(l); m != nil {
			p, _ := strconv.Atoi(string(m[1]))
			mu.Lock()
			ports = append(ports, p)
			mu.Unlock()
		}
	})
	received := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), ports...)
	}

	// One socket in A sends every datagram.
	var sock *net.UDPConn
	if err := InNetns(p.A, func() (err error) {
		sock, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.A4, 0)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	send := func(from, to int) {
		for port := from; port < to; port++ {
			if _, err := sock.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(p.B4, uint16(port))); err != nil {
				t.Fatal(err)
			}
			if port%50 == 0 {
				time.Sleep(10 * time.Millisecond) // 5000 a second
			}
		}
	}

	ours := OurBinary(t)
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	logfile := filepath.Join(dir, "ulogd.log")
	conf := WriteConfig(t, filepath.Join(dir, "ulogd.conf"), fmt.Sprintf(
		"[global]\nlogfile=%q\nloglevel=1\nstack=log1:NFLOG,base1:BASE,json1:JSON\n\n[log1]\ngroup=1\n\n"+
			"[json1]\nmode=\"tcp\"\nhost=\"127.0.0.1\"\nport=\"%d\"\ntimestamp=0\nqueue_records=32\n"+
			"overflow=\"spool\"\nspool_dir=%q\n", logfile, col.Port(), spool))
	spec := DaemonSpec{Name: "ours", Binary: ours, Netns: p.A, Config: conf, Logfile: logfile}
	d := StartDaemon(t, spec)

	send(base, base+n)
	WaitFor(t, linesTimeout, "the first records at the collector", func() bool { return len(received()) == n })
	col.Down()
	send(base+n, base+2*n)
	// Every packet of the outage reached the sink (spooled) before the stop.
	allIn := regexp.MustCompile(fmt.Sprintf(`instance=json1 plugin=JSON received=%d `, 2*n))
	WaitFor(t, linesTimeout, "the sink to have every record", func() bool {
		d.Signal(t, syscall.SIGUSR1)
		time.Sleep(50 * time.Millisecond)
		b, _ := os.ReadFile(logfile)
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
	if err := os.Truncate(logfile, 0); err != nil {
		t.Fatal(err)
	}
	d = StartDaemon(t, spec)
	send(base+2*n, base+3*n)
	col.Up()
	WaitFor(t, 30*time.Second, "every record at the collector", func() bool { return len(received()) >= 3*n })
	if _, err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	got := received()
	if len(got) != 3*n {
		t.Fatalf("%d records received, want %d", len(got), 3*n)
	}
	for i, port := range got {
		if port != base+i {
			t.Fatalf("record %d is for port %d, want %d (lost, repeated or out of order)", i, port, base+i)
		}
	}
	b, _ := os.ReadFile(logfile)
	if !regexp.MustCompile(`instance=json1 plugin=JSON .*written=\d+ dropped=0`).Match(b) {
		t.Errorf("no dropped=0 in the exit counters:\n%s", b)
	}
}
