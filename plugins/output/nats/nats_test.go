package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/stack"
	"github.com/ulogd-go/ulogd/internal/testutil"

	_ "github.com/ulogd-go/ulogd/plugins/input/nflog"
)

// server is a real nats-server on a loopback port, with JetStream when
// dir is set.
type server struct {
	t    testing.TB
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// startServer starts nats-server (JetStream with a store in a temporary
// directory when js), stopped when the test ends.
func startServer(t testing.TB, js bool, args ...string) *server {
	t.Helper()
	testutil.RequireTools(t, "nats-server")
	s := &server{t: t, port: testutil.FreePort(t), args: args}
	if js {
		s.dir = t.TempDir()
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	args := append([]string{"-a", "127.0.0.1", "-p", strconv.Itoa(s.port)}, s.args...)
	if s.dir != "" {
		args = append(args, "-js", "-sd", s.dir)
	}
	s.cmd = exec.Command("nats-server", args...)
	var out testutil.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }()
	testutil.WaitFor(s.t, 20*time.Second, "nats-server ready", func() bool {
		return strings.Contains(out.String(), "Server is ready")
	})
}

// stop stops the server (SIGTERM) and waits for it.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

func (s *server) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

// flowKeys are the test source's keys.
var flowKeys = []keys.Spec{
	{Name: "ct.id", Type: keys.Uint32},
	{Name: "ct.event", Type: keys.Uint32},
	{Name: "oob.prefix", Type: keys.String},
	{Name: "orig.ip.saddr", Type: keys.IPAddr},
}

type harness struct {
	*plugintest.Harness
	t    *testing.T
	sink *sink
}

func start(t *testing.T, url, opts string) *harness {
	t.Helper()
	h := &harness{t: t, Harness: plugintest.New(t, "n:NATS", fmt.Sprintf("[n]\nurl=%q\n%s", url, opts), flowKeys)}
	for _, n := range h.Graph.Instances() {
		if s, ok := n.Inst.(*sink); ok {
			h.sink = s
		}
	}
	return h
}

func (h *harness) event(i int) {
	h.Event(map[string]any{"ct.id": i, "ct.event": 1 << (i % 3), "oob.prefix": "P.x",
		"orig.ip.saddr": []byte{10, 0, byte(i >> 8), byte(i)}})
}

func (h *harness) waitDone(n uint64, timeout time.Duration) {
	h.t.Helper()
	testutil.WaitFor(h.t, timeout, fmt.Sprintf("%d records written or dropped", n), func() bool {
		return h.sink.Written()+h.sink.Dropped() >= n
	})
}

func id(t *testing.T, data []byte) int {
	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil {
		t.Fatalf("%q: %v", data, err)
	}
	return int(obj["ct.id"].(float64))
}

// TestCore publishes to core NATS with a subject template, read back by a
// subscriber.
func TestCore(t *testing.T) {
	t.Parallel()
	srv := startServer(t, false, "--user", "fw", "--pass", "pw")
	nc, err := nats.Connect(srv.url(), nats.UserInfo("fw", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	got := map[string]string{}
	if _, err := nc.Subscribe("ulogd.>", func(m *nats.Msg) {
		mu.Lock()
		got[m.Subject+" "+strconv.Itoa(id(t, m.Data))] = string(m.Data)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	h := start(t, srv.url(), "user=\"fw\"\npassword=\"pw\"\nsubject=\"ulogd.{oob.prefix}.{ct.event}.{orig.ip.saddr}.{ct.id}\"\ntimestamp=0\n")
	const n = 3000
	for i := range n {
		h.event(i)
		if i%100 == 99 {
			h.Flush()
		}
	}
	h.Flush()
	h.waitDone(n, 20*time.Second)
	if d := h.sink.Dropped(); d != 0 {
		t.Fatalf("dropped %d", d)
	}
	testutil.WaitFor(t, 10*time.Second, "the subscriber's messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= n
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n {
		t.Fatalf("%d messages, want %d", len(got), n)
	}
	// The address is one token: its dots became '_'.
	k := "ulogd.P_x.2.10_0_1_6.262 262"
	want := `{"dvc": "Netfilter", "ct.id": 262, "ct.event": 2, "oob.prefix": "P.x"}`
	if got[k] != want {
		t.Errorf("message %q = %q, want %q", k, got[k], want)
	}
}

// jsRestart creates a stream, starts a JetStream NATS instance with
// extra options, and restarts the server while 3 × 5000 records are
// emitted. It returns the harness, the server and the stream's records
// read back (each ct.id with its count), and the ct.ids in the stream's
// order.
func jsRestart(t *testing.T, opts string) (*harness, map[int]int, uint64, []int) {
	srv := startServer(t, true)
	nc, err := nats.Connect(srv.url())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { nc.Close() }()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FLOWS", Subjects: []string{"ulogd.>"},
		Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	h := start(t, srv.url(), "jetstream=1\nsubject=\"ulogd.flows.{ct.event}\"\ntimeout=2\n"+opts)
	h.sink.Tun.BackoffMin = 100 * time.Millisecond
	h.sink.Tun.BackoffMax = 500 * time.Millisecond
	const per = 5000
	emit := func(from int) {
		for i := from; i < from+per; i++ {
			h.event(i)
			if i%100 == 99 {
				h.Flush()
			}
		}
	}
	emit(0)
	srv.stop()
	emit(per)
	if w := h.sink.Written(); w >= 2*per {
		t.Fatalf("%d records written with the server down", w)
	}
	srv.start()
	emit(2 * per)
	h.Flush()
	h.waitDone(3*per, 60*time.Second)
	if c := h.sink.Connects(); c < 2 {
		t.Errorf("%d connections, want a reconnection", c)
	}

	if nc, err = nats.Connect(srv.url()); err != nil {
		t.Fatal(err)
	}
	js, _ = jetstream.New(nc)
	st, err := js.Stream(ctx, "FLOWS")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	var order []int
	for total := uint64(0); total < info.State.Msgs; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for m := range batch.Messages() {
			i := id(t, m.Data())
			seen[i]++
			order = append(order, i)
			k++
		}
		if k == 0 {
			t.Fatalf("read %d of the stream's %d records", total, info.State.Msgs)
		}
		total += uint64(k)
	}
	return h, seen, info.State.Msgs, order
}

// TestJetStreamRestart restarts the server while records flow: every
// record is in the stream once.
func TestJetStreamRestart(t *testing.T) {
	t.Parallel()
	h, seen, msgs, _ := jsRestart(t, "")
	const n = 15000
	if d := h.sink.Dropped(); d != 0 {
		t.Fatalf("dropped %d", d)
	}
	if msgs != n {
		t.Errorf("stream holds %d messages, want %d (each once)", msgs, n)
	}
	for i := range n {
		if seen[i] != 1 {
			t.Fatalf("record %d is in the stream %d times", i, seen[i])
		}
	}
}

// TestJetStreamRestartSmallQueue: with a small queue, what it could not
// hold while the server was down is dropped and counted; the stream has
// every record written, once.
func TestJetStreamRestartSmallQueue(t *testing.T) {
	t.Parallel()
	h, seen, msgs, _ := jsRestart(t, "queue_records=500\n")
	written, dropped := h.sink.Written(), h.sink.Dropped()
	if dropped == 0 || written+dropped != 15000 {
		t.Fatalf("written %d + dropped %d, want 15000 with drops", written, dropped)
	}
	if msgs != written || uint64(len(seen)) != written {
		t.Fatalf("stream holds %d messages (%d distinct), %d written", msgs, len(seen), written)
	}
}

// TestJetStreamRestartSpool: with overflow=spool and the queue of
// TestJetStreamRestartSmallQueue, what the queue cannot hold while the
// server is down goes to the spool: nothing is dropped, and the stream
// has every record once, in the order emitted (docs/compat.md B2).
func TestJetStreamRestartSpool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/spool"
	h, _, msgs, order := jsRestart(t, fmt.Sprintf("queue_records=500\noverflow=\"spool\"\nspool_dir=%q\n", dir))
	const n = 15000
	if d := h.sink.Dropped(); d != 0 {
		t.Fatalf("dropped %d", d)
	}
	if msgs != n || len(order) != n {
		t.Fatalf("stream holds %d messages (%d read), want %d", msgs, len(order), n)
	}
	for i, id := range order {
		if id != i {
			t.Fatalf("stream record %d is %d (lost, repeated or out of order)", i, id)
		}
	}
}

func TestStartFailsWithoutServer(t *testing.T) {
	t.Parallel()
	cfg := newConfig()
	cfg.URL = fmt.Sprintf("nats://127.0.0.1:%d", testutil.FreePort(t))
	up, _ := plugintest.Upstream(flowKeys)
	d, _ := plugin.Default.Lookup("NATS")
	inst, err := d.New(&plugin.Env{Config: cfg, Upstream: up})
	if err != nil {
		t.Fatal(err)
	}
	plugintest.StartFails(t, inst, "can't connect to nats://127.0.0.1")
}

// TestBadOptions: --check reports bad values with the file and line.
func TestBadOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ section, want string }{
		{"subject=\"\"\n", "subject is empty"},
		{"subject=\"a.{b\"\n", "'{' without '}'"},
		{"subject=\"a.b}\"\n", "'}' without '{'"},
		{"subject=\"a.{}\"\n", "bad key reference {}"},
		{"subject=\"a.*\"\n", "wildcard"},
		{"subject=\"a..b\"\n", "empty token"},
		{"subject=\"a.{oob.nosuchkey}\"\n", `no plugin before it in the stack gives the key "oob.nosuchkey"`},
		{"url=\"\"\n", "url is empty"},
		{"timeout=0\n", "timeout=0"},
		{"user=\"u\"\ntoken=\"t\"\n", "give one of user"},
		{"overflow=\"spill\"\n", `overflow="spill"`},
		{"overflow=\"spool\"\n", "overflow=spool needs a spool_dir"},
	} {
		text := "[global]\nstack=log1:NFLOG,n1:NATS\n[log1]\ngroup=1\n[n1]\n" + tc.section
		f, err := config.Parse("t.conf", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		_, err = stack.Build(f, plugin.Default, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "t.conf:") {
			t.Errorf("%q: build error %v, want t.conf:N and %q", tc.section, err, tc.want)
		}
	}
}

// started starts a NATS instance on url with subject fed straight by a
// record of flowKeys, which it returns filled.
func started(tb testing.TB, url, subject string, jetStream int) (*sink, *keys.Record) {
	tb.Helper()
	cfg := newConfig()
	cfg.URL, cfg.Subject, cfg.JetStream = url, subject, jetStream
	cfg.QueueRecords, cfg.QueueBytes = 1<<20, 256<<20
	up, r := plugintest.Upstream(flowKeys)
	d, _ := plugin.Default.Lookup("NATS")
	inst, err := d.New(&plugin.Env{Config: cfg, Upstream: up})
	if err != nil {
		tb.Fatal(err)
	}
	plugintest.Started(tb, inst)
	r.SetUint(0, 1)
	r.SetUint(1, 4)
	r.SetString(2, "P")
	return inst.(*sink), r
}

func TestInterpAllocs(t *testing.T) {
	srv := startServer(t, false)
	s, r := started(t, srv.url(), "ulogd.{oob.prefix}.{ct.event}", 0)
	if a := testutil.AllocsPerCall(1000, func() { s.Interp(r) }); a != 0 {
		t.Errorf("Interp allocates %v times per event", a)
	}
}

// BenchmarkJetStream is the cost of one record from Interp to the
// JetStream ack (the writer's share included).
func BenchmarkJetStream(b *testing.B) {
	srv := startServer(b, true)
	url := srv.url()
	nc, err := nats.Connect(url)
	if err != nil {
		b.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "B", Subjects: []string{"ulogd.>"}}); err != nil {
		b.Fatal(err)
	}
	nc.Close()
	s, r := started(b, url, "ulogd.{ct.event}", 1)
	b.ResetTimer()
	for range b.N {
		s.Interp(r)
	}
	testutil.WaitFor(b, 60*time.Second, "acks", func() bool { return s.Written()+s.Dropped() >= uint64(b.N) })
	if d := s.Dropped(); d > 0 {
		b.Fatalf("%d records dropped: the queue is too small for b.N", d)
	}
}
