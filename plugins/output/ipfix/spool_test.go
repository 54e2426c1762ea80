package ipfix

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/ipfix/ipfixtest"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

// collector is a TCP collector on a fixed address that can go down (no
// listener: connections are refused) and come back. It keeps the flow
// ids of the records it got, in order, and checks each session's
// sequence numbers.
type collector struct {
	t    *testing.T
	addr string
	ln   net.Listener
	conn net.Conn
	wg   sync.WaitGroup

	mu       sync.Mutex
	ids      []uint64
	sessions int
	errs     []error
}

func (c *collector) up() {
	ln, err := net.Listen("tcp4", c.addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.ln, c.addr = ln, ln.Addr().String()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.conn = conn
		c.sessions++
		session := c.sessions
		c.mu.Unlock()
		d := ipfixtest.NewDecoder(0)
		var seq uint32
		for {
			var h [4]byte
			if _, err := io.ReadFull(conn, h[:]); err != nil {
				return
			}
			m := make([]byte, binary.BigEndian.Uint16(h[2:]))
			copy(m, h[:])
			if _, err := io.ReadFull(conn, m[4:]); err != nil {
				return
			}
			msg, err := d.Decode(m)
			c.mu.Lock()
			switch {
			case err != nil:
				c.errs = append(c.errs, fmt.Errorf("session %d: %w", session, err))
			case msg.Sequence != seq:
				c.errs = append(c.errs, fmt.Errorf("session %d: sequence %d, want %d", session, msg.Sequence, seq))
			}
			if msg != nil {
				seq += uint32(len(msg.Records))
				for i := range msg.Records {
					f, err := d.Flow(&msg.Records[i])
					if err != nil {
						c.errs = append(c.errs, err)
					}
					c.ids = append(c.ids, f.FlowID)
				}
			}
			c.mu.Unlock()
		}
	}()
}

// down closes the listener and the connection (after reading all that
// came: nothing is in flight).
func (c *collector) down() {
	c.ln.Close()
	c.mu.Lock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

// TestSpoolAcrossOutage: with overflow=spool, the flows exported while
// the TCP collector is down go past the small queue into the spool and
// reach the collector once it is back: every record once, in order, none
// dropped, and each session's sequence numbers count the records sent.
func TestSpoolAcrossOutage(t *testing.T) {
	tun := testTunables()
	tun.redialMin, tun.redialMax = 10*time.Millisecond, 50*time.Millisecond
	c := &collector{t: t, addr: "127.0.0.1:0"}
	c.up()
	defer c.down()

	s, r := startAt(t, c.addr, "tcp", tun, func(cfg *Config) {
		cfg.Biflow, cfg.QueueRecords, cfg.Overflow, cfg.SpoolDir = 1, 16, "spool", t.TempDir()+"/spool"
	})
	next := 0
	send := func(n int) {
		ev := map[string]any{}
		for k, v := range tcpNAT {
			ev[k] = v
		}
		for range n {
			ev["ct.id"] = next
			next++
			setEvent(r, ev)
			s.Interp(r)
			if next%50 == 0 {
				s.Flush()
			}
		}
		s.Flush()
	}

	send(10)
	testutil.WaitFor(t, 10*time.Second, "the first records", func() bool { return c.count() == 10 })
	c.down()
	testutil.WaitFor(t, 10*time.Second, "the writer to see the collector gone", func() bool { return s.Check() != nil })
	send(2000)
	if st := s.q.Stats(); st.Dropped != 0 || st.Spooled == 0 {
		t.Fatalf("during the outage: %+v: want records spooled, none dropped", st)
	}
	c.up()
	send(10)
	testutil.WaitFor(t, 20*time.Second, "every record, sent and received", func() bool {
		return c.count() >= next && s.q.Stats().Written >= uint64(next)
	})

	c.mu.Lock()
	defer c.mu.Unlock()
	for _, err := range c.errs {
		t.Error(err)
	}
	if c.sessions != 2 {
		t.Errorf("%d sessions, want 2", c.sessions)
	}
	if len(c.ids) != next {
		t.Fatalf("%d records, want %d", len(c.ids), next)
	}
	for i, id := range c.ids {
		if id != uint64(i) {
			t.Fatalf("record %d is flow %d: lost, repeated or out of order", i, id)
		}
	}
	if st := s.q.Stats(); st.Dropped != 0 || st.Written != uint64(next) {
		t.Errorf("%+v: want %d written, none dropped", st, next)
	}
}
