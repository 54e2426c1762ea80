package sqldb

import (
	"encoding/binary"
	"strconv"

	"github.com/ulogd-go/ulogd/internal/keys"
)

// Layout is the list of keys one queued row holds, in order: the bound
// columns' keys once the columns are known, every upstream key before.
type Layout struct {
	Keys []keys.Bound
}

// NewLayout returns the layout of the upstream keys at the given indexes.
func NewLayout(upstream []keys.Bound, idx []int) *Layout {
	l := &Layout{Keys: make([]keys.Bound, len(idx))}
	for i, j := range idx {
		l.Keys[i] = upstream[j]
	}
	return l
}

// FullLayout returns the layout of every upstream key.
func FullLayout(upstream []keys.Bound) *Layout {
	return &Layout{Keys: append([]keys.Bound(nil), upstream...)}
}

// Value tags in an encoded row.
const (
	tagNull  = 0
	tagInt   = 1
	tagBytes = 2
)

// Encode appends the values of r for the layout's keys to dst: per key a
// tag byte, then the integer as a uvarint (most of a flow's values take
// one to five bytes: a flow of NFCT and IP2STR takes 139 bytes instead
// of 241 at a fixed width) or a uvarint length and the bytes. It copies
// every byte value, so the row outlives the walk. No allocation once dst
// has grown.
func (l *Layout) Encode(dst []byte, r *keys.Record) []byte {
	for _, k := range l.Keys {
		if !r.Valid(k.Slot) {
			dst = append(dst, tagNull)
			continue
		}
		if k.Type.IsInteger() {
			dst = append(dst, tagInt)
			dst = binary.AppendUvarint(dst, r.Uint(k.Slot))
			continue
		}
		b := r.Bytes(k.Slot)
		dst = append(dst, tagBytes)
		dst = binary.AppendUvarint(dst, uint64(len(b)))
		dst = append(dst, b...)
	}
	return dst
}

// Value is one decoded value of a row.
type Value struct {
	Valid bool
	Type  keys.Type
	N     uint64 // integers and booleans
	B     []byte // everything else; aliases the encoded row
}

// Row is a decoded row: one Value per key of its layout.
type Row struct {
	Vals []Value
}

// errCorrupt is a row that does not decode for its layout (a bug).
type errCorrupt struct{}

func (errCorrupt) Error() string { return "sqldb: corrupt queued row" }

// Decode decodes rec, encoded by l.Encode, into row (reusing its storage).
// Byte values alias rec.
func (l *Layout) Decode(rec []byte, row *Row) error {
	row.Vals = row.Vals[:0]
	for _, k := range l.Keys {
		if len(rec) == 0 {
			return errCorrupt{}
		}
		v := Value{Type: k.Type}
		tag := rec[0]
		rec = rec[1:]
		switch tag {
		case tagNull:
		case tagInt:
			n, w := binary.Uvarint(rec)
			if w <= 0 {
				return errCorrupt{}
			}
			v.Valid, v.N = true, n
			rec = rec[w:]
		case tagBytes:
			n, w := binary.Uvarint(rec)
			if w <= 0 || uint64(len(rec)-w) < n {
				return errCorrupt{}
			}
			v.Valid, v.B = true, rec[w:w+int(n)]
			rec = rec[w+int(n):]
		default:
			return errCorrupt{}
		}
		row.Vals = append(row.Vals, v)
	}
	if len(rec) != 0 {
		return errCorrupt{}
	}
	return nil
}

// Signed returns an integer value as signed, sign-extended from its width.
func (v Value) Signed() int64 {
	switch v.Type {
	case keys.Int8:
		return int64(int8(v.N))
	case keys.Int16:
		return int64(int16(v.N))
	case keys.Int32:
		return int64(int32(v.N))
	}
	return int64(v.N)
}

