package ip2str

import (
	"encoding/binary"
	"math/bits"
)

// The text forms are netip.Addr's, as keys.AppendIP gives them to the
// other printers (RFC 5952 for IPv6, with the v4-mapped form kept:
// "::ffff:10.0.0.1", as inet_ntop prints it). They are written here a
// word at a time from tables, straight into the spare capacity of the
// destination: about twice as fast as netip.Addr.AppendTo, which appends
// byte by byte.

// decimal holds the text of each octet: its up to three digits in bytes
// 0–2 (little endian: the first digit in the low byte), its length in
// byte 3.
var decimal = func() (t [256]uint32) {
	for i := range t {
		switch {
		case i >= 100:
			t[i] = 3<<24 | uint32('0'+i%10)<<16 | uint32('0'+i/10%10)<<8 | uint32('0'+i/100)
		case i >= 10:
			t[i] = 2<<24 | uint32('0'+i%10)<<8 | uint32('0'+i/10)
		default:
			t[i] = 1<<24 | uint32('0'+i)
		}
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// hex holds the two hex digits of each byte, the first in the low byte.
var hex = func() (t [256]uint16) {
	for i := range t {
		t[i] = uint16(hexDigits[i&0xf])<<8 | uint16(hexDigits[i>>4])
	}
	return t
}()

// appendIP appends the text form of an address held as 4 (IPv4) or 16
// (IPv6) bytes in network order; other lengths append nothing. Like
// append it may overwrite dst's spare capacity, here a little beyond the
// text it adds. It does not allocate when dst has 68 bytes to spare.
func appendIP(dst, b []byte) []byte {
	switch len(b) {
	case 4:
		return append4(dst, [4]byte(b))
	case 16:
		return append6(dst, [16]byte(b))
	}
	return dst
}

// spare returns dst with at least n bytes of spare capacity.
func spare(dst []byte, n int) []byte {
	if cap(dst)-len(dst) < n {
		dst = append(dst, make([]byte, n)...)[:len(dst)]
	}
	return dst
}

// append4 appends a dotted quad. Each octet is stored as one 4-byte word
// (its digits and a byte the next store overwrites), then the end moves by
// its length. The end stays below 16, so masking it with 15 changes
// nothing and spares the bounds checks.
func append4(dst []byte, a [4]byte) []byte {
	dst = spare(dst, 20)
	n := len(dst)
	buf := (*[20]byte)(dst[n : n+20])
	k := 0
	for i, o := range a {
		if i > 0 {
			buf[k&15] = '.'
			k++
		}
		d := decimal[o]
		binary.LittleEndian.PutUint32(buf[k&15:], d)
		k += int(d >> 24)
	}
	return dst[:n+k]
}

// append6 appends an IPv6 address: lowercase hex groups without leading
// zeros, the first longest run of two or more zero groups as "::", and
// the v4-mapped form for ::ffff:0:0/96. Each group is stored as one 4-byte
// word, shifted to drop its leading zeros; the end stays below 40 (<64).
func append6(dst []byte, a [16]byte) []byte {
	var g [8]uint16
	for i := range g {
		g[i] = binary.BigEndian.Uint16(a[2*i:])
	}
	if g[0]|g[1]|g[2]|g[3]|g[4] == 0 && g[5] == 0xffff {
		return append4(append(dst, "::ffff:"...), [4]byte(a[12:]))
	}
	// zs, ze: the first longest run of zero groups, of at least two.
	zs, ze := 8, 8
	for i := 0; i < 8; i++ {
		if g[i] != 0 {
			continue
		}
		j := i + 1
		for j < 8 && g[j] == 0 {
			j++
		}
		if j-i >= 2 && j-i > ze-zs {
			zs, ze = i, j
		}
		i = j
	}
	dst = spare(dst, 68)
	n := len(dst)
	buf := (*[68]byte)(dst[n : n+68])
	k := 0
	for i := 0; i < 8; i++ {
		if i == zs {
			buf[k&63], buf[(k+1)&63] = ':', ':'
			k += 2
			i = ze - 1
			continue
		}
		if i > 0 && i != ze {
			buf[k&63] = ':'
			k++
		}
		x := g[i]
		w := uint32(hex[x>>8]) | uint32(hex[x&0xff])<<16
		l := (bits.Len16(x|1) + 3) / 4 // digits without leading zeros
		binary.LittleEndian.PutUint32(buf[k&63:], w>>(8*(4-l)))
		k += l
	}
	return dst[:n+k]
}
