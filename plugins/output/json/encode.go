package json

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ulogd-go/ulogd/internal/keys"
)

// kind says how a value is written.
type kind uint8

const (
	kUint   kind = iota // unsigned integers and BOOL: decimal
	kInt8               // signed integers: sign-extended decimal
	kInt16              //
	kInt32              //
	kInt64              //
	kString             // JSON string; omitted when not valid UTF-8
	kLabel              // raw.label with boolean_label=1: "allowed"/"blocked"
)

// kindOf returns how a key of type t is written, and false for the types
// ulogd2 leaves out (IP addresses, raw data, RAWSTR).
func kindOf(t keys.Type) (kind, bool) {
	switch t {
	case keys.Uint8, keys.Uint16, keys.Uint32, keys.Uint64, keys.Bool:
		return kUint, true
	case keys.Int8:
		return kInt8, true
	case keys.Int16:
		return kInt16, true
	case keys.Int32:
		return kInt32, true
	case keys.Int64:
		return kInt64, true
	case keys.String:
		return kString, true
	}
	return 0, false
}

// cimAlias is the Common Information Model name ulogd2 gives some keys.
func cimAlias(name string) string {
	switch name {
	case "tcp.sport", "udp.sport", "sctp.sport":
		return "src_port"
	case "tcp.dport", "udp.dport", "sctp.dport":
		return "dest_port"
	case "ip.saddr.str", "orig.ip.saddr.str":
		return "src_ip"
	case "ip.daddr.str", "orig.ip.daddr.str":
		return "dest_ip"
	}
	return name
}

// source is one upstream key feeding a field.
type source struct {
	slot keys.Slot
	kind kind
}

// field is one distinct output name.
type field struct {
	key  []byte   // the quoted name and ": ", e.g. `"src_ip": `
	srcs []source // every upstream key with this name, in stack order
	seen uint32   // generation of the last record that wrote it
}

// occurrence is one upstream key, in stack order, pointing at its field.
type occurrence struct {
	source
	field int32
}

// layout is the precomputed shape of a record.
type layout struct {
	head   []byte // `{` or `{"@version": 1` (nothing else goes first)
	tsKey  []byte // `"timestamp": "` or `"@timestamp": "`, nil without time stamp
	dvc    []byte // `"dvc": "Netfilter"`, nil when the device is not valid UTF-8
	sec    keys.Slot
	usec   keys.Slot
	fields []field
	occs   []occurrence
	gen    uint32
}

// buildLayout turns the upstream keys into the record layout. Names keep
// the position of their first occurrence; ulogd2 (jansson) overwrites the
// value of a name seen again, so a later valid key of the same name wins.
func buildLayout(up []keys.Bound, cfg *Config) layout {
	l := layout{sec: keys.NoSlot, usec: keys.NoSlot}
	l.head = append(l.head, '{')
	if cfg.EventV1 != 0 {
		l.head = append(l.head, `"@version": 1`...)
	}
	if cfg.Timestamp != 0 {
		if cfg.EventV1 != 0 {
			l.tsKey = []byte(`"@timestamp": "`)
		} else {
			l.tsKey = []byte(`"timestamp": "`)
		}
	}
	if dvc, ok := appendString([]byte(`"dvc": `), []byte(cfg.Device)); ok {
		l.dvc = dvc
	}
	index := map[string]int32{} // build time only
	for _, u := range up {
		switch {
		case u.Name == "oob.time.sec" && l.sec == keys.NoSlot:
			l.sec = u.Slot
		case u.Name == "oob.time.usec" && l.usec == keys.NoSlot:
			l.usec = u.Slot
		}
		k, ok := kindOf(u.Type)
		if !ok {
			continue
		}
		name := cimAlias(u.Name)
		if cfg.BooleanLabel != 0 && u.Name == "raw.label" && k != kString {
			name, k = "action", kLabel
		}
		src := source{slot: u.Slot, kind: k}
		fi, ok := index[name]
		if !ok {
			fi = int32(len(l.fields))
			index[name] = fi
			key, _ := appendString(nil, []byte(name))
			l.fields = append(l.fields, field{key: append(key, ": "...)})
		}
		f := &l.fields[fi]
		dup := false
		for _, s := range f.srcs {
			dup = dup || s == src
		}
		if dup {
			// The same value again (wildcard duplicates are bound to
			// the nearest provider): nothing new to write.
			continue
		}
		f.srcs = append(f.srcs, src)
		l.occs = append(l.occs, occurrence{source: src, field: fi})
	}
	return l
}

