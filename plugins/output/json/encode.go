package json

import (
	"math/bits"
	"slices"
	"unicode/utf8"

	"github.com/ulogd-go/ulogd/internal/keys"
)

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
	if s.ecs != nil {
		return s.encodeECS(b, r)
	}
	return s.encodeKeys(b, r)
}

// encodeECS is encode for layout=ecs: the renamed keys, then the fields
// computed from several keys.
func (s *sink) encodeECS(b []byte, r *keys.Record) []byte {
	b = s.encodeKeys(b, r)
	b = s.ecs.append(s, b[:len(b)-2], r) // before "}\n"
	return append(b, "}\n"...)
}

// encodeKeys appends the record of the keys as named by the layout.
func (s *sink) encodeKeys(b []byte, r *keys.Record) []byte {
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
