package plugin

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type nop struct{}

func (nop) Start(context.Context) error { return nil }
func (nop) Stop(context.Context) error  { return nil }

func desc(name string) *Descriptor {
	return &Descriptor{Name: name, Kind: Filter, New: func(*Env) (Instance, error) { return nop{}, nil }}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	for _, n := range []string{"LOGEMU", "IP2STR", "IP2BIN", "NFCT"} {
		r.Register(desc(n))
	}
	if _, ok := r.Lookup("logemu"); ok {
		t.Error("lookup is case-insensitive; ulogd2's is not")
	}
	if diff := cmp.Diff([]string{"IP2BIN", "IP2STR", "LOGEMU", "NFCT"}, r.Names()); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]string{"IP2STR"}, r.Suggest("IP2SRT")); diff != "" {
		t.Errorf("Suggest (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"LOGEMU"}, r.Suggest("logemu")); diff != "" {
		t.Errorf("Suggest case (-want +got):\n%s", diff)
	}
	defer func() {
		if recover() == nil {
			t.Error("duplicate registration did not panic")
		}
	}()
	r.Register(desc("NFCT"))
}

func TestNameFromSO(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/lib/x86_64-linux-gnu/ulogd/ulogd_inpflow_NFCT.so": "NFCT",
		"ulogd_raw2packet_BASE.so":                              "BASE",
		"ulogd_output_LOGEMU.so":                                "LOGEMU",
	} {
		got, err := NameFromSO(in)
		if err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"NFCT", "libfoo.so", "ulogd_NFCT.so", "ulogd_output_.so"} {
		if _, err := NameFromSO(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestUlogd2Plugins: the list has no duplicate, every name maps back from
// its file name, and Ulogd2 finds exactly its entries.
func TestUlogd2Plugins(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Ulogd2Plugins() {
		if seen[p.Name] {
			t.Errorf("%s listed twice", p.Name)
		}
		seen[p.Name] = true
		if n, err := NameFromSO(p.File); err != nil || n != p.Name {
			t.Errorf("%s: NameFromSO(%q) = %q, %v", p.Name, p.File, n, err)
		}
		if got, ok := Ulogd2(p.Name); !ok || got != p {
			t.Errorf("Ulogd2(%q) = %v, %v", p.Name, got, ok)
		}
	}
	if len(seen) != 29 {
		t.Errorf("%d ulogd2 plugins, want 29 (28 in 2.0.9, plus ULOG)", len(seen))
	}
	if _, ok := Ulogd2("nfct"); ok {
		t.Error("Ulogd2 is case-sensitive, as stack= names are")
	}
	Ulogd2Plugins()[0].Name = "changed"
	if Ulogd2Plugins()[0].Name != "NFCT" {
		t.Error("Ulogd2Plugins shares its slice between calls")
	}
}
