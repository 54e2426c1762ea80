package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// messages flattens a joined error into its messages, in order.
func messages(err error) []string {
	if err == nil {
		return nil
	}
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, messages(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

func warnings(f *File) []string {
	var out []string
	for _, w := range f.Warnings {
		out = append(out, w.Error())
	}
	return out
}

// sec builds a section of file "t.conf" for expectations; kv alternates
// key, value, line.
func sec(name string, line int, kv ...any) *Section {
	s := &Section{Name: name, Pos: Pos{"t.conf", line}}
	for i := 0; i+2 < len(kv); i += 3 {
		s.Entries = append(s.Entries, Entry{Key: kv[i].(string), Value: kv[i+1].(string), Pos: Pos{"t.conf", kv[i+2].(int)}})
	}
	return s
}

func TestPosAndError(t *testing.T) {
	for _, tc := range []struct {
		pos  Pos
		want string
	}{
		{Pos{"/etc/ulogd.conf", 12}, "/etc/ulogd.conf:12"},
		{Pos{"", 3}, "line 3"},
		{Pos{"a.conf", 0}, "a.conf"},
		{Pos{}, ""},
	} {
		if got := tc.pos.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.pos, got, tc.want)
		}
	}
	if got, want := (&Error{Pos{"a.conf", 4}, "boom"}).Error(), "a.conf:4: boom"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := (&Error{Msg: "boom"}).Error(), "boom"; got != want {
		t.Errorf("Error() without position = %q, want %q", got, want)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		want     []*Section
		warnings []string
		errors   []string
	}{
		{
			name: "empty file",
			in:   "",
		},
		{
			name: "comments and blank lines",
			in:   "# top\n\n   \n\t# indented\n[a]\n  # indented too\n\nk=v\n",
			want: []*Section{sec("a", 5, "k", "v", 8)},
		},
		{
			name: "key value separators",
			in:   "[a]\nk1=v1\nk2 = v2\nk3 v3\nk4\t=\tv4\nk5==v5\nk6 = = v6\n  k7=v7\n",
			want: []*Section{sec("a", 1,
				"k1", "v1", 2, "k2", "v2", 3, "k3", "v3", 4, "k4", "v4", 5,
				"k5", "v5", 6, "k6", "v6", 7, "k7", "v7", 8)},
		},
		{
			name: "comment after value",
			in:   "[a]\nsync = 1 # comment\nmask=0x1\t# bits\nq=\"x\"# tight\n",
			want: []*Section{sec("a", 1, "sync", "1", 2, "mask", "0x1", 3, "q", "x", 4)},
		},
		{
			name: "hash inside unquoted value is kept",
			in:   "[a]\nfile=/tmp/a#b\n",
			want: []*Section{sec("a", 1, "file", "/tmp/a#b", 2)},
		},
		{
			name: "quoted values",
			in:   "[a]\nfile=\"/var/log/a b.log\"\nc=\"host=x dbname=y\"\nh=\"a#b;c\" # real comment\ne=\"\"\ns = \"x\"\n",
			want: []*Section{sec("a", 1,
				"file", "/var/log/a b.log", 2, "c", "host=x dbname=y", 3, "h", "a#b;c", 4, "e", "", 5, "s", "x", 6)},
		},
		{
			name: "CRLF and no final newline",
			in:   "[a]\r\nk=v\r\n\r\n# c\r\nq=\"x y\"\r\nlast=1",
			want: []*Section{sec("a", 1, "k", "v", 2, "q", "x y", 5, "last", "1", 6)},
		},
		{
			name: "byte order mark",
			in:   "\xef\xbb\xbf[a]\nk=v\n",
			want: []*Section{sec("a", 1, "k", "v", 2)},
		},
		{
			name: "section spellings",
			in:   "[ a ]\n[\tb\t]\n[c] # comment\n  [d]\n",
			want: []*Section{sec("a", 1), sec("b", 2), sec("c", 3), sec("d", 4)},
		},
		{
			name: "repeated keys are kept",
			in:   "[global]\nstack=a:X,b:Y\nstack=c:X,d:Y\nloglevel=1\nloglevel=2\n",
			want: []*Section{sec("global", 1,
				"stack", "a:X,b:Y", 2, "stack", "c:X,d:Y", 3, "loglevel", "1", 4, "loglevel", "2", 5)},
		},
		{
			name:     "lines before the first section",
			in:       "# fine\nloglevel=3\n[a]\nk=v\n",
			want:     []*Section{sec("a", 3, "k", "v", 4)},
			warnings: []string{`t.conf:2: ignoring "loglevel": it comes before the first section`},
		},
		{
			name: "bare word is a malformed directive",
			in:   "[global]\nstack=e:X\nemu1\nfile=x\n",
			want: []*Section{sec("global", 1, "stack", "e:X", 2, "file", "x", 4)},
			warnings: []string{
				`t.conf:3: ignoring malformed config directive "emu1" (no value; a section is opened with "[emu1]")`,
			},
		},
		{
			name: "key without value",
			in:   "[a]\nfile=\nsync = \t\nk # comment\nok=1\n",
			want: []*Section{sec("a", 1, "ok", "1", 5)},
			warnings: []string{
				`t.conf:2: ignoring malformed config directive "file"`,
				`t.conf:3: ignoring malformed config directive "sync"`,
				`t.conf:4: ignoring malformed config directive "k"`,
			},
		},
		{
			name: "duplicate section: first wins",
			in:   "[a]\nk=1\n[b]\n[a]\nk=2\n",
			want: []*Section{sec("a", 1, "k", "1", 2), sec("b", 3), sec("a", 4, "k", "2", 5)},
			warnings: []string{
				`t.conf:4: section [a] already defined on line 1: this one is ignored`,
			},
		},
		{
			name: "unquoted value with equals sign",
			in:   "[pg]\nconnstring=host=x\nok=1\n",
			want: []*Section{sec("pg", 1, "ok", "1", 3)},
			errors: []string{
				`t.conf:2: unquoted value "host=x" of key "connstring" contains "=": put the whole value in double quotes (connstring="...")`,
			},
		},
		{
			name: "stray quote in unquoted value",
			in:   "[a]\nfile=/tmp/\"x\"\n",
			want: []*Section{sec("a", 1)},
			errors: []string{
				`t.conf:2: stray double quote in the value "/tmp/\"x\"" of key "file": quote the whole value or none of it`,
			},
		},
		{
			name: "unterminated quote",
			in:   "[a]\nfile=\"/tmp/x\nsync=1\n",
			want: []*Section{sec("a", 1, "sync", "1", 3)},
			errors: []string{
				`t.conf:2: unterminated quoted value for key "file"`,
			},
		},
		{
			name: "trailing text",
			in:   "[a]\nsync = 1 2\nfile=\"x\" y\nq=\"x\"y\nr=\"x\" ; semicolon is not a comment\n",
			want: []*Section{sec("a", 1)},
			errors: []string{
				`t.conf:2: unexpected text "2" after the value of key "sync" (quote values that contain blanks)`,
				`t.conf:3: unexpected text "y" after the value of key "file" (quote values that contain blanks)`,
				`t.conf:4: unexpected text "y" after the quoted value of key "q"`,
				`t.conf:5: unexpected text "; semicolon is not a comment" after the value of key "r" (quote values that contain blanks)`,
			},
		},
		{
			name: "missing key",
			in:   "[a]\n= 5\n",
			want: []*Section{sec("a", 1)},
			errors: []string{
				`t.conf:2: missing key before "="`,
			},
		},
		{
			name: "bad section lines",
			in:   "[a]\nk=1\n[b\nx=1\n[]\ny=1\n[c d]\nz=1\n[e] f\nw=1\n[ok]\nv=1\n",
			want: []*Section{sec("a", 1, "k", "1", 2), sec("ok", 11, "v", "1", 12)},
			errors: []string{
				`t.conf:3: section line "[b" lacks its closing "]"`,
				`t.conf:5: empty section name`,
				`t.conf:7: invalid section name "c d": it must be one word`,
				`t.conf:9: unexpected text "f" after section [e]`,
			},
		},
		{
			name: "all problems in one pass",
			in:   "x=1\n[a]\nk=\"v\n[a]\nc=h=x\n",
			want: []*Section{sec("a", 2), sec("a", 4)},
			warnings: []string{
				`t.conf:1: ignoring "x": it comes before the first section`,
				`t.conf:4: section [a] already defined on line 2: this one is ignored`,
			},
			errors: []string{
				`t.conf:3: unterminated quoted value for key "k"`,
				`t.conf:5: unquoted value "h=x" of key "c" contains "=": put the whole value in double quotes (c="...")`,
			},
		},
		{
			name: "long line",
			in:   "[a]\nk=\"" + strings.Repeat("x", 5000) + "\"\n",
			want: []*Section{sec("a", 1, "k", strings.Repeat("x", 5000), 2)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("t.conf", []byte(tc.in))
			if f == nil {
				t.Fatal("Parse returned a nil File")
			}
			if diff := cmp.Diff(tc.errors, messages(err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.warnings, warnings(f)); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.want, f.Sections); diff != "" {
				t.Errorf("sections (-want +got):\n%s", diff)
			}
			if f.Path != "t.conf" {
				t.Errorf("Path = %q", f.Path)
			}
			// Every error is an *Error.
			for _, e := range flatten(err) {
				var ce *Error
				if !errors.As(e, &ce) {
					t.Errorf("error %v is a %T, not a *config.Error", e, e)
				}
			}
		})
	}
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// realistic is the canonical example grown with what real files contain.
const realistic = `# ulogd.conf, as an administrator would write it
# (CRLF line ends added by the test, no final newline)

[global]
######################################################################
# GLOBAL OPTIONS
######################################################################
logfile="/var/log/ulog/ulogd.log"
loglevel=3
#plugin="/usr/lib/x86_64-linux-gnu/ulogd/ulogd_inpflow_NFCT.so"
stack=ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU
stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu2:LOGEMU

[ct1]
event_mask=0x00000001      # bits: 1 NEW, 2 UPDATE, 4 DESTROY
hash_enable=0

[ log1 ]
group = 2	# not the default group

[emu1]
file="/var/log/ulog/syslogemu.log"
sync=1

[emu2]
file="/var/log/ulog/odd name #2; really.log"   # quoted: blanks, # and ;
sync = 0`

func TestParseRealistic(t *testing.T) {
	in := strings.ReplaceAll(realistic, "\n", "\r\n")
	f, err := Parse("t.conf", []byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &File{
		Path: "t.conf",
		Sections: []*Section{
			sec("global", 4,
				"logfile", "/var/log/ulog/ulogd.log", 8,
				"loglevel", "3", 9,
				"stack", "ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU", 11,
				"stack", "log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu2:LOGEMU", 12),
			sec("ct1", 14, "event_mask", "0x00000001", 15, "hash_enable", "0", 16),
			sec("log1", 18, "group", "2", 19),
			sec("emu1", 21, "file", "/var/log/ulog/syslogemu.log", 22, "sync", "1", 23),
			sec("emu2", 25, "file", "/var/log/ulog/odd name #2; really.log", 26, "sync", "0", 27),
		},
	}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}

	// The accessors.
	g := f.Section("global")
	if g == nil {
		t.Fatal(`Section("global") = nil`)
	}
	var stacks []string
	for _, e := range g.Values("stack") {
		stacks = append(stacks, e.Value)
	}
	if len(stacks) != 2 || !strings.HasPrefix(stacks[1], "log1:NFLOG,") {
		t.Errorf(`Values("stack") = %q`, stacks)
	}
	if e, ok := g.Get("loglevel"); !ok || e.Value != "3" || e.Pos != (Pos{"t.conf", 9}) {
		t.Errorf(`Get("loglevel") = %+v, %v`, e, ok)
	}
	if _, ok := g.Get("plugin"); ok {
		t.Error(`Get("plugin") found a commented-out line`)
	}
	if f.Section("nope") != nil {
		t.Error(`Section("nope") != nil`)
	}
	var nilSec *Section
	if nilSec.Values("x") != nil {
		t.Error("nil Section: Values != nil")
	}
	if _, ok := nilSec.Get("x"); ok {
		t.Error("nil Section: Get found something")
	}
	var nilFile *File
	if nilFile.Section("global") != nil {
		t.Error("nil File: Section != nil")
	}
}

func TestDuplicateSectionLookup(t *testing.T) {
	f, err := Parse("t.conf", []byte("[a]\nk=first\n[a]\nk=second\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Section("a")
	if s == nil || s.Pos.Line != 1 {
		t.Fatalf(`Section("a") = %+v, want the one on line 1`, s)
	}
	if e, _ := s.Get("k"); e.Value != "first" {
		t.Errorf("k = %q, want first", e.Value)
	}
}

func TestParseFile(t *testing.T) {
	f, err := ParseFile(filepath.Join("testdata", "canonical.conf"))
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	if got, want := f.Path, filepath.Join("testdata", "canonical.conf"); got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
	if e, ok := f.Section("ct1").Get("event_mask"); !ok || e.Pos.String() != "testdata/canonical.conf:8" {
		t.Errorf("event_mask = %+v, %v", e, ok)
	}

	missing := filepath.Join(t.TempDir(), "nope.conf")
	if _, err := ParseFile(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("ParseFile(missing) error = %v, want one naming %s", err, missing)
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ParseFile(missing) error = %v, want os.ErrNotExist", err)
	}

	f, err = ParseFile(filepath.Join("testdata", "quirks.conf"))
	want := []string{
		`testdata/quirks.conf:11: unexpected text "; not a comment" after the value of key "file" (quote values that contain blanks)`,
		`testdata/quirks.conf:16: unquoted value "host=x" of key "connstring" contains "=": put the whole value in double quotes (connstring="...")`,
		`testdata/quirks.conf:18: unterminated quoted value for key "procedure"`,
	}
	if diff := cmp.Diff(want, messages(err)); diff != "" {
		t.Errorf("quirks.conf errors (-want +got):\n%s", diff)
	}
	wantWarn := []string{
		`testdata/quirks.conf:2: ignoring "orphan": it comes before the first section`,
		`testdata/quirks.conf:9: ignoring malformed config directive "emu1" (no value; a section is opened with "[emu1]")`,
		`testdata/quirks.conf:12: ignoring malformed config directive "file"`,
		`testdata/quirks.conf:13: section [emu1] already defined on line 10: this one is ignored`,
	}
	if diff := cmp.Diff(wantWarn, warnings(f)); diff != "" {
		t.Errorf("quirks.conf warnings (-want +got):\n%s", diff)
	}
	var stacks []string
	for _, e := range f.Section("global").Values("stack") {
		stacks = append(stacks, e.Value)
	}
	wantStacks := []string{"log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU", "log2:NFLOG,gp1:GPRINT"}
	if diff := cmp.Diff(wantStacks, stacks); diff != "" {
		t.Errorf("quirks.conf stacks (-want +got):\n%s", diff)
	}
	if e, _ := f.Section("log1").Get("group"); e.Value != "1" {
		t.Errorf("log1 group = %q, want 1", e.Value)
	}
}

// TestDebianConfig parses the ulogd.conf shipped by Debian's ulogd2 2.0.8
// package (a copy is kept in testdata; the installed one is checked too
// when it is readable).
func TestDebianConfig(t *testing.T) {
	const shipped = "/etc/ulogd.conf"
	paths := []string{filepath.Join("testdata", "debian-ulogd.conf")}
	if data, err := os.ReadFile(shipped); err == nil && bytes.Contains(data, []byte("Adapted to Debian")) {
		paths = append(paths, shipped)
	}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			f, err := ParseFile(path)
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			if len(f.Warnings) != 0 {
				t.Errorf("warnings: %q", warnings(f))
			}
			g := f.Section("global")
			if g == nil || g.Pos.Line != 4 {
				t.Fatalf("[global] = %+v, want it on line 4", g)
			}
			var stacks []string
			for _, e := range g.Values("stack") {
				stacks = append(stacks, e.Value)
			}
			want := []string{"log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU"}
			if diff := cmp.Diff(want, stacks); diff != "" {
				t.Errorf("stacks (-want +got):\n%s", diff)
			}
			if g.Values("plugin") != nil {
				t.Errorf("plugin lines found, all are commented out in the Debian file")
			}
			if e, _ := g.Get("logfile"); e.Value != "syslog" {
				t.Errorf("logfile = %q", e.Value)
			}
			for name, kv := range map[string][2]string{
				"log3":    {"numeric_label", "1"},
				"nuauth1": {"socket_path", "/tmp/nuauth_ulogd2.sock"},
				"sys2":    {"facility", "LOG_LOCAL2"},
				"nacct1":  {"sync", "1"},
				"xml1":    {"directory", "/var/log/ulog/"},
			} {
				if e, ok := f.Section(name).Get(kv[0]); !ok || e.Value != kv[1] {
					t.Errorf("[%s] %s = %q, %v; want %q", name, kv[0], e.Value, ok, kv[1])
				}
			}
			if len(f.Sections) != 28 {
				t.Errorf("%d sections, want 28", len(f.Sections))
			}
		})
	}
}

