package stack

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/ulogd-go/ulogd/internal/plugin"
)

// ReloadResult says what Reload did.
type ReloadResult struct {
	// KeptSources are the ids of the sources that went on running with
	// their sockets; KeptStacks the stack lines (of the new graph) that
	// went on running untouched, sink and all.
	KeptSources []string
	KeptStacks  []int
	// Switched says that g runs the new stacks. When Reload returns an
	// error without it, g runs on unchanged (a new filter or sink could not
	// start); with it, a new source could not start and g runs without it.
	Switched bool
	// Retired are the instances Reload stopped: sources whose options
	// changed or that no stack names any more, and the filters and sinks
	// of every stack that was not kept. Their counters are final.
	Retired []*Node
}

// sameInstance reports whether two instances are one: the same id,
// plugin and options.
func sameInstance(a, b *Node) bool {
	return a.ID == b.ID && a.Desc == b.Desc && reflect.DeepEqual(a.Config, b.Config)
}

// sameStack reports whether stack n of the new graph is stack o of the
// running one: the same instances with the same options, in order.
func sameStack(o, n *Stack) bool {
	if len(o.Instances) != len(n.Instances) {
		return false
	}
	for i := range o.Instances {
		if !sameInstance(o.Instances[i], n.Instances[i]) {
			return false
		}
	}
	return true
}

