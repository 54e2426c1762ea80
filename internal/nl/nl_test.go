package nl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// attr builds one attribute (header + payload + padding).
func attr(typ uint16, data ...byte) []byte { return AppendAttr(nil, typ, data) }

func TestAttrs(t *testing.T) {
	nested := AppendAttr(nil, 1|AttrNested, append(attr(5, 1, 2, 3), attr(6)...))
	buf := append(append(attr(2|AttrNetByteOrder, 0xaa), nested...), attr(3, 1, 2, 3, 4)...)
	type got struct {
		typ    uint16
		nested bool
		data   []byte
	}
	want := []got{{2, false, []byte{0xaa}}, {1, true, nested[4:]}, {3, false, []byte{1, 2, 3, 4}}}
	it := Attrs(buf)
	var all []got
	for it.Next() {
		all = append(all, got{it.Type(), it.Nested(), it.Data()})
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	if len(all) != len(want) {
		t.Fatalf("got %d attrs, want %d", len(all), len(want))
	}
	for i := range want {
		if all[i].typ != want[i].typ || all[i].nested != want[i].nested || !bytes.Equal(all[i].data, want[i].data) {
			t.Errorf("attr %d = %+v, want %+v", i, all[i], want[i])
		}
	}
	// Data's capacity is clipped: appending must not clobber the next attribute.
	it = Attrs(buf)
	it.Next()
	_ = append(it.Data(), 0xff, 0xff, 0xff, 0xff)
	if buf[5] != 0 || buf[8] != byte(len(nested)) {
		t.Error("append to Data overwrote the buffer")
	}
	// Nested walk.
	it = Attrs(nested[4:])
	n := 0
	for it.Next() {
		n++
	}
	if n != 2 || it.Err() != nil {
		t.Errorf("nested walk: %d attrs, %v", n, it.Err())
	}
}

func TestAttrsMalformed(t *testing.T) {
	le16 := func(v uint16) []byte { return binary.NativeEndian.AppendUint16(nil, v) }
	for _, tc := range []struct {
		name string
		buf  []byte
		good int // attributes returned before the error
	}{
		{"short header", []byte{4, 0}, 0},
		{"trailing bytes", append(attr(1, 1, 2, 3, 4), 0, 0), 1},
		{"len below header", append(le16(3), 0, 0), 0},
		{"len beyond buffer", append(le16(9), 1, 0, 1, 2, 3, 4), 0},
		{"second bad", append(attr(1, 1), append(le16(100), 1, 0)...), 1},
	} {
		it := Attrs(tc.buf)
		n := 0
		for it.Next() {
			n++
		}
		if n != tc.good || !errors.Is(it.Err(), ErrMalformed) {
			t.Errorf("%s: %d attrs, err %v; want %d and ErrMalformed", tc.name, n, it.Err(), tc.good)
		}
		if it.Next() {
			t.Errorf("%s: Next after error returned true", tc.name)
		}
	}
	// Unpadded last attribute: accepted.
	it := Attrs([]byte{5, 0, 1, 0, 9})
	if !it.Next() || it.Type() != 1 || !bytes.Equal(it.Data(), []byte{9}) || it.Next() || it.Err() != nil {
		t.Errorf("unpadded last attribute: err %v", it.Err())
	}
	// Empty input: no attributes, no error.
	it = Attrs(nil)
	if it.Next() || it.Err() != nil {
		t.Error("empty input")
	}
}

func TestNextMsg(t *testing.T) {
	m1 := FinishMsg(append(AppendHeader(nil, 0x100, 0x2, 7), 1, 2, 3, 4, 5), 0)
	m1 = append(m1, 0, 0, 0) // alignment
	m2 := FinishMsg(AppendHeader(nil, typeDone, 0x2, 7), 0)
	buf := append(append([]byte(nil), m1...), m2...)
	m, rest, err := NextMsg(buf)
	if err != nil || m.Type != 0x100 || m.Flags != 2 || m.Seq != 7 || !bytes.Equal(m.Payload, []byte{1, 2, 3, 4, 5}) {
		t.Fatalf("first = %+v, %v", m, err)
	}
	m, rest, err = NextMsg(rest)
	if err != nil || !m.IsDone() || !m.IsControl() || len(rest) != 0 {
		t.Fatalf("second = %+v, rest %d, %v", m, len(rest), err)
	}
	for _, bad := range [][]byte{nil, make([]byte, 15), binary.NativeEndian.AppendUint32(make([]byte, 0, 16), 15), append(binary.NativeEndian.AppendUint32(nil, 17), make([]byte, 12)...)} {
		if len(bad) == 4 {
			bad = append(bad, make([]byte, 12)...)
		}
		if _, _, err := NextMsg(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("NextMsg(% x) err = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestErrorCode(t *testing.T) {
	p := binary.NativeEndian.AppendUint32(nil, uint32(0xfffffffe)) // -2
	if e, err := ErrorCode(p); e != 2 || err != nil {
		t.Errorf("ErrorCode = %d, %v; want 2 (ENOENT)", e, err)
	}
	if e, err := ErrorCode(make([]byte, 20)); e != 0 || err != nil {
		t.Errorf("ACK = %d, %v", e, err)
	}
	if _, err := ErrorCode([]byte{1}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short: %v", err)
	}
}

func TestReaders(t *testing.T) {
	b := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	if U8(b) != 1 || BE16(b) != 0x0102 || BE32(b) != 0x01020304 || BE64(b) != 0x0102030405060708 {
		t.Error("readers")
	}
	if U8(nil) != 0 || BE16(b[:1]) != 0 || BE32(b[:3]) != 0 || BE64(b[:7]) != 0 || NE16(nil) != 0 || NE32(b[:2]) != 0 {
		t.Error("short readers must return 0")
	}
}

// seedAttrs returns a few realistic attribute streams.
func seedAttrs() [][]byte {
	b, n := BeginNest(nil, 1)
	b, n2 := BeginNest(b, 1)
	b = AppendAttr(b, 1, []byte{10, 0, 0, 1})
	b = AppendAttr(b, 2, []byte{10, 0, 0, 2})
	b = EndNest(b, n2)
	b = AppendU8(b, 3, 6)
	b = EndNest(b, n)
	b = AppendBE32(b, 12, 0xdeadbeef)
	b = AppendBE16(b, 18, 1)
	return [][]byte{b, {}, {4, 0, 0, 0}, {0xff, 0xff, 1, 0}}
}

// walk walks b recursively (every attribute is tried as a nested stream) and
// touches every byte it is given, so that the race detector and bounds checks
// see any out-of-range slice.
func walk(t *testing.T, b []byte, depth int) int {
	it := Attrs(b)
	n := 0
	for it.Next() {
		d := it.Data()
		if cap(d) > len(b) || len(d) > len(b) {
			t.Fatalf("data longer than input")
		}
		for i := range d {
			n += int(d[i] & 1)
		}
		if depth < 4 {
			n += walk(t, d, depth+1)
		}
	}
	if it.Next() {
		t.Fatal("Next true after end")
	}
	return n
}

func FuzzAttrs(f *testing.F) {
	for _, s := range seedAttrs() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		walk(t, b, 0)
		for rest := b; len(rest) > 0; {
			m, r, err := NextMsg(rest)
			if err != nil {
				break
			}
			if len(m.Payload) > len(rest) || len(r) >= len(rest) {
				t.Fatal("NextMsg did not advance within bounds")
			}
			ErrorCode(m.Payload)
			rest = r
		}
	})
}

func BenchmarkAttrs(b *testing.B) {
	buf := seedAttrs()[0]
	for range 6 {
		buf = append(buf, seedAttrs()[0]...)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		it := Attrs(buf)
		for it.Next() {
			if it.Type() == 1 {
				in := Attrs(it.Data())
				for in.Next() {
				}
			}
		}
	}
}

func TestAttrsAllocs(t *testing.T) {
	buf := seedAttrs()[0]
	if n := testing.AllocsPerRun(100, func() {
		it := Attrs(buf)
		for it.Next() {
		}
		NextMsg(buf)
	}); n != 0 {
		t.Errorf("walk allocates %v times", n)
	}
}
