package json

import (
	"bytes"
	"net/netip"
	"strconv"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
)

// fieldLayout is the naming of the fields: ulogd2's keys or ECS.
type fieldLayout uint8

const (
	layoutUlogd2 fieldLayout = iota
	layoutECS
)

func parseLayout(s string) (fieldLayout, error) {
	switch s {
	case "ulogd2", "":
		return layoutUlogd2, nil
	case "ecs":
		return layoutECS, nil
	}
	return 0, config.OptionErrorf("layout", "unknown layout %q: want \"ulogd2\" or \"ecs\"", s)
}

// ecsVersion is the version of the Elastic Common Schema the layout
// follows (ecs.version).
const ecsVersion = "8.11.0"

// ecsRename is the ECS name of the keys written as they are; the keys
// ecsDerived lists are read by ecsFields instead, and every other key is
// written as "ulogd.<key>" (ECS's place for custom fields is a namespace of
// their own).
var ecsRename = map[string]string{
	"orig.l4.sport":      "source.port",
	"tcp.sport":          "source.port",
	"udp.sport":          "source.port",
	"sctp.sport":         "source.port",
	"orig.l4.dport":      "destination.port",
	"tcp.dport":          "destination.port",
	"udp.dport":          "destination.port",
	"sctp.dport":         "destination.port",
	"orig.raw.pktlen":    "source.bytes",
	"orig.raw.pktcount":  "source.packets",
	"reply.raw.pktlen":   "destination.bytes",
	"reply.raw.pktcount": "destination.packets",
	"flow.community_id":  "network.community_id",
	"oob.prefix":         "rule.name",
	"oob.in":             "observer.ingress.interface.name",
	"oob.out":            "observer.egress.interface.name",
}

// ecsDerived are the keys ecsFields turns into other fields (and their
// text forms, which the ECS fields replace).
var ecsDerived = map[string]bool{
	"oob.time.sec": true, "oob.time.usec": true,
	"flow.start.sec": true, "flow.start.usec": true, "flow.end.sec": true, "flow.end.usec": true,
	"ct.event":    true,
	"ip.protocol": true, "orig.ip.protocol": true,
	"ip.saddr.str": true, "ip.daddr.str": true,
	"orig.ip.saddr.str": true, "orig.ip.daddr.str": true,
	"reply.ip.saddr.str": true, "reply.ip.daddr.str": true,
}

// ecsName returns the field name of key name under layout=ecs, "" when the
// key is not written as such.
func ecsName(name string) string {
	if n, ok := ecsRename[name]; ok {
		return n
	}
	if ecsDerived[name] {
		return ""
	}
	return "ulogd." + name
}

// ecsHead are the constant fields of every ECS record, after @timestamp.
func ecsHead(device string) []byte {
	b := []byte(`"ecs.version": "` + ecsVersion + `", "event.kind": "event", "event.category": ["network"], ` +
		`"observer.type": "firewall", "observer.product": "ulogd"`)
	if v, ok := appendString([]byte(`, "observer.vendor": `), []byte(device)); ok {
		b = append(b, v...)
	}
	return b
}

// ecsFields writes the fields computed from several keys: addresses,
// protocol, NAT, flow times and the conntrack event.
type ecsFields struct {
	origSaddr, origDaddr, replySaddr, replyDaddr keys.Slot
	origProto, origSport, origDport              keys.Slot
	replySport, replyDport                       keys.Slot
	saddr, daddr, proto                          keys.Slot
	startSec, startUsec, endSec, endUsec         keys.Slot
	ctEvent                                      keys.Slot
}

func newECSFields(up []keys.Bound) *ecsFields {
	slot := func(name string) keys.Slot {
		for _, u := range up {
			if u.Name == name {
				return u.Slot
			}
		}
		return keys.NoSlot
	}
	return &ecsFields{
		origSaddr: slot("orig.ip.saddr"), origDaddr: slot("orig.ip.daddr"),
		replySaddr: slot("reply.ip.saddr"), replyDaddr: slot("reply.ip.daddr"),
		origProto: slot("orig.ip.protocol"), origSport: slot("orig.l4.sport"), origDport: slot("orig.l4.dport"),
		replySport: slot("reply.l4.sport"), replyDport: slot("reply.l4.dport"),
		saddr: slot("ip.saddr"), daddr: slot("ip.daddr"), proto: slot("ip.protocol"),
		startSec: slot("flow.start.sec"), startUsec: slot("flow.start.usec"),
		endSec: slot("flow.end.sec"), endUsec: slot("flow.end.usec"),
		ctEvent: slot("ct.event"),
	}
}

