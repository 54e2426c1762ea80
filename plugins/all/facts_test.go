package all

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
)

// This file keeps the plugin facts of the documentation true to the
// descriptors: the option tables of the plugin READMEs and the root
// README's plugin table are generated (go test ./plugins/all -update), the
// key tables of the plugin READMEs are checked, and so are the option
// descriptions and the embedded sample.conf of every plugin.

// typeLabel is how the documentation names a key type: ulogd2's --info
// label, except for the two it prints as "Unknown type".
func typeLabel(t keys.Type) string {
	switch t {
	case keys.None:
		return "any"
	case keys.RawStr:
		return "raw string"
	}
	return t.String()
}

// defaultConfig returns the descriptor's config with its defaults, or nil.
func defaultConfig(d *plugin.Descriptor) any {
	if d.NewConfig == nil {
		return nil
	}
	return d.NewConfig()
}

// optionTable renders the options of d, or "" when it has none.
func optionTable(d *plugin.Descriptor) string {
	opts := config.Options(defaultConfig(d))
	if len(opts) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| option | type | default | meaning |\n|---|---|---|---|\n")
	for _, o := range opts {
		t := "string"
		if o.Integer {
			t = "integer"
		}
		def := "`" + o.Default + "`"
		switch {
		case o.Mandatory:
			def = "mandatory"
		case o.Default == "":
			def = `""`
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", o.Name, t, def, d.Options[o.Name])
	}
	return b.String()
}

// pluginDir returns the folder of plugin name, relative to plugins/all.
func pluginDir(t *testing.T, name string) string {
	t.Helper()
	for _, dir := range pluginDirs(t) {
		if strings.EqualFold(filepath.Base(dir), name) {
			return dir
		}
	}
	t.Fatalf("plugin %s has no folder", name)
	return ""
}

// between replaces what lies between the lines begin and end in doc with
// body, or reports that they are missing.
func between(doc []byte, begin, end, body string) ([]byte, error) {
	i := bytes.Index(doc, []byte(begin+"\n"))
	j := bytes.Index(doc, []byte(end+"\n"))
	if i < 0 || j < i {
		return nil, fmt.Errorf("no %q ... %q block", begin, end)
	}
	var out []byte
	out = append(out, doc[:i+len(begin)+1]...)
	out = append(out, body...)
	return append(out, doc[j:]...), nil
}

// syncFile compares the generated want with file, or writes it with
// -update.
func syncFile(t *testing.T, file string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	if *update {
		if err := os.WriteFile(file, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date with the plugin descriptors: run go test ./plugins/all -update", file)
}

const (
	optionsBegin = "<!-- options: generated from the descriptor by go test ./plugins/all -update -->"
	optionsEnd   = "<!-- end of options -->"
	pluginsBegin = "<!-- plugins: generated from the registry by go test ./plugins/all -update -->"
	pluginsEnd   = "<!-- end of plugins -->"
)

// TestOptionDocs: every option of every plugin has a description, every
// description names an option, and a plugin with options embeds a
// sample.conf that passes the config decoder (and builds, when it is a
// whole configuration) and is the file in the plugin's folder.
func TestOptionDocs(t *testing.T) {
	for _, n := range plugin.Default.Names() {
		d, _ := plugin.Default.Lookup(n)
		opts := config.Options(defaultConfig(d))
		names := map[string]bool{}
		for _, o := range opts {
			names[o.Name] = true
			if strings.TrimSpace(d.Options[o.Name]) == "" {
				t.Errorf("%s: option %s has no description (Def.Options)", n, o.Name)
			}
		}
		for o := range d.Options {
			if !names[o] {
				t.Errorf("%s: Def.Options describes %s, which is no option", n, o)
			}
		}
		file := filepath.Join(pluginDir(t, n), "sample.conf")
		onDisk, err := os.ReadFile(file)
		if len(opts) == 0 {
			if d.Sample != "" || err == nil {
				t.Errorf("%s: a sample.conf for a plugin without options", n)
			}
			continue
		}
		if d.Sample == "" {
			t.Errorf("%s: no embedded sample.conf (Def.Sample)", n)
			continue
		}
		if string(onDisk) != d.Sample {
			t.Errorf("%s: the embedded sample is not %s", n, file)
		}
		checkSample(t, file, d)
	}
}

// TestReadmeFacts: the option table of every plugin README is the
// descriptor's, its key tables list the descriptor's keys in order with
// their types (and "optional" for optional inputs), and the root README's
// plugin table is the registry's against ulogd2's list.
func TestReadmeFacts(t *testing.T) {
	for _, n := range plugin.Default.Names() {
		d, _ := plugin.Default.Lookup(n)
		file := filepath.Join(pluginDir(t, n), "README.md")
		doc, err := os.ReadFile(file)
		if err != nil {
			t.Error(err)
			continue
		}
		table := optionTable(d)
		want := doc
		if table == "" {
			if !strings.Contains(section(doc, "Configuration"), "\nNone.\n") {
				t.Errorf("%s: the plugin has no options: say \"None.\" under Configuration", file)
			}
		} else if want, err = between(doc, optionsBegin, optionsEnd, table); err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		syncFile(t, file, doc, want)
		var in, out []keys.Spec
		if d.Keys != nil {
			in, out, err = d.Keys(defaultConfig(d))
		}
		if err != nil {
			t.Errorf("%s: keys of the defaults: %v", n, err)
		}
		checkKeys(t, file, doc, "Input keys", in, d.Wildcard)
		checkKeys(t, file, doc, "Output keys", out, false)
	}
	root, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := between(root, pluginsBegin, pluginsEnd, pluginTable(t))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	syncFile(t, "../../README.md", root, want)
}

// section returns the text of "## title" up to the next section.
func section(doc []byte, title string) string {
	_, s, ok := strings.Cut(string(doc), "\n## "+title+"\n")
	if !ok {
		return ""
	}
	if i := strings.Index(s, "\n## "); i >= 0 {
		s = s[:i]
	}
	return s
}

var backticked = regexp.MustCompile("`([^`]+)`")

// checkKeys compares the key table under "## title" with specs. A table
// row names one or more keys (backticked) in its first cell and their type
// in the second; an optional input says "optional" in the third.
func checkKeys(t *testing.T, file string, doc []byte, title string, specs []keys.Spec, wildcard bool) {
	t.Helper()
	sec := section(doc, title)
	type row struct {
		name, typ string
		optional  bool
	}
	var rows []row
	for _, line := range strings.Split(sec, "\n") {
		cells := strings.Split(strings.Trim(line, "| "), "|")
		if !strings.HasPrefix(line, "|") || len(cells) < 2 || strings.HasPrefix(cells[0], "-") || strings.TrimSpace(cells[0]) == "key" {
			continue
		}
		opt := len(cells) > 2 && strings.Contains(cells[2], "optional")
		for _, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
			rows = append(rows, row{m[1], strings.TrimSpace(cells[1]), opt})
		}
	}
	switch {
	case wildcard:
		if len(rows) > 0 || !strings.Contains(strings.ToLower(sec), "every") {
			t.Errorf("%s, %s: a wildcard plugin: say that it takes every upstream key, in no table", file, title)
		}
		return
	case len(specs) == 0:
		if len(rows) > 0 || !strings.Contains(sec, "None") {
			t.Errorf("%s, %s: the plugin has none: say \"None\"", file, title)
		}
		return
	}
	var got, want []row
	got = rows
	for _, k := range specs {
		want = append(want, row{k.Name, typeLabel(k.Type), title == "Input keys" && k.Flags&keys.Optional != 0})
	}
	if !slices.Equal(got, want) {
		var b strings.Builder
		for i := range max(len(got), len(want)) {
			var g, w row
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if g != w {
				fmt.Fprintf(&b, "\n  row %d: README %+v, descriptor %+v", i+1, g, w)
			}
		}
		t.Errorf("%s, %s: the table is not the descriptor's keys in order:%s", file, title, b.String())
	}
}

// checkSample decodes (or, for a whole configuration, builds) the
// embedded sample of d.
func checkSample(t *testing.T, name string, d *plugin.Descriptor) {
	t.Helper()
	f, err := config.Parse(name, []byte(d.Sample))
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if f.Section("global") != nil {
		if _, err := stack.Build(f, plugin.Default, nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		return
	}
	if len(f.Sections) == 0 {
		t.Errorf("%s: no section with the plugin's options", name)
	}
	for _, sec := range f.Sections {
		if err := config.Decode(sec, sec.Pos, d.NewConfig()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// pluginTable renders the root README's plugin table: ulogd2's plugins in
// its order, each linked to its README when ulogd-go has it, then the
// plugins ulogd2 does not have.
func pluginTable(t *testing.T) string {
	var b strings.Builder
	b.WriteString("| plugin | kind | ulogd2 | what it does |\n|---|---|---|---|\n")
	listed := map[string]bool{}
	row := func(name string, kind plugin.Kind, file, what string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, kind, file, what)
	}
	for _, u := range plugin.Ulogd2Plugins() {
		listed[u.Name] = true
		d, ok := plugin.Default.Lookup(u.Name)
		switch {
		case ok:
			row(link(t, u.Name), d.Kind, "`"+u.File+"`", d.Summary)
		case u.Removed != "":
			row(u.Name, u.Kind, "`"+u.File+"`", "*not in ulogd-go*: ulogd2 itself dropped it in "+u.Removed)
		default:
			row(u.Name, u.Kind, "`"+u.File+"`", "*not in ulogd-go yet*")
		}
	}
	for _, n := range plugin.Default.Names() {
		if !listed[n] {
			d, _ := plugin.Default.Lookup(n)
			row(link(t, n), d.Kind, "—", d.Summary)
		}
	}
	return b.String()
}

func link(t *testing.T, name string) string {
	dir := strings.TrimPrefix(filepath.ToSlash(pluginDir(t, name)), "../")
	return fmt.Sprintf("[%s](plugins/%s/README.md)", name, dir)
}
