package json

import (
	"slices"

	"github.com/ulogd-go/ulogd/internal/keys"
)

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
