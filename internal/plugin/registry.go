package plugin

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ulogd-go/ulogd/internal/suggest"
)

// Registry maps plugin names to descriptors. Tests build their own; the
// daemon uses Default, filled by the plugins' init functions.
type Registry struct {
	byName map[string]*Descriptor
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byName: make(map[string]*Descriptor)}
}

// Default is the registry the built-in plugins register into.
var Default = NewRegistry()

// Register adds d to the default registry. It panics on a duplicate name,
// which is a programming error.
func Register(d *Descriptor) { Default.Register(d) }

// Register adds d. It panics on a duplicate or empty name.
func (r *Registry) Register(d *Descriptor) {
	if d.Name == "" || d.New == nil || d.Kind == 0 {
		panic("plugin: incomplete descriptor " + d.Name)
	}
	if _, dup := r.byName[d.Name]; dup {
		panic("plugin: " + d.Name + " registered twice")
	}
	r.byName[d.Name] = d
}

// Lookup finds a plugin by its exact (case-sensitive) name.
func (r *Registry) Lookup(name string) (*Descriptor, bool) {
	d, ok := r.byName[name]
	return d, ok
}

// Names returns every registered name, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Suggest returns the registered names close to name, best first (the
// rule of suggest.Closest).
func (r *Registry) Suggest(name string) []string { return suggest.Closest(name, r.Names()) }

// NameFromSO maps a ulogd2 plugin file name, as written in plugin= lines,
// to the built-in plugin name: "/usr/lib/ulogd/ulogd_inpflow_NFCT.so" →
// "NFCT", "ulogd_raw2packet_BASE.so" → "BASE".
func NameFromSO(path string) (string, error) {
	base := filepath.Base(path)
	s, ok := strings.CutSuffix(base, ".so")
	if !ok {
		return "", fmt.Errorf("%q is not a ulogd plugin file name (ulogd_<kind>_<NAME>.so)", base)
	}
	s, ok = strings.CutPrefix(s, "ulogd_")
	if !ok {
		return "", fmt.Errorf("%q is not a ulogd plugin file name (ulogd_<kind>_<NAME>.so)", base)
	}
	_, name, ok := strings.Cut(s, "_")
	if !ok || name == "" {
		return "", fmt.Errorf("%q is not a ulogd plugin file name (ulogd_<kind>_<NAME>.so)", base)
	}
	return name, nil
}
