// Package config reads ulogd.conf files and decodes plugin sections into
// typed config structs.
//
// The grammar is the one of ulogd2 2.0.8 with the strictness of 2.0.9
// wherever the old parser silently did something the user did not mean
// (docs/compat.md, C2 to C5):
//
//   - The file is line oriented. Blank lines and lines whose first non-blank
//     character is '#' are ignored. CRLF line ends and a last line without
//     a newline are accepted. A line may be up to MaxLineLen bytes long, the
//     file up to MaxFileSize (ulogd2's 253-character lines are not a limit
//     here; a file that is not a config file, such as /dev/zero, is).
//   - "[name]" (blanks allowed inside the brackets) opens a section. A
//     section name used twice draws a warning; the first one is the one
//     that counts, as in ulogd.
//   - Any other line is "key value": the key is the first word (ended by a
//     blank or '='), then any run of blanks and '=' is skipped, then comes
//     the value. An unquoted value ends at a blank and may not contain '='
//     (2.0.8 silently cut "connstring=host=x" to "host"). A quoted value
//     runs to the next '"' and may hold anything else; there are no escapes.
//     After the value only a '#' comment may follow.
//   - A key without a value ("file=", or a bare word such as "emu1", which
//     2.0.8 took for a section opener) is ignored with a warning, like
//     2.0.9 does. Lines before the first section are ignored with a warning.
//
// Every entry keeps its file:line, and every problem is reported with it.
// Parse and Decode report all problems of a file or section in one pass.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// The bounds of a config file: ulogd.conf files are a few kilobytes, and
// ParseFile must not read a device or a huge file until memory runs out.
const (
	MaxFileSize = 16 << 20 // bytes in a file
	MaxLineLen  = 64 << 10 // bytes in a line, without its line end
)

// Pos is a position in a config file.
type Pos struct {
	File string
	Line int
}

// String returns "file:line" (or what is known of it).
func (p Pos) String() string {
	switch {
	case p.Line <= 0:
		return p.File
	case p.File == "":
		return "line " + strconv.Itoa(p.Line)
	}
	return p.File + ":" + strconv.Itoa(p.Line)
}

// Error is a problem found in a config file, fatal or not (File.Warnings
// holds the non-fatal ones).
type Error struct {
	Pos Pos
	Msg string
}

// Error returns "file:line: msg".
func (e *Error) Error() string {
	if p := e.Pos.String(); p != "" {
		return p + ": " + e.Msg
	}
	return e.Msg
}

// Entry is one "key=value" line.
type Entry struct {
	Key, Value string
	Pos        Pos
}

// Section is a "[name]" line and the entries that follow it.
type Section struct {
	Name    string
	Pos     Pos
	Entries []Entry
}

// File is a parsed config file.
type File struct {
	Path string
	// Sections holds every section in file order, [global] included. A
	// section whose name was already used is kept here too (it has been
	// warned about), but Section returns the first one.
	Sections []*Section
	// Warnings are non-fatal notices (malformed directive ignored,
	// duplicate section, line outside any section...). Callers may add
	// their own (legacy keys in [global], for example).
	Warnings []*Error
}

// ParseFile reads and parses the file at path. It reads at most one byte
// more than MaxFileSize, so that a larger file is reported, not read.
func ParseFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	return Parse(path, data)
}

// Parse parses data, read from path (used in positions only). The error,
// if not nil, joins one *Error per problem, in line order. The returned
// File is never nil: on error it holds what could be parsed, which is
// useful for tools but must not be used to run anything.
//
// data larger than MaxFileSize is not parsed: the error names the line in
// which the limit falls. A line longer than MaxLineLen is an error.
func Parse(path string, data []byte) (*File, error) {
	p := parser{f: &File{Path: path}, seen: make(map[string]*Section)}
	if len(data) > MaxFileSize {
		line := bytes.Count(data[:MaxFileSize], []byte{'\n'}) + 1
		return p.f, &Error{Pos: Pos{File: path, Line: line},
			Msg: fmt.Sprintf("the file is larger than %d MiB, the limit for a config file (reading stopped in this line)", MaxFileSize>>20)}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	line := 0
	for len(data) > 0 {
		var text []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			text, data = data[:i], data[i+1:]
		} else {
			text, data = data, nil
		}
		line++
		text = bytes.TrimSuffix(text, []byte{'\r'})
		if len(text) > MaxLineLen {
			p.errorf(Pos{File: path, Line: line}, "line is %d bytes long, longer than the limit of %d KiB", len(text), MaxLineLen>>10)
			continue
		}
		p.line(Pos{File: path, Line: line}, string(text))
	}
	if len(p.errs) == 0 {
		return p.f, nil
	}
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		errs[i] = e
	}
	return p.f, errors.Join(errs...)
}

