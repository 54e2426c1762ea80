// Package stack builds stacks from a parsed ulogd.conf (lookup, option
// decoding, shape check, key binding, source sharing, resource conflicts)
// and runs them (one goroutine per source, synchronous walks).
//
// Build validates everything and reports every problem in one error, each
// with file:line; nothing is opened before Start.
//
// The files: build.go (Build, error collection), global.go (the [global]
// section and plugin names), graph.go (stack= lines: nodes, shared
// sources, exclusive resources), bind.go (key binding), run.go (start,
// run, stop, signals), reload.go (switching a running graph to a new
// one), explain.go (--explain).
package stack

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Build turns a parsed configuration into stacks. All problems are
// reported, joined, each with its file:line. Instances are constructed (New)
// but not started.
func Build(f *config.File, reg *plugin.Registry, log *slog.Logger) (*Graph, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &builder{f: f, reg: reg, log: log, g: &Graph{log: log},
		sources: map[string]*Source{}, ids: map[string]idUse{}, resources: map[string]resourceClaim{}}
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
	ids       map[string]idUse // every instance id, with the plugin it names
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

// prefixErrors adds the instance context to each config error.
func prefixErrors(where string, err error) []error {
	var out []error
	eachLeaf(err, func(e error) {
		var ce *config.Error
		if errors.As(e, &ce) {
			out = append(out, &config.Error{Pos: ce.Pos, Msg: where + ": " + ce.Msg})
			return
		}
		out = append(out, fmt.Errorf("%s: %w", where, e))
	})
	return out
}

// eachLeaf calls f for each error that err joins (errors.Join), depth
// first, or for err itself when it joins none.
func eachLeaf(err error, f func(error)) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			eachLeaf(e, f)
		}
		return
	}
	f(err)
}
