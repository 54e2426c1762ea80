package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzConfig exercises every kind Decode supports.
type fuzzConfig struct {
	S   string `ulogd:"file"`
	I   int    `ulogd:"sync"`
	B   bool   `ulogd:"hash_enable"`
	U32 uint32 `ulogd:"group"`
	I64 int64  `ulogd:"big"`
	U64 uint64 `ulogd:"huge"`
	M   string `ulogd:"must,mandatory"`
}

// FuzzParse checks that Parse never panics, that every position it reports
// lies within the input, and that a successful parse is stable: written
// back in a canonical form, the file parses again to the same sections and
// entries.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.conf"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"[a]\r\nk=v\r\nq=\"x # y\"",
		"[ a ]\nk = = v # c\nemu1\nfile=\n[a]\nc=h=x\nd=\"open\n",
		"x=1\n[]\n[b\n[c d]\n[e] f\n=1\n",
		"\xef\xbb\xbf[g]\nstack=a:B\nstack=c:D\n",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		const path = "fuzz.conf"
		file, err := Parse(path, data)
		if file == nil {
			t.Fatal("Parse returned a nil File")
		}
		lines := bytes.Count(data, []byte("\n"))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			lines++
		}
		inFile := func(what string, p Pos) {
			t.Helper()
			if p.File != path || p.Line < 1 || p.Line > lines {
				t.Fatalf("%s at %v, outside %s (%d lines)", what, p, path, lines)
			}
		}
		for _, e := range flatten(err) {
			var ce *Error
			if !errors.As(e, &ce) {
				t.Fatalf("error %v is a %T", e, e)
			}
			inFile("error", ce.Pos)
		}
		for _, w := range file.Warnings {
			inFile("warning", w.Pos)
		}
		last := 0
		for _, s := range file.Sections {
			inFile("section", s.Pos)
			if s.Pos.Line <= last {
				t.Fatalf("section [%s] on line %d after line %d", s.Name, s.Pos.Line, last)
			}
			last = s.Pos.Line
			if s.Name == "" || strings.ContainsAny(s.Name, " \t[]") {
				t.Fatalf("bad section name %q", s.Name)
			}
			for _, e := range s.Entries {
				inFile("entry", e.Pos)
				if e.Pos.Line <= last {
					t.Fatalf("entry %q on line %d after line %d", e.Key, e.Pos.Line, last)
				}
				last = e.Pos.Line
				if e.Key == "" || strings.ContainsAny(e.Key, " \t=") || strings.Contains(e.Value, `"`) {
					t.Fatalf("bad entry %q=%q", e.Key, e.Value)
				}
			}
			// Decode must not panic, whatever the section holds.
			_ = Decode(s, s.Pos, &fuzzConfig{})
		}
		if err != nil {
			return
		}

		// Stability: the canonical form parses to the same thing.
		var buf bytes.Buffer
		for _, s := range file.Sections {
			buf.WriteString("[" + s.Name + "]\n")
			for _, e := range s.Entries {
				buf.WriteString(e.Key + `="` + e.Value + "\"\n")
			}
		}
		again, err := Parse(path, buf.Bytes())
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, buf.Bytes())
		}
		if len(again.Sections) != len(file.Sections) {
			t.Fatalf("canonical form has %d sections, want %d\n%s", len(again.Sections), len(file.Sections), buf.Bytes())
		}
		for i, s := range file.Sections {
			a := again.Sections[i]
			if a.Name != s.Name || len(a.Entries) != len(s.Entries) {
				t.Fatalf("section %d: got [%s] with %d entries, want [%s] with %d", i, a.Name, len(a.Entries), s.Name, len(s.Entries))
			}
			for j, e := range s.Entries {
				if g := a.Entries[j]; g.Key != e.Key || g.Value != e.Value {
					t.Fatalf("[%s] entry %d: got %q=%q, want %q=%q", s.Name, j, g.Key, g.Value, e.Key, e.Value)
				}
			}
		}
	})
}
