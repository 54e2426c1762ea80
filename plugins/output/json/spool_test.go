package json

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

// collector is a loopback TCP collector that keeps the seqs it read, in
// order.
type collector struct {
	*testutil.Collector
	mu   sync.Mutex
	seqs []int
}

func newCollector(t *testing.T) *collector {
	c := &collector{}
	c.Collector = testutil.NewCollector(t, "127.0.0.1:0", nil, func(l []byte) {
		s := seqOf(t, append(l, '\n'))
		c.mu.Lock()
		c.seqs = append(c.seqs, s)
		c.mu.Unlock()
	})
	return c
}

func (c *collector) port() string { return strconv.Itoa(c.Port()) }

func (c *collector) up()   { c.Up() }
func (c *collector) down() { c.Down() }

func (c *collector) received() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.seqs...)
}

// sendAtRate sends seqs from..to at 5000 records a second.
func sendAtRate(t *testing.T, d *direct, from, to int) {
	start := time.Now()
	for i := from; i < to; i++ {
		d.send(t, i)
		if (i-from+1)%50 == 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i-from+1) * 200 * time.Microsecond)))
		}
	}
}

func spoolConfig(t *testing.T, port, dir string) *Config {
	return cfgWith(func(c *Config) {
		c.Mode, c.Port, c.Timestamp = "tcp", port, 0
		c.Overflow, c.SpoolDir = "spool", dir
		c.QueueRecords = 256 // the spool takes over soon
	})
}

// beforeOutage starts a TCP instance (options from set) to a new collector,
// sends it the records 0..first-1, waits until they arrived (or were
// dropped), and takes the collector down.
func beforeOutage(t *testing.T, first int, set func(*Config)) (*collector, *direct) {
	col := newCollector(t)
	d := newDirect(t, cfgWith(func(c *Config) {
		c.Mode, c.Port, c.Timestamp = "tcp", col.port(), 0
		set(c)
	}), seqKeys)
	shortBackoff(d)
	if err := d.s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	sendAtRate(t, d, 0, first)
	// (Under drop, a busy machine may drop some of them already.)
	if !testutil.Eventually(10*time.Second, func() bool {
		st := d.s.q.Stats()
		return st.Depth == 0 && st.Written+st.Dropped == uint64(first) && uint64(len(col.received())) == st.Written
	}) {
		t.Fatalf("the first records: %d received; %+v", len(col.received()), d.s.q.Stats())
	}
	col.down()
	return col, d
}

// wantInOrder checks that got ascends (with gaps: the drops).
func wantInOrder(t *testing.T, got []int) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("seq %d after %d", got[i], got[i-1])
		}
	}
}

func wantAll(t *testing.T, got []int, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("received %d records, want %d", len(got), to-from)
	}
	for i, s := range got {
		if s != from+i {
			t.Fatalf("record %d is seq %d, want %d", i, s, from+i)
		}
	}
}

// TestSpoolAcrossCollectorOutage: the collector is down for 6 s while 5000
// records a second arrive; with overflow=spool every record reaches it once
// it is back, in order, and nothing is dropped.
func TestSpoolAcrossCollectorOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time outage of 6 s")
	}
	dir := t.TempDir()
	col, d := beforeOutage(t, 5000, func(c *Config) { c.Overflow, c.SpoolDir, c.QueueRecords = "spool", dir, 256 })
	sendAtRate(t, d, 5000, 35000) // 6 s
	if sp := d.s.q.Spooled(); sp < 20000 {
		t.Fatalf("only %d records spooled during the outage", sp)
	}
	col.up()
	sendAtRate(t, d, 35000, 40000)
	testutil.WaitFor(t, 30*time.Second, "every record at the collector", func() bool { return len(col.received()) >= 40000 })
	if err := d.s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantAll(t, col.received(), 0, 40000)
	if st := d.s.q.Stats(); st.Dropped != 0 || st.Written != 40000 || st.Spooled != 0 {
		t.Fatalf("%+v", st)
	}
}

// TestSpoolAcrossRestart: the sink stops (SIGTERM) while the collector is
// down; a new instance on the same spool_dir, started while the collector
// is still down, sends the spooled records first once it is back.
func TestSpoolAcrossRestart(t *testing.T) {
	col := newCollector(t)
	dir := t.TempDir()
	d := newDirect(t, spoolConfig(t, col.port(), dir), seqKeys)
	shortBackoff(d)
	if err := d.s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	sendAtRate(t, d, 0, 1000)
	testutil.WaitFor(t, 10*time.Second, "the first records", func() bool { return len(col.received()) == 1000 })
	col.down()
	sendAtRate(t, d, 1000, 6000)
	if err := d.s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := d.s.q.Stats(); st.Dropped != 0 || st.Spooled != 5000 {
		t.Fatalf("at stop: %+v", st)
	}

	d2 := newDirect(t, spoolConfig(t, col.port(), dir), seqKeys)
	shortBackoff(d2)
	if err := d2.s.Start(t.Context()); err != nil {
		t.Fatalf("start with the collector down: %v", err)
	}
	sendAtRate(t, d2, 6000, 7000)
	col.up()
	testutil.WaitFor(t, 30*time.Second, "every record at the collector", func() bool { return len(col.received()) >= 7000 })
	if err := d2.s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantAll(t, col.received(), 0, 7000)
	if st := d2.s.q.Stats(); st.Dropped != 0 || st.Written != 6000 {
		t.Fatalf("%+v", st)
	}
}

