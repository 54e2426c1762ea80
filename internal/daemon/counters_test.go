package daemon

import (
	"context"
	"fmt"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
)

type droppingSink struct{ n uint64 }

func (droppingSink) Start(context.Context) error        { return nil }
func (droppingSink) Stop(context.Context) error         { return nil }
func (droppingSink) Interp(*keys.Record) plugin.Verdict { return plugin.Continue }
func (d droppingSink) Dropped() uint64                  { return d.n }
func (d droppingSink) Written() uint64                  { return 3 }

func TestCounterAttrs(t *testing.T) {
	src := &stack.Node{ID: "ct1", Desc: &plugin.Descriptor{Name: "NFCT", Kind: plugin.Source}}
	src.Stats().Received.Add(5)
	src.Stats().Lost.Add(2)
	sink := &stack.Node{ID: "json1", Desc: &plugin.Descriptor{Name: "JSON", Kind: plugin.Sink}, Inst: droppingSink{n: 7}}
	sink.Stats().Received.Add(5)
	plain := &stack.Node{ID: "print1", Desc: &plugin.Descriptor{Name: "PRINTFLOW", Kind: plugin.Filter}}
	for _, tc := range []struct {
		in   *stack.Node
		want string
	}{
		{src, "[instance ct1 plugin NFCT events 5 lost 2]"},
		{sink, "[instance json1 plugin JSON received 5 stopped 0 failed 0 written 3 dropped 7]"},
		{plain, "[instance print1 plugin PRINTFLOW received 0 stopped 0 failed 0]"},
	} {
		if got := fmt.Sprint(counterAttrs(tc.in)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.in.ID, got, tc.want)
		}
	}
}
