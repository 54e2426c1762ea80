package ifindex

import (
	"encoding/binary"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/netnstest"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

var provides = []keys.Spec{
	{Name: "oob.ifindex_in", Type: keys.Uint32},
	{Name: "oob.ifindex_out", Type: keys.Uint32},
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// linkMsg builds an rtnetlink link message (RTM_NEWLINK/RTM_DELLINK) for
// index idx, with IFLA_IFNAME when name is not empty.
func linkMsg(typ uint16, family byte, idx uint32, name string, seq uint32) []byte {
	b := nl.AppendHeader(nil, typ, 0, seq)
	var ifi [ifinfomsgLen]byte
	ifi[0] = family
	binary.NativeEndian.PutUint32(ifi[4:8], idx)
	b = append(b, ifi[:]...)
	b = nl.AppendAttr(b, 4, []byte{0, 0, 0x05, 0xdc}) // IFLA_MTU, skipped
	if name != "" {
		b = nl.AppendAttr(b, iflaIfname, append([]byte(name), 0))
	}
	return nl.FinishMsg(b, 0)
}

func doneMsg(seq uint32) []byte {
	b := nl.AppendHeader(nil, unix.NLMSG_DONE, unix.NLM_F_MULTI, seq)
	b = append(b, 0, 0, 0, 0)
	return nl.FinishMsg(b, 0)
}

// names returns the cache as index → name.
func names(c *linkCache) map[uint32]string {
	m := map[uint32]string{}
	for i, e := range c.links {
		m[i] = string(e.name)
	}
	return m
}

// TestLinkCacheApply drives the cache with crafted messages: dump, new
// link, rename, bridge port messages, deletion, and a resync dump that
// sweeps a link whose deletion was missed.
func TestLinkCacheApply(t *testing.T) {
	t.Parallel()
	c := newLinkCache(discard)
	c.dumping, c.dumpSeq, c.gen = true, 1, 1
	steps := []struct {
		name string
		msgs [][]byte
		want map[uint32]string
	}{
		{"initial dump", [][]byte{linkMsg(rtmNewLink, 0, 1, "lo", 1), linkMsg(rtmNewLink, 0, 2, "eth0", 1), doneMsg(1)},
			map[uint32]string{1: "lo", 2: "eth0"}},
		{"new link", [][]byte{linkMsg(rtmNewLink, 0, 7, "veth7", 0)},
			map[uint32]string{1: "lo", 2: "eth0", 7: "veth7"}},
		{"rename", [][]byte{linkMsg(rtmNewLink, 0, 7, "wan", 0)},
			map[uint32]string{1: "lo", 2: "eth0", 7: "wan"}},
		{"change without a name keeps it", [][]byte{linkMsg(rtmNewLink, 0, 7, "", 0)},
			map[uint32]string{1: "lo", 2: "eth0", 7: "wan"}},
		{"bridge port messages are ignored", [][]byte{linkMsg(rtmNewLink, unix.AF_BRIDGE, 7, "br-port", 0), linkMsg(rtmDelLink, unix.AF_BRIDGE, 7, "wan", 0)},
			map[uint32]string{1: "lo", 2: "eth0", 7: "wan"}},
		{"delete", [][]byte{linkMsg(rtmDelLink, 0, 7, "wan", 0)},
			map[uint32]string{1: "lo", 2: "eth0"}},
		{"short message ignored", [][]byte{nl.FinishMsg(append(nl.AppendHeader(nil, rtmDelLink, 0, 0), 0, 0, 0, 0), 0)},
			map[uint32]string{1: "lo", 2: "eth0"}},
	}
	for _, st := range steps {
		var dgram []byte
		for _, m := range st.msgs {
			dgram = append(dgram, m...)
		}
		if !c.apply(dgram) {
			t.Fatalf("%s: apply reported a malformed datagram", st.name)
		}
		if diff := cmp.Diff(st.want, names(c)); diff != "" {
			t.Fatalf("%s: cache (-want +got):\n%s", st.name, diff)
		}
	}
	select {
	case <-c.ready:
	default:
		t.Fatal("the end of the first dump did not release the start")
	}

	// A resync dump: eth0's deletion was lost; a link added while the
	// dump runs stays.
	c.dumping, c.dumpSeq, c.gen = true, 2, 2
	c.apply(linkMsg(rtmNewLink, 0, 1, "lo", 2))
	c.apply(linkMsg(rtmNewLink, 0, 9, "new9", 0))
	c.apply(doneMsg(2))
	if diff := cmp.Diff(map[uint32]string{1: "lo", 9: "new9"}, names(c)); diff != "" {
		t.Errorf("after resync (-want +got):\n%s", diff)
	}
	if c.apply([]byte{1, 2, 3}) {
		t.Error("a 3-byte datagram was not reported as malformed")
	}
}

// TestRenameKeepsOldValue checks that a rename stores a new slice: a
// record still holding the old name keeps reading it.
func TestRenameKeepsOldValue(t *testing.T) {
	t.Parallel()
	c := newLinkCache(discard)
	c.apply(linkMsg(rtmNewLink, 0, 3, "old", 0))
	old, _, _, _ := c.lookup2(3, 0)
	c.apply(linkMsg(rtmNewLink, 0, 3, "new", 0))
	if string(old) != "old" {
		t.Errorf("held name changed to %q", old)
	}
}

// TestIFINDEX runs the plugin against the test process's own network
// namespace, where index 1 is always the loopback device. It needs no
// privilege.
func TestIFINDEX(t *testing.T) {
	t.Parallel()
	const unknown = 0x7ffffff0
	tests := []struct {
		name string
		in   map[string]any
		want map[string]string
	}{
		{"loopback in", map[string]any{"oob.ifindex_in": 1}, map[string]string{"oob.in": "lo", "oob.out": ""}},
		{"loopback out, zero in", map[string]any{"oob.ifindex_in": 0, "oob.ifindex_out": 1}, map[string]string{"oob.in": "", "oob.out": "lo"}},
		{"unknown index: the number", map[string]any{"oob.ifindex_in": unknown, "oob.ifindex_out": 1},
			map[string]string{"oob.in": strconv.Itoa(unknown), "oob.out": "lo"}},
		{"no index at all", map[string]any{}, map[string]string{"oob.in": "", "oob.out": ""}},
	}
	h := plugintest.New(t, "ifi:IFINDEX", "", provides)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached, out := h.Event(tt.in)
			if !reached {
				t.Fatal("the event did not reach the end")
			}
			got := map[string]string{"oob.in": out["oob.in"], "oob.out": out["oob.out"]}
			if _, ok := out["oob.in"]; !ok {
				t.Error("oob.in is not valid")
			}
			if _, ok := out["oob.out"]; !ok {
				t.Error("oob.out is not valid")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outputs (-want +got):\n%s", diff)
			}
		})
	}
}

