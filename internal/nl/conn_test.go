package nl_test

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ulogd-go/ulogd/internal/netnstest"
	"github.com/ulogd-go/ulogd/internal/nl"
	"golang.org/x/sys/unix"
)

// Conntrack multicast groups (NFNLGRP_CONNTRACK_NEW, _DESTROY).
const groupNew, groupDestroy = 1, 3

func open(t *testing.T, ns *netnstest.NS) *nl.Conn {
	t.Helper()
	c := ns.OpenNetfilter(t)
	return c
}

// udpBurst makes n NEW events (netnstest.NS.UDPBurst).
func udpBurst(t *testing.T, ns *netnstest.NS, first, n int) { ns.UDPBurst(t, first, n) }

// drain reads until nothing arrives for a short while; it returns the number
// of datagrams and of ENOBUFS errors.
func drain(t *testing.T, c *nl.Conn, b *nl.Batch) (n, overruns int) {
	t.Helper()
	for {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		k, err := c.Receive(b)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			c.SetReadDeadline(time.Time{})
			return n, overruns
		case errors.Is(err, nl.ErrNoBuffers):
			overruns++
		case err != nil:
			t.Fatalf("Receive: %v", err)
		}
		for i := range k {
			if b.Truncated(i) {
				t.Errorf("datagram %d truncated", i)
			}
			if pid, groups := b.Sender(i); pid != 0 || groups == 0 {
				t.Errorf("sender pid %d groups %#x, want kernel multicast", pid, groups)
			}
		}
		n += k
	}
}

func TestConnBasics(t *testing.T) {
	ns := netnstest.NewNS(t)
	c := open(t, ns)
	if c.PortID() == 0 {
		t.Error("PortID = 0, want kernel-assigned")
	}
	// SO_RCVBUFFORCE goes beyond rmem_max; the kernel doubles the value.
	const want = 8 << 20
	got, err := c.SetReadBuffer(want)
	if err != nil || got != 2*want {
		t.Errorf("SetReadBuffer(%d) = %d, %v; want %d", want, got, err, 2*want)
	}
	if rb, err := c.ReadBuffer(); err != nil || rb != got {
		t.Errorf("ReadBuffer = %d, %v", rb, err)
	}
	if err := c.SetReliable(true); err != nil {
		t.Error(err)
	}
	if err := c.SetReliable(false); err != nil {
		t.Error(err)
	}
	if err := c.JoinGroups(groupNew, groupDestroy); err != nil {
		t.Error(err)
	}
	if err := c.LeaveGroups(groupDestroy); err != nil {
		t.Error(err)
	}
	if err := c.JoinGroups(1000); err == nil {
		t.Error("JoinGroups(1000) succeeded")
	}
	if err := c.AttachFilter([]unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}); err != nil {
		t.Error(err)
	}
	if err := c.AttachFilter(nil); err != nil {
		t.Error(err)
	}
	if d, err := c.Drops(); err != nil || d != 0 {
		t.Errorf("Drops = %d, %v", d, err)
	}
	// Deadline.
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Receive(nl.NewBatch(1, 0)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Receive with deadline: %v", err)
	}
}

