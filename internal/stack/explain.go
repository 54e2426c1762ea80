package stack

import (
	"context"
	"fmt"
	"io"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Explain writes every stack with the binding of every input key: which
// instance provides it (and its slot), or that it is unbound.
func (g *Graph) Explain(w io.Writer) {
	for i, st := range g.Stacks {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "stack %d (%s): %s\n", st.Index, st.Pos, st.Line)
		for k, in := range st.Instances {
			role := in.Desc.Kind.String()
			if k == 0 && len(st.src.Stacks) > 1 {
				role += fmt.Sprintf(", shared by %d stacks", len(st.src.Stacks))
			}
			fmt.Fprintf(w, "  %s:%s (%s)\n", in.ID, in.Desc.Name, role)
			for j, spec := range in.In {
				switch {
				case spec.Flags&keys.Inactive != 0:
					fmt.Fprintf(w, "    in  %-24s %-16s inactive\n", spec.Name, spec.Type)
				case in.InSlots[j] == keys.NoSlot:
					fmt.Fprintf(w, "    in  %-24s %-16s unbound (optional)\n", spec.Name, spec.Type)
				default:
					fmt.Fprintf(w, "    in  %-24s %-16s <- %s [slot %d]\n", spec.Name, spec.Type, in.providers[j], in.InSlots[j])
				}
			}
			if in.Desc.Wildcard {
				fmt.Fprintf(w, "    in  (every upstream key: %d)\n", len(in.Upstream))
				for _, u := range in.Upstream {
					fmt.Fprintf(w, "        %-24s %-16s <- %s [slot %d]\n", u.Name, u.Type, u.Instance, u.Slot)
				}
			}
			if ex, ok := in.Inst.(plugin.Explainer); ok {
				for _, l := range ex.Explain(context.Background()) {
					fmt.Fprintf(w, "    %s\n", l)
				}
			}
			for j, spec := range in.Out {
				fmt.Fprintf(w, "    out %-24s %-16s [slot %d]\n", spec.Name, spec.Type, in.OutSlots[j])
			}
		}
	}
}
