package plugin

import (
	"fmt"

	"github.com/ulogd-go/ulogd/internal/keys"
)

// NoConfig is the config type of a plugin without options (most filters):
// Define[NoConfig] with a nil NewConfig.
type NoConfig struct{}

// Def is what a plugin declares, with its own config type C (a struct whose
// fields carry `ulogd:"name"` tags, see package config). Define turns it
// into the registry's Descriptor; the plugin's functions get a *C and never
// cast.
type Def[C any] struct {
	Name    string // as written in stack= lines, e.g. "NFCT"
	Kind    Kind
	Summary string // one line for --info and the plugin tables

	// Input and Output are the data-type tags for the neighbour check.
	Input, Output DataType

	// NewConfig returns a new config holding the defaults; nil means the
	// plugin has no options.
	NewConfig func() *C

	// Options gives one short description per option, by option name
	// (the `ulogd` tag). Every option has one: a test checks it, and the
	// plugin's README and docs/keys.md show it.
	Options map[string]string

	// Sample is the plugin's sample.conf, embedded (//go:embed): sections
	// that show every option. Required when the plugin has options.
	Sample string

	// Keys returns the input and output keys for a decoded config. Pure.
	// nil means no keys.
	Keys func(cfg *C) (in, out []keys.Spec, err error)

	// Wildcard plugins take every upstream output key (Env.Upstream).
	Wildcard bool

	// Resources names what an instance claims exclusively (see
	// Descriptor.Resources). Pure; may be nil.
	Resources func(cfg *C) []string

	// New builds the run-time instance from its environment and config.
	// It opens nothing: that is Start's job.
	New func(env *Env, cfg *C) (Instance, error)
}

// Define returns the Descriptor of d: the registry's view, whose functions
// take the config as the `any` that NewConfig returned. A nil config (an
// instance built without a config section, as in tests) stands for the
// defaults; a config of another type is an error naming the plugin.
func Define[C any](d Def[C]) *Descriptor {
	conf := func(cfg any) (*C, error) {
		switch c := cfg.(type) {
		case nil:
			if d.NewConfig != nil {
				return d.NewConfig(), nil
			}
			return new(C), nil
		case *C:
			return c, nil
		}
		return nil, fmt.Errorf("%s: unexpected config type %T", d.Name, cfg)
	}
	desc := &Descriptor{
		Name:     d.Name,
		Kind:     d.Kind,
		Summary:  d.Summary,
		Input:    d.Input,
		Output:   d.Output,
		Options:  d.Options,
		Sample:   d.Sample,
		Wildcard: d.Wildcard,
	}
	if d.NewConfig != nil {
		desc.NewConfig = func() any { return d.NewConfig() }
	}
	if d.Keys != nil {
		desc.Keys = func(cfg any) ([]keys.Spec, []keys.Spec, error) {
			c, err := conf(cfg)
			if err != nil {
				return nil, nil, err
			}
			return d.Keys(c)
		}
	}
	if d.Resources != nil {
		desc.Resources = func(cfg any) []string {
			c, err := conf(cfg)
			if err != nil {
				return nil
			}
			return d.Resources(c)
		}
	}
	if d.New != nil {
		desc.New = func(env *Env) (Instance, error) {
			c, err := conf(env.Config)
			if err != nil {
				return nil, err
			}
			return d.New(env, c)
		}
	}
	return desc
}
