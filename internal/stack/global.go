package stack

import (
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
