package pktkeys

import (
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
)

func TestTable(t *testing.T) {
	extra := keys.Spec{Name: "raw", Type: keys.Raw}
	a := Table(IfIndexIn, IfIndexOut, extra)
	if len(a) != N+1 || a[N] != extra {
		t.Fatalf("Table has %d keys, last %v; want %d, then %v", len(a), a[len(a)-1], N+1, extra)
	}
	if a[IfIn] != IfIndexIn || a[IfOut] != IfIndexOut {
		t.Errorf("interface keys %v, %v", a[IfIn], a[IfOut])
	}
	if a[RawPkt].Name != "raw.pkt" || a[Family].Name != "oob.family" || a[RawMACAddrLen].Name != "raw.mac.addrlen" {
		t.Errorf("indexes do not match the names: %v %v %v", a[RawPkt], a[Family], a[RawMACAddrLen])
	}
	seen := map[string]bool{}
	for i, k := range a {
		if k.Name == "" || seen[k.Name] {
			t.Errorf("key %d: %q empty or repeated", i, k.Name)
		}
		seen[k.Name] = true
	}
	b := Table(IfNameIn, IfNameOut)
	if len(b) != N || b[IfIn] != IfNameIn || a[IfIn] != IfIndexIn {
		t.Errorf("second table %v, or it changed the first", b)
	}
	if b = append(b, extra); &b[0] == &a[0] || a[IfIn] != IfIndexIn {
		t.Error("tables share their backing array")
	}
}