// encode appends one record (with its newline) to b.
func (s *sink) encode(b []byte, r *keys.Record) []byte {
	l := &s.lay
	b = append(b, l.head...)
	first := len(l.head) == 1
	if l.tsKey != nil {
		if !first {
			b = append(b, ", "...)
		}
		first = false
		b = append(b, l.tsKey...)
		b = s.appendTime(b, r)
		b = append(b, '"')
	}
	if l.dvc != nil {
		if !first {
			b = append(b, ", "...)
		}
		first = false
		b = append(b, l.dvc...)
	}
	l.gen++
	if l.gen == 0 {
		for i := range l.fields {
			l.fields[i].seen = 0
		}
		l.gen = 1
	}
	for i := range l.occs {
		o := &l.occs[i]
		if !r.Valid(o.slot) {
			continue
		}
		f := &l.fields[o.field]
		if f.seen == l.gen {
			continue
		}
		// A name takes the position of its first key that can be
		// written, and the value of its last one. With a single key
		// (the common case) an unwritable string just rolls back.
		if len(f.srcs) > 1 && o.kind == kString && !utf8.Valid(r.Bytes(o.slot)) {
			continue
		}
		mark := len(b)
		if !first {
			b = append(b, ", "...)
		}
		b = append(b, f.key...)
		ok := false
		for j := len(f.srcs) - 1; j >= 0 && !ok; j-- {
			if src := f.srcs[j]; r.Valid(src.slot) {
				b, ok = appendValue(b, r, src)
			}
		}
		if !ok {
			b = b[:mark]
			continue
		}
		f.seen = l.gen
		first = false
	}
	return append(b, "}\n"...)
}

// appendValue writes the value of src; false when it cannot be written
// (a string that is not valid UTF-8), with b unchanged.
func appendValue(b []byte, r *keys.Record, src source) ([]byte, bool) {
	n := r.Uint(src.slot)
	switch src.kind {
	case kUint:
		return strconv.AppendUint(b, n, 10), true
	case kInt8:
		return strconv.AppendInt(b, int64(int8(n)), 10), true
	case kInt16:
		return strconv.AppendInt(b, int64(int16(n)), 10), true
	case kInt32:
		return strconv.AppendInt(b, int64(int32(n)), 10), true
	case kInt64:
		return strconv.AppendInt(b, int64(n), 10), true
	case kLabel:
		if n != 0 {
			return append(b, `"allowed"`...), true
		}
		return append(b, `"blocked"`...), true
	}
	return appendString(b, r.Bytes(src.slot))
}

const hexDigits = "0123456789ABCDEF"

// appendString appends s as a JSON string, escaped as jansson does: `"`,
// `\` and control characters (short forms for \b \f \n \r \t, \u00XX for
// the others); everything else, multi-byte UTF-8 included, is copied. A
// string that is not valid UTF-8 is not written: b is returned unchanged
// with false.
func appendString(b, s []byte) ([]byte, bool) {
	start := len(b)
	b = append(b, '"')
	i, last := 0, 0
	for i < len(s) {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				return b[:start], false
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[last:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		last = i
	}
	b = append(b, s[last:]...)
	return append(b, '"'), true
}

// appendTime writes the record's time: the packet's (oob.time.sec and
// .usec) when the source gives one, else now.
func (s *sink) appendTime(b []byte, r *keys.Record) []byte {
	l := &s.lay
	var sec int64
	var usec uint64
	if r.Valid(l.sec) {
		sec = int64(r.Uint(l.sec))
		usec = r.Uint(l.usec) // 0 when invalid
		if usec >= 1e6 {
			sec += int64(usec / 1e6)
			usec %= 1e6
		}
	} else {
		t := s.now()
		sec, usec = t.Unix(), uint64(t.Nanosecond()/1000)
	}
	return s.clk.append(b, sec, int(usec))
}

// clock formats time stamps as RFC 3339 local time with microseconds and
// a numeric UTC offset ("2026-11-25T19:11:57.117640+01:00"). The date,
// time and offset are computed once per second.
type clock struct {
	loc  *time.Location
	sec  int64
	date []byte // "2026-11-25T19:11:57"
	zone []byte // "+01:00"
}

func (c *clock) init(loc *time.Location) {
	c.loc = loc
	c.sec = math.MinInt64
	c.date = make([]byte, 0, 32)
	c.zone = make([]byte, 0, 16)
}

func (c *clock) append(b []byte, sec int64, usec int) []byte {
	if sec != c.sec {
		t := time.Unix(sec, 0).In(c.loc)
		c.date = t.AppendFormat(c.date[:0], "2006-01-02T15:04:05")
		c.zone = t.AppendFormat(c.zone[:0], "-07:00")
		c.sec = sec
	}
	b = append(b, c.date...)
	b = append(b, '.',
		byte('0'+usec/100000), byte('0'+usec/10000%10), byte('0'+usec/1000%10),
		byte('0'+usec/100%10), byte('0'+usec/10%10), byte('0'+usec%10))
	return append(b, c.zone...)
}
