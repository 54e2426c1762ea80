// Package ifindex is the IFINDEX filter: it turns the input and output
// interface indexes of a packet into interface names ("eth0"), from a link
// cache kept current by rtnetlink notifications.
package ifindex

import (
	"context"
	"strconv"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Key positions (inputs and outputs alike).
const (
	keyIn  = iota // oob.ifindex_in → oob.in
	keyOut        // oob.ifindex_out → oob.out
)

var (
	inputs = []keys.Spec{
		{Name: "oob.ifindex_in", Type: keys.Uint32},
		{Name: "oob.ifindex_out", Type: keys.Uint32},
	}
	outputs = []keys.Spec{
		{Name: "oob.in", Type: keys.String},
		{Name: "oob.out", Type: keys.String},
	}
)

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the IFINDEX plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[plugin.NoConfig]{
		Name:    "IFINDEX",
		Kind:    plugin.Filter,
		Summary: "convert interface indexes to interface names",
		Input:   plugin.DTPacket | plugin.DTFlow,
		Output:  plugin.DTPacket | plugin.DTFlow,
		Keys:    func(*plugin.NoConfig) ([]keys.Spec, []keys.Spec, error) { return inputs, outputs, nil },
		New: func(env *plugin.Env, _ *plugin.NoConfig) (plugin.Instance, error) {
			return &filter{env: env, in: env.In, out: env.Out}, nil
		},
	})
}

type filter struct {
	env     *plugin.Env
	in, out []keys.Slot
	cache   *linkCache // the instance's own, from Start to Stop

	// dial opens the rtnetlink socket; nil is dialRoute (tests open it
	// in a private network namespace).
	dial func() (*nl.Conn, error)
}

// Start opens the instance's link cache and waits for its initial dump.
func (f *filter) Start(ctx context.Context) error {
	dial := f.dial
	if dial == nil {
		dial = dialRoute
	}
	c, err := openCache(ctx, f.env.Log, dial)
	if err != nil {
		return err
	}
	f.cache = c
	return nil
}

// Stop closes the link cache.
func (f *filter) Stop(context.Context) error {
	if f.cache != nil {
		f.cache.close()
		f.cache = nil
	}
	return nil
}

// empty is the value of oob.in/oob.out without an interface.
var empty = []byte{}

// Interp sets oob.in and oob.out, always: "" for index 0 or no index, the
// name for an index in the cache, else the index as a number.
func (f *filter) Interp(r *keys.Record) plugin.Verdict {
	in := uint32(r.Uint(f.in[keyIn]))
	out := uint32(r.Uint(f.in[keyOut]))
	nin, okIn, nout, okOut := f.cache.lookup2(in, out)
	set(r, f.out[keyIn], in, nin, okIn)
	set(r, f.out[keyOut], out, nout, okOut)
	return plugin.Continue
}

func set(r *keys.Record, s keys.Slot, idx uint32, name []byte, ok bool) {
	switch {
	case idx == 0:
		r.SetBytes(s, empty)
	case ok:
		r.SetBytes(s, name)
	default:
		a := r.Arena()
		n := len(a)
		a = strconv.AppendUint(a, uint64(idx), 10)
		r.SetBytes(s, r.Commit(a, n))
	}
}