// Section returns the first section called name, or nil.
func (f *File) Section(name string) *Section {
	if f == nil {
		return nil
	}
	for _, s := range f.Sections {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Values returns every entry whose key is key, in file order (for the keys
// that may repeat: stack, plugin). s may be nil.
func (s *Section) Values(key string) []Entry {
	if s == nil {
		return nil
	}
	var out []Entry
	for _, e := range s.Entries {
		if e.Key == key {
			out = append(out, e)
		}
	}
	return out
}

// Get returns the first entry whose key is key. s may be nil.
func (s *Section) Get(key string) (Entry, bool) {
	if s == nil {
		return Entry{}, false
	}
	for _, e := range s.Entries {
		if e.Key == key {
			return e, true
		}
	}
	return Entry{}, false
}

type parser struct {
	f    *File
	errs []*Error
	seen map[string]*Section // first section of each name

	cur    *Section // section being read; nil before the first one
	broken bool     // the last section line was unusable: drop lines quietly
}

func (p *parser) errorf(pos Pos, format string, args ...any) {
	p.errs = append(p.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(pos Pos, format string, args ...any) {
	p.f.Warnings = append(p.f.Warnings, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// line handles one line, without its line end.
func (p *parser) line(pos Pos, s string) {
	s = strings.TrimLeft(s, " \t")
	switch {
	case s == "" || s[0] == '#':
		return
	case s[0] == '[':
		p.section(pos, s)
		return
	}
	e, ok := p.entry(pos, s)
	if !ok {
		return
	}
	switch {
	case p.cur != nil:
		p.cur.Entries = append(p.cur.Entries, e)
	case p.broken:
		// Belongs to a section line that was already reported.
	default:
		p.warnf(pos, "ignoring %q: it comes before the first section", e.Key)
	}
}

// section handles a line that starts with '['.
func (p *parser) section(pos Pos, s string) {
	p.cur, p.broken = nil, true
	end := strings.IndexByte(s, ']')
	if end < 0 {
		p.errorf(pos, "section line %q lacks its closing \"]\"", s)
		return
	}
	name := strings.Trim(s[1:end], " \t")
	if rest := strings.TrimLeft(s[end+1:], " \t"); rest != "" && rest[0] != '#' {
		p.errorf(pos, "unexpected text %q after section [%s]", rest, name)
		return
	}
	if name == "" {
		p.errorf(pos, "empty section name")
		return
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c == 0x7f || c == '[' {
			p.errorf(pos, "invalid section name %q: it must be one word", name)
			return
		}
	}
	sec := &Section{Name: name, Pos: pos}
	p.f.Sections = append(p.f.Sections, sec)
	p.cur, p.broken = sec, false
	if first, dup := p.seen[name]; dup {
		p.warnf(pos, "section [%s] already defined on line %d: this one is ignored", name, first.Pos.Line)
		return
	}
	p.seen[name] = sec
}

// entry parses a key/value line (s has no leading blanks and is not a
// comment). ok is false when the line yields no entry.
func (p *parser) entry(pos Pos, s string) (e Entry, ok bool) {
	i := 0
	for i < len(s) && !isBlank(s[i]) && s[i] != '=' {
		i++
	}
	key := s[:i]
	if key == "" {
		p.errorf(pos, "missing key before \"=\"")
		return Entry{}, false
	}
	for i < len(s) && (isBlank(s[i]) || s[i] == '=') {
		i++
	}
	rest := s[i:]
	if rest == "" || rest[0] == '#' {
		if !strings.Contains(s[:i], "=") && rest == "" {
			p.warnf(pos, "ignoring malformed config directive %q (no value; a section is opened with \"[%s]\")", key, key)
		} else {
			p.warnf(pos, "ignoring malformed config directive %q", key)
		}
		return Entry{}, false
	}

	var value string
	if rest[0] == '"' {
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			p.errorf(pos, "unterminated quoted value for key %q", key)
			return Entry{}, false
		}
		value, rest = rest[1:1+end], rest[2+end:]
		if rest != "" && !isBlank(rest[0]) && rest[0] != '#' {
			p.errorf(pos, "unexpected text %q after the quoted value of key %q", rest, key)
			return Entry{}, false
		}
	} else {
		j := 0
		for j < len(rest) && !isBlank(rest[j]) {
			j++
		}
		value, rest = rest[:j], rest[j:]
		if strings.Contains(value, "=") {
			p.errorf(pos, "unquoted value %q of key %q contains \"=\": put the whole value in double quotes (%s=\"...\")", value, key, key)
			return Entry{}, false
		}
		if strings.Contains(value, "\"") {
			p.errorf(pos, "stray double quote in the value %q of key %q: quote the whole value or none of it", value, key)
			return Entry{}, false
		}
	}
	if rest = strings.TrimLeft(rest, " \t"); rest != "" && rest[0] != '#' {
		p.errorf(pos, "unexpected text %q after the value of key %q (quote values that contain blanks)", rest, key)
		return Entry{}, false
	}
	return Entry{Key: key, Value: value, Pos: pos}, true
}

// OptionError is a bad value of one option, found after decoding (a
// plugin's checks). The stack builder reports it at the option's line
// when the section has it, else at the instance's line in the stack.
type OptionError struct {
	Option string // the option's name, as in the section
	Err    error  // the message, which names the option itself
}

func (e *OptionError) Error() string { return e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

// OptionErrorf returns an OptionError of option with a formatted message
// (which should name the option).
func OptionErrorf(option, format string, args ...any) error {
	return &OptionError{Option: option, Err: fmt.Errorf(format, args...)}
}

// AtOption makes err (nil stays nil) an OptionError of option.
func AtOption(option string, err error) error {
	if err == nil {
		return nil
	}
	return &OptionError{Option: option, Err: err}
}
