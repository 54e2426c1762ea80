// Package addrfilter is the shared base of the address filters, the
// filters that convert address keys (IP2STR, IP2BIN, IP2HBIN): the keys
// they declare, the family check ulogd2 makes before converting anything,
// and the loop that converts every valid address into its output. A
// filter package supplies a Def (its keys, its messages and its
// conversion) and nothing else.
package addrfilter

import (
	"log/slog"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Def describes one address filter.
type Def struct {
	// Addrs are the address keys converted, in the filter's declaration
	// order; Outs the output of each, of type Out.
	Addrs, Outs []string
	Out         keys.Type
	// ARP accepts the ARP family (IP2STR converts arp.* addresses).
	ARP bool
	// UnknownFamily is the message for a family the filter does not
	// handle.
	UnknownFamily string
	// Convert sets out from addr, a valid address input (4 or 16 bytes).
	Convert func(r *keys.Record, out keys.Slot, addr []byte)
}

// The input positions of an address filter: the keys of InputKeys, then
// the addresses it converts.
const (
	InFamily = iota
	InProtocol
	InAddrs
)

// Keys returns the filter's keys: InputKeys, then each address as an
// optional input; one output per address.
func (d *Def) Keys() (in, out []keys.Spec) {
	in = InputKeys()
	for i, n := range d.Addrs {
		in = append(in, keys.Spec{Name: n, Type: keys.IPAddr, Flags: keys.Optional})
		out = append(out, keys.Spec{Name: d.Outs[i], Type: d.Out})
	}
	return in, out
}

// New returns the Filter of an instance bound to in and out (in Keys'
// order).
func (d *Def) New(in, out []keys.Slot, log *slog.Logger) Filter {
	return Filter{In: in, Out: out, convert: d.Convert, Fam: Check{
		Family: in[InFamily], Protocol: in[InProtocol], ARP: d.ARP,
		UnknownFamily: d.UnknownFamily, Log: log,
	}}
}

// Suffixed returns each of names with suffix appended.
func Suffixed(names []string, suffix string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + suffix
	}
	return out
}

// SetText is a Convert for the filters whose outputs are text: the output
// is what appendAddr appends for the address, written into r's arena.
func SetText(r *keys.Record, out keys.Slot, addr []byte, appendAddr func(dst, addr []byte) []byte) {
	a := r.Arena()
	n := len(a)
	r.SetBytes(out, r.Commit(appendAddr(a, addr), n))
}

// Filter is a running address filter: its bound slots (inputs in Keys'
// order) and its family check.
type Filter struct {
	plugin.Stateless
	In, Out []keys.Slot
	Fam     Check
	convert func(r *keys.Record, out keys.Slot, addr []byte)
}

// Interp converts every valid address input of an event whose family
// passes the check; an event that does not pass fails, as in ulogd2.
func (f *Filter) Interp(r *keys.Record) plugin.Verdict {
	if !f.Fam.OK(r) {
		return plugin.Fail
	}
	for i, out := range f.Out {
		if b := r.Bytes(f.In[InAddrs+i]); len(b) == 4 || len(b) == 16 {
			f.convert(r, out, b)
		}
	}
	return plugin.Continue
}
