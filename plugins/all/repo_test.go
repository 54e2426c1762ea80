package all

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
)

// pluginDirs returns plugins/<kind>/<name> for every plugin folder.
func pluginDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	for _, kind := range []string{"input", "filter", "output"} {
		ents, err := os.ReadDir(filepath.Join("..", kind))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join("..", kind, e.Name()))
			}
		}
	}
	return dirs
}

var sections = []string{"## Name", "## Description", "## Configuration", "## Input keys", "## Output keys", "## Examples"}

// TestPluginFolders checks that every plugin folder has its plugin, its
// tests and a README with the standard sections, and that every registered
// plugin has a folder (TestOptionDocs checks the sample.conf).
func TestPluginFolders(t *testing.T) {
	seen := map[string]bool{}
	for _, dir := range pluginDirs(t) {
		name := filepath.Base(dir)
		for _, f := range []string{name + ".go", name + "_test.go", "README.md"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s: missing %s", dir, f)
			}
		}
		readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
		for _, s := range sections {
			if !strings.Contains(string(readme), "\n"+s+"\n") {
				t.Errorf("%s/README.md: missing section %q", dir, s)
			}
		}
		d, ok := plugin.Default.Lookup(strings.ToUpper(name))
		if !ok {
			t.Errorf("%s: no plugin %s is registered", dir, strings.ToUpper(name))
			continue
		}
		seen[d.Name] = true
	}
	for _, n := range plugin.Default.Names() {
		if !seen[n] {
			t.Errorf("plugin %s has no folder under plugins/", n)
		}
	}
}

var fence = regexp.MustCompile("(?s)```ulogd\n(.*?)```")

// TestReadmeExamples builds every fenced ulogd example of every plugin
// README and of the top-level docs, as `ulogd --check` does, and
// fails on a warning as on an error.
func TestReadmeExamples(t *testing.T) {
	files := []string{"../../README.md"}
	for _, dir := range pluginDirs(t) {
		files = append(files, filepath.Join(dir, "README.md"))
	}
	docs, _ := filepath.Glob("../../docs/*.md")
	files = append(files, docs...)
	n := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for i, m := range fence.FindAllSubmatch(b, -1) {
			n++
			name := file + "#" + string(rune('1'+i))
			f, err := config.Parse(name, m[1])
			var g *stack.Graph
			if err == nil {
				g, err = stack.Build(f, plugin.Default, nil)
			}
			if err != nil {
				t.Errorf("example %d of %s does not pass --check:\n%v", i+1, file, err)
				continue
			}
			if len(g.Warnings) > 0 {
				t.Errorf("example %d of %s warns under --check:\n%v", i+1, file, errors.Join(g.Warnings...))
			}
		}
	}
	if n == 0 {
		t.Fatal("no ulogd example found: the fence pattern is broken")
	}
}
