// Package addrfam is the address-family check of the filters that convert
// address keys (IP2STR, IP2BIN, IP2HBIN), as ulogd2 does it: the family
// (oob.family) says whether the addresses are IP addresses, and for a
// bridge family the ethertype (oob.protocol) says it. An event of any
// other family fails, and the first such problem is logged once per
// instance.
package addrfam

import (
	"context"
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/notice"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// InputKeys returns the two input keys a Check reads, in the order a
// filter declares them first: oob.family, oob.protocol.
func InputKeys() []keys.Spec {
	return []keys.Spec{
		{Name: "oob.family", Type: keys.Uint8},
		{Name: "oob.protocol", Type: keys.Uint16},
	}
}

// Check is one filter instance's family check.
type Check struct {
	// Family and Protocol are the slots of oob.family and oob.protocol.
	Family, Protocol keys.Slot
	// ARP accepts the ARP family (IP2STR converts arp.* addresses).
	ARP bool
	// UnknownFamily is the filter's message for a family it does not
	// handle.
	UnknownFamily string
	// Log receives the notice.
	Log *slog.Logger

	noted bool
}

// OK reports whether the addresses of r may be converted. When not, the
// event is to fail (the engine counts it); the first problem of the
// instance is logged as a notice.
func (c *Check) OK(r *keys.Record) bool {
	switch r.Uint(c.Family) {
	case unix.NFPROTO_IPV4, unix.NFPROTO_IPV6:
	case unix.NFPROTO_ARP:
		if !c.ARP {
			c.notice(c.UnknownFamily)
			return false
		}
	case unix.NFPROTO_BRIDGE:
		if !r.Valid(c.Protocol) {
			c.notice("No protocol inside AF_BRIDGE packet")
			return false
		}
		switch r.Uint(c.Protocol) {
		case unix.ETH_P_IP, unix.ETH_P_ARP, unix.ETH_P_IPV6:
		default:
			c.notice("Unknown protocol inside AF_BRIDGE packet")
			return false
		}
	default:
		c.notice(c.UnknownFamily)
		return false
	}
	return true
}

// notice logs msg unless a problem was logged already.
func (c *Check) notice(msg string) {
	if !c.noted {
		c.noted = true
		c.Log.Log(context.Background(), notice.Level, msg)
	}
}

// The input positions of an address filter: the keys of InputKeys, then
// the addresses it converts.
const (
	InFamily = iota
	InProtocol
	InAddrs
)

// AddrKeys returns the keys of a filter converting the address keys
// names: InputKeys, then each name as an optional address; and one output
// per name, outNames[i], of type t.
func AddrKeys(names, outNames []string, t keys.Type) (in, out []keys.Spec) {
	in = InputKeys()
	for i, n := range names {
		in = append(in, keys.Spec{Name: n, Type: keys.IPAddr, Flags: keys.Optional})
		out = append(out, keys.Spec{Name: outNames[i], Type: t})
	}
	return in, out
}

// Suffixed returns each of names with suffix appended.
func Suffixed(names []string, suffix string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + suffix
	}
	return out
}

// Filter is what the address filters share: their bound slots (inputs in
// AddrKeys' order) and their family check.
type Filter struct {
	plugin.Stateless
	In, Out []keys.Slot
	Fam     Check
}

// NewFilter returns the Filter of an instance bound to in and out; arp
// and unknownFamily are Check's ARP and UnknownFamily.
func NewFilter(in, out []keys.Slot, arp bool, unknownFamily string, log *slog.Logger) Filter {
	return Filter{In: in, Out: out, Fam: Check{
		Family: in[InFamily], Protocol: in[InProtocol], ARP: arp,
		UnknownFamily: unknownFamily, Log: log,
	}}
}

// Addr returns the i-th address input of r (nil when invalid).
func (f *Filter) Addr(r *keys.Record, i int) []byte { return r.Bytes(f.In[InAddrs+i]) }
