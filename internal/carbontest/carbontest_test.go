package carbontest

import (
	"fmt"
	"net"
	"testing"
	"time"
)

func send(t *testing.T, c *Carbon, lines string) {
	t.Helper()
	conn, err := net.Dial("tcp", c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(lines)); err != nil {
		t.Fatal(err)
	}
}

// TestCarbon: values sent in the plaintext protocol are read back from
// the whisper files, before and after a restart; a metric never sent has
// no points.
func TestCarbon(t *testing.T) {
	c := Start(t)
	ts := time.Now().Unix() - 10
	send(t, c, fmt.Sprintf("test.a.pkts 3 %d\n.test.b.bytes 18446744073709551614 %d\n", ts, ts))
	c.WaitPoint(t, "test.a.pkts", ts, 3)
	c.WaitPoint(t, "test.b.bytes", ts, 18446744073709551614)
	c.Restart(t)
	send(t, c, fmt.Sprintf("test.a.pkts 5 %d\n", ts+1))
	c.WaitPoint(t, "test.a.pkts", ts+1, 5)
	if p := c.Points(t, "test.a.pkts"); p[ts] != 3 || len(p) != 2 {
		t.Errorf("after the restart: %v, want 3 at %d and 5 at %d", p, ts, ts+1)
	}
	if p := c.Points(t, "test.none"); len(p) != 0 {
		t.Errorf("unsent metric has points %v", p)
	}
}
