package ipfixtest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

// Listener is an IPFIX collector of our own on 127.0.0.1 (UDP, or TCP for
// what nfcapd and nfacctd do not take): it keeps every message and decodes
// it, one Decoder per transport session (a UDP peer or a TCP connection).
type Listener struct {
	network string
	addr    string
	markPEN uint32 // enterprise number of the mark element

	mu       sync.Mutex
	raw      [][]byte
	msgs     []*Message
	flows    int
	errs     []error
	conns    int
	closer   io.Closer
	sessions map[string]*Decoder
	open     []net.Conn // TCP connections being read
	stalled  bool       // TCP: accept, then read nothing
	wg       sync.WaitGroup
}

// Listen starts a listener on 127.0.0.1 (network "udp" or "tcp") or ::1
// ("udp6", "tcp6") with a free port, in netns ("" for the current
// namespace); it is closed at cleanup.
func Listen(t testing.TB, netns, network string) *Listener {
	t.Helper()
	l := &Listener{network: network, sessions: map[string]*Decoder{}}
	var err error
	var pc net.PacketConn
	var ln net.Listener
	open := func() {
		switch network {
		case "udp":
			pc, err = net.ListenPacket("udp4", "127.0.0.1:0")
		case "udp6":
			pc, err = net.ListenPacket("udp6", "[::1]:0")
		case "tcp":
			ln, err = net.Listen("tcp4", "127.0.0.1:0")
		case "tcp6":
			ln, err = net.Listen("tcp6", "[::1]:0")
		default:
			err = fmt.Errorf("network %q: udp, udp6, tcp or tcp6", network)
		}
	}
	inNetns(t, netns, open)
	if err != nil {
		t.Fatal(err)
	}
	if pc != nil {
		l.addr, l.closer = pc.LocalAddr().String(), pc
		l.wg.Add(1)
		go l.readUDP(pc)
	} else {
		l.addr, l.closer = ln.Addr().String(), ln
		l.wg.Add(1)
		go l.accept(ln)
	}
	t.Cleanup(l.Close)
	return l
}

// SetMarkPEN sets the enterprise number of the mark element, for the
// sessions that start afterwards.
func (l *Listener) SetMarkPEN(pen uint32) {
	l.mu.Lock()
	l.markPEN = pen
	l.mu.Unlock()
}

// Addr is the listener's address.
func (l *Listener) Addr() string { return l.addr }

// Close stops the listener (and its TCP connections' readers).
func (l *Listener) Close() {
	l.DropConnections()
	l.closer.Close()
	l.mu.Lock()
	l.closer = io.NopCloser(nil)
	l.mu.Unlock()
}

func (l *Listener) readUDP(pc net.PacketConn) {
	defer l.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		l.take(from.String(), append([]byte(nil), buf[:n]...))
	}
}

func (l *Listener) accept(ln net.Listener) {
	defer l.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		l.conns++
		session := fmt.Sprintf("tcp#%d", l.conns)
		l.open = append(l.open, c)
		stalled := l.stalled
		l.mu.Unlock()
		if stalled {
			continue
		}
		go func() {
			defer c.Close()
			for {
				var h [4]byte
				if _, err := io.ReadFull(c, h[:]); err != nil {
					return
				}
				n := int(binary.BigEndian.Uint16(h[2:]))
				if n < 16 {
					l.fail(fmt.Errorf("%s: message length %d", session, n))
					return
				}
				m := make([]byte, n)
				copy(m, h[:])
				if _, err := io.ReadFull(c, m[4:]); err != nil {
					return
				}
				l.take(session, m)
			}
		}()
	}
}

func (l *Listener) fail(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

func (l *Listener) take(session string, m []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.sessions[session]
	if d == nil {
		d = NewDecoder(l.markPEN)
		l.sessions[session] = d
	}
	l.raw = append(l.raw, m)
	msg, err := d.Decode(m)
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("%s message %d: %w", session, len(l.raw), err))
		return
	}
	msg.Session = session
	l.msgs = append(l.msgs, msg)
	l.flows += len(msg.Records)
}

// DropConnections closes the TCP connections accepted so far (a
// collector restart, seen from the exporter).
func (l *Listener) DropConnections() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.open {
		c.Close()
	}
	l.open = nil
}

// Stall makes the listener accept TCP connections and read nothing from
// them (a collector that hangs): the exporter's socket buffers fill.
func (l *Listener) Stall() {
	l.mu.Lock()
	l.stalled = true
	l.mu.Unlock()
}

// Connections is how many TCP connections were accepted.
func (l *Listener) Connections() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns
}

// Records is how many data records arrived so far.
func (l *Listener) Records() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.flows
}

// WaitRecords waits (bounded) until at least n data records arrived, and
// fails t on any decoding error.
func (l *Listener) WaitRecords(t testing.TB, n int) {
	t.Helper()
	testutil.WaitFor(t, rowsTimeout, fmt.Sprintf("%d records at %s (have %d)", n, l.addr, l.Records()),
		func() bool { return l.Records() >= n })
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
}

// WaitConnections waits (bounded) until n TCP connections were accepted.
func (l *Listener) WaitConnections(t testing.TB, n int) {
	t.Helper()
	testutil.WaitFor(t, rowsTimeout, fmt.Sprintf("%d connections at %s", n, l.addr),
		func() bool { return l.Connections() >= n })
}

// Err returns the first decoding error, if any.
func (l *Listener) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) > 0 {
		return l.errs[0]
	}
	return nil
}

// Raw returns a copy of the list of messages received, in order.
func (l *Listener) Raw() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.raw...)
}

// Messages returns the decoded messages, in order.
func (l *Listener) Messages() []*Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Message(nil), l.msgs...)
}
