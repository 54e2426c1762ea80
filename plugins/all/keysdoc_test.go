package all

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

var update = flag.Bool("update", false, "rewrite docs/keys.md, the plugin READMEs' option tables and the root README's plugin table from the plugin descriptors")

const keysDoc = "../../docs/keys.md"

// renderKeys writes the options and keys of every built-in plugin.
func renderKeys() []byte {
	var b bytes.Buffer
	b.WriteString("# Plugins, options and keys\n\n")
	b.WriteString("Generated from the plugin descriptors by `go test ./plugins/all -update`;\n")
	b.WriteString("do not edit by hand. Key order is declaration order, which the wildcard sinks\n")
	b.WriteString("follow. `ulogd -i NAME` prints the same for one plugin.\n")
	for _, kind := range []plugin.Kind{plugin.Source, plugin.Filter, plugin.Sink} {
		for _, n := range plugin.Default.Names() {
			d, _ := plugin.Default.Lookup(n)
			if d.Kind != kind {
				continue
			}
			fmt.Fprintf(&b, "\n## %s (%s)\n\n%s\n", d.Name, d.Kind, d.Summary)
			cfg := defaultConfig(d)
			if table := optionTable(d); table != "" {
				b.WriteString("\n" + table)
			}
			var in, out []keys.Spec
			if d.Keys != nil {
				in, out, _ = d.Keys(cfg)
			}
			if d.Wildcard {
				b.WriteString("\nInput: every key of every upstream instance.\n")
			}
			table := func(title string, ks []keys.Spec) {
				if len(ks) == 0 {
					return
				}
				fmt.Fprintf(&b, "\n| %s | type | |\n|---|---|---|\n", title)
				for _, k := range ks {
					note := ""
					if k.Flags&keys.Optional != 0 {
						note = "optional"
					}
					fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k.Name, typeLabel(k.Type), note)
				}
			}
			table("input key", in)
			table("output key", out)
		}
	}
	return b.Bytes()
}

func TestKeysDoc(t *testing.T) {
	got := renderKeys()
	if *update {
		if err := os.WriteFile(keysDoc, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(keysDoc)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("docs/keys.md is out of date: run go test ./plugins/all -update")
	}
}
