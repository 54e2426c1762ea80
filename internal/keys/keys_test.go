package keys

import (
	"testing"
)

func TestRecordValidityAndReset(t *testing.T) {
	types := make([]Type, 70) // more than one validity word
	for i := range types {
		types[i] = Uint32
	}
	types[65] = String
	r := NewRecord(types)
	if r.Valid(0) || r.Valid(NoSlot) || r.Uint(0) != 0 || r.Bytes(65) != nil {
		t.Fatal("a new record has valid slots")
	}
	r.SetUint(0, 7)
	r.SetUint(NoSlot, 9) // ignored
	r.SetString(65, "hello")
	r.SetBool(69, true)
	if !r.Valid(0) || r.Uint(0) != 7 || string(r.Bytes(65)) != "hello" || r.Uint(69) != 1 {
		t.Fatalf("values: %d %q %d", r.Uint(0), r.Bytes(65), r.Uint(69))
	}
	r.Invalidate(0)
	if r.Valid(0) || r.Uint(0) != 0 {
		t.Fatal("Invalidate left the slot readable")
	}
	r.Reset()
	for s := range Slot(70) {
		if r.Valid(s) {
			t.Fatalf("slot %d valid after Reset", s)
		}
	}
	if len(r.Arena()) != 0 {
		t.Fatal("arena not emptied")
	}
}

func TestValidWords(t *testing.T) {
	r := NewRecord(make([]Type, 130)) // three words, the last one partial
	w := r.ValidWords()
	if len(w) != 3 || w[0]|w[1]|w[2] != 0 {
		t.Fatalf("new record: %x", w)
	}
	for _, s := range []Slot{0, 5, 63, 64, 127, 129} {
		r.SetUint(s, 1)
	}
	r.SetBytes(70, nil)
	r.Invalidate(5)
	want := []uint64{1 | 1<<63, 1 | 1<<6 | 1<<63, 1 << 1}
	for i := range want {
		if w[i] != want[i] {
			t.Errorf("word %d: %#x, want %#x", i, w[i], want[i])
		}
	}
	for s := range Slot(130) {
		if bit := w[s/64]>>(s%64)&1 != 0; bit != r.Valid(s) {
			t.Errorf("slot %d: bit %v, Valid %v", s, bit, r.Valid(s))
		}
	}
	r.Reset()
	if w := r.ValidWords(); w[0]|w[1]|w[2] != 0 {
		t.Errorf("after Reset: %x", w)
	}
}

func TestArenaGrowthKeepsEarlierValues(t *testing.T) {
	r := NewRecord([]Type{String, String})
	r.SetString(0, "first")
	big := make([]byte, 10000) // forces the arena to grow
	for i := range big {
		big[i] = 'x'
	}
	a := r.Arena()
	n := len(a)
	a = append(a, big...)
	r.SetBytes(1, r.Commit(a, n))
	if string(r.Bytes(0)) != "first" || len(r.Bytes(1)) != 10000 {
		t.Fatalf("after growth: %q, %d bytes", r.Bytes(0), len(r.Bytes(1)))
	}
	// A committed value cannot be extended into the next one.
	if cap(r.Bytes(1)) != len(r.Bytes(1)) {
		t.Fatal("committed value has spare capacity")
	}
}

func TestCopyFrom(t *testing.T) {
	src := NewRecord([]Type{Uint8, String, IPAddr})
	dst := NewRecord([]Type{Uint8, String, IPAddr, Uint64})
	dst.SetUint(3, 42) // beyond the source's slots: kept
	dst.SetUint(0, 1)  // invalid in the source: cleared
	src.SetString(1, "x")
	src.SetBytes(2, []byte{10, 0, 0, 1})
	dst.CopyFrom(src)
	if dst.Valid(0) || string(dst.Bytes(1)) != "x" || len(dst.Bytes(2)) != 4 || dst.Uint(3) != 42 {
		t.Fatalf("CopyFrom: valid0=%v %q %v %d", dst.Valid(0), dst.Bytes(1), dst.Bytes(2), dst.Uint(3))
	}
}

func TestAppendValue(t *testing.T) {
	r := NewRecord([]Type{Int8, Uint64, Bool, String, IPAddr, IPAddr, Raw, Int32})
	r.SetInt(0, -3)
	r.SetUint(1, 1<<63)
	r.SetBool(2, true)
	r.SetString(3, "eth0")
	r.SetBytes(4, []byte{10, 99, 0, 1})
	r.SetBytes(5, []byte{0xfd, 0x99, 15: 1})
	r.SetBytes(6, []byte{1, 2})
	want := []string{"-3", "9223372036854775808", "1", "eth0", "10.99.0.1", "fd99::1"}
	for i, w := range want {
		got, ok := r.AppendValue(nil, Slot(i))
		if !ok || string(got) != w {
			t.Errorf("slot %d: %q %v, want %q", i, got, ok, w)
		}
	}
	if _, ok := r.AppendValue(nil, 6); ok {
		t.Error("raw data has a text form")
	}
	if _, ok := r.AppendValue(nil, 7); ok {
		t.Error("an invalid slot has a text form")
	}
}

func TestTypeNames(t *testing.T) {
	for typ, want := range map[Type]string{Uint8: "unsigned int 8", IPAddr: "IP addr", String: "string", Raw: "raw data", None: "Unknown type", RawStr: "Unknown type", Bool: "boolean"} {
		if typ.String() != want {
			t.Errorf("%#x: %q, want %q", uint16(typ), typ.String(), want)
		}
	}
}

func TestNoAllocations(t *testing.T) {
	r := NewRecord([]Type{Uint32, String, IPAddr})
	addr := []byte{10, 0, 0, 1}
	n := testing.AllocsPerRun(1000, func() {
		r.SetUint(0, 1)
		a := r.Arena()
		start := len(a)
		a = AppendIP(a, addr)
		r.SetBytes(1, r.Commit(a, start))
		r.SetBytes(2, addr)
		r.Reset()
	})
	if n != 0 {
		t.Fatalf("%v allocations per event", n)
	}
}

func TestFields(t *testing.T) {
	up := []Bound{{Spec: Spec{Name: "a", Type: Uint8}, Slot: 3}, {Spec: Spec{Name: "b.c", Type: String}, Slot: 1}}
	fs := Fields(up, "=")
	if len(fs) != 2 || string(fs[0].Prefix) != "a=" || fs[0].Slot != 3 || fs[0].Type != Uint8 ||
		string(fs[1].Prefix) != "b.c=" || fs[1].Slot != 1 || fs[1].Type != String {
		t.Fatalf("Fields = %+v", fs)
	}
}
