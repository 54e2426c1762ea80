package json

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
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
	key  []byte   // ", ", the quoted name and ": ", e.g. `, "src_ip": `
	srcs []source // every upstream key with this name, in stack order
	seen uint32   // generation of the last record that wrote it
}

// occurrence is one upstream key, in stack order, pointing at its field.
type occurrence struct {
	source
	single bool   // the only key of its field: nothing else writes the name
	field  int32  // index in layout.fields
	key    []byte // the field's key
	// pad is the key zero-padded to keyPad bytes, for keys that fit
	// (padded is true): copied whole, it is a few moves and no memmove.
	pad    [keyPad]byte
	padded bool
}

// keyPad is the size of occurrence.pad. The longest key of the NFCT, NFLOG
// and NFACCT stacks (", " and `"reply.raw.pktcount": `) is 26 bytes.
const keyPad = 32

// room is the free capacity encode wants before writing a field that is
// not a string: a padded key and the longest integer (20 digits and a
// sign), with margin.
const room = keyPad + 24

// slotWord is a run of occurrences whose slots ascend within one validity
// word of the record: occurrence base+k has the k-th lowest slot of mask.
type slotWord struct {
	i    int32  // the index of the validity word
	base int32  // the occurrence of the lowest bit of mask
	mask uint64 // the occurrences' slots in that word
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

	// The bulk walk (validOccs): the occurrences cut into slotWords, in
	// stack order. Nil when an occurrence has an unbound slot.
	words []slotWord
	list  []int32 // validOccs' result, reused

	// The plans of the last shapes seen, the oldest replaced first.
	plans    [numPlans]plan
	nextPlan int
}

// numPlans is how many record shapes keep a plan: a flow source in
// hash_enable=0 mode alternates NEW and DESTROY records, which differ in
// their keys (flow.end), and packets differ by protocol.
const numPlans = 4

// plan is the field list of one record shape (which keys were valid), for
// the records that follow in the same shape: a source emits the same few
// shapes event after event, so most records skip the walk over the
// validity bits and the per-field checks.
type plan struct {
	ok    bool     // ops hold the fields of the shape in masks
	masks []uint64 // per slotWord, its valid occurrences
	ops   []op
}

// op is one field of a plan: its padded key and where its value is.
type op struct {
	pad  [keyPad]byte
	klen uint8
	source
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
			key = append([]byte(", "), key...)
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
	for i := range l.occs {
		o := &l.occs[i]
		f := &l.fields[o.field]
		o.key = f.key
		o.single = len(f.srcs) == 1
		o.padded = copy(o.pad[:], f.key) == len(f.key)
	}
	l.planWalk()
	return l
}

// planWalk cuts the occurrences into the slotWords of the bulk walk: a new
// one starts where the slot changes word or does not ascend. In the usual
// stacks slots ascend in stack order but for the wildcard duplicates
// (HWHDR's raw.type and oob.protocol are bound to the nearest provider,
// later in the stack), which cost a few more slotWords.
func (l *layout) planWalk() {
	l.list = make([]int32, 0, len(l.occs))
	for _, o := range l.occs {
		if o.slot < 0 {
			return // never valid, but no bit either: check each key
		}
	}
	for i, o := range l.occs {
		wi := int32(o.slot >> 6)
		if n := len(l.words); n == 0 || o.slot <= l.occs[i-1].slot || wi != l.words[n-1].i {
			l.words = append(l.words, slotWord{i: wi, base: int32(i)})
		}
		l.words[len(l.words)-1].mask |= 1 << (uint(o.slot) & 63)
	}
	for i := range l.plans {
		l.plans[i].masks = make([]uint64, 0, len(l.words))
		l.plans[i].ops = make([]op, 0, len(l.occs))
	}
}

// encode appends one record (with its newline) to b. A record of a shape
// seen lately (the same valid keys) replays that shape's plan; another one
// walks the valid keys and leaves a plan in place of the oldest.
//
// Either way the common field (the only key of its name, an unsigned
// integer or a plain ASCII string) is written in place: buf is b at its
// full capacity and pos the end of the record so far, so that a key is one
// fixed-size copy and an integer is formatted where it goes. Everything
// else goes through the append functions.
func (s *sink) encode(b []byte, r *keys.Record) []byte {
	l := &s.lay
	b, first := s.appendHead(b, r)
	if !first {
		valid := r.ValidWords()
		for i := range l.plans {
			if p := &l.plans[i]; p.matches(l.words, valid) {
				return p.encode(b, r)
			}
		}
	}
	b = l.encodeWalk(b, r, first)
	if !first && l.words != nil {
		l.plans[l.nextPlan].build(l, r)
		l.nextPlan = (l.nextPlan + 1) % numPlans
	}
	return b
}

