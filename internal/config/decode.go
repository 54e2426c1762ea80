package config

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"strconv"
	"strings"

	"github.com/ulogd-go/ulogd/internal/suggest"
)

// Option describes one option of a config struct, for --info.
type Option struct {
	Name      string
	Integer   bool   // integer (or 0/1 boolean) rather than string
	Default   string // the default as ulogd.conf would spell it
	Mandatory bool
}

// field is one tagged field of a config struct.
type field struct {
	name      string
	mandatory bool
	index     []int
	kind      reflect.Kind
}

func (f *field) integer() bool { return f.kind != reflect.String }

// fieldsOf lists the tagged fields of struct type t, in field order. Untagged
// anonymous struct fields are walked into, so option sets can be shared by
// embedding. Fields tagged `ulogd:"-"` and other untagged fields are skipped.
func fieldsOf(t reflect.Type) ([]field, error) {
	var out []field
	seen := make(map[string]bool)
	var walk func(t reflect.Type, prefix []int) error
	walk = func(t reflect.Type, prefix []int) error {
		for i := range t.NumField() {
			sf := t.Field(i)
			index := append(append([]int(nil), prefix...), i)
			tag, tagged := sf.Tag.Lookup("ulogd")
			if !tagged {
				if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
					if err := walk(sf.Type, index); err != nil {
						return err
					}
				}
				continue
			}
			if tag == "-" {
				continue
			}
			name, flags, _ := strings.Cut(tag, ",")
			f := field{name: name, index: index, kind: sf.Type.Kind()}
			switch flags {
			case "":
			case "mandatory":
				f.mandatory = true
			default:
				return fmt.Errorf("config: field %s.%s: unknown tag flags %q", t, sf.Name, flags)
			}
			if name == "" {
				return fmt.Errorf("config: field %s.%s: empty option name", t, sf.Name)
			}
			if !sf.IsExported() {
				return fmt.Errorf("config: field %s.%s: option %q on an unexported field", t, sf.Name, name)
			}
			if _, _, ok := intBounds(f.kind); !ok && f.kind != reflect.String {
				return fmt.Errorf("config: field %s.%s: unsupported type %s for option %q", t, sf.Name, sf.Type, name)
			}
			if seen[name] {
				return fmt.Errorf("config: option %q declared twice in %s", name, t)
			}
			seen[name] = true
			out = append(out, f)
		}
		return nil
	}
	if err := walk(t, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// structOf returns the struct value dst points to.
func structOf(dst any) (reflect.Value, error) {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, fmt.Errorf("config: Decode needs a non-nil pointer to a struct, not %T", dst)
	}
	return v.Elem(), nil
}