// Reload makes the running graph g run the stacks of ng, a graph built
// from the new configuration and not started, without losing an event of
// the sources it keeps:
//
//   - a source of ng with the same id, plugin and options as a running one
//     is that running source: its socket stays open and its goroutine runs
//     on; the stacks it feeds are switched between two events, after the
//     old stacks' sinks were flushed, so each event goes either through
//     the old stacks or through the new ones;
//   - a stack of ng whose instances all have the same ids, plugins and
//     options as a running stack is that stack, untouched (its sink keeps
//     its file or connection and its counters);
//   - everything else of ng is started: filters and sinks first, then the
//     new sources that need nothing a running source holds (when one
//     fails, what was started is stopped and g runs on unchanged); the
//     running sources that changed or are gone are stopped; then the new
//     sources that needed what they held (a source whose options changed,
//     an NFLOG group or socket path passed to another id) are started;
//     finally the filters and sinks of the running stacks that were not
//     kept are stopped.
//
// A source of that last kind that fails to start leaves g without it: the
// error is returned with the stacks already switched (Switched), and the
// caller should treat it as a failed start. Reload is called from the
// goroutine that calls Signal, Reopen and Stop, while Run runs.
func (g *Graph) Reload(ctx context.Context, ng *Graph) (ReloadResult, error) {
	var res ReloadResult
	g.runMu.Lock()
	stopped := g.stopped
	g.runMu.Unlock()
	if stopped {
		return res, errors.New("reload: the stacks are stopped")
	}

	// Which running sources and stacks go on.
	keptSrc := map[*Source]*Source{} // new → running
	for _, ns := range ng.Sources {
		for _, os := range g.Sources {
			if sameInstance(os.Node, ns.Node) {
				keptSrc[ns] = os
				res.KeptSources = append(res.KeptSources, os.ID)
				break
			}
		}
	}
	keptStack := map[*Stack]*Stack{} // new → running
	used := map[*Stack]bool{}
	for _, nst := range ng.Stacks {
		if keptSrc[nst.src] == nil {
			continue
		}
		for _, ost := range g.Stacks {
			if !used[ost] && sameStack(ost, nst) {
				keptStack[nst], used[ost] = ost, true
				res.KeptStacks = append(res.KeptStacks, nst.Index)
				break
			}
		}
	}

	// Start the new filters and sinks, then the new sources that need
	// nothing a running source holds (a new id, no resource of a source
	// about to stop); on failure nothing has changed. Their sockets queue
	// what the kernel sends until they run, after the switch.
	isKept := map[*Source]bool{}
	for _, os := range keptSrc {
		isKept[os] = true
	}
	early := map[*Source]bool{}
	for _, ns := range ng.Sources {
		if keptSrc[ns] == nil && !g.holds(ns.Node, isKept) {
			early[ns] = true
		}
	}
	var started []*Node
	start := func(in *Node) error {
		if err := in.Inst.Start(ctx); err != nil {
			for i := len(started) - 1; i >= 0; i-- {
				g.stopNode(ctx, started[i])
			}
			return fmt.Errorf("error starting `%s' (%s): %w", in.ID, in.Desc.Name, err)
		}
		started = append(started, in)
		return nil
	}
	for _, kind := range []plugin.Kind{plugin.Filter, plugin.Sink} {
		for _, nst := range ng.Stacks {
			if keptStack[nst] != nil {
				continue
			}
			for _, in := range nst.Instances[1:] {
				if in.Desc.Kind != kind || slices.Contains(started, in) {
					continue
				}
				if err := start(in); err != nil {
					return ReloadResult{}, err
				}
			}
		}
	}
	for _, ns := range ng.Sources {
		if early[ns] {
			if err := start(ns.Node); err != nil {
				return ReloadResult{}, err
			}
		}
	}

	// Stop the running sources that do not go on: their groups and
	// sockets may be what the other new ones need.
	for _, os := range g.Sources {
		if !isKept[os] {
			g.retireSource(ctx, os)
			res.Retired = append(res.Retired, os.Node)
		}
	}

	// Switch the stacks. A kept stack's instances are the running ones;
	// the new stacks of a kept source get the running source's node.
	stacks := make([]*Stack, len(ng.Stacks))
	for i, nst := range ng.Stacks {
		if ost := keptStack[nst]; ost != nil {
			ost.Index, ost.Pos, ost.Line = nst.Index, nst.Pos, nst.Line
			stacks[i] = ost
			continue
		}
		if os := keptSrc[nst.src]; os != nil {
			nst.Instances[0] = os.Node
			nst.src = os
		}
		stacks[i] = nst
	}
	sources := make([]*Source, len(ng.Sources))
	for i, ns := range ng.Sources {
		os := keptSrc[ns]
		if os == nil {
			sources[i] = ns
			continue
		}
		var mine []*Stack
		for _, st := range stacks {
			if st.src == os {
				mine = append(mine, st)
			}
		}
		os.run.mu.Lock()
		os.run.flushLocked()
		os.Stacks = mine
		os.run.mu.Unlock()
		sources[i] = os
	}
	oldStacks := g.Stacks
	g.mu.Lock()
	g.Stacks, g.Sources = stacks, sources
	g.Global, g.Warnings = ng.Global, ng.Warnings
	g.mu.Unlock()

	// Retire the filters and sinks of the stacks not kept: flushed at the
	// switch (or by the stopped source's last flush), now stopped.
	for _, kind := range []plugin.Kind{plugin.Filter, plugin.Sink} {
		for _, ost := range oldStacks {
			if used[ost] {
				continue
			}
			for _, in := range ost.Instances[1:] {
				if in.Desc.Kind == kind && !slices.Contains(res.Retired, in) {
					g.stopNode(ctx, in)
					res.Retired = append(res.Retired, in)
				}
			}
		}
	}

	// Start and run the new sources.
	var startErr error
	failed := map[*Node]bool{}
	g.runMu.Lock()
	for _, src := range sources {
		if isKept[src] {
			continue
		}
		if early[src] {
			g.launchLocked(src)
			continue
		}
		if err := src.Inst.Start(ctx); err != nil {
			startErr = errors.Join(startErr, fmt.Errorf("error starting `%s' (%s): %w", src.ID, src.Desc.Name, err))
			failed[src.Node] = true
			continue
		}
		g.launchLocked(src)
	}
	g.runMu.Unlock()
	res.Switched = true
	g.started = slices.DeleteFunc(g.order(plugin.Source, plugin.Filter, plugin.Sink), func(in *Node) bool { return failed[in] })
	return res, startErr
}

// holds reports whether a running source that is not kept has the id of
// in, or claims one of its resources: in can start only once it is
// stopped.
func (g *Graph) holds(in *Node, kept map[*Source]bool) bool {
	var want []string
	if in.Desc.Resources != nil {
		want = in.Desc.Resources(in.Config)
	}
	for _, os := range g.Sources {
		if kept[os] {
			continue
		}
		if os.ID == in.ID {
			return true
		}
		if os.Desc.Resources == nil {
			continue
		}
		for _, r := range os.Desc.Resources(os.Config) {
			if slices.Contains(want, r) {
				return true
			}
		}
	}
	return false
}

// retireSource stops a running source that Reload drops and waits for its
// goroutine; then flushes what its stacks buffered.
func (g *Graph) retireSource(ctx context.Context, src *Source) {
	g.runMu.Lock()
	src.retired = true
	done, cancel := src.done, src.cancel
	g.runMu.Unlock()
	g.stopNode(ctx, src.Node)
	if cancel != nil {
		cancel()
	}
	if done != nil {
		<-done
	}
	src.run.Flush()
}
