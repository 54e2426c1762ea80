// Package mark is the MARK filter: it lets an event go on only when its
// conntrack or packet mark, masked, equals a configured value.
package mark

import (
	_ "embed"

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

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the MARK plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "MARK",
		Kind:      plugin.Filter,
		Summary:   "pass only events whose (mark & mask) equals mark",
		Input:     plugin.DTPacket | plugin.DTFlow,
		Output:    plugin.DTPacket | plugin.DTFlow,
		NewConfig: func() *Config { return &Config{Mark: 0, Mask: -1} },
		Options: map[string]string{
			"mark": "the value the masked mark must equal",
			"mask": "the bits of the mark to compare (`-1` is `0xffffffff`, all 32 bits)",
		},
		Sample: sample,
		Keys:   func(*Config) ([]keys.Spec, []keys.Spec, error) { return inputs, nil, nil },
		New: func(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
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
