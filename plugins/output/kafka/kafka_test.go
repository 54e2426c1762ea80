package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/stack"
	"github.com/ulogd-go/ulogd/internal/testutil"

	_ "github.com/ulogd-go/ulogd/plugins/input/nflog"
)

// flowKeys are the test source's keys: a conntrack flow's.
var flowKeys = []keys.Spec{
	{Name: "ct.id", Type: keys.Uint32},
	{Name: "orig.ip.saddr", Type: keys.IPAddr},
	{Name: "orig.ip.daddr", Type: keys.IPAddr},
	{Name: "orig.ip.protocol", Type: keys.Uint8},
	{Name: "orig.l4.sport", Type: keys.Uint16},
	{Name: "orig.l4.dport", Type: keys.Uint16},
	{Name: "oob.prefix", Type: keys.String},
	{Name: "flow.community_id", Type: keys.String},
}

// cluster starts a kfake cluster of n brokers with topic "flows" of 3
// partitions; extra options go to kfake.
func cluster(t *testing.T, n int, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(n), kfake.SeedTopics(3, "flows")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// harness runs TESTSRC → KAFKA against brokers with extra options.
type harness struct {
	*plugintest.Harness
	t    *testing.T
	sink *sink
}

func start(t *testing.T, brokers []string, opts string) *harness {
	t.Helper()
	h := &harness{t: t, Harness: plugintest.New(t, "k:KAFKA",
		fmt.Sprintf("[k]\nbrokers=%q\ntopic=\"flows\"\n%s", strings.Join(brokers, ","), opts), flowKeys)}
	for _, n := range h.Graph.Instances() {
		if s, ok := n.Inst.(*sink); ok {
			h.sink = s
		}
	}
	return h
}

// flow emits flow i, from 10.0.x.y:1000+i to 10.1.0.1:80 (or the other
// way round when rev).
func (h *harness) flow(i int, rev bool) {
	a := []byte{10, 0, byte(i >> 8), byte(i)}
	b := []byte{10, 1, 0, 1}
	sp, dp := 1000+i%50000, 80
	if rev {
		a, b, sp, dp = b, a, dp, sp
	}
	h.Event(map[string]any{
		"ct.id": i, "orig.ip.saddr": a, "orig.ip.daddr": b, "orig.ip.protocol": 6,
		"orig.l4.sport": sp, "orig.l4.dport": dp, "oob.prefix": "P",
		"flow.community_id": fmt.Sprintf("1:cid%d=", i),
	})
}

// waitDone waits until every one of n records is written or dropped.
func (h *harness) waitDone(n uint64, timeout time.Duration) {
	h.t.Helper()
	testutil.WaitFor(h.t, timeout, fmt.Sprintf("%d records written or dropped", n), func() bool {
		return h.sink.Written()+h.sink.Dropped() >= n
	})
}

// consumed is one record read back.
type consumed struct {
	key   string
	obj   map[string]any
	part  int32
	value string
}

// consume reads the topic from the start until it has n records (or
// fails t after timeout).
func consume(t *testing.T, brokers []string, n int, timeout time.Duration, opts ...kgo.Opt) []consumed {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("flows"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []consumed
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records of %d", len(out), n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			c := consumed{key: string(r.Key), part: r.Partition, value: string(r.Value)}
			if err := json.Unmarshal(r.Value, &c.obj); err != nil {
				t.Errorf("record %q: %v", r.Value, err)
			}
			out = append(out, c)
		})
	}
	return out
}

// ids returns the ct.id of each record, and how many times each came.
func ids(recs []consumed) map[int]int {
	m := map[int]int{}
	for _, r := range recs {
		m[int(r.obj["ct.id"].(float64))]++
	}
	return m
}

