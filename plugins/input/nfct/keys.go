package nfct

import "github.com/ulogd-go/ulogd/internal/keys"

// Output key indexes, in declaration order. The first 26 are ulogd2's, in
// its --info order; the ones after are additions and stay at the end so
// that wildcard sinks print ulogd2's keys first, in ulogd2's order.
const (
	kOrigSaddr = iota
	kOrigDaddr
	kOrigProto
	kOrigSport
	kOrigDport
	kOrigBytes
	kOrigPackets
	kReplySaddr
	kReplyDaddr
	kReplyProto
	kReplySport
	kReplyDport
	kReplyBytes
	kReplyPackets
	kICMPCode
	kICMPType
	kMark
	kID
	kEvent
	kStartSec
	kStartUsec
	kEndSec
	kEndUsec
	kFamily
	kOOBProto
	kCT
	// Beyond ulogd 2.0.x.
	kICMPv6Type
	kICMPv6Code
	kZone
	numKeys
)

var outputKeys = [numKeys]keys.Spec{
	kOrigSaddr:    {Name: "orig.ip.saddr", Type: keys.IPAddr},
	kOrigDaddr:    {Name: "orig.ip.daddr", Type: keys.IPAddr},
	kOrigProto:    {Name: "orig.ip.protocol", Type: keys.Uint8},
	kOrigSport:    {Name: "orig.l4.sport", Type: keys.Uint16},
	kOrigDport:    {Name: "orig.l4.dport", Type: keys.Uint16},
	kOrigBytes:    {Name: "orig.raw.pktlen", Type: keys.Uint64},
	kOrigPackets:  {Name: "orig.raw.pktcount", Type: keys.Uint64},
	kReplySaddr:   {Name: "reply.ip.saddr", Type: keys.IPAddr},
	kReplyDaddr:   {Name: "reply.ip.daddr", Type: keys.IPAddr},
	kReplyProto:   {Name: "reply.ip.protocol", Type: keys.Uint8},
	kReplySport:   {Name: "reply.l4.sport", Type: keys.Uint16},
	kReplyDport:   {Name: "reply.l4.dport", Type: keys.Uint16},
	kReplyBytes:   {Name: "reply.raw.pktlen", Type: keys.Uint64},
	kReplyPackets: {Name: "reply.raw.pktcount", Type: keys.Uint64},
	kICMPCode:     {Name: "icmp.code", Type: keys.Uint8},
	kICMPType:     {Name: "icmp.type", Type: keys.Uint8},
	kMark:         {Name: "ct.mark", Type: keys.Uint32},
	kID:           {Name: "ct.id", Type: keys.Uint32},
	kEvent:        {Name: "ct.event", Type: keys.Uint32},
	kStartSec:     {Name: "flow.start.sec", Type: keys.Uint32},
	kStartUsec:    {Name: "flow.start.usec", Type: keys.Uint32},
	kEndSec:       {Name: "flow.end.sec", Type: keys.Uint32},
	kEndUsec:      {Name: "flow.end.usec", Type: keys.Uint32},
	kFamily:       {Name: "oob.family", Type: keys.Uint8},
	kOOBProto:     {Name: "oob.protocol", Type: keys.Uint8},
	kCT:           {Name: "ct", Type: keys.Raw},
	kICMPv6Type:   {Name: "icmpv6.type", Type: keys.Uint8},
	kICMPv6Code:   {Name: "icmpv6.code", Type: keys.Uint8},
	kZone:         {Name: "ct.zone", Type: keys.Uint16},
}

// OutputKeys returns the NFCT output keys in declaration order.
func OutputKeys() []keys.Spec {
	out := make([]keys.Spec, numKeys)
	copy(out, outputKeys[:])
	return out
}