// started returns a started instance wired to a bare record (slots 0-1
// inputs, 2-3 outputs) whose link cache is opened with dial (nil: the
// test process's namespace).
func started(t *testing.T, dial func() (*nl.Conn, error)) (*filter, *keys.Record) {
	t.Helper()
	d, _ := plugin.Default.Lookup("IFINDEX")
	inst, err := d.New(&plugin.Env{ID: "ifi", Plugin: "IFINDEX", Log: discard,
		In: []keys.Slot{0, 1}, Out: []keys.Slot{2, 3}})
	if err != nil {
		t.Fatal(err)
	}
	f := inst.(*filter)
	f.dial = dial
	plugintest.Started(t, f)
	return f, keys.NewRecord([]keys.Type{keys.Uint32, keys.Uint32, keys.String, keys.String})
}

// TestOwnCache: every instance has its own cache, which its Stop closes.
func TestOwnCache(t *testing.T) {
	t.Parallel()
	a, r := started(t, nil)
	b, _ := started(t, nil)
	if a.cache == nil || a.cache == b.cache {
		t.Fatalf("caches %p and %p; want two", a.cache, b.cache)
	}
	r.SetUint(0, 1)
	a.Interp(r)
	if got := string(r.Bytes(2)); got != "lo" {
		t.Errorf("oob.in = %q, want lo", got)
	}
	c := a.cache
	if err := a.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	default:
		t.Error("Stop left the receive goroutine running")
	}
	if a.cache != nil || b.cache == nil {
		t.Errorf("after one Stop: caches %p and %p; want none and one", a.cache, b.cache)
	}
}

