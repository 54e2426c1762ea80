package stack

import (
	"fmt"
	"strings"

	"github.com/ulogd-go/ulogd/internal/keys"
)

// compatible reports whether an output of type out may feed an input
// declared with type in.
func compatible(in, out keys.Type) bool {
	switch {
	case in == keys.None || in == out:
		return true
	case in.IsInteger() && out.IsInteger():
		return true // ulogd2 mixes widths (oob.protocol is u8 in NFCT, u16 in IP2STR)
	case (in == keys.IPAddr || in == keys.IP6Addr) && (out == keys.IPAddr || out == keys.IP6Addr):
		return true
	}
	return false
}

// bind lays out the slots of a stack and binds every input key to the
// nearest upstream output of the same name.
func (b *builder) bind(st *Stack) bool {
	ok := true
	for i, in := range st.Instances {
		outSlots := make([]keys.Slot, len(in.Out))
		for k, spec := range in.Out {
			outSlots[k] = keys.Slot(len(st.types))
			st.types = append(st.types, spec.Type)
		}
		if i == 0 {
			// A shared source has the same layout in every stack.
			in.OutSlots = outSlots
			continue
		}
		in.OutSlots = outSlots
		in.InSlots = make([]keys.Slot, len(in.In))
		in.providers = make([]string, len(in.In))
		where := fmt.Sprintf("stack %d, %s:%s", st.Index, in.ID, in.Desc.Name)
		for k, spec := range in.In {
			in.InSlots[k] = keys.NoSlot
			if spec.Flags&keys.Inactive != 0 {
				continue
			}
			prov, slot, otype := lookup(st.Instances[:i], spec.Name)
			switch {
			case prov == nil && spec.Flags&keys.Optional != 0:
			case prov == nil:
				msg := fmt.Sprintf("%s: cannot find key `%s' in stack", where, spec.Name)
				if p := b.providersOf(spec.Name); p != "" {
					msg += " (it is produced by " + p + ")"
				}
				b.errf(st.Pos, "%s", msg)
				ok = false
			case !compatible(spec.Type, otype):
				b.errf(st.Pos, "%s: key `%s' is %s, but %s (%s) provides %s", where, spec.Name,
					spec.Type, prov.ID, prov.Desc.Name, otype)
				ok = false
			default:
				in.InSlots[k], in.providers[k] = slot, prov.ID
			}
		}
		if in.Desc.Wildcard {
			for _, up := range st.Instances[:i] {
				for _, spec := range up.Out {
					prov, slot, _ := lookup(st.Instances[:i], spec.Name)
					in.Upstream = append(in.Upstream, keys.Bound{Spec: spec, Slot: slot, Instance: prov.ID})
				}
			}
		}
		prev := st.Instances[i-1]
		if in.Desc.Input != 0 && prev.Desc.Output != 0 && in.Desc.Input&prev.Desc.Output == 0 {
			b.warnf(st.Pos, "stack %d: type mismatch between %s and %s in stack (%s may not understand what %s produces)",
				st.Index, in.Desc.Name, prev.Desc.Name, in.ID, prev.ID)
		}
	}
	return ok
}

// lookup finds the nearest instance (searching backwards) with an output
// key of that name.
func lookup(up []*Node, name string) (*Node, keys.Slot, keys.Type) {
	for j := len(up) - 1; j >= 0; j-- {
		for k, spec := range up[j].Out {
			if spec.Name == name {
				return up[j], up[j].OutSlots[k], spec.Type
			}
		}
	}
	return nil, keys.NoSlot, 0
}

// providersOf names the plugins that produce a key, for error hints.
func (b *builder) providersOf(name string) string {
	var out []string
	for _, n := range b.reg.Names() {
		d, _ := b.reg.Lookup(n)
		if d.Keys == nil {
			continue
		}
		var cfg any
		if d.NewConfig != nil {
			cfg = d.NewConfig()
		}
		_, outs, err := d.Keys(cfg)
		if err != nil {
			continue
		}
		for _, s := range outs {
			if s.Name == name {
				out = append(out, n)
				break
			}
		}
	}
	return strings.Join(out, ", ")
}
