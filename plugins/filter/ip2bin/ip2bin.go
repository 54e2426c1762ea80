// Package ip2bin is the IP2BIN filter: it turns the address keys of packets
// (ip.*) and flows (orig.ip.*, reply.ip.*) into "0x" and 32 hex digits,
// the text form a MySQL BINARY(16) column takes unquoted.
package ip2bin

import (
	"log/slog"

	"github.com/ulogd-go/ulogd/internal/addrfam"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// addrNames are the address keys converted, in ulogd2's order; the output
// of each is its name + ".bin".
var addrNames = []string{
	"ip.saddr", "ip.daddr",
	"orig.ip.saddr", "orig.ip.daddr",
	"reply.ip.saddr", "reply.ip.daddr",
}

var outNames = addrfam.Suffixed(addrNames, ".bin")

func keySpecs(*plugin.NoConfig) (in, out []keys.Spec, err error) {
	in, out = addrfam.AddrKeys(addrNames, outNames, keys.RawStr)
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

type filter struct{ addrfam.Filter }

func newInstance(in, out []keys.Slot, log *slog.Logger) *filter {
	return &filter{addrfam.NewFilter(in, out, false, "Unknown protocol family", log)}
}

const hexDigits = "0123456789abcdef"

// v4Prefix is ::ffff:0:0/96, the prefix of IPv4-mapped IPv6 addresses.
var v4Prefix = [12]byte{10: 0xff, 11: 0xff}

// Interp converts every valid address input (all six, reply.ip.daddr
// included). The family rules are IP2STR's.
func (f *filter) Interp(r *keys.Record) plugin.Verdict {
	if !f.Fam.OK(r) {
		return plugin.Fail
	}
	for i := range addrNames {
		b := f.Addr(r, i)
		if len(b) != 4 && len(b) != 16 {
			continue
		}
		a := r.Arena()
		n := len(a)
		a = append(a, '0', 'x')
		if len(b) == 4 {
			a = appendHex(a, v4Prefix[:])
		}
		a = appendHex(a, b)
		r.SetBytes(f.Out[i], r.Commit(a, n))
	}
	return plugin.Continue
}

func appendHex(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}
