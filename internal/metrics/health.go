package metrics

import (
	"fmt"
	"sort"
	"time"

	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
)

// DefaultOverrunWindow is how long after its last loss a source counts as
// overrunning.
const DefaultOverrunWindow = 10 * time.Second

// health follows the sources' losses: a source whose loss counter grew in
// the last window is overrunning.
type health struct {
	window   time.Duration
	lost     map[key]float64   // loss counter at the last check
	lastLoss map[key]time.Time // when it was last seen growing
}

func (h *health) init(window time.Duration) {
	h.window, h.lost, h.lastLoss = window, map[key]float64{}, map[key]time.Time{}
}

// problems are what makes the daemon not ready.
type problems struct {
	down    map[key]error
	overrun map[key]float64 // losses in the window
}

func (p problems) lines() []string {
	var out []string
	for k, err := range p.down {
		out = append(out, fmt.Sprintf("%s is down: %v", k, err))
	}
	for k, n := range p.overrun {
		out = append(out, fmt.Sprintf("%s is overrunning: %.0f events lost in the last window", k, n))
	}
	sort.Strings(out)
	return out
}

func (p problems) len() int { return len(p.down) + len(p.overrun) }

// check updates the loss bookkeeping with samples taken at now and returns
// the problems: every instance whose Check fails, every source that lost
// events less than a window ago.
func (h *health) check(samples []*sample, g *stack.Graph, now time.Time) problems {
	p := problems{down: map[key]error{}, overrun: map[key]float64{}}
	for _, in := range g.Instances() {
		if c, ok := in.Inst.(plugin.Checker); ok {
			if err := c.Check(); err != nil {
				p.down[key{in.ID, in.Desc.Name}] = err
			}
		}
	}
	for _, s := range samples {
		if s.kind != plugin.Source {
			continue
		}
		n := s.vals[EventsLost]
		before, seen := h.lost[s.key]
		h.lost[s.key] = n
		if seen && n != before {
			h.lastLoss[s.key] = now
		}
		if t, ok := h.lastLoss[s.key]; ok && now.Sub(t) < h.window {
			p.overrun[s.key] = n
		}
	}
	return p
}
