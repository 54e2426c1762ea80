// Package ip2str is the IP2STR filter: it turns the address keys of
// packets (ip.*), flows (orig.ip.*, reply.ip.*) and ARP packets (arp.*)
// into text.
package ip2str

import (
	"log/slog"

	"github.com/ulogd-go/ulogd/internal/addrfilter"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// addrNames are the address keys converted, in ulogd2's order; the output
// of each is its name + ".str". The family decides what an address may
// be: for a bridge family the ethertype tells; an unknown family is an
// error for this event, as in ulogd2.
var addrNames = []string{
	"ip.saddr", "ip.daddr",
	"orig.ip.saddr", "orig.ip.daddr",
	"reply.ip.saddr", "reply.ip.daddr",
	"arp.saddr", "arp.daddr",
}

var def = addrfilter.Def{
	Addrs:         addrNames,
	Outs:          addrfilter.Suffixed(addrNames, ".str"),
	Out:           keys.String,
	ARP:           true,
	UnknownFamily: "Unknown protocol family",
	Convert: func(r *keys.Record, out keys.Slot, addr []byte) {
		addrfilter.SetText(r, out, addr, appendIP)
	},
}

func keySpecs(*plugin.NoConfig) (in, out []keys.Spec, err error) {
	in, out = def.Keys()
	return in, out, nil
}

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the IP2STR plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[plugin.NoConfig]{
		Name:    "IP2STR",
		Kind:    plugin.Filter,
		Summary: "convert IPv4/IPv6 address keys to text",
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
