// Package ip2bin is the IP2BIN filter: it turns the address keys of packets
// (ip.*) and flows (orig.ip.*, reply.ip.*) into "0x" and 32 hex digits,
// the text form a MySQL BINARY(16) column takes unquoted.
package ip2bin

import (
	"log/slog"

	"github.com/ulogd-go/ulogd/internal/addrfilter"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// addrNames are the address keys converted, in ulogd2's order; the output
// of each is its name + ".bin". Every valid one is converted (all six,
// reply.ip.daddr included); the family rules are IP2STR's.
var addrNames = []string{
	"ip.saddr", "ip.daddr",
	"orig.ip.saddr", "orig.ip.daddr",
	"reply.ip.saddr", "reply.ip.daddr",
}

var def = addrfilter.Def{
	Addrs:         addrNames,
	Outs:          addrfilter.Suffixed(addrNames, ".bin"),
	Out:           keys.RawStr,
	UnknownFamily: "Unknown protocol family",
	Convert: func(r *keys.Record, out keys.Slot, addr []byte) {
		addrfilter.SetText(r, out, addr, appendBin)
	},
}

func keySpecs(*plugin.NoConfig) (in, out []keys.Spec, err error) {
	in, out = def.Keys()
	return in, out, nil
}

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the IP2BIN plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[plugin.NoConfig]{
		Name:    "IP2BIN",
		Kind:    plugin.Filter,
		Summary: "convert IPv4/IPv6 address keys to 0x-prefixed hex (IPv4 mapped to IPv6) for SQL BINARY(16)",
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

const hexDigits = "0123456789abcdef"

// v4Prefix is ::ffff:0:0/96, the prefix of IPv4-mapped IPv6 addresses.
var v4Prefix = [12]byte{10: 0xff, 11: 0xff}

// appendBin appends "0x" and the 32 hex digits of an address, an IPv4
// address mapped to IPv6.
func appendBin(dst, b []byte) []byte {
	dst = append(dst, '0', 'x')
	if len(b) == 4 {
		dst = appendHex(dst, v4Prefix[:])
	}
	return appendHex(dst, b)
}

func appendHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}