// IPv4Host returns a 4-byte address as ulogd2 stores it in an integer
// column: the network-order bytes read as a little-endian (x86 host)
// integer, 10.99.0.1 → 16802570 (docs/compat.md).
func IPv4Host(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// Dialect is how one database spells the literals ulogd2's db layer
// renders.
type Dialect struct {
	// AppendString appends s as a quoted string literal.
	AppendString func(dst, s []byte) []byte
	// AppendIP6 appends a 16-byte IPADDR value; nil renders it NULL.
	AppendIP6 func(dst, b []byte) []byte
}

// AppendSQL appends the row's values rendered as SQL literals and
// separated by commas, as ulogd2's db layer renders them: invalid → NULL; integers in decimal; BOOL → '0'/'1'; a 4-byte
// IPADDR as IPv4Host; a 16-byte one by the dialect; STRING quoted by the
// dialect; RAWSTR (IP2BIN's hex) as it is when it is only letters and
// digits, else quoted; RAW → NULL (docs/compat.md).
func (row *Row) AppendSQL(dst []byte, d *Dialect) []byte {
	for i, v := range row.Vals {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = v.AppendSQL(dst, d)
	}
	return dst
}

// AppendSQL appends v as a SQL literal (see Row.AppendSQL).
func (v Value) AppendSQL(dst []byte, d *Dialect) []byte {
	if !v.Valid {
		return append(dst, "NULL"...)
	}
	switch t := v.Type; {
	case t == keys.Bool:
		if v.N != 0 {
			return append(dst, "'1'"...)
		}
		return append(dst, "'0'"...)
	case t.IsSigned():
		return strconv.AppendInt(dst, v.Signed(), 10)
	case t.IsInteger():
		return strconv.AppendUint(dst, v.N, 10)
	case t == keys.IPAddr || t == keys.IP6Addr:
		switch len(v.B) {
		case 4:
			return strconv.AppendUint(dst, uint64(IPv4Host(v.B)), 10)
		case 16:
			if d.AppendIP6 != nil {
				return d.AppendIP6(dst, v.B)
			}
		}
		return append(dst, "NULL"...)
	case t == keys.String:
		return d.AppendString(dst, v.B)
	case t == keys.RawStr:
		if isWord(v.B) {
			return append(dst, v.B...)
		}
		return d.AppendString(dst, v.B)
	}
	return append(dst, "NULL"...)
}

// AppendText appends v as the text of a query parameter (what a literal
// holds between its quotes): integers in decimal, booleans 0/1, a 4-byte
// IPADDR as IPv4Host, strings and RAWSTR as they are. It returns false
// for NULL: an invalid value, a 16-byte IPADDR or RAW (as AppendSQL).
func (v Value) AppendText(dst []byte) ([]byte, bool) {
	if !v.Valid {
		return dst, false
	}
	switch t := v.Type; {
	case t.IsSigned():
		return strconv.AppendInt(dst, v.Signed(), 10), true
	case t.IsInteger():
		return strconv.AppendUint(dst, v.N, 10), true
	case t == keys.IPAddr || t == keys.IP6Addr:
		if len(v.B) == 4 {
			return strconv.AppendUint(dst, uint64(IPv4Host(v.B)), 10), true
		}
		return dst, false
	case t == keys.String || t == keys.RawStr:
		return append(dst, v.B...), true
	}
	return dst, false
}

// isWord reports whether b is a non-empty run of ASCII letters and digits
// (IP2BIN's 0x… literal), safe to paste unquoted.
func isWord(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// AppendStdString appends s as a standard SQL string literal: quotes
// doubled, nothing else escaped (PostgreSQL with
// standard_conforming_strings, SQLite).
func AppendStdString(dst, s []byte) []byte {
	dst = append(dst, '\'')
	for _, c := range s {
		if c == '\'' {
			dst = append(dst, '\'')
		}
		dst = append(dst, c)
	}
	return append(dst, '\'')
}

// AppendBackslashString appends s as a MySQL string literal: NUL, newline,
// carriage return, backslash, quotes and Ctrl-Z escaped with a backslash
// (what mysql_real_escape_string does).
func AppendBackslashString(dst, s []byte) []byte {
	dst = append(dst, '\'')
	for _, c := range s {
		switch c {
		case 0:
			dst = append(dst, '\\', '0')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\\', '\'', '"':
			dst = append(dst, '\\', c)
		case 0x1a:
			dst = append(dst, '\\', 'Z')
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '\'')
}

// AppendHexIP6 appends a 16-byte address as IP2BIN does: 0x and 32 hex
// digits (ulogd2 2.0.9's rendering of IPv6 in the db layer).
func AppendHexIP6(dst, b []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '0', 'x')
	for _, c := range b {
		dst = append(dst, hex[c>>4], hex[c&15])
	}
	return dst
}
