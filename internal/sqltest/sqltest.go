// Package sqltest drives a SQL sink instance directly in tests: it builds
// the upstream keys of a real stack (the output keys of the plugins named,
// in stack order), an instance of the sink over them, and records to feed
// it by key name.
package sqltest

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Upstream returns the output keys of the plugins named (with their
// default configs), in order, as a wildcard sink after them receives them,
// and a record laid out for them.
func Upstream(t testing.TB, names ...string) ([]keys.Bound, *keys.Record) {
	t.Helper()
	var up []keys.Bound
	var types []keys.Type
	for _, n := range names {
		d, ok := plugin.Default.Lookup(n)
		if !ok {
			t.Fatalf("plugin %s not registered", n)
		}
		if d.Keys == nil {
			continue
		}
		_, out, err := d.Keys(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range out {
			up = append(up, keys.Bound{Spec: s, Slot: keys.Slot(len(types)), Instance: n})
			types = append(types, s.Type)
		}
	}
	return up, keys.NewRecord(types)
}

// Set sets the key name of r: an integer (any Go integer type or bool), a
// string, or an address (netip.Addr) for an address key.
func Set(t testing.TB, up []keys.Bound, r *keys.Record, name string, v any) {
	t.Helper()
	for _, u := range up {
		if u.Name != name {
			continue
		}
		switch x := v.(type) {
		case int:
			r.SetUint(u.Slot, uint64(x))
		case uint64:
			r.SetUint(u.Slot, x)
		case bool:
			r.SetBool(u.Slot, x)
		case string:
			r.SetString(u.Slot, x)
		case netip.Addr:
			if x.Is4() {
				b := x.As4()
				r.SetBytes(u.Slot, b[:])
			} else {
				b := x.As16()
				r.SetBytes(u.Slot, b[:])
			}
		case []byte:
			r.SetBytes(u.Slot, x)
		default:
			t.Fatalf("Set %s: type %T", name, v)
		}
		return
	}
	t.Fatalf("no key %s upstream", name)
}

// New decodes the config sections for plugin name (instance id "db1") and
// returns its instance over the upstream keys; the stack position is
// "test.conf:1".
func New(t testing.TB, name, section string, up []keys.Bound) (plugin.Instance, error) {
	t.Helper()
	d, ok := plugin.Default.Lookup(name)
	if !ok {
		t.Fatalf("plugin %s not registered", name)
	}
	cfg := d.NewConfig()
	f, err := config.Parse("test.conf", []byte("[db1]\n"+section))
	if err != nil {
		t.Fatal(err)
	}
	if err := config.Decode(f.Sections[0], config.Pos{File: "test.conf", Line: 1}, cfg); err != nil {
		return nil, err
	}
	if d.Keys != nil {
		if _, _, err := d.Keys(cfg); err != nil {
			return nil, err
		}
	}
	return d.New(&plugin.Env{ID: "db1", Plugin: name, Config: cfg, Upstream: up, Pos: "test.conf:1"})
}

// Start starts inst and registers its Stop for the end of the test.
func Start(t testing.TB, inst plugin.Instance) {
	t.Helper()
	if err := inst.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Stop(context.Background()) })
}

// Counters returns the written and dropped counters of a sink.
func Counters(inst plugin.Instance) (written, dropped uint64) {
	if w, ok := inst.(interface{ Written() uint64 }); ok {
		written = w.Written()
	}
	if d, ok := inst.(plugin.Dropper); ok {
		dropped = d.Dropped()
	}
	return
}

// String formats the counters for messages.
func String(inst plugin.Instance) string {
	w, d := Counters(inst)
	return fmt.Sprintf("written %d, dropped %d", w, d)
}

// Flow fills r with flow i, IPv4 (10.99.0.1 → 10.99.0.2) or IPv6 (fd67::1
// → fd67::2), TCP 48142 → 5001, as NFCT gives a DESTROY event (ct.mark = i,
// ct.id = 3000000000+i), with the text addresses when IP2STR is upstream.
func Flow(t testing.TB, up []keys.Bound, r *keys.Record, i int, v6 bool) {
	t.Helper()
	r.Reset()
	src, dst, family := netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2"), 2
	if v6 {
		src, dst, family = netip.MustParseAddr("fd67::1"), netip.MustParseAddr("fd67::2"), 10
	}
	vals := []struct {
		k string
		v any
	}{
		{"oob.family", family},
		{"orig.ip.saddr", src}, {"orig.ip.daddr", dst}, {"reply.ip.saddr", dst}, {"reply.ip.daddr", src},
		{"orig.ip.protocol", 6}, {"reply.ip.protocol", 6},
		{"orig.l4.sport", 48142}, {"orig.l4.dport", 5001}, {"reply.l4.sport", 5001}, {"reply.l4.dport", 48142},
		{"orig.raw.pktlen", 274}, {"orig.raw.pktcount", 5}, {"reply.raw.pktlen", 164}, {"reply.raw.pktcount", 3},
		{"ct.mark", i}, {"ct.id", uint64(3000000000 + i)}, {"ct.event", 4},
		{"flow.start.sec", 1795630392}, {"flow.start.usec", 57479},
		{"flow.end.sec", 1795630411}, {"flow.end.usec", 482190},
	}
	for _, kv := range vals {
		Set(t, up, r, kv.k, kv.v)
	}
	for _, u := range up {
		if u.Name == "orig.ip.saddr.str" {
			for _, kv := range vals[1:5] {
				Set(t, up, r, kv.k+".str", kv.v.(netip.Addr).String())
			}
			break
		}
	}
}