// TestOverflowOptionsChecked: bad queue options are configuration errors.
func TestOverflowOptionsChecked(t *testing.T) {
	for _, tc := range []struct {
		set  func(*Config)
		want string
	}{
		{func(c *Config) { c.Overflow = "later" }, `overflow must be "drop", "block" or "spool"`},
		{func(c *Config) { c.Overflow = "spool" }, "overflow=spool needs a spool_dir"},
		{func(c *Config) { c.Overflow, c.SpoolDir = "spool", "rel/dir" }, "must be an absolute path"},
		{func(c *Config) { c.QueueBytes = 0 }, "queue_bytes must be positive"},
		{func(c *Config) { c.Layout = "otel" }, `unknown layout "otel"`},
	} {
		c := cfgWith(func(c *Config) { c.Mode = "tcp" })
		tc.set(c)
		_, _, err := Descriptor().Keys(c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
	c := cfgWith(func(c *Config) { c.Mode, c.Overflow, c.SpoolDir = "tcp", "spool", "/var/spool/ulogd/j1/" })
	if got := Descriptor().Resources(c); len(got) != 1 || got[0] != "spool:/var/spool/ulogd/j1" {
		t.Errorf("resources %v", got)
	}
}

// TestDropAcrossCollectorOutage: the same outage under overflow=drop: the
// records that arrive are in order, and exactly the ones counted as
// dropped are missing.
func TestDropAcrossCollectorOutage(t *testing.T) {
	col, d := beforeOutage(t, 1000, func(c *Config) { c.QueueRecords = 256 })
	sendAtRate(t, d, 1000, 6000) // 1 s
	col.up()
	if !testutil.Eventually(10*time.Second, func() bool { return d.s.q.Depth() == 0 && d.s.connected() }) {
		t.Fatalf("the queue did not drain: connected %v, %+v", d.s.connected(), d.s.q.Stats())
	}
	sendAtRate(t, d, 6000, 7000)
	// (Under load a record after the outage may be dropped too: wait for
	// the counters, not for a given record.)
	if !testutil.Eventually(10*time.Second, func() bool {
		st := d.s.q.Stats()
		return st.Depth == 0 && st.Written+st.Dropped == 7000 && uint64(len(col.received())) == st.Written
	}) {
		t.Fatalf("not every record written or dropped: %d received, %+v", len(col.received()), d.s.q.Stats())
	}
	if err := d.s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := col.received()
	st := d.s.q.Stats()
	// (The records written before the writer saw the collector close
	// reached it: how many were dropped depends on that moment.)
	if uint64(len(got)) != st.Written || st.Written+st.Dropped != 7000 || st.Dropped == 0 {
		t.Fatalf("%+v, %d received", st, len(got))
	}
	wantInOrder(t, got)
}

// TestBlockAcrossCollectorOutage: under overflow=block a full queue holds
// the walk (Interp waits: the source would stop reading, and the kernel
// count what overruns its socket) until the collector is back; nothing is
// dropped.
func TestBlockAcrossCollectorOutage(t *testing.T) {
	col, d := beforeOutage(t, 100, func(c *Config) { c.QueueRecords, c.Overflow = 32, "block" })
	testutil.WaitFor(t, 10*time.Second, "the writer to notice", func() bool { return !d.s.connected() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 100; i < 1100; i++ {
			d.send(t, i)
		}
	}()
	testutil.WaitFor(t, 10*time.Second, "a full queue", func() bool { return d.s.q.Depth() == 32 })
	select {
	case <-done:
		t.Fatal("the walk went on past a full queue")
	default:
	}
	col.up()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the walk still blocked with the collector back")
	}
	testutil.WaitFor(t, 10*time.Second, "every record", func() bool { return len(col.received()) == 1100 })
	if err := d.s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantAll(t, col.received(), 0, 1100)
	if st := d.s.q.Stats(); st.Dropped != 0 || st.Written != 1100 {
		t.Fatalf("%+v", st)
	}
}

// TestSpoolFullDiskAcrossCollectorOutage: the spool's disk (a 256 KiB
// tmpfs) fills up during the outage; the records it cannot take are
// dropped and counted, every other one reaches the collector in order.
func TestSpoolFullDiskAcrossCollectorOutage(t *testing.T) {
	dir := plugintest.SmallTmpfs(t, "256k")
	col, d := beforeOutage(t, 100, func(c *Config) { c.Overflow, c.SpoolDir, c.QueueRecords = "spool", dir, 64 })
	sendAtRate(t, d, 100, 5100) // about 1.4 MB
	if st := d.s.q.Stats(); st.Dropped == 0 {
		t.Fatalf("nothing dropped on a full disk: %+v", st)
	}
	col.up()
	if !testutil.Eventually(20*time.Second, func() bool {
		st := d.s.q.Stats()
		return st.Depth == 0 && st.Spooled == 0 && uint64(len(col.received())) == st.Written
	}) {
		t.Fatalf("%d received; %+v", len(col.received()), d.s.q.Stats())
	}
	if err := d.s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := col.received()
	st := d.s.q.Stats()
	if st.Written+st.Dropped != 5100 || uint64(len(got)) != st.Written {
		t.Fatalf("%+v, %d received", st, len(got))
	}
	wantInOrder(t, got)
	if !strings.Contains(d.log.String(), "no space left on device") {
		t.Errorf("the drop notice lacks the disk's error:\n%s", d.log.String())
	}
}
