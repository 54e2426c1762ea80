package nfacct

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// msg frames payload as one netlink message of type typ.
func msg(typ uint16, payload []byte) []byte {
	b := make([]byte, 16, 16+len(payload)+3)
	binary.NativeEndian.PutUint32(b, uint32(16+len(payload)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// attr encodes one attribute (unpadded length, padded data).
func attr(typ uint16, data ...byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func payload(attrs ...[]byte) []byte {
	p := header()
	for _, a := range attrs {
		p = append(p, a...)
	}
	return p
}

const objType = subsysAcct << 8

// TestDecodeErrors: malformed objects are errors, never objects with
// missing fields.
func TestDecodeErrors(t *testing.T) {
	name := attr(attrName, 'a', 0)
	pk, by := attr(attrPkts, be64(1)...), attr(attrBytes, be64(2)...)
	for _, tc := range []struct {
		what string
		raw  []byte
		want error // nil: any error
	}{
		{"short nfgenmsg", msg(objType, []byte{0, 0}), ErrShort},
		{"no name", msg(objType, payload(pk, by)), ErrNoName},
		{"no bytes", msg(objType, payload(name, pk)), ErrNoCounter},
		{"no packets", msg(objType, payload(name, by)), ErrNoCounter},
		{"empty name", msg(objType, payload(attr(attrName, 0), pk, by)), nil},
		{"32-byte name", msg(objType, payload(attr(attrName, []byte("0123456789abcdef0123456789abcdef")...), pk, by)), nil},
		{"4-byte counter", msg(objType, payload(name, attr(attrPkts, 0, 0, 0, 1), by)), nil},
		{"attribute past the end", msg(objType, append(payload(name, pk, by), 0x40, 0, 1, 0)), nil},
		{"wrong message type", msg(subsysAcct<<8|msgDel, payload(name, pk, by)), ErrType},
		{"header length past the end", msg(objType, payload(name, pk, by))[:20], nil},
		{"kernel error", msg(2, []byte{0xf0, 0xff, 0xff, 0xff}), nil},
		{"truncated error", msg(2, []byte{1}), nil},
	} {
		err := DecodeMessages(tc.raw, func(o Object) { t.Errorf("%s: decoded %+v", tc.what, o) })
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: error %v, want %v", tc.what, err, tc.want)
		}
	}
	// Bytes after the last message are an error (the objects before them
	// have been delivered).
	n := 0
	if err := DecodeMessages(append(msg(objType, payload(name, pk, by)), 1, 2, 3), func(Object) { n++ }); err == nil || n != 1 {
		t.Errorf("trailing bytes: %d objects, error %v; want 1 and an error", n, err)
	}
	// Control messages are skipped, NLMSG_DONE ends the answer, unknown
	// attributes are ignored, a NUL-less name is accepted.
	var got []Object
	raw := msg(1 /* NLMSG_NOOP */, nil)
	raw = append(raw, msg(objType, payload(attr(attrName, 'x'), attr(99, 1, 2), pk, by))...)
	raw = append(raw, msg(3 /* NLMSG_DONE */, []byte{0, 0, 0, 0})...)
	raw = append(raw, 0xde, 0xad) // after DONE: not read
	if err := DecodeMessages(raw, func(o Object) { got = append(got, o) }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Object{{Name: "x", Pkts: 1, Bytes: 2}}, got); diff != "" {
		t.Error(diff)
	}
}

// encodeAnswer frames objects as a dump answer, as the kernel would.
func encodeAnswer(objs []Object) []byte {
	var raw []byte
	for _, o := range objs {
		p := payload(attr(attrName, append([]byte(o.Name), 0)...),
			attr(attrPkts, be64(o.Pkts)...), attr(attrBytes, be64(o.Bytes)...),
			attr(attrUse, binary.BigEndian.AppendUint32(nil, o.Use)...),
			attr(attrFlags, binary.BigEndian.AppendUint32(nil, o.Flags)...),
			attr(attrQuota, be64(o.Quota)...))
		raw = append(raw, msg(objType, p)...)
	}
	return raw
}

// FuzzDecodeMessages feeds the decoder the captured kernel answers and
// mutations of them. Whatever it accepts must survive a round trip through
// the encoder: what the decoder returns is what the message said.
func FuzzDecodeMessages(f *testing.F) {
	names, _ := filepath.Glob("testdata/*.bin")
	if len(names) == 0 {
		f.Fatal("no captures in testdata/")
	}
	for _, n := range names {
		raw, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)/2])
		if len(raw) > 40 {
			m := append([]byte(nil), raw...)
			m[36] ^= 0xff // inside the first object's attributes
			f.Add(m)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var objs []Object
		err := DecodeMessages(raw, func(o Object) { objs = append(objs, o) })
		if err != nil {
			return
		}
		for _, o := range objs {
			if o.Name == "" || len(o.Name) > NameMax {
				t.Fatalf("accepted object with name %q", o.Name)
			}
		}
		var again []Object
		if err := DecodeMessages(encodeAnswer(objs), func(o Object) { again = append(again, o) }); err != nil {
			t.Fatalf("re-encoded answer: %v", err)
		}
		if diff := cmp.Diff(objs, again); diff != "" {
			t.Fatalf("round trip (-decoded +again):\n%s", diff)
		}
	})
}
