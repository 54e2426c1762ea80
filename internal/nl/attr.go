package nl

import "encoding/binary"

// Attribute header layout and type flags (linux/netlink.h).
const (
	AttrHeaderLen = 4 // NLA_HDRLEN

	AttrNested       = 0x8000 // NLA_F_NESTED
	AttrNetByteOrder = 0x4000 // NLA_F_NET_BYTEORDER
	attrTypeMask     = 0x3fff // NLA_TYPE_MASK
)

// AttrIter walks a stream of netlink attributes (struct nlattr, TLV) in place.
// It never copies: Data aliases the walked buffer. Errors are sticky: once
// Next has met malformed input it returns false for good and Err says why.
//
//	it := nl.Attrs(payload)
//	for it.Next() {
//		switch it.Type() { ... }
//	}
//	if err := it.Err(); err != nil { ... }
type AttrIter struct {
	buf  []byte // not yet walked
	typ  uint16 // raw nla_type of the current attribute, flags included
	data []byte // payload of the current attribute
	err  error
}

// Attrs returns an iterator over the attributes in b.
func Attrs(b []byte) AttrIter { return AttrIter{buf: b} }

// Next advances to the next attribute and reports whether there is one. It
// returns false at the end of the buffer and on malformed input: an
// attribute header that does not fit, an nla_len smaller than the header or
// past the end of the buffer. Padding after the last attribute is tolerated
// only when it is part of that attribute's 4-byte alignment.
func (it *AttrIter) Next() bool {
	if it.err != nil {
		return false
	}
	if len(it.buf) == 0 {
		it.typ, it.data = 0, nil
		return false
	}
	if len(it.buf) < AttrHeaderLen {
		it.fail(errAttrTrailing)
		return false
	}
	l := int(binary.NativeEndian.Uint16(it.buf[0:2]))
	if l < AttrHeaderLen || l > len(it.buf) {
		it.fail(errAttrLen)
		return false
	}
	it.typ = binary.NativeEndian.Uint16(it.buf[2:4])
	it.data = it.buf[AttrHeaderLen:l:l]
	next := align4(l)
	if next > len(it.buf) {
		next = len(it.buf)
	}
	it.buf = it.buf[next:]
	return true
}

func (it *AttrIter) fail(err error) {
	it.err = err
	it.typ, it.data, it.buf = 0, nil, nil
}

// Type is the current attribute's type with NLA_F_NESTED and
// NLA_F_NET_BYTEORDER masked off.
func (it *AttrIter) Type() uint16 { return it.typ & attrTypeMask }

// Nested reports whether the current attribute carries NLA_F_NESTED. Many
// netfilter attributes are nested without the flag, so decoders decide by
// type, not by this bit.
func (it *AttrIter) Nested() bool { return it.typ&AttrNested != 0 }

// Data is the current attribute's payload (nla_len-4 bytes, padding
// excluded). It aliases the walked buffer; its capacity is clipped so that an
// append cannot overwrite the following attribute.
func (it *AttrIter) Data() []byte { return it.data }

// Err is the sticky error that stopped the walk, or nil at a clean end.
func (it *AttrIter) Err() error { return it.err }

// U8 returns b[0], or 0 if b is empty.
func U8(b []byte) uint8 {
	if len(b) < 1 {
		return 0
	}
	return b[0]
}

// BE16 returns the big-endian uint16 at the start of b, or 0 if b is shorter.
func BE16(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

// BE32 returns the big-endian uint32 at the start of b, or 0 if b is shorter.
func BE32(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// BE64 returns the big-endian uint64 at the start of b, or 0 if b is shorter.
func BE64(b []byte) uint64 {
	if len(b) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// NE16 returns the host-order uint16 at the start of b, or 0 if b is shorter.
func NE16(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return binary.NativeEndian.Uint16(b)
}

// NE32 returns the host-order uint32 at the start of b, or 0 if b is shorter.
func NE32(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.NativeEndian.Uint32(b)
}

// AppendAttr appends one attribute with the given type (flags included) and
// payload to b, padded to 4 bytes.
func AppendAttr(b []byte, typ uint16, data []byte) []byte {
	var h [AttrHeaderLen]byte
	binary.NativeEndian.PutUint16(h[0:2], uint16(AttrHeaderLen+len(data)))
	binary.NativeEndian.PutUint16(h[2:4], typ)
	b = append(b, h[:]...)
	b = append(b, data...)
	return appendPad(b)
}

// AppendU8 appends a one-byte attribute.
func AppendU8(b []byte, typ uint16, v uint8) []byte {
	return AppendAttr(b, typ, []byte{v})
}

// AppendBE16 appends a big-endian 16-bit attribute.
func AppendBE16(b []byte, typ uint16, v uint16) []byte {
	var d [2]byte
	binary.BigEndian.PutUint16(d[:], v)
	return AppendAttr(b, typ, d[:])
}

// AppendBE32 appends a big-endian 32-bit attribute.
func AppendBE32(b []byte, typ uint16, v uint32) []byte {
	var d [4]byte
	binary.BigEndian.PutUint32(d[:], v)
	return AppendAttr(b, typ, d[:])
}

// BeginNest appends the header of a nested attribute (NLA_F_NESTED is set)
// and returns b and the header's offset, to be passed to EndNest once the
// children have been appended.
func BeginNest(b []byte, typ uint16) ([]byte, int) {
	start := len(b)
	return AppendAttr(b, typ|AttrNested, nil), start
}

// EndNest sets the length of the nested attribute started at start.
func EndNest(b []byte, start int) []byte {
	binary.NativeEndian.PutUint16(b[start:start+2], uint16(len(b)-start))
	return b
}

func appendPad(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
