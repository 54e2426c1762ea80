package mark

import (
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

var provides = []keys.Spec{
	{Name: "ct.mark", Type: keys.Uint32},
	{Name: "oob.mark", Type: keys.Uint32},
}

func TestMARK(t *testing.T) {
	tests := []struct {
		name    string
		conf    string // the [m] section
		in      map[string]any
		reached bool
	}{
		{"defaults pass mark 0", "", map[string]any{"ct.mark": 0}, true},
		{"defaults stop mark 5", "", map[string]any{"ct.mark": 5}, false},
		{"mark=5 passes 5", "mark=5\n", map[string]any{"oob.mark": 5}, true},
		{"mark=5 stops 4", "mark=5\n", map[string]any{"oob.mark": 4}, false},
		{"neither valid passes", "mark=5\n", map[string]any{}, true},
		{"ct.mark wins over oob.mark", "mark=5\n", map[string]any{"ct.mark": 4, "oob.mark": 5}, false},
		{"ct.mark wins, passing", "mark=5\n", map[string]any{"ct.mark": 5, "oob.mark": 4}, true},
		{"mask selects bits", "mark=1\nmask=0xff\n", map[string]any{"ct.mark": 0xab01}, true},
		{"mask selects bits, other low byte", "mark=1\nmask=0xff\n", map[string]any{"ct.mark": 0xab02}, false},
		{"mask=-1 is all bits", "mark=0xffffffff\nmask=-1\n", map[string]any{"oob.mark": 0xffffffff}, true},
		{"mask=0xffffffff is all bits", "mark=0x80000000\nmask=0xffffffff\n", map[string]any{"oob.mark": 0x80000001}, false},
		{"high bit mark", "mark=0x80000000\n", map[string]any{"oob.mark": 0x80000000}, true},
		{"mark outside mask never matches", "mark=0x100\nmask=0xff\n", map[string]any{"oob.mark": 0x100}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := plugintest.New(t, "m:MARK", "[m]\n"+tt.conf, provides)
			if reached, _ := h.Event(tt.in); reached != tt.reached {
				t.Errorf("reached = %v, want %v", reached, tt.reached)
			}
		})
	}
}

// TestMARKOnlyOneInput checks that a stack providing only oob.mark builds
// (both inputs are optional).
func TestMARKOnlyOneInput(t *testing.T) {
	h := plugintest.New(t, "m:MARK", "[m]\nmark=7\n", []keys.Spec{{Name: "oob.mark", Type: keys.Uint32}})
	if reached, _ := h.Event(map[string]any{"oob.mark": 7}); !reached {
		t.Error("mark 7 did not pass mark=7")
	}
	if reached, _ := h.Event(map[string]any{"oob.mark": 6}); reached {
		t.Error("mark 6 passed mark=7")
	}
}

func newFilter() (*filter, *keys.Record) {
	f := &filter{ct: 0, oob: 1, mark: 5, mask: 0xffffffff}
	return f, keys.NewRecord([]keys.Type{keys.Uint32, keys.Uint32})
}

func TestMARKAllocs(t *testing.T) {
	f, r := newFilter()
	n := testing.AllocsPerRun(1000, func() {
		r.SetUint(0, 5)
		if f.Interp(r) != plugin.Continue {
			t.Fatal("mark 5 stopped")
		}
		r.Reset()
	})
	if n != 0 {
		t.Errorf("%v allocations per event, want 0", n)
	}
}

func BenchmarkMARK(b *testing.B) {
	f, r := newFilter()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r.SetUint(1, uint64(i&7))
		f.Interp(r)
		r.Reset()
	}
}