// encodeWalk appends the fields and the end of the record by walking the
// valid occurrences; first is true when nothing precedes the first field.
func (l *layout) encodeWalk(b []byte, r *keys.Record, first bool) []byte {
	l.gen++
	if l.gen == 0 {
		for i := range l.fields {
			l.fields[i].seen = 0
		}
		l.gen = 1
	}
	buf, pos := b[:cap(b)], len(b)
	for _, oi := range l.validOccs(r) {
		o := &l.occs[oi]
		if cap(buf)-pos < room {
			buf = slices.Grow(buf[:pos], room)
			buf = buf[:cap(buf)]
		}
		if o.single && o.padded {
			// The common case: nothing else writes the name.
			mark := pos
			*(*[keyPad]byte)(buf[pos:]) = o.pad
			pos += len(o.key)
			if first {
				// Without the leading ", ".
				pos = mark + copy(buf[mark:], o.key[2:])
			}
			var ok bool
			if buf, pos, ok = putValue(buf, pos, r, o.source); !ok {
				pos = mark
				continue
			}
			first = false
			continue
		}
		b = buf[:pos]
		if o.single {
			mark := len(b)
			b = appendKey(b, o.key, first)
			var ok bool
			if b, ok = appendValue(b, r, o.source); !ok {
				b = b[:mark]
			} else {
				first = false
			}
			buf, pos = b[:cap(b)], len(b)
			continue
		}
		// A name takes the position of its first key that can be
		// written, and the value of its last one.
		f := &l.fields[o.field]
		if f.seen == l.gen || o.kind == kString && !utf8.Valid(r.Bytes(o.slot)) {
			continue
		}
		mark := len(b)
		b = appendKey(b, f.key, first)
		ok := false
		for j := len(f.srcs) - 1; j >= 0 && !ok; j-- {
			if src := f.srcs[j]; r.Valid(src.slot) {
				b, ok = appendValue(b, r, src)
			}
		}
		if !ok {
			b = b[:mark]
		} else {
			f.seen = l.gen
			first = false
		}
		buf, pos = b[:cap(b)], len(b)
	}
	return append(buf[:pos], "}\n"...)
}

// matches reports whether the plan was built for records of valid's shape.
func (p *plan) matches(words []slotWord, valid []uint64) bool {
	if !p.ok {
		return false
	}
	for j, w := range words {
		if valid[w.i]&w.mask != p.masks[j] {
			return false
		}
	}
	return true
}

// build makes the plan for r's shape, from the occurrences encodeWalk has
// just found valid (l.list). A shape in which two keys of one name are
// valid gets no plan: which of them is written takes encodeWalk's rules.
// So does a key too long for its pad.
func (p *plan) build(l *layout, r *keys.Record) {
	p.ok = false
	valid := r.ValidWords()
	p.masks = p.masks[:0]
	for _, w := range l.words {
		p.masks = append(p.masks, valid[w.i]&w.mask)
	}
	p.ops = p.ops[:0]
	for _, oi := range l.list {
		o := &l.occs[oi]
		if !o.padded {
			return
		}
		if !o.single {
			n := 0
			for _, src := range l.fields[o.field].srcs {
				if r.Valid(src.slot) {
					n++
				}
			}
			if n > 1 {
				return
			}
		}
		p.ops = append(p.ops, op{pad: o.pad, klen: uint8(len(o.key)), source: o.source})
	}
	p.ok = true
}

// encode appends the fields of a record of the plan's shape, and the end
// of the record. The record has fields before its own (first is false).
// A field is written as encodeWalk writes a single key: an unwritable
// string is left out.
func (p *plan) encode(b []byte, r *keys.Record) []byte {
	buf, pos := b[:cap(b)], len(b)
	for i := range p.ops {
		op := &p.ops[i]
		if cap(buf)-pos < room {
			buf = slices.Grow(buf[:pos], room)
			buf = buf[:cap(buf)]
		}
		mark := pos
		*(*[keyPad]byte)(buf[pos:]) = op.pad
		var ok bool
		if buf, pos, ok = putValue(buf, pos+int(op.klen), r, op.source); !ok {
			pos = mark
		}
	}
	return append(buf[:pos], "}\n"...)
}

// putValue writes the value of src at buf[pos:], where room bytes are free,
// and returns the buffer (grown if a long or escaped string needed it) and
// the position after the value. ok is false when the value cannot be
// written (a string that is not valid UTF-8): nothing is written then.
func putValue(buf []byte, pos int, r *keys.Record, src source) (_ []byte, _ int, ok bool) {
	switch src.kind {
	case kUint:
		return buf, putUint(buf, pos, r.Uint(src.slot)), true
	case kString:
		v := r.Bytes(src.slot)
		if len(v) <= cap(buf)-pos-2 && plainASCII(v) == len(v) {
			buf[pos] = '"'
			pos += 1 + copy(buf[pos+1:], v)
			buf[pos] = '"'
			return buf, pos + 1, true
		}
	}
	b, ok := appendValue(buf[:pos], r, src)
	if !ok {
		return buf, pos, false
	}
	return b[:cap(b)], len(b), true
}

