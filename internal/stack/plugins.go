package stack

import (
	"slices"
	"strings"

	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/suggest"
)

// ulogd2Plugins names every plugin ulogd2 2.0 ships (one .so file each), as
// stack= lines spell them.
// same list as plugin.Ulogd2Plugins
const ulogd2Plugins = "NFCT NFLOG NFACCT UNIXSOCK ULOG " + // sources
	"IFINDEX IP2STR IP2BIN IP2HBIN PRINTPKT PRINTFLOW HWHDR MARK PWSNIFF BASE " + // filters
	"LOGEMU SYSLOG OPRINT GPRINT NACCT JSON XML PCAP SQLITE3 PGSQL MYSQL DBI GRAPHITE IPFIX" // sinks

// isUlogd2Plugin reports whether ulogd2 has a plugin of that exact name.
func isUlogd2Plugin(name string) bool {
	return slices.Contains(strings.Fields(ulogd2Plugins), name)
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
