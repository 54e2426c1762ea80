// Package keys holds the typed values that plugins exchange: key
// declarations (Spec), their run-time storage (Record) and the slots that
// bind one to the other.
//
// A Record is a flat array of values indexed by Slot, with a validity bitset
// and a byte arena for derived strings. Binding happens once at start-up; at
// run time nothing is looked up by name and nothing is allocated.
package keys

import "strconv"

// Type is the value type of a key. The numeric values are ulogd2's own tags,
// so that --info and the SQL/JSON renderers can follow ulogd2 exactly.
type Type uint16

// Key types (ulogd2 ULOGD_RET_*).
const (
	None    Type = 0x0000 // input only: accepts any type
	Int8    Type = 0x0001
	Int16   Type = 0x0002
	Int32   Type = 0x0003
	Int64   Type = 0x0004
	Uint8   Type = 0x0011
	Uint16  Type = 0x0012
	Uint32  Type = 0x0013
	Uint64  Type = 0x0014
	Bool    Type = 0x0050
	IPAddr  Type = 0x0100 // 4 bytes (IPv4, network order) or 16 bytes (IPv6)
	IP6Addr Type = 0x0200
	String  Type = 0x8020
	Raw     Type = 0x8030
	RawStr  Type = 0x8040 // text pasted unquoted into SQL (IP2BIN)
)

// String returns the label ulogd2 prints in --info.
func (t Type) String() string {
	switch t {
	case Int8:
		return "int 8"
	case Int16:
		return "int 16"
	case Int32:
		return "int 32"
	case Int64:
		return "int 64"
	case Uint8:
		return "unsigned int 8"
	case Uint16:
		return "unsigned int 16"
	case Uint32:
		return "unsigned int 32"
	case Uint64:
		return "unsigned int 64"
	case Bool:
		return "boolean"
	case IPAddr:
		return "IP addr"
	case String:
		return "string"
	case Raw:
		return "raw data"
	}
	return "Unknown type"
}

// IsInteger reports whether values of t live in the numeric part of a slot.
func (t Type) IsInteger() bool {
	switch t {
	case Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64, Bool:
		return true
	}
	return false
}

// IsSigned reports whether t is one of the signed integer types.
func (t Type) IsSigned() bool { return t >= Int8 && t <= Int64 }

// Flags qualify a key declaration.
type Flags uint16

// Key flags (ulogd2 ULOGD_KEYF_*; only the ones with a meaning here).
const (
	Optional Flags = 0x0100 // input: the stack builds even if nobody upstream provides it
	Inactive Flags = 0x0200 // input: ignored entirely (SQL id column)
)

// Spec declares one key: its name, type and flags. Plugins declare their
// keys in a fixed order, which is visible in --info and in the wildcard sinks.
type Spec struct {
	Name  string
	Type  Type
	Flags Flags
}

// Slot indexes a value in a Record. NoSlot marks an optional input that
// nobody upstream provides: reading it always gives "invalid".
type Slot int32

// NoSlot is the slot of an unbound optional input.
const NoSlot Slot = -1

// Bound is an output key placed in a stack: its declaration, its slot and the
// instance that produces it. Wildcard sinks receive the list of every
// upstream output key in this form.
type Bound struct {
	Spec
	Slot     Slot
	Instance string // instance id of the producer
}

// Field is an upstream key with its name and a separator prepared, for the
// sinks that print every key as name=value (GPRINT, OPRINT).
type Field struct {
	Prefix []byte // name and separator, e.g. "oob.in="
	Slot   Slot
	Type   Type
}

// Fields returns a Field for each of up, in order, with sep after the name.
func Fields(up []Bound, sep string) []Field {
	fs := make([]Field, len(up))
	for i, u := range up {
		fs[i] = Field{Prefix: []byte(u.Name + sep), Slot: u.Slot, Type: u.Type}
	}
	return fs
}

func (s Spec) String() string {
	return s.Name + " (" + s.Type.String() + ")"
}

// value is one slot: integers in n, everything else in b.
type value struct {
	n uint64
	b []byte
}

// Record is the run-time storage of a stack: one slot per output key of
// every instance, in stack order. It is reset after every walk.
type Record struct {
	vals  []value
	types []Type
	valid []uint64
	arena []byte
}

// NewRecord makes a record for the given slot types.
func NewRecord(types []Type) *Record {
	r := &Record{
		vals:  make([]value, len(types)),
		types: append([]Type(nil), types...),
		valid: make([]uint64, (len(types)+63)/64),
		arena: make([]byte, 0, 4096),
	}
	return r
}

// Len returns the number of slots.
func (r *Record) Len() int { return len(r.vals) }

// Type returns the declared type of slot s.
func (r *Record) Type(s Slot) Type { return r.types[s] }

// Valid reports whether slot s holds a value for the current event. The
// NoSlot of an unbound optional input is never valid.
func (r *Record) Valid(s Slot) bool {
	if s < 0 {
		return false
	}
	return r.valid[s>>6]&(1<<(uint(s)&63)) != 0
}

