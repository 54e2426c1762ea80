// Package stack builds stacks from a parsed ulogd.conf (lookup, option
// decoding, shape check, key binding, source sharing, resource conflicts)
// and runs them (one goroutine per source, synchronous walks).
//
// Build validates everything and reports every problem in one error, each
// with file:line; nothing is opened before Start.
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
	"github.com/ulogd-go/ulogd/internal/suggest"
)

// maxIDLen is ulogd2's limit on instance ids (a 31-byte field with its NUL).
const maxIDLen = 30

// Global holds the [global] options other than stack= and plugin=.
type Global struct {
	Logfile     string
	LogfilePos  config.Pos
	Loglevel    int
	LoglevelSet bool
	LoglevelPos config.Pos
}

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
}

// Graph is the result of Build: every stack and every distinct source.
type Graph struct {
	Global   Global
	Stacks   []*Stack
	Sources  []*Source
	Warnings []error
	log      *slog.Logger
	started  []*Node

	// runMu guards stopped and cancelRun against Run starting in another
	// goroutine; running counts Run calls in progress, so that Stop stops
	// filters and sinks only once no walk or flush can be in flight.
	runMu     sync.Mutex
	stopped   bool
	cancelRun context.CancelCauseFunc
	running   sync.WaitGroup
}

// Build turns a parsed configuration into stacks. All problems are
// reported, joined, each with its file:line. Instances are constructed (New)
// but not started.
func Build(f *config.File, reg *plugin.Registry, log *slog.Logger) (*Graph, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &builder{f: f, reg: reg, log: log, g: &Graph{log: log},
		sources: map[string]*Source{}, resources: map[string]resourceClaim{}}
	for _, w := range f.Warnings {
		b.g.Warnings = append(b.g.Warnings, w)
	}
	b.global()
	if len(b.errs) == 0 && len(b.g.Stacks) == 0 {
		b.errf(config.Pos{File: f.Path, Line: 1}, "not even a single working plugin stack: [global] has no stack= line")
	}
	if len(b.errs) > 0 {
		return nil, errors.Join(b.errs...)
	}
	return b.g, nil
}

type resourceClaim struct {
	id  string
	pos config.Pos
}

type builder struct {
	f         *config.File
	reg       *plugin.Registry
	log       *slog.Logger
	g         *Graph
	errs      []error
	sources   map[string]*Source
	resources map[string]resourceClaim
	// badSources are the source ids whose section failed to configure:
	// the stacks after the first one that names them skip them quietly
	// (the error is reported once).
	badSources map[string]bool
}

