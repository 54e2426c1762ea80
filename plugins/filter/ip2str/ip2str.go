// Package ip2str is the IP2STR filter: it turns the address keys of
// packets (ip.*), flows (orig.ip.*, reply.ip.*) and ARP packets (arp.*)
// into text.
package ip2str

import (
	"context"
	"log/slog"

	"github.com/ulogd-go/ulogd/internal/addrfam"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Input key positions.
const (
	inFamily = iota
	inProtocol
	inAddrs // the address inputs start here, in the order of addrNames
)

// addrNames are the address keys converted, in ulogd2's order; the output
// of each is its name + ".str".
var addrNames = []string{
	"ip.saddr", "ip.daddr",
	"orig.ip.saddr", "orig.ip.daddr",
	"reply.ip.saddr", "reply.ip.daddr",
	"arp.saddr", "arp.daddr",
}

func keySpecs(any) (in, out []keys.Spec, err error) {
	in = addrfam.InputKeys()
	for _, n := range addrNames {
		in = append(in, keys.Spec{Name: n, Type: keys.IPAddr, Flags: keys.Optional})
		out = append(out, keys.Spec{Name: n + ".str", Type: keys.String})
	}
	return in, out, nil
}

func init() {
	plugin.Register(&plugin.Descriptor{
		Name:    "IP2STR",
		Kind:    plugin.Filter,
		Summary: "convert IPv4/IPv6 address keys to text",
		Input:   plugin.DTPacket | plugin.DTFlow,
		Output:  plugin.DTPacket | plugin.DTFlow,
		Keys:    keySpecs,
		New: func(env *plugin.Env) (plugin.Instance, error) {
			return newInstance(env.In, env.Out, env.Log), nil
		},
	})
}

type filter struct {
	in, out []keys.Slot
	fam     addrfam.Check
}

func newInstance(in, out []keys.Slot, log *slog.Logger) *filter {
	return &filter{in: in, out: out, fam: addrfam.Check{
		Family: in[inFamily], Protocol: in[inProtocol], ARP: true,
		UnknownFamily: "Unknown protocol family", Log: log,
	}}
}

func (f *filter) Start(context.Context) error { return nil }
func (f *filter) Stop(context.Context) error  { return nil }

// Interp converts every valid address input. The family decides what an
// address may be: for a bridge family the ethertype tells; an unknown
// family is an error for this event, as in ulogd2.
func (f *filter) Interp(r *keys.Record) plugin.Verdict {
	if !f.fam.OK(r) {
		return plugin.Fail
	}
	for i := range addrNames {
		b := r.Bytes(f.in[inAddrs+i])
		if len(b) != 4 && len(b) != 16 {
			continue
		}
		a := r.Arena()
		n := len(a)
		a = appendIP(a, b)
		r.SetBytes(f.out[i], r.Commit(a, n))
	}
	return plugin.Continue
}
