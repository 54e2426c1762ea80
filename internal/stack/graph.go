package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// maxIDLen is ulogd2's limit on instance ids (a 31-byte field with its NUL).
const maxIDLen = 30

// Node is one plugin instance placed in a stack: its id, plugin, decoded
// config and key slots, the running plugin.Instance and its counters.
type Node struct {
	ID     string
	Desc   *plugin.Descriptor
	Config any
	Pos    config.Pos // the stack= line that names it

	In, Out   []keys.Spec
	InSlots   []keys.Slot
	OutSlots  []keys.Slot
	Upstream  []keys.Bound
	providers []string // per input: id of the providing instance, "" if unbound

	Inst   plugin.Instance
	interp plugin.Interpreter

	stats Counters
}

// Stats returns the instance's counters.
func (in *Node) Stats() *Counters { return &in.stats }

// Stack is one stack= line: a source followed by filters and a sink.
type Stack struct {
	Index     int // 1-based, in file order
	Pos       config.Pos
	Line      string
	Instances []*Node // [0] is the (possibly shared) source instance
	types     []keys.Type
	rec       *keys.Record
	src       *Source
}

// Source is a source instance and the stacks it feeds.
type Source struct {
	*Node
	Stacks []*Stack
	run    *runner

	// The source's goroutine, under the Graph's runMu: done is closed
	// when Run returns (nil: not launched), cancel cancels its context,
	// retired marks a source Reload stopped, whose end is no error.
	done    chan struct{}
	cancel  context.CancelFunc
	retired bool
}

// Graph is the result of Build: every stack and every distinct source.
type Graph struct {
	Global   Global
	Stacks   []*Stack
	Sources  []*Source
	Warnings []error
	log      *slog.Logger
	started  []*Node

	// mu guards Stacks and Sources, which Reload replaces, against the
	// readers in other goroutines (Run's ticker, Instances).
	mu sync.RWMutex

	// runMu guards stopped, cancelRun, runCtx, live and the sources'
	// goroutine state against Run starting in another goroutine; running
	// counts Run calls in progress, so that Stop stops filters and sinks
	// only once no walk or flush can be in flight. srcWG counts the
	// sources' goroutines, live those not retired by Reload.
	runMu     sync.Mutex
	stopped   bool
	cancelRun context.CancelCauseFunc
	runCtx    context.Context
	live      int
	running   sync.WaitGroup
	srcWG     sync.WaitGroup
}

// token is one id:PLUGIN element of a stack= line.
type token struct{ id, name string }

// tokens splits a stack= line and checks its syntax. The syntax errors of
// a line are all it reports: the rest of a malformed line is not looked at.
func (b *builder) tokens(index int, e config.Entry) ([]token, bool) {
	parts := strings.Split(e.Value, ",")
	if len(parts) < 2 {
		b.errf(e.Pos, "stack %q: a stack needs at least a source and a sink (id:PLUGIN,...,id:PLUGIN)", e.Value)
		return nil, false
	}
	toks := make([]token, len(parts))
	ok := true
	for i, part := range parts {
		id, name, colon := strings.Cut(part, ":")
		id, name = strings.TrimSpace(id), strings.TrimSpace(name)
		switch {
		case strings.TrimSpace(part) == "":
			b.errf(e.Pos, "stack %d: syntax error: empty element %d of %d (a comma too many?)", index, i+1, len(parts))
			ok = false
		case !colon || id == "" || name == "":
			b.errf(e.Pos, "stack %d: syntax error in %q: expected id:PLUGIN", index, part)
			ok = false
		case len(id) > maxIDLen:
			b.errf(e.Pos, "stack %d: instance id %q is longer than %d characters", index, id, maxIDLen)
			ok = false
		}
		toks[i] = token{id, name}
	}
	return toks, ok
}

// idUse is where an instance id was first given a plugin.
type idUse struct {
	desc *plugin.Descriptor
	pos  config.Pos
}

// checkID refuses an id that already stands in this stack, or that names
// another plugin elsewhere: every instance of a stack has its own id, and
// an id's [id] section configures one plugin. (A filter or sink id in
// several stacks makes one instance per stack, all reading that section;
// a source id makes one shared source.)
func (b *builder) checkID(where string, pos config.Pos, tok token, desc *plugin.Descriptor, inStack map[string]string) bool {
	if other, dup := inStack[tok.id]; dup {
		b.errf(pos, "%s: instance id %q appears twice in this stack (also as %s:%s); each instance of a stack needs its own id",
			where, tok.id, tok.id, other)
		return false
	}
	inStack[tok.id] = tok.name
	first, used := b.ids[tok.id]
	if !used {
		b.ids[tok.id] = idUse{desc, pos}
		return true
	}
	if first.desc != desc {
		b.errf(pos, "%s: instance id %q already names plugin %s (line %d); one id can name only one plugin",
			where, tok.id, first.desc.Name, first.pos.Line)
		return false
	}
	return true
}