// TestIFINDEXKernel follows a dummy link in a private namespace: its
// index maps to its name, a rename shows the new name, a deletion the
// number.
func TestIFINDEXKernel(t *testing.T) {
	t.Parallel()
	ns := netnstest.NewNS(t)
	link := "ulogd0"
	if _, err := ns.Exec("ip", "link", "add", link, "type", "dummy"); err != nil {
		// No dummy driver: a veth pair does as well.
		ns.Run(t, "ip", "link", "add", link, "type", "veth", "peer", "name", "ulogd0p")
	}
	idx, err := strconv.Atoi(strings.TrimSpace(ns.Run(t, "cat", "/sys/class/net/"+link+"/ifindex")))
	if err != nil {
		t.Fatal(err)
	}

	f, r := started(t, func() (*nl.Conn, error) {
		var c *nl.Conn
		var err error
		ns.Do(t, func() { c, err = nl.Open(unix.NETLINK_ROUTE) })
		return c, err
	})
	// waitFor polls (the notification is applied by another goroutine)
	// until oob.in is want, for at most five seconds.
	waitFor := func(want string) {
		t.Helper()
		var in, out string
		if !testutil.Eventually(5*time.Second, func() bool {
			r.SetUint(0, uint64(idx))
			r.SetUint(1, 1)
			f.Interp(r)
			in, out = string(r.Bytes(2)), string(r.Bytes(3))
			r.Reset()
			return in == want && out == "lo"
		}) {
			t.Fatalf("oob.in = %q, oob.out = %q; want %q and lo", in, out, want)
		}
	}
	waitFor(link) // from the initial dump
	ns.Run(t, "ip", "link", "set", link, "name", "ulogd-renamed")
	waitFor("ulogd-renamed")
	ns.Run(t, "ip", "link", "del", "ulogd-renamed")
	waitFor(strconv.Itoa(idx))
	ns.Run(t, "ip", "link", "add", "ulogd1", "type", "veth", "peer", "name", "ulogd1p")
	idx2, _ := strconv.Atoi(strings.TrimSpace(ns.Run(t, "cat", "/sys/class/net/ulogd1/ifindex")))
	idx = idx2
	waitFor("ulogd1") // a link created after the start
}

// newFilter returns an instance over a cache filled by hand, wired to a
// bare record: slots 0-1 inputs, 2-3 outputs.
func newFilter() (*filter, *keys.Record) {
	c := newLinkCache(discard)
	c.apply(linkMsg(rtmNewLink, 0, 1, "lo", 0))
	c.apply(linkMsg(rtmNewLink, 0, 2, "eth0", 0))
	f := &filter{in: []keys.Slot{0, 1}, out: []keys.Slot{2, 3}, cache: c}
	return f, keys.NewRecord([]keys.Type{keys.Uint32, keys.Uint32, keys.String, keys.String})
}

func event(f *filter, r *keys.Record, in, out uint64) plugin.Verdict {
	r.SetUint(0, in)
	r.SetUint(1, out)
	v := f.Interp(r)
	r.Reset()
	return v
}

func TestIFINDEXAllocs(t *testing.T) {
	f, r := newFilter()
	r.SetUint(0, 2)
	r.SetUint(1, 12345)
	f.Interp(r)
	if got := []string{string(r.Bytes(2)), string(r.Bytes(3))}; got[0] != "eth0" || got[1] != "12345" {
		t.Fatalf("outputs %q, want eth0 and 12345", got)
	}
	r.Reset()
	n := testing.AllocsPerRun(1000, func() {
		event(f, r, 2, 1)
		event(f, r, 12345, 0)
	})
	if n != 0 {
		t.Errorf("%v allocations per event, want 0", n)
	}
}

func BenchmarkIFINDEX(b *testing.B) {
	f, r := newFilter()
	b.ReportAllocs()
	for b.Loop() {
		event(f, r, 2, 1)
	}
}

func BenchmarkIFINDEXUnknown(b *testing.B) {
	f, r := newFilter()
	b.ReportAllocs()
	for b.Loop() {
		event(f, r, 4711, 0)
	}
}