// Decode fills the struct dst points to from sec. Fields carry
// `ulogd:"name"` or `ulogd:"name,mandatory"` tags; their kinds may be any
// integer kind, bool (written 0 or non-0, as in ulogd) or string. Fields
// not set in sec keep their value, so dst should hold the defaults.
//
// sec may be nil (the instance has no section): then only the mandatory
// options are checked, and reported at at, the position of the line that
// refers to the instance.
//
// The error joins one *Error per problem: unknown option (with near
// matches), malformed integer, integer out of range, option given more than
// once, mandatory option missing. A dst that is not a pointer to a suitable
// struct is a programming error, reported as a plain error.
func Decode(sec *Section, at Pos, dst any) error {
	v, err := structOf(dst)
	if err != nil {
		return err
	}
	fields, err := fieldsOf(v.Type())
	if err != nil {
		return err
	}
	var errs []error
	report := func(pos Pos, format string, args ...any) {
		errs = append(errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
	if sec == nil {
		for _, f := range fields {
			if f.mandatory {
				report(at, "mandatory option %q not found: the instance has no section", f.name)
			}
		}
		return errors.Join(errs...)
	}

	byName := make(map[string]*field, len(fields))
	for i := range fields {
		byName[fields[i].name] = &fields[i]
	}
	first := make(map[string]Pos)
	for _, e := range sec.Entries {
		f, ok := byName[e.Key]
		if !ok {
			report(e.Pos, "unknown option %q in section [%s]%s", e.Key, sec.Name, suggest.Hint(e.Key, names(fields), true))
			continue
		}
		if p, dup := first[e.Key]; dup {
			report(e.Pos, "option %q occurred more than once (first on line %d)", e.Key, p.Line)
			continue
		}
		first[e.Key] = e.Pos
		switch err := set(v.FieldByIndex(f.index), f.kind, e.Value); err {
		case errSyntax:
			report(e.Pos, "integer has invalid format for key %q", e.Key)
		case errRange:
			report(e.Pos, "integer is out of range for key %q", e.Key)
		}
	}
	for _, f := range fields {
		if _, ok := first[f.name]; f.mandatory && !ok {
			report(sec.Pos, "mandatory option %q not found in section [%s]", f.name, sec.Name)
		}
	}
	return errors.Join(errs...)
}

// set stores value in fv, of the given kind. It returns nil, errSyntax or
// errRange; on error fv is left alone.
func set(fv reflect.Value, kind reflect.Kind, value string) error {
	if kind == reflect.String {
		fv.SetString(value)
		return nil
	}
	neg, mag, err := parseInteger(value)
	if err != nil {
		return err
	}
	minMag, max, _ := intBounds(kind)
	if (neg && mag > minMag) || (!neg && mag > max) {
		return errRange
	}
	switch kind {
	case reflect.Bool:
		fv.SetBool(mag != 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n := int64(mag) // mag ≤ 1<<63; for 1<<63 and neg this wraps to MinInt64, as wanted
		if neg {
			n = -n
		}
		fv.SetInt(n)
	default:
		fv.SetUint(mag)
	}
	return nil
}

// intBounds returns, for an integer-like kind, the magnitude of its most
// negative accepted value and its largest accepted value.
//
// An int option accepts -2^31 .. 2^32-1, like a C int that was filled by
// strtoul: "mask=0xffffffff" and "mask=-1" both work, and the plugin reads
// the bits it needs. A bool option accepts the same range (0 or not 0).
func intBounds(k reflect.Kind) (minMag, max uint64, ok bool) {
	switch k {
	case reflect.Int, reflect.Bool:
		if bits.UintSize == 32 {
			return 1 << 31, math.MaxInt32, true
		}
		return 1 << 31, math.MaxUint32, true
	case reflect.Int8:
		return 1 << 7, math.MaxInt8, true
	case reflect.Int16:
		return 1 << 15, math.MaxInt16, true
	case reflect.Int32:
		return 1 << 31, math.MaxInt32, true
	case reflect.Int64:
		return 1 << 63, math.MaxInt64, true
	case reflect.Uint8:
		return 0, math.MaxUint8, true
	case reflect.Uint16:
		return 0, math.MaxUint16, true
	case reflect.Uint32:
		return 0, math.MaxUint32, true
	case reflect.Uint, reflect.Uint64:
		return 0, math.MaxUint, true
	}
	return 0, 0, false
}

// intError is why an integer option was refused; its values are
// constants, so that no package variable can be changed.
type intError string

func (e intError) Error() string { return string(e) }

const (
	errSyntax intError = "invalid integer"
	errRange  intError = "integer out of range"
)

// parseInteger parses s the way C strtoul(s, NULL, 0) does, but strictly:
// an optional sign, then decimal digits, "0x"/"0X" and hex digits, or "0"
// and octal digits, and nothing else. It returns the sign and magnitude;
// errRange means the magnitude does not fit 64 bits.
func parseInteger(s string) (neg bool, mag uint64, err error) {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	base := uint64(10)
	switch {
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		base, s = 16, s[2:]
	case len(s) >= 2 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" {
		return false, 0, errSyntax
	}
	overflow := false
	for i := 0; i < len(s); i++ {
		var d uint64
		switch c := s[i]; {
		case '0' <= c && c <= '9':
			d = uint64(c - '0')
		case 'a' <= c && c <= 'f':
			d = uint64(c-'a') + 10
		case 'A' <= c && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return false, 0, errSyntax
		}
		if d >= base {
			return false, 0, errSyntax
		}
		hi, lo := bits.Mul64(mag, base)
		lo, carry := bits.Add64(lo, d, 0)
		if hi != 0 || carry != 0 {
			overflow = true
		}
		mag = lo
	}
	if overflow {
		return false, 0, errRange
	}
	return neg, mag, nil
}

// Options lists the options of a config struct (a pointer to it, as
// returned by a plugin's NewConfig, or the struct itself) in field order,
// with the values it holds as defaults. It returns nil for nil or for
// anything that is not a suitable struct.
func Options(cfg any) []Option {
	if cfg == nil {
		return nil
	}
	v := reflect.ValueOf(cfg)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v = reflect.Zero(v.Type().Elem())
		} else {
			v = v.Elem()
		}
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	fields, err := fieldsOf(v.Type())
	if err != nil {
		return nil
	}
	var out []Option
	for _, f := range fields {
		fv := v.FieldByIndex(f.index)
		var def string
		switch f.kind {
		case reflect.String:
			def = fv.String()
		case reflect.Bool:
			def = "0"
			if fv.Bool() {
				def = "1"
			}
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			def = strconv.FormatInt(fv.Int(), 10)
		default:
			def = strconv.FormatUint(fv.Uint(), 10)
		}
		out = append(out, Option{Name: f.name, Integer: f.integer(), Default: def, Mandatory: f.mandatory})
	}
	return out
}

// names returns the option names of fields, in field order.
func names(fields []field) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.name
	}
	return out
}
