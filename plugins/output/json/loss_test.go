package json

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

// TestTCPLossCountedWhenCollectorDies: a collector that stops reading and
// then resets the connection. The records its kernel had (acknowledged)
// are written; the ones still in this host's send queue are lost with the
// connection, and counted as dropped (they used to vanish uncounted).
func TestTCPLossCountedWhenCollectorDies(t *testing.T) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		_ = c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
		return err
	}}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	d := newDirect(t, cfgWith(func(c *Config) { c.Mode = "tcp"; c.Port = strconv.Itoa(port); c.Timestamp = 0 }), seqKeys)
	shortBackoff(d)
	if err := d.s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := conn.(*net.TCPConn)
	// Equal-length records: seq has seven digits.
	const total = 400
	for i := range total {
		d.send(t, 1000000+i)
	}
	size := len(d.s.scratch)
	// Wait until nothing moves any more: the collector's window is shut.
	unread := func() int {
		rc, _ := c.SyscallConn()
		n := -1
		_ = rc.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
		return n
	}
	last, lastDepth, still := -1, -1, 0
	testutil.WaitFor(t, 10*time.Second, "the flow to stop", func() bool {
		n, dep := unread(), d.s.q.Depth()
		if n == last && dep == lastDepth {
			still++
		} else {
			still = 0
		}
		last, lastDepth = n, dep
		return still >= 10
	})
	inPeer := last / size
	handed := total - lastDepth // records written into the connection
	if handed <= inPeer {
		t.Fatalf("the send queue holds nothing (%d records handed, %d at the peer): the test proves nothing", handed, inPeer)
	}
	// The collector dies with unread data: its kernel resets (and nothing
	// listens any more).
	ln.Close()
	_ = c.SetLinger(0)
	c.Close()
	testutil.WaitFor(t, 10*time.Second, "the writer to notice the reset", func() bool { return !d.s.connected() })
	if w, dr := d.s.Written(), d.s.Dropped(); w != uint64(inPeer) || dr != uint64(handed-inPeer) {
		t.Errorf("written %d, dropped %d; want %d (in the collector's kernel) and %d (lost unsent)",
			w, dr, inPeer, handed-inPeer)
	}
	start := time.Now()
	d.s.Stop(t.Context())
	t.Logf("stop %v; %d records at the peer, %d lost with the connection, %d left in the queue",
		time.Since(start), inPeer, handed-inPeer, lastDepth)
	if st := d.s.q.Stats(); st.Written+st.Dropped != total {
		t.Errorf("after Stop: %+v", st)
	}
}
