package main

import (
	"context"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
	"github.com/ulogd-go/ulogd/internal/testutil"
	"github.com/ulogd-go/ulogd/plugins/input/nfct"
)

// The in-process hot path: captured kernel datagrams
// (plugins/input/nfct/testdata/events.bin) decoded with ctnl.Decode, stored
// in a record laid out as NFCT's output keys, and walked through the real
// IP2STR, PRINTFLOW and LOGEMU (file=/dev/null, sync=1) built by stack.Build.
//
// The NFCT source itself has no exported per-message entry point, so the
// fill step below mirrors what plugins/input/nfct does for hash_enable=0
// (keys by name; flow.start/end from the kernel or "now").

// replaySource is a source that hands its Emitter to the benchmark.
type replaySource struct{ em chan plugin.Emitter }

func (s *replaySource) Start(context.Context) error { return nil }
func (s *replaySource) Stop(context.Context) error  { return nil }
func (s *replaySource) Run(ctx context.Context, e plugin.Emitter) error {
	s.em <- e
	<-ctx.Done()
	return nil
}

// hotStack is the running canonical stack with a replaying source.
type hotStack struct {
	em   plugin.Emitter
	rec  *keys.Record
	slot map[string]keys.Slot
	msgs []nl.Msg
	ev   ctnl.Event
	stop func()
}

func newHotStack(tb testing.TB) *hotStack {
	tb.Helper()
	src := &replaySource{em: make(chan plugin.Emitter, 1)}
	reg := plugin.NewRegistry()
	reg.Register(&plugin.Descriptor{
		Name: "REPLAYCT", Kind: plugin.Source, Input: plugin.DTSource, Output: plugin.DTFlow,
		Keys: func(any) (in, out []keys.Spec, err error) { return nil, nfct.OutputKeys(), nil },
		New:  func(*plugin.Env) (plugin.Instance, error) { return src, nil },
	})
	for _, name := range []string{"IP2STR", "PRINTFLOW", "LOGEMU"} {
		d, ok := plugin.Default.Lookup(name)
		if !ok {
			tb.Fatalf("plugin %s not linked", name)
		}
		reg.Register(d)
	}
	f, err := config.Parse("hot.conf", []byte(`[global]
stack=ct1:REPLAYCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU
[emu1]
file="/dev/null"
sync=1
`))
	if err != nil {
		tb.Fatal(err)
	}
	g, err := stack.Build(f, reg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := g.Start(ctx); err != nil {
		cancel()
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	h := &hotStack{slot: map[string]keys.Slot{}}
	select {
	case h.em = <-src.em:
	case <-time.After(5 * time.Second):
		tb.Fatal("source did not run")
	}
	h.stop = func() {
		g.Stop(context.Background())
		cancel()
		<-done
	}
	tb.Cleanup(h.stop)
	h.rec = h.em.NewRecord()
	for i, k := range nfct.OutputKeys() {
		h.slot[k.Name] = keys.Slot(i)
	}
	h.msgs = loadCapture(tb)
	return h
}

// loadCapture returns the conntrack messages of events.bin (length-prefixed
// datagrams).
func loadCapture(tb testing.TB) []nl.Msg {
	var out []nl.Msg
	for _, dg := range testutil.ReadDatagrams(tb, "../plugins/input/nfct/testdata/events.bin") {
		for len(dg) > 0 {
			m, rest, err := nl.NextMsg(dg)
			if err != nil {
				break
			}
			dg = rest
			if m.Type>>8 == 1 {
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 {
		tb.Fatal("no conntrack message in events.bin")
	}
	return out
}

func (h *hotStack) setAddr(name string, b []byte) {
	if len(b) == 4 || len(b) == 16 {
		h.rec.SetBytes(h.slot[name], b)
	}
}

func (h *hotStack) setTuple(dir string, t *ctnl.Tuple) {
	h.setAddr(dir+".ip.saddr", t.Src)
	h.setAddr(dir+".ip.daddr", t.Dst)
	h.rec.SetUint(h.slot[dir+".ip.protocol"], uint64(t.Proto))
	if t.HasPorts {
		h.rec.SetUint(h.slot[dir+".l4.sport"], uint64(t.SrcPort))
		h.rec.SetUint(h.slot[dir+".l4.dport"], uint64(t.DstPort))
	}
}

// event decodes message i and walks it through the stack.
func (h *hotStack) event(i int) {
	m := h.msgs[i%len(h.msgs)]
	ev := &h.ev
	if err := ctnl.Decode(m, ev); err != nil {
		panic(err)
	}
	r := h.rec
	h.setTuple("orig", &ev.Orig)
	h.setTuple("reply", &ev.Reply)
	r.SetUint(h.slot["orig.raw.pktlen"], ev.OrigBytes)
	r.SetUint(h.slot["orig.raw.pktcount"], ev.OrigPackets)
	r.SetUint(h.slot["reply.raw.pktlen"], ev.ReplyBytes)
	r.SetUint(h.slot["reply.raw.pktcount"], ev.ReplyPackets)
	r.SetUint(h.slot["ct.mark"], uint64(ev.Mark))
	r.SetUint(h.slot["ct.id"], uint64(ev.ID))
	r.SetUint(h.slot["oob.family"], uint64(ev.Family))
	r.SetUint(h.slot["oob.protocol"], 0)
	now := time.Now()
	if ev.Type == ctnl.Destroy {
		r.SetUint(h.slot["ct.event"], 4)
		r.SetUint(h.slot["flow.end.sec"], uint64(now.Unix()))
		r.SetUint(h.slot["flow.end.usec"], uint64(now.Nanosecond()/1000))
	} else {
		r.SetUint(h.slot["ct.event"], 1)
		r.SetUint(h.slot["flow.start.sec"], uint64(now.Unix()))
		r.SetUint(h.slot["flow.start.usec"], uint64(now.Nanosecond()/1000))
	}
	h.em.Emit(r)
	if i%64 == 63 { // end of a recvmmsg batch
		h.em.Flush()
	}
}

// TestCanonicalStackZeroAllocs: no allocation per event through
// IP2STR, PRINTFLOW and LOGEMU (with the decode).
func TestCanonicalStackZeroAllocs(t *testing.T) {
	h := newHotStack(t)
	for i := range 2 * len(h.msgs) { // warm up buffers
		h.event(i)
	}
	i := 0
	allocs := testing.AllocsPerRun(2000, func() {
		h.event(i)
		i++
	})
	if allocs != 0 {
		t.Errorf("%.2f allocations per event through the canonical stack, want 0", allocs)
	}
}

// BenchmarkCanonicalStack: one conntrack event (decode, fill, walk, and a
// flush every 64 events) per op.
func BenchmarkCanonicalStack(b *testing.B) {
	h := newHotStack(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h.event(i)
	}
}

// BenchmarkDecode: ctnl.Decode alone, for comparison.
func BenchmarkDecode(b *testing.B) {
	msgs := loadCapture(b)
	var ev ctnl.Event
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := ctnl.Decode(msgs[i%len(msgs)], &ev); err != nil {
			b.Fatal(err)
		}
	}
}
