package plugintest

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Chain is a run of filter plugins called directly, without a stack, on a
// bare record laid out as the engine lays it out: the source's keys first,
// then each plugin's outputs, every input bound to its nearest provider.
// Fuzzers, benchmarks and allocation tests use it to measure the plugins
// alone.
type Chain struct {
	Rec   *keys.Record
	Src   map[string]keys.Slot // the source's keys
	Key   map[string]keys.Slot // every key, by name, as the last step sees it
	Steps []plugin.Interpreter
}

// NewChain builds the registered plugins names (filters) after a source
// that provides the keys source.
func NewChain(tb testing.TB, source []keys.Spec, names ...string) *Chain {
	tb.Helper()
	c := &Chain{Src: map[string]keys.Slot{}, Key: map[string]keys.Slot{}}
	var types []keys.Type
	for _, s := range source {
		c.Src[s.Name] = keys.Slot(len(types))
		c.Key[s.Name] = keys.Slot(len(types))
		types = append(types, s.Type)
	}
	for _, name := range names {
		d, ok := plugin.Default.Lookup(name)
		if !ok {
			tb.Fatalf("%s is not registered", name)
		}
		in, out, err := d.Keys(nil)
		if err != nil {
			tb.Fatal(err)
		}
		env := &plugin.Env{ID: strings.ToLower(name), Plugin: name, Log: slog.New(slog.DiscardHandler)}
		for _, s := range in {
			slot, ok := c.Key[s.Name]
			if !ok {
				if s.Flags&keys.Optional == 0 {
					tb.Fatalf("%s: nobody provides %s", name, s.Name)
				}
				slot = keys.NoSlot
			}
			env.In = append(env.In, slot)
		}
		for _, s := range out {
			env.Out = append(env.Out, keys.Slot(len(types)))
			c.Key[s.Name] = keys.Slot(len(types))
			types = append(types, s.Type)
		}
		inst, err := d.New(env)
		if err != nil {
			tb.Fatal(err)
		}
		step, ok := inst.(plugin.Interpreter)
		if !ok {
			tb.Fatalf("%s is not a filter", name)
		}
		c.Steps = append(c.Steps, step)
	}
	c.Rec = keys.NewRecord(types)
	return c
}

// Walk runs the steps on the record as it is; it reports whether every
// step continued.
func (c *Chain) Walk() bool {
	for _, st := range c.Steps {
		if st.Interp(c.Rec) != plugin.Continue {
			return false
		}
	}
	return true
}

// Snapshot copies the record's valid values, except those of skip, into a
// new record of the same layout whose byte values do not live in the
// arena (which the next walk starts over), so that one step can run again
// and again on the same input: Rec.Reset(); Rec.CopyFrom(snapshot).
func (c *Chain) Snapshot(skip ...keys.Slot) *keys.Record {
	types := make([]keys.Type, c.Rec.Len())
	for i := range types {
		types[i] = c.Rec.Type(keys.Slot(i))
	}
	snap := keys.NewRecord(types)
	for i := range types {
		s := keys.Slot(i)
		switch {
		case !c.Rec.Valid(s) || slices.Contains(skip, s):
		case types[i].IsInteger():
			snap.SetUint(s, c.Rec.Uint(s))
		default:
			snap.SetBytes(s, append([]byte{}, c.Rec.Bytes(s)...))
		}
	}
	return snap
}

// Replay puts snap (from Snapshot) back into the record and runs step on
// it alone: one step measured or checked again and again.
func (c *Chain) Replay(snap *keys.Record, step plugin.Interpreter) plugin.Verdict {
	c.Rec.Reset()
	c.Rec.CopyFrom(snap)
	return step.Interp(c.Rec)
}
