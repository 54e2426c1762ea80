package testutil

import (
	"bufio"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Collector is a TCP collector of lines that a test takes down and brings
// back on the same address: the peer of a network sink during an outage.
type Collector struct {
	t      testing.TB
	addr   string
	listen func(addr string) (net.Listener, error)
	onLine func(line []byte)

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
	wg    sync.WaitGroup
}

// NewCollector starts a collector listening on addr ("127.0.0.1:0") with
// listen (nil: net.Listen on "tcp"), which calls onLine for every line it
// reads (without its newline; one call at a time). It is taken down at
// the end of the test.
func NewCollector(t testing.TB, addr string, listen func(addr string) (net.Listener, error), onLine func(line []byte)) *Collector {
	if listen == nil {
		listen = func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
	}
	c := &Collector{t: t, addr: addr, listen: listen, onLine: onLine}
	c.Up()
	c.addr = c.ln.Addr().String()
	t.Cleanup(c.Down)
	return c
}

// Addr is the collector's address ("127.0.0.1:41234").
func (c *Collector) Addr() string { return c.addr }

// Port is the collector's port (also while it is down).
func (c *Collector) Port() int {
	_, p, _ := net.SplitHostPort(c.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// Up listens again and reads every connection to its end.
func (c *Collector) Up() {
	c.t.Helper()
	ln, err := c.listen(c.addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	c.ln = ln
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns = append(c.conns, conn)
			c.mu.Unlock()
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				sc := bufio.NewScanner(conn)
				sc.Buffer(make([]byte, 64<<10), 1<<20)
				for sc.Scan() {
					c.mu.Lock()
					c.onLine(sc.Bytes())
					c.mu.Unlock()
				}
			}()
		}
	}()
}

// Down stops listening and ends the connections the way a collector that
// shuts down does: it says it is closing (FIN), reads what the sender
// sent up to its close, and goes.
func (c *Collector) Down() {
	c.mu.Lock()
	ln, conns := c.ln, c.conns
	c.ln, c.conns = nil, nil
	c.mu.Unlock()
	if ln == nil {
		return
	}
	ln.Close()
	for _, conn := range conns {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	c.wg.Wait()
	for _, conn := range conns {
		conn.Close()
	}
}
