// Package mark is the MARK filter: it lets an event go on only when its
// conntrack or packet mark, masked, equals a configured value.
package mark

import (
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Config holds MARK's options. Both are C ints in ulogd2, read as 32 bits:
// mask=-1 and mask=0xffffffff are the same mask.
type Config struct {
	Mark int `ulogd:"mark"`
	Mask int `ulogd:"mask"`
}

// Input key positions.
const (
	inCtMark = iota
	inOobMark
)

var inputs = []keys.Spec{
	{Name: "ct.mark", Type: keys.Uint32, Flags: keys.Optional},
	{Name: "oob.mark", Type: keys.Uint32, Flags: keys.Optional},
}

func init() {
	plugin.Register(&plugin.Descriptor{
		Name:      "MARK",
		Kind:      plugin.Filter,
		Summary:   "pass only events whose (mark & mask) equals mark",
		Input:     plugin.DTPacket | plugin.DTFlow,
		Output:    plugin.DTPacket | plugin.DTFlow,
		NewConfig: func() any { return &Config{Mark: 0, Mask: -1} },
		Keys:      func(any) ([]keys.Spec, []keys.Spec, error) { return inputs, nil, nil },
		New: func(env *plugin.Env) (plugin.Instance, error) {
			cfg := env.Config.(*Config)
			return &filter{
				ct:   env.In[inCtMark],
				oob:  env.In[inOobMark],
				mark: uint32(cfg.Mark),
				mask: uint32(cfg.Mask),
			}, nil
		},
	})
}

type filter struct {
	plugin.Stateless
	ct, oob    keys.Slot
	mark, mask uint32
}

// Interp tests ct.mark when it is valid, else oob.mark when it is valid;
// an event with neither goes on.
func (f *filter) Interp(r *keys.Record) plugin.Verdict {
	var v uint32
	switch {
	case r.Valid(f.ct):
		v = uint32(r.Uint(f.ct))
	case r.Valid(f.oob):
		v = uint32(r.Uint(f.oob))
	default:
		return plugin.Continue
	}
	if v&f.mask != f.mark {
		return plugin.Stop
	}
	return plugin.Continue
}