func TestProduceAndConsume(t *testing.T) {
	t.Parallel()
	c := cluster(t, 3)
	for _, key := range []string{"none", "5tuple", "community_id"} {
		t.Run(key, func(t *testing.T) {
			h := start(t, c.ListenAddrs(), "key="+key+"\ncompression=\"zstd\"\nlinger_ms=1\n")
			const n = 200
			for i := range n {
				h.flow(i, false)
				h.flow(i, true)
			}
			h.Flush()
			h.waitDone(2*n, 20*time.Second)
			if d := h.sink.Dropped(); d != 0 {
				t.Fatalf("dropped %d", d)
			}
			_ = key
		})
	}
	recs := consume(t, c.ListenAddrs(), 3*2*200, 20*time.Second)
	// Three runs of the same 400 events, in the order of the runs.
	var none, tuple, cid []consumed
	for _, r := range recs {
		switch {
		case r.key == "":
			none = append(none, r)
		case strings.HasPrefix(r.key, "1:cid"):
			cid = append(cid, r)
		default:
			tuple = append(tuple, r)
		}
	}
	if len(none) != 400 || len(tuple) != 400 || len(cid) != 400 {
		t.Fatalf("records without key %d, 5-tuple keyed %d, community_id keyed %d; want 400 each", len(none), len(tuple), len(cid))
	}
	// The value is the JSON sink's object.
	want := map[string]any{"dvc": "Netfilter", "ct.id": float64(7), "orig.ip.protocol": float64(6),
		"orig.l4.sport": float64(1007), "orig.l4.dport": float64(80), "oob.prefix": "P",
		"flow.community_id": "1:cid7="}
	var got map[string]any
	for _, r := range none {
		if r.obj["ct.id"] == float64(7) && r.obj["orig.l4.sport"] == float64(1007) {
			got = r.obj
		}
	}
	if _, ok := got["timestamp"].(string); !ok {
		t.Errorf("record 7 has no time stamp: %v", got)
	}
	delete(got, "timestamp")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("record 7:\n got %v\nwant %v", got, want)
	}
	// Both directions of a flow have one 5-tuple key, and two flows
	// different keys; a key's records stay in one partition.
	byID := map[int]map[string]int32{}
	for _, r := range tuple {
		id := int(r.obj["ct.id"].(float64))
		if byID[id] == nil {
			byID[id] = map[string]int32{}
		}
		byID[id][r.key] = r.part
		if len(r.key) != 16 {
			t.Fatalf("5-tuple key %q is not 16 hex digits", r.key)
		}
	}
	seen := map[string]int{}
	for id, k := range byID {
		if len(k) != 1 {
			t.Fatalf("flow %d has keys %v, want one for both directions", id, k)
		}
		for key := range k {
			if other, dup := seen[key]; dup {
				t.Fatalf("flows %d and %d share key %s", id, other, key)
			}
			seen[key] = id
		}
	}
	for _, r := range cid {
		if want := r.obj["flow.community_id"]; r.key != want {
			t.Fatalf("key %q, community_id %v", r.key, want)
		}
	}
}

// TestLayoutECS: layout=ecs produces the JSON sink's ECS documents.
func TestLayoutECS(t *testing.T) {
	t.Parallel()
	c := cluster(t, 1)
	h := start(t, c.ListenAddrs(), "key=\"community_id\"\nlayout=\"ecs\"\nlinger_ms=1\n")
	h.flow(7, false)
	h.Flush()
	h.waitDone(1, 20*time.Second)
	r := consume(t, c.ListenAddrs(), 1, 20*time.Second)[0]
	if r.key != "1:cid7=" {
		t.Errorf("key %q, want the community id", r.key)
	}
	for k, v := range map[string]any{
		"ecs.version": "8.11.0", "source.ip": "10.0.0.7", "destination.ip": "10.1.0.1",
		"source.port": float64(1007), "destination.port": float64(80), "network.transport": "tcp",
		"network.community_id": "1:cid7=", "rule.name": "P", "ulogd.ct.id": float64(7),
		"observer.vendor": "Netfilter",
	} {
		if r.obj[k] != v {
			t.Errorf("%s = %v, want %v", k, r.obj[k], v)
		}
	}
	for _, k := range []string{"orig.l4.sport", "oob.prefix", "ct.id", "dvc"} {
		if _, ok := r.obj[k]; ok {
			t.Errorf("ulogd2 field %s in the ECS document %s", k, r.value)
		}
	}
}

