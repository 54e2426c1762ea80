package json

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/ulogd-go/ulogd/internal/keys"
)

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
