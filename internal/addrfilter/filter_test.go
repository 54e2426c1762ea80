package addrfilter

import (
	"log/slog"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

func TestFilter(t *testing.T) {
	var converted []int
	d := Def{
		Addrs: []string{"a", "b", "c"}, Outs: []string{"a.x", "b.x", "c.x"}, Out: keys.Uint8,
		UnknownFamily: "unknown",
		Convert: func(r *keys.Record, out keys.Slot, addr []byte) {
			converted = append(converted, len(addr))
			r.SetUint(out, uint64(len(addr)))
		},
	}
	in, out := d.Keys()
	if len(in) != 5 || in[InAddrs+1] != (keys.Spec{Name: "b", Type: keys.IPAddr, Flags: keys.Optional}) ||
		len(out) != 3 || out[2] != (keys.Spec{Name: "c.x", Type: keys.Uint8}) {
		t.Fatalf("Keys = %v, %v", in, out)
	}
	types := []keys.Type{keys.Uint8, keys.Uint16, keys.IPAddr, keys.IPAddr, keys.IPAddr, keys.Uint8, keys.Uint8, keys.Uint8}
	r := keys.NewRecord(types)
	f := d.New([]keys.Slot{0, 1, 2, 3, 4}, []keys.Slot{5, 6, 7}, slog.New(slog.DiscardHandler))

	r.SetUint(0, 10) // NFPROTO_IPV6
	r.SetBytes(2, make([]byte, 16))
	r.SetBytes(3, make([]byte, 5)) // not an address: left alone
	r.SetBytes(4, make([]byte, 4))
	if v := f.Interp(r); v != plugin.Continue {
		t.Fatalf("Interp = %v", v)
	}
	if len(converted) != 2 || converted[0] != 16 || converted[1] != 4 || r.Valid(6) || r.Uint(7) != 4 {
		t.Errorf("converted %v, outputs valid %v %v %v", converted, r.Valid(5), r.Valid(6), r.Valid(7))
	}

	r.Reset()
	converted = nil
	r.SetUint(0, 4) // not a family the filter handles
	r.SetBytes(2, make([]byte, 4))
	if v := f.Interp(r); v != plugin.Fail || converted != nil {
		t.Errorf("unknown family: Interp = %v, converted %v", v, converted)
	}
}
