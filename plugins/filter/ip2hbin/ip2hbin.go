// Package ip2hbin is the IP2HBIN filter: it turns the IPv4 address keys of
// packets (ip.*) and flows (orig.ip.*, reply.ip.*) into host-order
// integers, the form an SQL INT UNSIGNED column takes.
//
// The outputs are declared unsigned int 32, not IP addr as in ulogd2: an
// IP addr value here is 4 bytes in network order, which every printer
// formats as a dotted quad, while what SQL wants is the number. IPv6
// addresses have no 32-bit form and leave their outputs invalid (ulogd2
// 2.0.8 stores a pointer there, Q12).
package ip2hbin

import (
	"encoding/binary"
	"log/slog"

	"github.com/ulogd-go/ulogd/internal/addrfam"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// addrNames are the address keys converted, in ulogd2's order, and
// outNames their outputs.
var (
	addrNames = []string{
		"ip.saddr", "ip.daddr",
		"orig.ip.saddr", "orig.ip.daddr",
		"reply.ip.saddr", "reply.ip.daddr",
	}
	outNames = []string{
		"ip.hsaddr", "ip.hdaddr",
		"orig.ip.hsaddr", "orig.ip.hdaddr",
		"reply.ip.hsaddr", "reply.ip.hdaddr",
	}
)

func keySpecs(*plugin.NoConfig) (in, out []keys.Spec, err error) {
	in, out = addrfam.AddrKeys(addrNames, outNames, keys.Uint32)
	return in, out, nil
}

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the IP2HBIN plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[plugin.NoConfig]{
		Name:    "IP2HBIN",
		Kind:    plugin.Filter,
		Summary: "convert IPv4 address keys to host-order integers for SQL INT UNSIGNED",
		Input:   plugin.DTPacket | plugin.DTFlow,
		Output:  plugin.DTPacket | plugin.DTFlow,
		Keys:    keySpecs,
		New: func(env *plugin.Env, _ *plugin.NoConfig) (plugin.Instance, error) {
			return newInstance(env.In, env.Out, env.Log), nil
		},
	})
}

type filter struct{ addrfam.Filter }

func newInstance(in, out []keys.Slot, log *slog.Logger) *filter {
	return &filter{addrfam.NewFilter(in, out, false, "Unknown protocol inside packet", log)}
}

// Interp converts every valid IPv4 address input (all six, reply.ip.daddr
// included). The family rules are IP2STR's.
func (f *filter) Interp(r *keys.Record) plugin.Verdict {
	if !f.Fam.OK(r) {
		return plugin.Fail
	}
	for i := range addrNames {
		if b := f.Addr(r, i); len(b) == 4 {
			r.SetUint(f.Out[i], uint64(binary.BigEndian.Uint32(b)))
		}
	}
	return plugin.Continue
}