// ---- Decode and Options ----

type common struct {
	Sync bool `ulogd:"sync"`
}

type testConfig struct {
	File      string `ulogd:"file,mandatory"`
	common           // embedded options are promoted
	Mask      int    `ulogd:"event_mask"`
	Hash      bool   `ulogd:"hash_enable"`
	Buf       uint32 `ulogd:"netlink_socket_buffer_size"`
	Big       int64  `ulogd:"big"`
	Huge      uint64 `ulogd:"huge"`
	Perms     int    `ulogd:"perms"`
	Name      string `ulogd:"name"`
	Ignored   int    `ulogd:"-"`
	untagged  int
	Untagged2 string
}

func defaults() *testConfig {
	return &testConfig{Mask: 0x1, Hash: true, Buf: 150000, Perms: 0o600, Name: "ulogd", untagged: 7}
}

func TestDecode(t *testing.T) {
	at := Pos{"t.conf", 3}
	for _, tc := range []struct {
		name    string
		in      string // section [s] opened on line 1; "" = no section
		want    *testConfig
		errors  []string
		mutates func(c *testConfig)
	}{
		{
			name: "all set",
			in:   "file=\"/tmp/x\"\nsync=1\nevent_mask=0xffffffff\nhash_enable=0\nnetlink_socket_buffer_size=4294967295\nbig=-9223372036854775808\nhuge=18446744073709551615\nperms=0660\nname=\"a b\"\n",
			mutates: func(c *testConfig) {
				c.File, c.Sync, c.Mask, c.Hash, c.Buf, c.Big, c.Huge, c.Perms, c.Name = "/tmp/x", true, 0xffffffff, false, 4294967295, -1<<63, 1<<64-1, 0o660, "a b"
			},
		},
		{
			name:    "defaults kept",
			in:      "file=x\n",
			mutates: func(c *testConfig) { c.File = "x" },
		},
		{
			name:    "integer syntaxes",
			in:      "file=x\nevent_mask=-1\nperms=+0X1F\nbig=007\nhuge=0\nsync=2\n",
			mutates: func(c *testConfig) { c.File, c.Mask, c.Perms, c.Big, c.Huge, c.Sync = "x", -1, 31, 7, 0, true },
		},
		{
			name: "malformed integers",
			in:   "file=x\nevent_mask=1x\nperms=08\nbig=0o7\nhuge=1_000\nsync=1e3\nhash_enable=\"\"\nnetlink_socket_buffer_size=0x\nevent_mask=+\n",
			errors: []string{
				`t.conf:3: integer has invalid format for key "event_mask"`,
				`t.conf:4: integer has invalid format for key "perms"`,
				`t.conf:5: integer has invalid format for key "big"`,
				`t.conf:6: integer has invalid format for key "huge"`,
				`t.conf:7: integer has invalid format for key "sync"`,
				`t.conf:8: integer has invalid format for key "hash_enable"`,
				`t.conf:9: integer has invalid format for key "netlink_socket_buffer_size"`,
				`t.conf:10: option "event_mask" occurred more than once (first on line 3)`,
			},
			mutates: func(c *testConfig) { c.File = "x" },
		},
		{
			name: "out of range",
			in:   "file=x\nevent_mask=0x100000000\nperms=-2147483649\nnetlink_socket_buffer_size=-1\nbig=9223372036854775808\nhuge=18446744073709551616\nsync=99999999999999999999999\n",
			errors: []string{
				`t.conf:3: integer is out of range for key "event_mask"`,
				`t.conf:4: integer is out of range for key "perms"`,
				`t.conf:5: integer is out of range for key "netlink_socket_buffer_size"`,
				`t.conf:6: integer is out of range for key "big"`,
				`t.conf:7: integer is out of range for key "huge"`,
				`t.conf:8: integer is out of range for key "sync"`,
			},
			mutates: func(c *testConfig) { c.File = "x" },
		},
		{
			name: "range edges accepted",
			in:   "file=x\nevent_mask=-2147483648\nperms=4294967295\nbig=9223372036854775807\n",
			mutates: func(c *testConfig) {
				c.File, c.Mask, c.Perms, c.Big = "x", -2147483648, 4294967295, 9223372036854775807
			},
		},
		{
			name: "duplicate option",
			in:   "file=a\nsync=1\nfile=b\nfile=c\n",
			errors: []string{
				`t.conf:4: option "file" occurred more than once (first on line 2)`,
				`t.conf:5: option "file" occurred more than once (first on line 2)`,
			},
			mutates: func(c *testConfig) { c.File, c.Sync = "a", true },
		},
		{
			name: "unknown options with suggestions",
			in:   "file=x\nhash_enabled=1\nsnyc=1\nFile=y\nnetlink_socket_buffer=1\nbogus=1\nevent_mask=2\n",
			errors: []string{
				`t.conf:3: unknown option "hash_enabled" in section [s] (did you mean "hash_enable"?)`,
				`t.conf:4: unknown option "snyc" in section [s] (did you mean "sync"?)`,
				`t.conf:5: unknown option "File" in section [s] (did you mean "file"?)`,
				`t.conf:6: unknown option "netlink_socket_buffer" in section [s] (did you mean "netlink_socket_buffer_size"?)`,
				`t.conf:7: unknown option "bogus" in section [s]`,
			},
			mutates: func(c *testConfig) { c.File, c.Mask = "x", 2 },
		},
		{
			name: "mandatory missing in section",
			in:   "sync=1\n",
			errors: []string{
				`t.conf:1: mandatory option "file" not found in section [s]`,
			},
			mutates: func(c *testConfig) { c.Sync = true },
		},
		{
			name: "mandatory missing, empty section",
			in:   "# nothing\n",
			errors: []string{
				`t.conf:1: mandatory option "file" not found in section [s]`,
			},
		},
		{
			name: "no section",
			errors: []string{
				`t.conf:3: mandatory option "file" not found: the instance has no section`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s *Section
			if tc.in != "" {
				f, err := Parse("t.conf", []byte("[s]\n"+tc.in))
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				s = f.Section("s")
			}
			got := defaults()
			err := Decode(s, at, got)
			if diff := cmp.Diff(tc.errors, messages(err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			for _, e := range flatten(err) {
				var ce *Error
				if !errors.As(e, &ce) {
					t.Errorf("error %v is a %T, not a *config.Error", e, e)
				}
			}
			want := defaults()
			if tc.mutates != nil {
				tc.mutates(want)
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(testConfig{}, common{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeNoMandatoryNoSection(t *testing.T) {
	c := struct {
		Group int `ulogd:"group"`
	}{Group: 0}
	if err := Decode(nil, Pos{"t.conf", 2}, &c); err != nil {
		t.Errorf("Decode(nil section, no mandatory option) = %v", err)
	}
}

func TestDecodeProgrammingErrors(t *testing.T) {
	s := &Section{Name: "s"}
	for _, tc := range []struct {
		name       string
		dst        any
		want       string
		hasOptions bool // Options accepts it all the same
	}{
		{"nil", nil, "config: Decode needs a non-nil pointer to a struct, not <nil>", false},
		{"not a pointer", testConfig{}, "config: Decode needs a non-nil pointer to a struct, not config.testConfig", true},
		{"nil pointer", (*testConfig)(nil), "config: Decode needs a non-nil pointer to a struct, not *config.testConfig", true},
		{"pointer to int", new(int), "config: Decode needs a non-nil pointer to a struct, not *int", false},
		{"unsupported kind", &struct {
			F float64 `ulogd:"f"`
		}{}, `config: field struct { F float64 "ulogd:\"f\"" }.F: unsupported type float64 for option "f"`, false},
		{"bad flag", &struct {
			F int `ulogd:"f,multi"`
		}{}, `config: field struct { F int "ulogd:\"f,multi\"" }.F: unknown tag flags "multi"`, false},
		{"empty name", &struct {
			F int `ulogd:""`
		}{}, `config: field struct { F int "ulogd:\"\"" }.F: empty option name`, false},
		{"unexported", &struct {
			f int `ulogd:"f"`
		}{}, `config: field struct { f int "ulogd:\"f\"" }.f: option "f" on an unexported field`, false},
		{"twice", &struct {
			F int `ulogd:"f"`
			G int `ulogd:"f"`
		}{}, `config: option "f" declared twice in struct { F int "ulogd:\"f\""; G int "ulogd:\"f\"" }`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Decode(s, Pos{}, tc.dst)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Decode error = %v, want %q", err, tc.want)
			}
			if got := Options(tc.dst) != nil; got != tc.hasOptions {
				t.Errorf("Options(%T) != nil", tc.dst)
			}
		})
	}
}

func TestOptions(t *testing.T) {
	want := []Option{
		{Name: "file", Default: "", Mandatory: true},
		{Name: "sync", Integer: true, Default: "0"},
		{Name: "event_mask", Integer: true, Default: "1"},
		{Name: "hash_enable", Integer: true, Default: "1"},
		{Name: "netlink_socket_buffer_size", Integer: true, Default: "150000"},
		{Name: "big", Integer: true, Default: "0"},
		{Name: "huge", Integer: true, Default: "0"},
		{Name: "perms", Integer: true, Default: "384"},
		{Name: "name", Default: "ulogd"},
	}
	if diff := cmp.Diff(want, Options(defaults())); diff != "" {
		t.Errorf("Options(pointer) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, Options(*defaults())); diff != "" {
		t.Errorf("Options(value) (-want +got):\n%s", diff)
	}
	zero := Options((*testConfig)(nil))
	if len(zero) != len(want) || zero[2].Default != "0" || zero[8].Default != "" {
		t.Errorf("Options(typed nil) = %+v", zero)
	}
	if got := Options(nil); got != nil {
		t.Errorf("Options(nil) = %+v, want nil", got)
	}
	if got := Options(&struct{}{}); got != nil {
		t.Errorf("Options(no options) = %+v, want nil", got)
	}
}

func TestParseInteger(t *testing.T) {
	for _, tc := range []struct {
		in  string
		neg bool
		mag uint64
		err error
	}{
		{"0", false, 0, nil},
		{"-0", true, 0, nil},
		{"42", false, 42, nil},
		{"+42", false, 42, nil},
		{"-42", true, 42, nil},
		{"0x1F", false, 31, nil},
		{"0Xff", false, 255, nil},
		{"0660", false, 0o660, nil},
		{"00", false, 0, nil},
		{"18446744073709551615", false, 1<<64 - 1, nil},
		{"0xffffffffffffffff", false, 1<<64 - 1, nil},
		{"18446744073709551616", false, 0, errRange},
		{"0x10000000000000000", false, 0, errRange},
		{"", false, 0, errSyntax},
		{"-", false, 0, errSyntax},
		{"+-1", false, 0, errSyntax},
		{"0x", false, 0, errSyntax},
		{"0o17", false, 0, errSyntax},
		{"0b1", false, 0, errSyntax},
		{"1_000", false, 0, errSyntax},
		{"1e3", false, 0, errSyntax},
		{"09", false, 0, errSyntax},
		{"12abc", false, 0, errSyntax},
		{" 1", false, 0, errSyntax},
		{"1 ", false, 0, errSyntax},
		{"99999999999999999999x", false, 0, errSyntax}, // format before range
	} {
		neg, mag, err := parseInteger(tc.in)
		if neg != tc.neg || mag != tc.mag || err != tc.err {
			t.Errorf("parseInteger(%q) = %v, %d, %v; want %v, %d, %v", tc.in, neg, mag, err, tc.neg, tc.mag, tc.err)
		}
	}
}

// TestParseFileBounds: a config file larger than MaxFileSize, or with a
// line longer than MaxLineLen, is an error naming the file and the line,
// and a device that never ends is not read until memory runs out.
func TestParseFileBounds(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	comment := "# " + strings.Repeat("x", 1021) + "\n" // 1 KiB
	big := write("big.conf", "[global]\n"+strings.Repeat(comment, MaxFileSize/len(comment)))
	long := write("long.conf", "[global]\nloglevel=5\n# "+strings.Repeat("x", MaxLineLen-1)+"\n"+
		"logfile=\""+strings.Repeat("y", MaxLineLen-10)+"\"\nstack=a:B,c:D\n")
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/dev/zero", []string{"/dev/zero:1: the file is larger than 16 MiB, the limit for a config file (reading stopped in this line)"}},
		{big, []string{big + ":16385: the file is larger than 16 MiB, the limit for a config file (reading stopped in this line)"}},
		{long, []string{long + ":3: line is 65537 bytes long, longer than the limit of 64 KiB"}},
	} {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			f, err := ParseFile(tc.path)
			if diff := cmp.Diff(tc.want, messages(err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if tc.path != long {
				return
			}
			// The lines around the long one are read; a line of exactly
			// MaxLineLen bytes is accepted.
			g := f.Section("global")
			if e, _ := g.Get("logfile"); len(e.Value) != MaxLineLen-10 {
				t.Errorf("logfile value is %d bytes, want %d", len(e.Value), MaxLineLen-10)
			}
			if e, _ := g.Get("stack"); e.Value != "a:B,c:D" {
				t.Errorf("stack = %q", e.Value)
			}
		})
	}
}
