package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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

	// An output file whose directory does not exist would fail the start.
	dir := t.TempDir()
	noDir := writeConf(t, "[global]\nstack=ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU\n[emu1]\nfile=\""+dir+"/missing/x.log\"\n")
	code, _, errOut = runMain("--check", "-c", noDir)
	if want := noDir + ":2: stack 1, emu1:LOGEMU: the directory " + dir + "/missing of " + dir + "/missing/x.log does not exist\n"; code != 1 || !strings.HasPrefix(errOut, want) {
		t.Errorf("missing output directory: exit %d, stderr %q, want %q first", code, errOut, want)
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
	if code, _, errOut := runMain("-i", "NOPE"); code != 1 || !strings.Contains(errOut, "can't find requested plugin NOPE") {
		t.Errorf("-i NOPE: exit %d, %q", code, errOut)
	}
	for what, want := range map[string]string{
		"ULOG": "ulogd-go does not have the ulogd2 plugin ULOG yet\n",
		"nfct": "can't find requested plugin nfct (did you mean NFCT?)\n",
	} {
		if code, _, errOut := runMain("-i", what); code != 1 || errOut != want {
			t.Errorf("-i %s: exit %d, %q, want %q", what, code, errOut, want)
		}
	}
	if code, out, _ := runMain("-V"); code != 0 || !strings.HasPrefix(out, "ulogd Version 2.0.9 (ulogd-go ") {
		t.Errorf("-V: exit %d, %q", code, out)
	}
	// -v copies the daemon log to standard error (Log.emit).
	if code, out, _ := runMain("-h"); code != 0 || !strings.Contains(out, "-c --configfile\tUse alternative Configfile") ||
		!strings.Contains(out, "-v --verbose\tCopy the log to standard error\n") {
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

// TestSystemdUnit: the unit answers to ulogd2's name too, so that
// "systemctl enable ulogd2.service" from ulogd2 guides keeps working.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("../../contrib/systemd/ulogd.service")
	if err != nil {
		t.Fatal(err)
	}
	_, install, ok := strings.Cut(string(b), "\n[Install]\n")
	if !ok {
		t.Fatal("no [Install] section")
	}
	install, _, _ = strings.Cut(install, "\n[")
	lines := strings.Split(install, "\n")
	if !slices.Contains(lines, "Alias=ulogd2.service") {
		t.Errorf("[Install] lacks Alias=ulogd2.service:\n%s", install)
	}
}