// TestReopenReconnects: SIGHUP makes a new client while records flow;
// none is lost.
func TestReopenReconnects(t *testing.T) {
	t.Parallel()
	c := cluster(t, 3)
	h := start(t, c.ListenAddrs(), "linger_ms=1\n")
	const n = 4000
	for i := range n {
		h.flow(i, false)
		if i%100 == 99 {
			h.Flush()
		}
		if i == n/2 {
			if err := h.Reopen(); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.Flush()
	h.waitDone(n, 30*time.Second)
	if d := h.sink.Dropped(); d != 0 {
		t.Fatalf("dropped %d", d)
	}
	testutil.WaitFor(t, 10*time.Second, "a second connection", func() bool { return h.sink.Connects() >= 2 })
	got := ids(consume(t, c.ListenAddrs(), n, 30*time.Second))
	for i := range n {
		if got[i] < 1 {
			t.Fatalf("record %d lost", i)
		}
	}
}

// TestLeaderMove moves every partition's leader to another broker while
// records are produced: none is lost or dropped.
func TestLeaderMove(t *testing.T) {
	t.Parallel()
	c := cluster(t, 3)
	h := start(t, c.ListenAddrs(), "key=\"5tuple\"\nlinger_ms=1\n")
	const n = 20000
	for i := range n {
		h.flow(i, false)
		if i%100 == 99 {
			h.Flush()
		}
		if i == n/2 {
			for p := range int32(3) {
				to := (c.LeaderFor("flows", p) + 1) % 3
				if err := c.MoveTopicPartition("flows", p, to); err != nil {
					t.Fatal(err)
				}
				if got := c.LeaderFor("flows", p); got != to {
					t.Fatalf("partition %d: leader %d after the move to %d", p, got, to)
				}
			}
		}
	}
	h.Flush()
	h.waitDone(n, 60*time.Second)
	if d := h.sink.Dropped(); d != 0 {
		t.Fatalf("dropped %d", d)
	}
	got := ids(consume(t, c.ListenAddrs(), n, 60*time.Second))
	for i := range n {
		if got[i] != 1 {
			t.Fatalf("record %d came %d times", i, got[i])
		}
	}
}

// restart is the cluster-down phase of TestClusterRestart: the cluster
// with its data in dir is stopped while records flow, and started again.
func restartUnderLoad(t *testing.T, queue string) (h *harness, n int, addrs []string) {
	ports := testutil.FreePorts(t, 3)
	dir := t.TempDir()
	opts := []kfake.Opt{kfake.NumBrokers(3), kfake.SeedTopics(3, "flows"), kfake.Ports(ports...), kfake.DataDir(dir), kfake.SyncWrites()}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	addrs = c.ListenAddrs()
	h = start(t, addrs, "linger_ms=1\ndelivery_timeout=2\n"+queue)
	h.sink.Tun.BackoffMin = 100 * time.Millisecond
	h.sink.Tun.BackoffMax = 500 * time.Millisecond
	const per = 5000
	emit := func(from int) {
		for i := from; i < from+per; i++ {
			h.flow(i, false)
			if i%100 == 99 {
				h.Flush()
			}
		}
	}
	emit(0)
	c.Close()
	emit(per) // into the queue while the cluster is down
	if w := h.sink.Written(); w >= 2*per {
		t.Fatalf("%d records written with the cluster down", w)
	}
	c, err = kfake.NewCluster(opts[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	emit(2 * per)
	h.Flush()
	return h, 3 * per, addrs
}

// TestClusterRestart stops the cluster under load and starts it again:
// with a queue large enough, every record arrives.
func TestClusterRestart(t *testing.T) {
	t.Parallel()
	h, n, addrs := restartUnderLoad(t, "")
	h.waitDone(uint64(n), 60*time.Second)
	if d := h.sink.Dropped(); d != 0 {
		t.Fatalf("dropped %d", d)
	}
	got := ids(consume(t, addrs, n, 60*time.Second))
	for i := range n {
		if got[i] < 1 {
			t.Fatalf("record %d lost", i)
		}
	}
}

// TestClusterRestartSmallQueue: with a small queue, what the queue could
// not hold is dropped and counted, and everything else arrives.
func TestClusterRestartSmallQueue(t *testing.T) {
	t.Parallel()
	h, n, addrs := restartUnderLoad(t, "queue_records=1000\n")
	h.waitDone(uint64(n), 60*time.Second)
	written, dropped := h.sink.Written(), h.sink.Dropped()
	if dropped == 0 || written+dropped != uint64(n) {
		t.Fatalf("written %d + dropped %d, want %d with drops", written, dropped, n)
	}
	got := ids(consume(t, addrs, int(written), 60*time.Second))
	if uint64(len(got)) != written {
		t.Fatalf("%d distinct records consumed, %d written", len(got), written)
	}
}

// TestClusterRestartSpool: with overflow=spool and a small queue, what
// the queue cannot hold while the cluster is down goes to the spool and
// is produced once it is back: nothing is lost (the same queue drops
// without the spool: TestClusterRestartSmallQueue), and each partition has
// the records in the order they came.
func TestClusterRestartSpool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/spool"
	h, n, addrs := restartUnderLoad(t, fmt.Sprintf("key=\"5tuple\"\nqueue_records=1000\noverflow=\"spool\"\nspool_dir=%q\n", dir))
	h.waitDone(uint64(n), 60*time.Second)
	if d := h.sink.Dropped(); d != 0 {
		t.Fatalf("dropped %d", d)
	}
	recs := consume(t, addrs, n, 60*time.Second)
	got := ids(recs)
	for i := range n {
		if got[i] < 1 {
			t.Fatalf("record %d lost", i)
		}
	}
	// A record sent again (at least once) may come twice; the first
	// time each comes, in each partition, is in order.
	last, seen := map[int32]int{}, map[int]bool{}
	for _, r := range recs {
		id := int(r.obj["ct.id"].(float64))
		if seen[id] {
			continue
		}
		seen[id] = true
		if l, ok := last[r.part]; ok && id < l {
			t.Fatalf("partition %d: record %d after %d", r.part, id, l)
		}
		last[r.part] = id
	}
}

func TestSASLSCRAM(t *testing.T) {
	t.Parallel()
	c := cluster(t, 1, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "ulogd", "s3cret"))
	h := start(t, c.ListenAddrs(), "sasl_mechanism=\"SCRAM-SHA-256\"\nsasl_user=\"ulogd\"\nsasl_password=\"s3cret\"\n")
	h.flow(1, false)
	h.Flush()
	h.waitDone(1, 20*time.Second)
	if h.sink.Written() != 1 {
		t.Fatalf("written %d", h.sink.Written())
	}
	cfg := newConfig()
	cfg.Brokers = strings.Join(c.ListenAddrs(), ",")
	cfg.SASLMechanism, cfg.SASLUser, cfg.SASLPassword = "SCRAM-SHA-256", "ulogd", "wrong"
	s, _ := direct(t, cfg)
	plugintest.StartFails(t, s, "can't connect to kafka:")
}

func TestStartFailsWithoutBroker(t *testing.T) {
	t.Parallel()
	cfg := newConfig()
	cfg.Brokers = fmt.Sprintf("127.0.0.1:%d", testutil.FreePorts(t, 1)[0])
	s, _ := direct(t, cfg)
	plugintest.StartFails(t, s, "can't connect to kafka:127.0.0.1")
}

// TestStartSpoolWithoutBroker: with overflow=spool, no broker at start-up
// is waited for.
func TestStartSpoolWithoutBroker(t *testing.T) {
	t.Parallel()
	cfg := newConfig()
	cfg.Brokers = fmt.Sprintf("127.0.0.1:%d", testutil.FreePorts(t, 1)[0])
	cfg.Overflow, cfg.SpoolDir = "spool", t.TempDir()+"/spool"
	s, _ := direct(t, cfg)
	if err := s.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// TestBadOptions: --check reports bad values with the file and line.
func TestBadOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ section, want string }{
		{"key=\"hash\"\n", `key="hash": must be none, 5tuple or community_id`},
		{"compression=\"brotli\"\n", `compression="brotli"`},
		{"acks=\"some\"\n", `acks="some": must be all, leader or none`},
		{"acks=\"leader\"\n", `idempotent=1 needs acks=all`},
		{"brokers=\"\"\n", "brokers is empty"},
		{"topic=\"\"\n", "topic is empty"},
		{"overflow=\"spill\"\n", `overflow="spill"`},
		{"queue_records=1\n", "queue_records=1: must be"},
		{"overflow=\"spool\"\n", "overflow=spool needs a spool_dir"},
		{"sasl_mechanism=\"GSSAPI\"\n", `sasl_mechanism="GSSAPI"`},
		{"tls_cert=\"/c.pem\"\n", "tls_cert and tls_key go together"},
		{"linger_ms=\"x\"\n", "linger_ms"},
		{"layout=\"elastic\"\n", `unknown layout "elastic"`},
	} {
		text := "[global]\nstack=log1:NFLOG,k1:KAFKA\n[log1]\ngroup=1\n[k1]\n" + tc.section
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

// direct builds a KAFKA instance fed straight by a record of flowKeys.
func direct(t testing.TB, cfg *Config) (*sink, *keys.Record) {
	t.Helper()
	up, r := plugintest.Upstream(flowKeys)
	d, _ := plugin.Default.Lookup("KAFKA")
	inst, err := d.New(&plugin.Env{Config: cfg, In: []keys.Slot{7}, Upstream: up})
	if err != nil {
		t.Fatal(err)
	}
	return inst.(*sink), r
}

// setFlow fills r (of flowKeys) with a TCP flow.
func setFlow(r *keys.Record) {
	r.SetBytes(1, []byte{10, 0, 0, 1})
	r.SetBytes(2, []byte{10, 0, 0, 2})
	r.SetUint(3, 6)
	r.SetUint(4, 1234)
	r.SetUint(5, 80)
	r.SetString(6, "P")
}

func TestInterpAllocs(t *testing.T) {
	c := cluster(t, 1)
	cfg := newConfig()
	cfg.Brokers, cfg.Topic, cfg.Key = c.ListenAddrs()[0], "flows", "5tuple"
	s, r := direct(t, cfg)
	plugintest.Started(t, s)
	setFlow(r)
	if a := testutil.AllocsPerCall(1000, func() { s.Interp(r) }); a != 0 {
		t.Errorf("Interp allocates %v times per event", a)
	}
}

// BenchmarkInterp is the walk's cost of one flow: key, JSON, queue.
func BenchmarkInterp(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "flows"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	cfg := newConfig()
	cfg.Brokers, cfg.Topic, cfg.Key = c.ListenAddrs()[0], "flows", "5tuple"
	s, r := direct(b, cfg)
	plugintest.Started(b, s)
	setFlow(r)
	for b.Loop() {
		s.Interp(r)
	}
}
