package stack

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/suggest"
)

// Global holds the [global] options other than stack= and plugin=.
type Global struct {
	Logfile     string
	LogfilePos  config.Pos
	Loglevel    int
	LoglevelSet bool
	LoglevelPos config.Pos
	// MetricsListen is metrics_listen=, the address:port of the metrics
	// and health endpoint; "" (the default) serves none.
	MetricsListen    string
	MetricsListenPos config.Pos
}

// isLegacyGlobal reports whether key is a ulogd-1.x [global] option, which
// ulogd2 ignores there.
func isLegacyGlobal(key string) bool {
	switch key {
	case "rmem", "bufsize", "nlgroup":
		return true
	}
	return false
}

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
		case "metrics_listen":
			if first, dup := seen[e.Key]; dup {
				b.errf(e.Pos, "option %q occurred more than once (first on line %d)", e.Key, first.Line)
				continue
			}
			seen[e.Key] = e.Pos
			if err := checkListen(e.Value); err != nil {
				b.errf(e.Pos, "metrics_listen=%q: %v", e.Value, err)
				continue
			}
			b.g.Global.MetricsListen, b.g.Global.MetricsListenPos = e.Value, e.Pos
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
			if isLegacyGlobal(e.Key) {
				b.warnf(e.Pos, "option %q belongs to ulogd 1.x and is ignored in [global]; set it in the input plugin's section", e.Key)
				continue
			}
			b.errf(e.Pos, "unknown option %q in section [global]%s", e.Key,
				suggest.Hint(e.Key, []string{"logfile", "loglevel", "metrics_listen", "plugin", "stack"}, true))
		}
	}
	for _, e := range sec.Values("plugin") {
		b.pluginLine(e)
	}
	for i, e := range sec.Values("stack") {
		b.stack(i+1, e)
	}
}

// pluginLine checks a plugin= line. It names a ulogd2 .so file; every
// plugin is built in, so the line only has to name one that exists. A
// ulogd2 plugin that ulogd-go does not have is a warning, not an error:
// upstream-style files list every plugin, used or not (a stack that uses
// it fails with the same words).
func (b *builder) pluginLine(e config.Entry) {
	name, err := plugin.NameFromSO(e.Value)
	if err != nil {
		b.errf(e.Pos, "plugin %s", err)
		return
	}
	_, err = LookupPlugin(b.reg, name)
	var mp *missingPlugin
	switch {
	case err == nil:
	case errors.As(err, &mp) && mp.ulogd2:
		b.warnf(e.Pos, "plugin %s: %v; line ignored", e.Value, err)
	default:
		b.errf(e.Pos, "plugin %s: %v", e.Value, err)
	}
}

// checkListen checks a metrics_listen= value: host:port with a numeric
// port, the host an IP address or a name ("" or no host means every
// address, which the documentation advises against). Port 0 picks a free
// port, which the daemon log names (for tests).
func checkListen(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("want address:port, such as 127.0.0.1:19756 (%v)", err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}
