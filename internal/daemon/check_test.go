package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

// checkConf builds conf with the real plugins and runs CheckOutputs.
func checkConf(t *testing.T, conf, user string) string {
	t.Helper()
	f, err := config.Parse("ulogd.conf", []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	g, err := stack.Build(f, plugin.Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := CheckOutputs(g, user)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(errors.Join(problems...))
}

// emuConf is a UNIXSOCK → LOGEMU stack writing to file, with an optional
// daemon log.
func emuConf(logfile, file string) string {
	lf := ""
	if logfile != "" {
		lf = fmt.Sprintf("logfile=%q\n", logfile)
	}
	return fmt.Sprintf("[global]\n%sstack=nuauth1:UNIXSOCK,base1:BASE,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU\n[emu1]\nfile=%q\n", lf, file)
}

// xmlConf is a config with one XML sink writing into dir.
func xmlConf(dir string) string {
	return fmt.Sprintf("[global]\nstack=nuauth1:UNIXSOCK,xml1:XML\n[nuauth1]\nsocket_path=%q\n[xml1]\ndirectory=%q\n", dir+"/u.sock", dir)
}

func TestCheckOutputs(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "plain")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, conf, want string
	}{
		{"fine", emuConf(dir+"/ulogd.log", dir+"/emu.log"), "<nil>"},
		{"special logfiles", emuConf("syslog", dir+"/emu.log"), "<nil>"},
		{"missing directory", emuConf("", dir+"/missing/emu.log"),
			"ulogd.conf:2: stack 1, emu1:LOGEMU: the directory " + dir + "/missing of " + dir + "/missing/emu.log does not exist"},
		{"logfile", emuConf(dir+"/missing/ulogd.log", dir+"/emu.log"),
			"ulogd.conf:2: logfile: the directory " + dir + "/missing of " + dir + "/missing/ulogd.log does not exist"},
		{"not a directory", emuConf("", notDir+"/emu.log"),
			"ulogd.conf:2: stack 1, emu1:LOGEMU: " + notDir + " (the directory of " + notDir + "/emu.log) is not a directory"},
		{"file is a directory", emuConf("", dir),
			"ulogd.conf:2: stack 1, emu1:LOGEMU: " + dir + " is a directory"},
		{"XML directory", xmlConf(dir), "<nil>"},
		{"XML directory missing", xmlConf(dir + "/missing"),
			"ulogd.conf:2: stack 1, xml1:XML: the directory " + dir + "/missing does not exist"},
		{"XML directory is a file", xmlConf(notDir),
			"ulogd.conf:2: stack 1, xml1:XML: " + notDir + " is not a directory"},
		{"two XML sinks share a directory", "[global]\nstack=nuauth1:UNIXSOCK,xml1:XML\nstack=nuauth2:UNIXSOCK,xml2:XML\n" +
			fmt.Sprintf("[nuauth1]\nsocket_path=%q\n[nuauth2]\nsocket_path=%q\n[xml1]\ndirectory=%q\n[xml2]\ndirectory=%q\n", dir+"/u1.sock", dir+"/u2.sock", dir, dir),
			"<nil>"},
	} {
		if got := checkConf(t, tc.conf, ""); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

// TestCheckOutputsUser: with -u, the user must be able to write the
// directory (to open the file again on SIGHUP after a rotation), or the
// file itself when it exists.
func TestCheckOutputsUser(t *testing.T) {
	requireNobody(t)
	dir := testutil.ShortTempDir(t, 0o755)
	out := dir + "/emu.log"
	got := checkConf(t, emuConf("", out), "nobody")
	want := "ulogd.conf:2: stack 1, emu1:LOGEMU: user nobody cannot write the directory " + dir
	if !strings.HasPrefix(got, want) {
		t.Errorf("root's 0755 directory:\n got %s\nwant %s…", got, want)
	}
	if got := checkConf(t, emuConf("", out), ""); got != "<nil>" {
		t.Errorf("as root: %s", got)
	}
	if got := checkConf(t, emuConf("", out), "root"); got != "<nil>" {
		t.Errorf("-u root: %s", got)
	}
	// The file exists and the user may write it: a reopen works.
	if err := os.WriteFile(out, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o666); err != nil {
		t.Fatal(err)
	}
	if got := checkConf(t, emuConf("", out), "nobody"); got != "<nil>" {
		t.Errorf("file writable by nobody: %s", got)
	}
	// A directory the user cannot enter.
	sub := dir + "/private"
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	got = checkConf(t, emuConf("", sub+"/emu.log"), "nobody")
	if want := "user nobody cannot enter the directory " + sub; !strings.Contains(got, want) {
		t.Errorf("private directory:\n got %s\nwant …%s", got, want)
	}
}