// transports are the lowercase IANA keywords of network.transport.
var transports = map[uint8]string{
	1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 41: "ipv6", 47: "gre",
	50: "esp", 51: "ah", 58: "ipv6-icmp", 132: "sctp", 136: "udplite",
}

// The conntrack event bits (ct.event).
const (
	ctNew     = 1
	ctUpdate  = 2
	ctDestroy = 4
)

// append writes the computed fields, each preceded by ", ".
func (e *ecsFields) append(s *sink, b []byte, r *keys.Record) []byte {
	flow := r.Valid(e.origSaddr)
	saddr, daddr, proto := e.saddr, e.daddr, e.proto
	if flow {
		saddr, daddr, proto = e.origSaddr, e.origDaddr, e.origProto
	}
	if r.Valid(saddr) {
		b = appendIPField(b, `, "source.ip": "`, r.Bytes(saddr))
	}
	if r.Valid(daddr) {
		b = appendIPField(b, `, "destination.ip": "`, r.Bytes(daddr))
	}
	switch len(r.Bytes(saddr)) {
	case 4:
		b = append(b, `, "network.type": "ipv4"`...)
	case 16:
		b = append(b, `, "network.type": "ipv6"`...)
	}
	if r.Valid(proto) {
		p := uint8(r.Uint(proto))
		b = append(b, `, "network.iana_number": "`...)
		b = strconv.AppendUint(b, uint64(p), 10)
		b = append(b, '"')
		if t, ok := transports[p]; ok {
			b = append(b, `, "network.transport": "`...)
			b = append(b, t...)
			b = append(b, '"')
		}
	}
	if flow {
		b = e.appendNAT(b, r)
		if r.Valid(e.startSec) {
			b = append(b, `, "event.start": "`...)
			b = s.clk.append(b, int64(r.Uint(e.startSec)), int(r.Uint(e.startUsec)%1e6))
			b = append(b, '"')
		}
		if r.Valid(e.endSec) {
			b = append(b, `, "event.end": "`...)
			b = s.clk.append(b, int64(r.Uint(e.endSec)), int(r.Uint(e.endUsec)%1e6))
			b = append(b, '"')
		}
		if r.Valid(e.ctEvent) {
			switch ev := r.Uint(e.ctEvent); {
			case ev&ctNew != 0:
				b = append(b, `, "event.action": "new", "event.type": ["connection", "start"]`...)
			case ev&ctDestroy != 0:
				b = append(b, `, "event.action": "destroy", "event.type": ["connection", "end"]`...)
			case ev&ctUpdate != 0:
				b = append(b, `, "event.action": "update", "event.type": ["connection"]`...)
			}
		}
	}
	return b
}

// appendNAT writes source.nat.* when the reply goes to another address or
// port than the original source (source NAT, masquerading), and
// destination.nat.* when it comes from another one than the original
// destination (destination NAT, port forwarding).
func (e *ecsFields) appendNAT(b []byte, r *keys.Record) []byte {
	if !r.Valid(e.replySaddr) || !r.Valid(e.replyDaddr) {
		return b
	}
	if !bytes.Equal(r.Bytes(e.replyDaddr), r.Bytes(e.origSaddr)) || r.Uint(e.replyDport) != r.Uint(e.origSport) {
		b = appendIPField(b, `, "source.nat.ip": "`, r.Bytes(e.replyDaddr))
		if r.Valid(e.replyDport) {
			b = append(b, `, "source.nat.port": `...)
			b = appendUint(b, r.Uint(e.replyDport))
		}
	}
	if !bytes.Equal(r.Bytes(e.replySaddr), r.Bytes(e.origDaddr)) || r.Uint(e.replySport) != r.Uint(e.origDport) {
		b = appendIPField(b, `, "destination.nat.ip": "`, r.Bytes(e.replySaddr))
		if r.Valid(e.replySport) {
			b = append(b, `, "destination.nat.port": `...)
			b = appendUint(b, r.Uint(e.replySport))
		}
	}
	return b
}

// appendIPField writes key (ending in an opening quote), the address a (4
// or 16 bytes) as text and the closing quote; nothing for another length.
func appendIPField(b []byte, key string, a []byte) []byte {
	var ip netip.Addr
	switch len(a) {
	case 4:
		ip = netip.AddrFrom4([4]byte(a))
	case 16:
		ip = netip.AddrFrom16([16]byte(a)).Unmap()
	default:
		return b
	}
	b = append(b, key...)
	b = ip.AppendTo(b)
	return append(b, '"')
}