// ValidWords returns the validity bitset: slot s is valid when bit s%64 of
// word s/64 is set. It is the record's own storage, for readers that skip
// invalid slots in bulk: read only, and only until the walk returns.
func (r *Record) ValidWords() []uint64 { return r.valid }

func (r *Record) setValid(s Slot) { r.valid[s>>6] |= 1 << (uint(s) & 63) }

// Invalidate marks slot s as holding no value.
func (r *Record) Invalidate(s Slot) {
	if s >= 0 {
		r.valid[s>>6] &^= 1 << (uint(s) & 63)
	}
}

// SetUint stores an unsigned integer (also used for BOOL: 0/1).
func (r *Record) SetUint(s Slot, v uint64) {
	if s < 0 {
		return
	}
	r.vals[s].n = v
	r.setValid(s)
}

// SetInt stores a signed integer.
func (r *Record) SetInt(s Slot, v int64) { r.SetUint(s, uint64(v)) }

// SetBool stores a boolean as 0 or 1.
func (r *Record) SetBool(s Slot, v bool) {
	var n uint64
	if v {
		n = 1
	}
	r.SetUint(s, n)
}

// SetBytes stores a byte value: a string, raw data or an address. b is kept
// by reference: it must stay unchanged until the walk ends (the receive
// buffer or the record's arena).
func (r *Record) SetBytes(s Slot, b []byte) {
	if s < 0 {
		return
	}
	r.vals[s].b = b
	r.setValid(s)
}

// Uint returns the integer in slot s, or 0 when it is invalid.
func (r *Record) Uint(s Slot) uint64 {
	if !r.Valid(s) {
		return 0
	}
	return r.vals[s].n
}

// Int returns the integer in slot s as signed, or 0 when it is invalid.
func (r *Record) Int(s Slot) int64 { return int64(r.Uint(s)) }

// Bytes returns the byte value in slot s, or nil when it is invalid. The
// slice is valid only until the walk returns.
func (r *Record) Bytes(s Slot) []byte {
	if !r.Valid(s) {
		return nil
	}
	return r.vals[s].b
}

// Arena returns the record's scratch buffer with its length, for appending.
// Append to it and give the result back with Commit; the bytes between the
// old and the new length are the new value.
//
//	a := r.Arena()
//	n := len(a)
//	a = strconv.AppendUint(a, v, 10)
//	r.SetBytes(slot, r.Commit(a, n))
func (r *Record) Arena() []byte { return r.arena }

// Commit stores the grown arena and returns the part appended since start.
// Earlier values stay valid even when the arena had to grow.
func (r *Record) Commit(a []byte, start int) []byte {
	r.arena = a
	return a[start:len(a):len(a)]
}

// SetString stores a copy of s in the arena (for text that does not already
// live in a buffer that outlives the walk).
func (r *Record) SetString(slot Slot, s string) {
	a := r.arena
	n := len(a)
	a = append(a, s...)
	r.SetBytes(slot, r.Commit(a, n))
}

// Reset invalidates every slot and empties the arena. It runs after every
// walk. Values are not cleared: readers go through the validity check.
func (r *Record) Reset() {
	clear(r.valid)
	r.arena = r.arena[:0]
}

// CopyFrom copies the first src.Len() slots of src (values and validity)
// into r. A shared source fills one record and each of its stacks starts its
// walk from a copy of it. Byte values are copied by reference.
func (r *Record) CopyFrom(src *Record) {
	n := len(src.vals)
	copy(r.vals[:n], src.vals)
	full := n / 64
	copy(r.valid[:full], src.valid[:full])
	if rem := n % 64; rem != 0 {
		mask := uint64(1)<<rem - 1
		r.valid[full] = r.valid[full]&^mask | src.valid[full]&mask
	}
}

// AppendValue appends the text form of slot s as the generic printers show
// it (GPRINT style): integers in decimal (signed types signed), strings
// as they are, IPv4 dotted quad and IPv6 in RFC 5952 form. It returns false
// when the slot is invalid or the type has no text form (RAW).
func (r *Record) AppendValue(dst []byte, s Slot) ([]byte, bool) {
	if !r.Valid(s) {
		return dst, false
	}
	t := r.types[s]
	v := r.vals[s]
	switch {
	case t.IsSigned():
		return strconv.AppendInt(dst, signExtend(t, v.n), 10), true
	case t.IsInteger():
		return strconv.AppendUint(dst, v.n, 10), true
	case t == String || t == RawStr:
		return append(dst, v.b...), true
	case t == IPAddr || t == IP6Addr:
		return AppendIP(dst, v.b), true
	}
	return dst, false
}

func signExtend(t Type, n uint64) int64 {
	switch t {
	case Int8:
		return int64(int8(n))
	case Int16:
		return int64(int16(n))
	case Int32:
		return int64(int32(n))
	}
	return int64(n)
}
