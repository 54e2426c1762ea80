package stack_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
	_ "github.com/ulogd-go/ulogd/plugins/all"
)

// debianConfigs are Debian's stock /etc/ulogd.conf (the copy in the config
// package's testdata, and the installed one when it is there).
func debianConfigs(t *testing.T) map[string][]byte {
	t.Helper()
	confs := map[string][]byte{}
	for _, path := range []string{filepath.Join("..", "config", "testdata", "debian-ulogd.conf"), "/etc/ulogd.conf"} {
		data, err := os.ReadFile(path)
		if err != nil || !bytes.Contains(data, []byte("Adapted to Debian")) {
			if path == "/etc/ulogd.conf" {
				continue
			}
			t.Fatal(err)
		}
		confs[path] = data
	}
	return confs
}

// TestDebianConfigWithPluginLines builds Debian's stock ulogd.conf with its
// plugin= lines uncommented (upstream style: every ulogd2 plugin listed):
// the ones ulogd-go does not have are warnings, not errors. A stack that
// uses one of them says that ulogd-go does not have it.
func TestDebianConfigWithPluginLines(t *testing.T) {
	for path, data := range debianConfigs(t) {
		t.Run(path, func(t *testing.T) {
			text := strings.ReplaceAll(string(data), "\n#plugin=", "\nplugin=")
			f, err := config.Parse(path, []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			g, err := stack.Build(f, plugin.Default, nil)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			var lacking []string
			for _, e := range f.Section("global").Values("plugin") {
				name, err := plugin.NameFromSO(e.Value)
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := plugin.Default.Lookup(name); !ok {
					lacking = append(lacking, name)
				}
			}
			if len(lacking) == 0 {
				t.Fatal("ulogd-go has every plugin the file lists: make this test use a plugin it lacks")
			}
			var warnings string
			for _, w := range g.Warnings {
				warnings += w.Error() + "\n"
			}
			for _, name := range lacking {
				if want := "ulogd-go does not have the ulogd2 plugin " + name + " yet; line ignored"; !strings.Contains(warnings, want) {
					t.Errorf("warnings lack %q:\n%s", want, warnings)
				}
			}

			// The commented ULOG stack, enabled.
			text = strings.Replace(text, "\n#stack=ulog1:ULOG,", "\nstack=ulog1:ULOG,", 1)
			if f, err = config.Parse(path, []byte(text)); err != nil {
				t.Fatal(err)
			}
			_, err = stack.Build(f, plugin.Default, nil)
			if err == nil || !strings.Contains(err.Error(), "stack 2: ulogd-go does not have the ulogd2 plugin ULOG yet") ||
				strings.Contains(err.Error(), "did you mean") {
				t.Errorf("Build with the ULOG stack: %v", err)
			}
		})
	}
}