func (b *builder) errf(pos config.Pos, format string, args ...any) {
	b.errs = append(b.errs, &config.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (b *builder) warnf(pos config.Pos, format string, args ...any) {
	b.g.Warnings = append(b.g.Warnings, &config.Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// legacyGlobal are ulogd-1.x [global] options that ulogd2 ignores.
var legacyGlobal = map[string]bool{"rmem": true, "bufsize": true, "nlgroup": true}

func (b *builder) global() {
	sec := b.f.Section("global")
	if sec == nil {
		b.errf(config.Pos{File: b.f.Path, Line: 1}, "no [global] section: nothing to run")
		return
	}
	seen := map[string]config.Pos{}
	for _, e := range sec.Entries {
		switch e.Key {
		case "stack", "plugin":
		case "logfile", "loglevel":
			if first, dup := seen[e.Key]; dup {
				b.errf(e.Pos, "option %q occurred more than once (first on line %d)", e.Key, first.Line)
				continue
			}
			seen[e.Key] = e.Pos
			if e.Key == "logfile" {
				b.g.Global.Logfile, b.g.Global.LogfilePos = e.Value, e.Pos
				continue
			}
			var lv struct {
				Loglevel int `ulogd:"loglevel"`
			}
			one := &config.Section{Name: "global", Pos: sec.Pos, Entries: []config.Entry{e}}
			if err := config.Decode(one, sec.Pos, &lv); err != nil {
				b.errs = append(b.errs, err)
				continue
			}
			switch lv.Loglevel {
			case 1, 3, 5, 7, 8:
			default:
				b.errf(e.Pos, "loglevel %d is not one of 1 (debug), 3 (info), 5 (notice), 7 (error), 8 (fatal)", lv.Loglevel)
				continue
			}
			b.g.Global.Loglevel, b.g.Global.LoglevelSet, b.g.Global.LoglevelPos = lv.Loglevel, true, e.Pos
		default:
			if legacyGlobal[e.Key] {
				b.warnf(e.Pos, "option %q belongs to ulogd 1.x and is ignored in [global]; set it in the input plugin's section", e.Key)
				continue
			}
			b.errf(e.Pos, "unknown option %q in section [global]%s", e.Key,
				suggest.Hint(e.Key, []string{"logfile", "loglevel", "plugin", "stack"}, true))
		}
	}
	// plugin= lines name .so files; every plugin is built in, so they only
	// have to name one that exists.
	for _, e := range sec.Values("plugin") {
		name, err := plugin.NameFromSO(e.Value)
		if err != nil {
			b.errf(e.Pos, "plugin %s", err)
			continue
		}
		if _, ok := b.reg.Lookup(name); !ok {
			b.errf(e.Pos, "plugin %q (%s) is not built into ulogd-go%s", name, e.Value, suggestion(b.reg, name))
		}
	}
	for i, e := range sec.Values("stack") {
		b.stack(i+1, e)
	}
}

func suggestion(reg *plugin.Registry, name string) string {
	return suggest.Hint(name, reg.Names(), false)
}

// stack builds one stack= line.
func (b *builder) stack(index int, e config.Entry) {
	st := &Stack{Index: index, Pos: e.Pos, Line: e.Value}
	nerr := len(b.errs)
	tokens := strings.Split(e.Value, ",")
	if len(tokens) < 2 {
		b.errf(e.Pos, "stack %q: a stack needs at least a source and a sink (id:PLUGIN,...,id:PLUGIN)", e.Value)
		return
	}
	var insts []*Node
	skipped := false // a source already reported as bad
	for ti, tok := range tokens {
		id, name, ok := strings.Cut(tok, ":")
		id, name = strings.TrimSpace(id), strings.TrimSpace(name)
		switch {
		case !ok || id == "" || name == "":
			b.errf(e.Pos, "stack %d: syntax error in %q: expected id:PLUGIN", index, tok)
			continue
		case len(id) > maxIDLen:
			b.errf(e.Pos, "stack %d: instance id %q is longer than %d characters", index, id, maxIDLen)
			continue
		}
		desc, found := b.reg.Lookup(name)
		if !found {
			b.errf(e.Pos, "stack %d: can't find requested plugin %s%s", index, name, suggestion(b.reg, name))
			continue
		}
		where := fmt.Sprintf("stack %d, %s:%s", index, id, name)
		switch {
		case ti == 0 && desc.Kind != plugin.Source:
			b.errf(e.Pos, "%s: first plugin in stack has to be source plugin (%s is a %s)", where, name, desc.Kind)
			continue
		case ti == len(tokens)-1 && desc.Kind != plugin.Sink:
			b.errf(e.Pos, "%s: last plugin in stack has to be output plugin (%s is a %s)", where, name, desc.Kind)
			continue
		case ti > 0 && ti < len(tokens)-1 && desc.Kind != plugin.Filter:
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
				if src.Desc != desc {
					b.errf(e.Pos, "%s: instance %q is already a %s source (line %d); one id cannot name two source plugins",
						where, id, src.Desc.Name, src.Pos.Line)
					continue
				}
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
			b.errf(in.Pos, "%s: %v", where, err)
			return false
		}
	}
	return true
}

// prefixErrors adds the instance context to each config error.
func prefixErrors(where string, err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var ce *config.Error
		if errors.As(e, &ce) {
			out = append(out, &config.Error{Pos: ce.Pos, Msg: where + ": " + ce.Msg})
			return
		}
		out = append(out, fmt.Errorf("%s: %w", where, e))
	}
	walk(err)
	return out
}

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

// claim records the exclusive resources of a stack's instances.
func (b *builder) claim(st *Stack) {
	for i, in := range st.Instances {
		if in.Desc.Resources == nil || (i == 0 && b.sources[in.ID] != nil) {
			continue
		}
		for _, r := range in.Desc.Resources(in.Config) {
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
		ID: in.ID, Plugin: in.Desc.Name, Config: in.Config,
		In: in.InSlots, Out: in.OutSlots, Upstream: in.Upstream,
		Log: b.log.With("instance", in.ID),
	}
	inst, err := in.Desc.New(env)
	if err != nil {
		b.errf(in.Pos, "%s, %s:%s: %v", where, in.ID, in.Desc.Name, err)
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
