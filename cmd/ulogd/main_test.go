package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args []string
		want options
		err  string
	}{
		{args: nil, want: options{config: defaultConfig}},
		{args: []string{"-c", "/x.conf", "-dv", "-l5"}, want: options{config: "/x.conf", daemon: true, verbose: true, loglevel: 5}},
		{args: []string{"-c/x.conf", "--pidfile=/run/u.pid", "--uid", "ulog"}, want: options{config: "/x.conf", pidfile: "/run/u.pid", user: "ulog"}},
		{args: []string{"--configfile", "a", "--check"}, want: options{config: "a", check: true}},
		{args: []string{"--explain", "-i", "NFCT"}, want: options{config: defaultConfig, explain: true, info: "NFCT"}},
		{args: []string{"-x"}, err: "Unknown option `-x'."},
		{args: []string{"--bogus"}, err: "Unknown option `--bogus'."},
		{args: []string{"-c"}, err: "option requires an argument -- 'c'"},
		{args: []string{"--configfile"}, err: "option `--configfile' requires an argument"},
		{args: []string{"--daemon=1"}, err: "doesn't allow an argument"},
		{args: []string{"-l", "five"}, err: "invalid loglevel \"five\""},
		{args: []string{"stray"}, err: "unexpected argument \"stray\""},
	}
	for _, tt := range tests {
		got, err := parseArgs(tt.args)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.args, err)
			continue
		}
		if diff := cmp.Diff(tt.want, *got, cmp.AllowUnexported(options{})); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tt.args, diff)
		}
	}
}

func runMain(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func writeConf(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ulogd.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheck(t *testing.T) {
	good := writeConf(t, "[global]\nstack=ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU\n[ct1]\nhash_enable=0\n[emu1]\nfile=\"/tmp/x.log\"\n")
	code, out, errOut := runMain("--check", "-c", good)
	if code != 0 || !strings.Contains(out, "configuration OK (1 stacks, 1 sources)") {
		t.Errorf("valid config: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	bad := writeConf(t, "[global]\nstack=ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU\n[ct1]\nhash_enabled=0\nevent_mask=0x1g\n[emu1]\nfile=\"/tmp/x.log\"\n")
	code, _, errOut = runMain("--check", "-c", bad)
	if code != 1 {
		t.Errorf("invalid config: exit %d, want 1", code)
	}
	for _, want := range []string{
		bad + ":4: stack 1, ct1:NFCT: unknown option \"hash_enabled\" in section [ct1] (did you mean \"hash_enable\"?)",
		bad + ":5: stack 1, ct1:NFCT: integer has invalid format for key \"event_mask\"",
		"configuration is not valid",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	code, _, errOut = runMain("--check", "-c", filepath.Join(t.TempDir(), "missing.conf"))
	if code != 1 || !strings.Contains(errOut, "missing.conf") {
		t.Errorf("missing config: exit %d, stderr %q", code, errOut)
	}
}

func TestExplain(t *testing.T) {
	conf := writeConf(t, "[global]\nstack=ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU\n[ct1]\n[emu1]\nfile=\"/tmp/x.log\"\n")
	code, out, errOut := runMain("--explain", "-c", conf)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"ct1:NFCT (source)",
		"in  orig.ip.saddr.str        string           <- ip2str1 [slot",
		"in  print                    string           <- print1 [slot",
		"in  oob.time.sec             unsigned int 32  unbound (optional)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
}

func TestInfoVersionHelp(t *testing.T) {
	code, out, _ := runMain("-i", "/usr/lib/x86_64-linux-gnu/ulogd/ulogd_output_LOGEMU.so")
	want := "Name: LOGEMU\n"
	if code != 0 || !strings.HasPrefix(out, want) ||
		!strings.Contains(out, "\tVar: file (String, Default: /var/log/ulogd_syslogemu.log)\n") ||
		!strings.Contains(out, "\tKey: oob.time.sec (unsigned int 32), optional\n") ||
		!strings.Contains(out, "Output keys:\n\tOutput plugin, No keys\n") {
		t.Errorf("-i LOGEMU: exit %d\n%s", code, out)
	}
	code, out, _ = runMain("-i", "NFCT")
	if code != 0 || !strings.Contains(out, "Input keys:\n\tInput plugin, No keys\n") || !strings.Contains(out, "\tKey: ct.event (unsigned int 32)\n") {
		t.Errorf("-i NFCT: exit %d\n%s", code, out)
	}
	if code, _, errOut := runMain("-i", "NOPE"); code != 1 || !strings.Contains(errOut, "no plugin named \"NOPE\"") {
		t.Errorf("-i NOPE: exit %d, %q", code, errOut)
	}
	if code, out, _ := runMain("-V"); code != 0 || !strings.HasPrefix(out, "ulogd Version 2.0.9 (ulogd-go ") {
		t.Errorf("-V: exit %d, %q", code, out)
	}
	if code, out, _ := runMain("-h"); code != 0 || !strings.Contains(out, "-c --configfile\tUse alternative Configfile") {
		t.Errorf("-h: exit %d, %q", code, out)
	}
	if code, out, errOut := runMain("-x"); code != 1 || !strings.Contains(errOut, "Unknown option `-x'.") || !strings.Contains(out, "Parameters:") {
		t.Errorf("-x: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := runMain("-l", "4", "-c", "/nonexistent"); code != 1 || !strings.Contains(errOut, "invalid loglevel 4") {
		t.Errorf("-l 4: exit %d, %q", code, errOut)
	}
}

func TestUnknownUser(t *testing.T) {
	conf := writeConf(t, "[global]\nstack=ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU\n[ct1]\n[emu1]\nfile=\"/tmp/x.log\"\n")
	code, out, _ := runMain("-u", "no-such-user-ulogd-test", "-c", conf)
	if code != 1 || out != "Unknown user no-such-user-ulogd-test.\n" {
		t.Errorf("exit %d, stdout %q", code, out)
	}
}

type droppingSink struct{ n uint64 }

func (droppingSink) Start(context.Context) error        { return nil }
func (droppingSink) Stop(context.Context) error         { return nil }
func (droppingSink) Interp(*keys.Record) plugin.Verdict { return plugin.Continue }
func (d droppingSink) Dropped() uint64                  { return d.n }
func (d droppingSink) Written() uint64                  { return 3 }

func TestCounterAttrs(t *testing.T) {
	src := &stack.Instance{ID: "ct1", Desc: &plugin.Descriptor{Name: "NFCT", Kind: plugin.Source}}
	src.Stats().Received.Add(5)
	src.Stats().Lost.Add(2)
	sink := &stack.Instance{ID: "json1", Desc: &plugin.Descriptor{Name: "JSON", Kind: plugin.Sink}, Inst: droppingSink{n: 7}}
	sink.Stats().Received.Add(5)
	plain := &stack.Instance{ID: "print1", Desc: &plugin.Descriptor{Name: "PRINTFLOW", Kind: plugin.Filter}}
	for _, tc := range []struct {
		in   *stack.Instance
		want string
	}{
		{src, "[instance ct1 plugin NFCT events 5 lost 2]"},
		{sink, "[instance json1 plugin JSON received 5 stopped 0 failed 0 written 3 dropped 7]"},
		{plain, "[instance print1 plugin PRINTFLOW received 0 stopped 0 failed 0]"},
	} {
		if got := fmt.Sprint(counterAttrs(tc.in)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.in.ID, got, tc.want)
		}
	}
}
