// Package ip2hbin is the IP2HBIN filter: it turns the IPv4 address keys of
// packets (ip.*) and flows (orig.ip.*, reply.ip.*) into host-order
// integers, the form an SQL INT UNSIGNED column takes.
//
// The outputs are declared unsigned int 32, not IP addr as in ulogd2: an
// IP addr value here is 4 bytes in network order, which every printer
// formats as a dotted quad, while what SQL wants is the number. IPv6
// addresses have no 32-bit form and leave their outputs invalid (ulogd2
// 2.0.8 stores a pointer there; docs/compat.md P13).
package ip2hbin

import (
	"encoding/binary"
	"log/slog"

	"github.com/ulogd-go/ulogd/internal/addrfilter"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// The address keys converted, in ulogd2's order, and their outputs. Every
// valid IPv4 address is converted (all six, reply.ip.daddr included); the
// family rules are IP2STR's.
var def = addrfilter.Def{
	Addrs: []string{
		"ip.saddr", "ip.daddr",
		"orig.ip.saddr", "orig.ip.daddr",
		"reply.ip.saddr", "reply.ip.daddr",
	},
	Outs: []string{
		"ip.hsaddr", "ip.hdaddr",
		"orig.ip.hsaddr", "orig.ip.hdaddr",
		"reply.ip.hsaddr", "reply.ip.hdaddr",
	},
	Out:           keys.Uint32,
	UnknownFamily: "Unknown protocol inside packet",
	Convert: func(r *keys.Record, out keys.Slot, addr []byte) {
		if len(addr) == 4 {
			r.SetUint(out, uint64(binary.BigEndian.Uint32(addr)))
		}
	},
}

func keySpecs(*plugin.NoConfig) (in, out []keys.Spec, err error) {
	in, out = def.Keys()
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

type filter struct{ addrfilter.Filter }

func newInstance(in, out []keys.Slot, log *slog.Logger) *filter {
	return &filter{def.New(in, out, log)}
}
