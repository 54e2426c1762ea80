// Package pktkeys is the packet key table of the sources that hand out
// whole packets the NFLOG way (NFLOG and UNIXSOCK): the keys ulogd2's
// NFLOG input declares first, in its --info order. UNIXSOCK declares the
// same keys (most never set) so that NFLOG stacks run on it unchanged;
// only the two interface keys differ, NFLOG giving indexes and UNIXSOCK
// names. Each source appends its own keys after these.
package pktkeys

import "github.com/ulogd-go/ulogd/internal/keys"

// Indexes of the shared keys, in declaration order. A source's own keys
// start at N.
const (
	RawMAC = iota
	RawPkt
	RawPktLen
	RawPktCount
	Prefix
	TimeSec
	TimeUsec
	Mark
	IfIn  // the input interface: oob.ifindex_in (NFLOG) or oob.in (UNIXSOCK)
	IfOut // the output interface: oob.ifindex_out or oob.out
	Hook
	RawMACLen
	SeqLocal
	SeqGlobal
	Family
	Protocol
	UID
	GID
	Label
	RawType
	RawMACSaddr
	RawMACAddrLen
	N
)

// Interface keys: NFLOG's indexes, UNIXSOCK's names.
var (
	IfIndexIn  = keys.Spec{Name: "oob.ifindex_in", Type: keys.Uint32}
	IfIndexOut = keys.Spec{Name: "oob.ifindex_out", Type: keys.Uint32}
	IfNameIn   = keys.Spec{Name: "oob.in", Type: keys.String}
	IfNameOut  = keys.Spec{Name: "oob.out", Type: keys.String}
)

// Table returns a new slice holding the shared keys, with in and out as
// the interface keys (IfIn, IfOut), followed by more: a source's own keys.
func Table(in, out keys.Spec, more ...keys.Spec) []keys.Spec {
	t := [N]keys.Spec{
		RawMAC:        {Name: "raw.mac", Type: keys.Raw},
		RawPkt:        {Name: "raw.pkt", Type: keys.Raw},
		RawPktLen:     {Name: "raw.pktlen", Type: keys.Uint32},
		RawPktCount:   {Name: "raw.pktcount", Type: keys.Uint32},
		Prefix:        {Name: "oob.prefix", Type: keys.String},
		TimeSec:       {Name: "oob.time.sec", Type: keys.Uint32},
		TimeUsec:      {Name: "oob.time.usec", Type: keys.Uint32},
		Mark:          {Name: "oob.mark", Type: keys.Uint32},
		IfIn:          in,
		IfOut:         out,
		Hook:          {Name: "oob.hook", Type: keys.Uint8},
		RawMACLen:     {Name: "raw.mac_len", Type: keys.Uint16},
		SeqLocal:      {Name: "oob.seq.local", Type: keys.Uint32},
		SeqGlobal:     {Name: "oob.seq.global", Type: keys.Uint32},
		Family:        {Name: "oob.family", Type: keys.Uint8},
		Protocol:      {Name: "oob.protocol", Type: keys.Uint16},
		UID:           {Name: "oob.uid", Type: keys.Uint32},
		GID:           {Name: "oob.gid", Type: keys.Uint32},
		Label:         {Name: "raw.label", Type: keys.Uint8},
		RawType:       {Name: "raw.type", Type: keys.Uint16},
		RawMACSaddr:   {Name: "raw.mac.saddr", Type: keys.Raw},
		RawMACAddrLen: {Name: "raw.mac.addrlen", Type: keys.Uint16},
	}
	return append(t[:len(t):len(t)], more...)
}