func TestCloseUnblocksReceive(t *testing.T) {
	ns := netnstest.NewNS(t)
	c := open(t, ns)
	errc := make(chan error)
	go func() {
		_, err := c.Receive(nl.NewBatch(4, 0))
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let Receive park on the poller
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, nl.ErrClosed) {
			t.Errorf("Receive after Close = %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Receive")
	}
	if _, err := c.Receive(nl.NewBatch(1, 0)); !errors.Is(err, nl.ErrClosed) {
		t.Errorf("Receive on closed = %v", err)
	}
	if err := c.Send([]byte{}); !errors.Is(err, nl.ErrClosed) {
		t.Errorf("Send on closed = %v", err)
	}
	if err := c.Close(); !errors.Is(err, nl.ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
}

func TestNoBuffers(t *testing.T) {
	ns := netnstest.NewNS(t)
	ns.EnableConntrack(t)
	c := open(t, ns)
	if _, err := c.SetReadBuffer(0); err != nil { // the kernel minimum
		t.Fatal(err)
	}
	if err := c.JoinGroups(groupNew); err != nil {
		t.Fatal(err)
	}
	b := nl.NewBatch(64, nl.EventDatagramSize)
	const burst = 300
	udpBurst(t, ns, 20000, burst)
	drops, err := c.Drops()
	if err != nil || drops == 0 {
		t.Fatalf("Drops = %d, %v; want > 0 after a burst into a tiny buffer", drops, err)
	}
	if _, err := c.Receive(b); !errors.Is(err, nl.ErrNoBuffers) {
		t.Fatalf("first Receive after overrun = %v, want ErrNoBuffers", err)
	}
	n, _ := drain(t, c, b)
	if n == 0 || uint64(n)+drops != burst {
		t.Errorf("received %d + dropped %d, want %d in all", n, drops, burst)
	}
	t.Logf("received %d, dropped %d (ENOBUFS reported once)", n, drops)
	// The socket keeps delivering (with a buffer that holds the next burst).
	if _, err := c.SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	udpBurst(t, ns, 30000, 3)
	if n, overruns := drain(t, c, b); n != 3 || overruns != 0 {
		t.Errorf("after overrun: %d datagrams, %d overruns; want 3, 0", n, overruns)
	}
	// Reliable mode: the kernel reports no ENOBUFS to this socket.
	if err := c.SetReliable(true); err != nil {
		t.Fatal(err)
	}
	udpBurst(t, ns, 40000, burst)
	if n, overruns := drain(t, c, b); n == 0 || overruns != 0 {
		t.Errorf("reliable: %d datagrams, %d overruns; want >0, 0", n, overruns)
	}
}

func TestTruncated(t *testing.T) {
	ns := netnstest.NewNS(t)
	ns.EnableConntrack(t)
	udpBurst(t, ns, 20000, 200)
	c := open(t, ns)
	// A conntrack dump: the kernel packs many entries into each datagram.
	// It sizes later dump datagrams after the largest buffer recvmsg was
	// given (up to 32 KiB): read the first into a big slot, the second into
	// a 4 KiB one.
	req := nl.FinishMsg(append(nl.AppendHeader(nil, 0x101, 0x1|0x300, 1), 0, 0, 0, 0), 0)
	if err := c.Send(req); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Receive(nl.NewBatch(1, nl.DefaultDatagramSize)); err != nil {
		t.Fatal(err)
	}
	b := nl.NewBatch(1, 4096)
	n, err := c.Receive(b)
	if err != nil || n != 1 {
		t.Fatalf("Receive = %d, %v", n, err)
	}
	if !b.Truncated(0) || !errors.Is(b.Err(0), nl.ErrTruncated) || len(b.Datagram(0)) != 4096 {
		t.Errorf("Truncated = %v, Err = %v, len %d; want a flagged 4096-byte datagram", b.Truncated(0), b.Err(0), len(b.Datagram(0)))
	}
	// The walk over the cut datagram fails at the cut, never past it.
	msgs := 0
	for rest := b.Datagram(0); len(rest) > 0; msgs++ {
		var err error
		if _, rest, err = nl.NextMsg(rest); err != nil {
			break
		}
	}
	if msgs == 0 {
		t.Error("no complete message before the cut")
	}
}

func ExampleConn_Receive() {
	c, err := nl.Open(unix.NETLINK_NETFILTER)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.JoinGroups(groupDestroy)
	b := nl.NewBatch(nl.DefaultBatchCount, nl.EventDatagramSize)
	for {
		n, err := c.Receive(b)
		if errors.Is(err, nl.ErrNoBuffers) {
			continue // count the loss, maybe grow the buffer, resync
		}
		if err != nil {
			return
		}
		for i := range n {
			for rest := b.Datagram(i); len(rest) > 0; {
				var m nl.Msg
				if m, rest, err = nl.NextMsg(rest); err != nil {
					break
				}
				_ = m // decode, e.g. with ctnl.Decode
			}
		}
	}
}

// listenNew returns a namespace that tracks connections and a socket in it
// subscribed to its NEW events, with room for a few thousand.
func listenNew(t *testing.T) (*netnstest.NS, *nl.Conn) {
	t.Helper()
	ns := netnstest.NewNS(t)
	ns.EnableConntrack(t)
	c := open(t, ns)
	if _, err := c.SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	if err := c.JoinGroups(groupNew); err != nil {
		t.Fatal(err)
	}
	return ns, c
}

func TestReceiveAllocs(t *testing.T) {
	ns, c := listenNew(t)
	udpBurst(t, ns, 20000, 40)
	b := nl.NewBatch(1, nl.EventDatagramSize)
	if n := testing.AllocsPerRun(20, func() {
		if n, err := c.Receive(b); n != 1 || err != nil {
			t.Fatalf("Receive = %d, %v", n, err)
		}
	}); n != 0 {
		t.Errorf("Receive allocates %v times per call", n)
	}
}

// TestCoalesce checks that, with SetCoalesce, the Wait after a read that
// emptied the socket of several datagrams sleeps for the delay (on
// synctest's clock: exactly) and the next read returns what arrived
// meanwhile in one batch, while a read following a lone datagram reads at
// once.
func TestCoalesce(t *testing.T) {
	ns, c := listenNew(t)
	// A buffer so large that the delay is never cut short for it.
	if _, err := c.SetReadBuffer(64 << 20); err != nil {
		t.Fatal(err)
	}
	const delay = 300 * time.Millisecond
	c.SetCoalesce(delay)
	b := nl.NewBatch(64, nl.EventDatagramSize)
	synctest.Test(t, func(t *testing.T) {
		read := func(want int) {
			t.Helper()
			if n, err := c.TryReceive(b); n != want || err != nil {
				t.Fatalf("TryReceive = %d, %v; want %d datagrams", n, err, want)
			}
		}
		drained := func() {
			t.Helper()
			if n, err := c.TryReceive(b); n != 0 || err != nl.ErrDrained {
				t.Fatalf("TryReceive = %d, %v; want ErrDrained", n, err)
			}
		}
		sleep := func() {
			t.Helper()
			start := time.Now()
			if err := c.Wait(); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took != delay {
				t.Errorf("Wait slept %v, want the delay %v", took, delay)
			}
		}
		udpBurst(t, ns, 20000, 3)
		read(3)
		// 3 events are far from filling a quarter of the buffer in the
		// delay, which is therefore not cut short. Nor by the ramp: the
		// sleeps are taken as grown to the full delay already.
		nl.SetLastSleep(c, delay)
		// Events that arrive one by one during the delay are read together.
		go func() {
			for i := range 5 {
				time.Sleep(20 * time.Millisecond)
				udpBurst(t, ns, 21000+i, 1)
			}
		}()
		drained()
		sleep()
		read(5)
		// After that read the socket is empty: the next sleep finds
		// nothing, and the read after it reports that the socket is to be
		// waited for.
		drained()
		sleep()
		drained()
		// A lone datagram is not a stream: the read after it reads at once.
		udpBurst(t, ns, 22000, 1)
		read(1)
		udpBurst(t, ns, 23000, 2)
		read(2)
	})
}

// TestCoalesceBoundedByBuffer checks that the coalescing delay never lets a
// stream overflow the receive buffer: 2000 events at about 25k/s would need
// 2.6 MB in one second, the delay asked for, and the buffer holds 2 MB
// (1 MiB asked, doubled by the kernel). Cut to what a quarter of the buffer
// holds at that rate, the sleeps leave the events room to spare.
func TestCoalesceBoundedByBuffer(t *testing.T) {
	ns, c := listenNew(t)
	c.SetCoalesce(time.Second)
	b := nl.NewBatch(64, nl.EventDatagramSize)
	const bursts, per = 40, 50
	go func() {
		for i := range bursts {
			udpBurst(t, ns, 20000+i*per, per)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	got, overruns := 0, 0
	start := time.Now()
read:
	for got < bursts*per {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, err := c.Receive(b)
		switch {
		case errors.Is(err, nl.ErrNoBuffers):
			overruns++
		case errors.Is(err, os.ErrDeadlineExceeded):
			break read // lost events never come
		case err != nil:
			t.Fatalf("Receive after %d events: %v", got, err)
		}
		got += n
	}
	drops, err := c.Drops()
	if err != nil {
		t.Fatal(err)
	}
	if got != bursts*per || overruns != 0 || drops != 0 {
		t.Errorf("received %d of %d events, %d ENOBUFS, %d dropped: the delay overran the buffer",
			got, bursts*per, overruns, drops)
	}
	// The stream took about 100 ms; one full delay alone would be 1 s.
	if took := time.Since(start); took > 700*time.Millisecond {
		t.Errorf("took %v: the delay was not cut short", took)
	}
}

// TestForeignDropped checks that Receive never returns a datagram that a
// process sent to the socket, and counts it: alone in the socket, such
// datagrams are read and dropped and Receive goes on waiting; before a
// kernel event, only the event is returned.
func TestForeignDropped(t *testing.T) {
	ns, c := listenNew(t)
	forged := nl.FinishMsg(append(nl.AppendHeader(nil, 0x100, 0, 0), 2, 0, 0, 0), 0)
	b := nl.NewBatch(64, nl.EventDatagramSize)

	ns.SendFromUser(t, unix.NETLINK_NETFILTER, c.PortID(), forged, forged)
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Receive(b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Receive with only forged datagrams = %d, %v; want the deadline", n, err)
	}
	if k, pid := b.Foreign(); k != 2 || pid == 0 {
		t.Errorf("Foreign = %d from port %d, want 2 from a process", k, pid)
	}

	ns.SendFromUser(t, unix.NETLINK_NETFILTER, c.PortID(), forged)
	udpBurst(t, ns, 20000, 1)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Receive(b)
	if err != nil || n != 1 {
		t.Fatalf("Receive = %d, %v; want the kernel's event alone", n, err)
	}
	if pid, groups := b.Sender(0); pid != 0 || groups == 0 {
		t.Errorf("returned datagram from port %d, groups %#x; want the kernel's multicast", pid, groups)
	}
	if k, _ := b.Foreign(); k != 1 {
		t.Errorf("Foreign = %d, want 1", k)
	}
}

// TestDrainedBeforeWaiting checks that TryReceive reports ErrDrained when
// the socket is empty and before a coalescing sleep, never while datagrams
// are queued, and that the Wait after a coalescing ErrDrained sleeps the
// delay (on synctest's clock: exactly) and leaves the datagrams sent
// meanwhile to the next TryReceive.
func TestDrainedBeforeWaiting(t *testing.T) {
	ns, c := listenNew(t)
	b := nl.NewBatch(64, nl.EventDatagramSize)
	udpBurst(t, ns, 20000, 3)
	if n, err := c.TryReceive(b); n != 3 || err != nil {
		t.Fatalf("TryReceive with 3 queued = %d, %v; want 3", n, err)
	}
	if n, err := c.TryReceive(b); n != 0 || err != nl.ErrDrained {
		t.Fatalf("TryReceive on an empty socket = %d, %v; want ErrDrained", n, err)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if err := c.Wait(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Wait on an empty socket = %v; want the deadline", err)
	}
	c.SetReadDeadline(time.Time{})

	const delay = 200 * time.Millisecond
	c.SetCoalesce(delay)
	synctest.Test(t, func(t *testing.T) {
		nl.SetLastSleep(c, delay) // no ramp
		udpBurst(t, ns, 21000, 3)
		if n, err := c.TryReceive(b); n != 3 || err != nil {
			t.Fatalf("TryReceive with 3 queued = %d, %v; want 3", n, err)
		}
		// The socket was emptied of several datagrams: the next call
		// reports the drain without reading, although one is queued.
		udpBurst(t, ns, 22000, 1)
		if n, err := c.TryReceive(b); n != 0 || err != nl.ErrDrained {
			t.Fatalf("TryReceive after emptying the socket = %d, %v; want ErrDrained", n, err)
		}
		start := time.Now()
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != delay {
			t.Errorf("Wait slept %v, want the coalescing delay %v", took, delay)
		}
		udpBurst(t, ns, 23000, 1)
		if n, err := c.TryReceive(b); n != 2 || err != nil {
			t.Fatalf("TryReceive after the sleep = %d, %v; want the 2 sent before and during it", n, err)
		}
	})
}