// stack builds one stack= line.
func (b *builder) stack(index int, e config.Entry) {
	st := &Stack{Index: index, Pos: e.Pos, Line: e.Value}
	nerr := len(b.errs)
	toks, ok := b.tokens(index, e)
	if !ok {
		return
	}
	var insts []*Node
	skipped := false // a source already reported as bad
	inStack := map[string]string{}
	for ti, tok := range toks {
		id, name := tok.id, tok.name
		desc, err := LookupPlugin(b.reg, name)
		if err != nil {
			b.errf(e.Pos, "stack %d: %v", index, err)
			continue
		}
		where := fmt.Sprintf("stack %d, %s:%s", index, id, name)
		if !b.checkID(where, e.Pos, tok, desc, inStack) {
			continue
		}
		switch {
		case ti == 0 && desc.Kind != plugin.Source:
			b.errf(e.Pos, "%s: first plugin in stack has to be source plugin (%s is a %s)", where, name, desc.Kind)
			continue
		case ti == len(toks)-1 && desc.Kind != plugin.Sink:
			b.errf(e.Pos, "%s: last plugin in stack has to be output plugin (%s is a %s)", where, name, desc.Kind)
			continue
		case ti > 0 && ti < len(toks)-1 && desc.Kind != plugin.Filter:
			b.errf(e.Pos, "%s: a %s plugin can only stand %s of a stack", where, desc.Kind,
				map[plugin.Kind]string{plugin.Source: "first", plugin.Sink: "last"}[desc.Kind])
			continue
		}
		if ti == 0 {
			if b.badSources[id] {
				skipped = true
				continue
			}
			if src, shared := b.sources[id]; shared {
				insts = append(insts, src.Node)
				continue
			}
		}
		in := &Node{ID: id, Desc: desc, Pos: e.Pos}
		if !b.configure(in, where) {
			if ti == 0 {
				if b.badSources == nil {
					b.badSources = map[string]bool{}
				}
				b.badSources[id] = true
			}
			continue
		}
		insts = append(insts, in)
	}
	if skipped || len(b.errs) > nerr {
		return
	}
	st.Instances = insts
	if !b.bind(st) {
		return
	}
	b.claim(st)
	if len(b.errs) > nerr {
		return
	}
	src := b.sources[insts[0].ID]
	if src == nil {
		src = &Source{Node: insts[0]}
		src.run = &runner{src: src, log: b.log}
		b.sources[insts[0].ID] = src
		b.g.Sources = append(b.g.Sources, src)
		if !b.construct(insts[0], "stack "+fmt.Sprint(index)) {
			return
		}
	}
	for _, in := range insts[1:] {
		if !b.construct(in, "stack "+fmt.Sprint(index)) {
			return
		}
	}
	st.src = src
	st.rec = keys.NewRecord(st.types)
	src.Stacks = append(src.Stacks, st)
	b.g.Stacks = append(b.g.Stacks, st)
}

// configure decodes the instance's [id] section and computes its keys.
func (b *builder) configure(in *Node, where string) bool {
	d := in.Desc
	if d.NewConfig != nil {
		in.Config = d.NewConfig()
		sec := b.f.Section(in.ID)
		if sec == nil {
			b.warnf(in.Pos, "%s: no section [%s]: using the defaults of %s", where, in.ID, d.Name)
		}
		if err := config.Decode(sec, in.Pos, in.Config); err != nil {
			b.errs = append(b.errs, prefixErrors(where, err)...)
			return false
		}
	}
	if d.Keys != nil {
		var err error
		in.In, in.Out, err = d.Keys(in.Config)
		if err != nil {
			b.optionErrors(in, where, err)
			return false
		}
	}
	return true
}

// optionErrors reports the errors of a plugin's checks: each at the line
// of the option it names (a config.OptionError whose option the section
// has), else at the instance's place in the stack.
func (b *builder) optionErrors(in *Node, where string, err error) {
	sec := b.f.Section(in.ID)
	eachLeaf(err, func(e error) {
		pos := in.Pos
		var oe *config.OptionError
		if errors.As(e, &oe) {
			if ent, ok := sec.Get(oe.Option); ok {
				pos = ent.Pos
			}
		}
		b.errf(pos, "%s: %v", where, e)
	})
}

// claim records the exclusive resources of a stack's instances (every
// resource but a "dir:" one, a directory files are created in).
func (b *builder) claim(st *Stack) {
	for i, in := range st.Instances {
		if in.Desc.Resources == nil || (i == 0 && b.sources[in.ID] != nil) {
			continue
		}
		for _, r := range in.Desc.Resources(in.Config) {
			if strings.HasPrefix(r, "dir:") {
				continue // a directory is shared: each sink names its own files in it
			}
			if c, taken := b.resources[r]; taken && c.id != in.ID {
				b.errf(st.Pos, "stack %d, %s:%s: %s is already used by instance %q (line %d)",
					st.Index, in.ID, in.Desc.Name, r, c.id, c.pos.Line)
				continue
			}
			b.resources[r] = resourceClaim{in.ID, st.Pos}
		}
	}
}

// construct calls the plugin's New.
func (b *builder) construct(in *Node, where string) bool {
	env := &plugin.Env{
		ID: in.ID, Plugin: in.Desc.Name, Config: in.Config, Pos: in.Pos.String(),
		In: in.InSlots, Out: in.OutSlots, Upstream: in.Upstream,
		Log: b.log.With("instance", in.ID),
	}
	inst, err := in.Desc.New(env)
	if err != nil {
		b.optionErrors(in, fmt.Sprintf("%s, %s:%s", where, in.ID, in.Desc.Name), err)
		return false
	}
	in.Inst = inst
	if ip, ok := inst.(plugin.Interpreter); ok {
		in.interp = ip
	} else if in.Desc.Kind != plugin.Source {
		b.errf(in.Pos, "%s, %s:%s: plugin does not implement Interp", where, in.ID, in.Desc.Name)
		return false
	}
	if in.Desc.Kind == plugin.Source {
		if _, ok := inst.(plugin.SourceInstance); !ok {
			b.errf(in.Pos, "%s, %s:%s: source plugin does not implement Run", where, in.ID, in.Desc.Name)
			return false
		}
	}
	return true
}
