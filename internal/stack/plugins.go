package stack

import (
	"strings"

	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/suggest"
)

// isUlogd2Plugin reports whether ulogd2 has a plugin of that exact name.
func isUlogd2Plugin(name string) bool {
	_, ok := plugin.Ulogd2(name)
	return ok
}

// missingPlugin is LookupPlugin's error.
type missingPlugin struct {
	name   string
	ulogd2 bool   // a ulogd2 plugin ulogd-go does not have (yet)
	others string // the suggestion, or the list of plugins
}

func (e *missingPlugin) Error() string {
	if e.ulogd2 {
		return "ulogd-go does not have the ulogd2 plugin " + e.name + " yet"
	}
	return "can't find requested plugin " + e.name + e.others
}

// LookupPlugin finds the plugin a stack= line, a plugin= line or `ulogd -i`
// names (exactly, as ulogd2 does). When there is none, the error says why
// in the same words for all three: ulogd-go does not have that ulogd2
// plugin yet, or no plugin has that name (with the near names, or the list
// of plugins when none is near).
func LookupPlugin(reg *plugin.Registry, name string) (*plugin.Descriptor, error) {
	if d, ok := reg.Lookup(name); ok {
		return d, nil
	}
	if isUlogd2Plugin(name) {
		return nil, &missingPlugin{name: name, ulogd2: true}
	}
	others := suggest.Hint(name, reg.Names(), false)
	if others == "" {
		others = " (the plugins are " + strings.Join(reg.Names(), ", ") + ")"
	}
	return nil, &missingPlugin{name: name, others: others}
}