// appendKey appends a field's key (`, "name": `), without its leading
// ", " when it is the first field.
func appendKey(b, key []byte, first bool) []byte {
	if first {
		return append(b, key[2:]...)
	}
	return append(b, key...)
}

// appendHead appends the opening brace and the fields that come before the
// keys (version, time stamp, device); first is true when there are none.
func (s *sink) appendHead(b []byte, r *keys.Record) (_ []byte, first bool) {
	l := &s.lay
	b = append(b, l.head...)
	first = len(l.head) == 1
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
	return b, first
}

// validOccs returns the indexes of the occurrences valid in r, in stack
// order (in the layout's scratch list). It looks at the record's validity
// bits a word at a time, skipping the invalid keys in bulk.
func (l *layout) validOccs(r *keys.Record) []int32 {
	if l.words == nil {
		return l.validOccsAll(r)
	}
	valid := r.ValidWords()
	list := l.list[:0]
	for _, w := range l.words {
		for m := valid[w.i] & w.mask; m != 0; m &= m - 1 {
			below := w.mask & (m&-m - 1) // the run's slots below this one
			list = append(list, w.base+int32(bits.OnesCount64(below)))
		}
	}
	l.list = list
	return list
}

// validOccsAll is validOccs checking every occurrence in turn: the
// reference for the bulk walk, and the way for a layout without one.
func (l *layout) validOccsAll(r *keys.Record) []int32 {
	list := l.list[:0]
	for i := range l.occs {
		if r.Valid(l.occs[i].slot) {
			list = append(list, int32(i))
		}
	}
	l.list = list
	return list
}

// appendValue writes the value of src; false when it cannot be written
// (a string that is not valid UTF-8), with b unchanged.
func appendValue(b []byte, r *keys.Record, src source) ([]byte, bool) {
	n := r.Uint(src.slot)
	switch src.kind {
	case kUint:
		return appendUint(b, n), true
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

const pairs = "00010203040506070809" + "10111213141516171819" + "20212223242526272829" +
	"30313233343536373839" + "40414243444546474849" + "50515253545556575859" +
	"60616263646566676869" + "70717273747576777879" + "80818283848586878889" +
	"90919293949596979899"

// putUint writes n in decimal at buf[pos:] and returns the position after
// it. buf must have room for 20 bytes at pos.
func putUint(buf []byte, pos int, n uint64) int {
	if n < 10 {
		buf[pos] = byte('0' + n)
		return pos + 1
	}
	// The number of digits: log10 from the bit length, corrected by one.
	d := bits.Len64(n) * 1233 >> 12
	if n >= pow10[d] {
		d++
	}
	end := pos + d
	i := end
	for n >= 100 {
		q := n / 100
		r := (n - q*100) * 2
		i -= 2
		buf[i], buf[i+1] = pairs[r], pairs[r+1]
		n = q
	}
	if n >= 10 {
		buf[i-2], buf[i-1] = pairs[n*2], pairs[n*2+1]
	} else {
		buf[i-1] = byte('0' + n)
	}
	return end
}

// pow10[i] is 10 to the i (pow10[20] stands in for 10^20, which exceeds
// uint64: no n reaches it).
var pow10 = [21]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, math.MaxUint64}

// appendUint is strconv.AppendUint(b, n, 10) without its layers (most
// values of a record are integers).
func appendUint(b []byte, n uint64) []byte {
	b = slices.Grow(b, 20)
	return b[:putUint(b[:cap(b)], len(b), n)]
}

// appendString appends s as a JSON string, escaped as jansson does: `"`,
// `\` and control characters (short forms for \b \f \n \r \t, \u00XX for
// the others); everything else, multi-byte UTF-8 included, is copied. A
// string that is not valid UTF-8 is not written: b is returned unchanged
// with false.
func appendString(b, s []byte) ([]byte, bool) {
	start := len(b)
	b = append(b, '"')
	i, last := plainASCII(s), 0
	if i == len(s) {
		b = append(b, s...)
		return append(b, '"'), true
	}
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

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plainASCII returns the length of the longest prefix of s made of ASCII
// bytes that JSON strings take as they are (no control character, no `"`,
// no `\`), eight bytes at a time.
func plainASCII(s []byte) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		q := x ^ ones*'"'
		bs := x ^ ones*'\\'
		// Nonzero when some byte is below 0x20, is a quote (a zero
		// byte in q) or a backslash (in bs), or is 0x80 or above. The
		// terms may flag the wrong byte but never miss one; the bytes
		// of that word are then looked at one by one.
		if (x-ones*0x20)&^x&highs|(q-ones)&^q&highs|(bs-ones)&^bs&highs|x&highs != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			break
		}
	}
	return i
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
		t := s.clock.Time()
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
