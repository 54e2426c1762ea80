package ctnl

import (
	"fmt"

	"github.com/ulogd-go/ulogd/internal/nl"
)

// Children of CTA_TUPLE_ORIG / CTA_TUPLE_REPLY / CTA_TUPLE_MASTER
// (enum ctattr_tuple).
const (
	ctaTupleIP    = 1 // CTA_TUPLE_IP: nested addresses
	ctaTupleProto = 2 // CTA_TUPLE_PROTO: nested layer-4 identity
	ctaTupleZone  = 3 // CTA_TUPLE_ZONE: be16 zone of this direction
)

// Children of CTA_TUPLE_IP (enum ctattr_ip).
const (
	ctaIPv4Src = 1 // CTA_IP_V4_SRC: 4 bytes, network order
	ctaIPv4Dst = 2 // CTA_IP_V4_DST
	ctaIPv6Src = 3 // CTA_IP_V6_SRC: 16 bytes
	ctaIPv6Dst = 4 // CTA_IP_V6_DST
)

// Children of CTA_TUPLE_PROTO (enum ctattr_l4proto).
const (
	ctaProtoNum        = 1 // CTA_PROTO_NUM: u8 IP protocol number
	ctaProtoSrcPort    = 2 // CTA_PROTO_SRC_PORT: be16
	ctaProtoDstPort    = 3 // CTA_PROTO_DST_PORT: be16
	ctaProtoICMPID     = 4 // CTA_PROTO_ICMP_ID: be16
	ctaProtoICMPType   = 5 // CTA_PROTO_ICMP_TYPE: u8
	ctaProtoICMPCode   = 6 // CTA_PROTO_ICMP_CODE: u8
	ctaProtoICMPv6ID   = 7 // CTA_PROTO_ICMPV6_ID: be16
	ctaProtoICMPv6Type = 8 // CTA_PROTO_ICMPV6_TYPE: u8
	ctaProtoICMPv6Code = 9 // CTA_PROTO_ICMPV6_CODE: u8
)

// IP protocol numbers that decide which keys ulogd fills.
const (
	ProtoICMP    = 1
	ProtoTCP     = 6
	ProtoUDP     = 17
	ProtoDCCP    = 33
	ProtoGRE     = 47
	ProtoICMPv6  = 58
	ProtoSCTP    = 132
	ProtoUDPLite = 136
)

// PortsProto reports whether ulogd exposes orig/reply.l4.sport/dport for
// proto.
func PortsProto(proto uint8) bool {
	switch proto {
	case ProtoTCP, ProtoUDP, ProtoUDPLite, ProtoSCTP, ProtoDCCP:
		return true
	}
	return false
}

// Tuple is one direction of a connection (CTA_TUPLE_ORIG or CTA_TUPLE_REPLY).
type Tuple struct {
	// Src, Dst: 4 bytes (IPv4) or 16 bytes (IPv6) in network order,
	// aliasing the message buffer. Nil if the kernel sent none.
	Src, Dst []byte
	Proto    uint8 // CTA_PROTO_NUM

	// SrcPort, DstPort are in host order. They hold whatever
	// CTA_PROTO_SRC/DST_PORT carried (GRE keys too); HasPorts is set only
	// for TCP, UDP, UDPLITE, SCTP and DCCP, the protocols ulogd gives ports.
	SrcPort, DstPort uint16
	HasPorts         bool

	// ICMP identity, from CTA_PROTO_ICMP_* or CTA_PROTO_ICMPV6_*.
	ICMPType, ICMPCode uint8
	ICMPID             uint16
	HasICMP            bool

	Zone    uint16 // CTA_TUPLE_ZONE (direction-specific zone), if HasZone
	HasZone bool

	portAttrs bool // both port attributes were present (for GetRequest)
}

// decodeTuple decodes the children of a CTA_TUPLE_* attribute into t.
func decodeTuple(b []byte, t *Tuple) error {
	it := nl.Attrs(b)
	var srcPort, dstPort bool
	for it.Next() {
		d := it.Data()
		switch it.Type() {
		case ctaTupleIP:
			if err := decodeTupleIP(d, t); err != nil {
				return err
			}
		case ctaTupleProto:
			if err := decodeTupleProto(d, t, &srcPort, &dstPort); err != nil {
				return err
			}
		case ctaTupleZone:
			if len(d) != 2 {
				return attrSizeError("CTA_TUPLE_ZONE", len(d))
			}
			t.Zone, t.HasZone = nl.BE16(d), true
		}
		// Other children are newer than this decoder: ignored.
	}
	if err := it.Err(); err != nil {
		return err
	}
	t.portAttrs = srcPort && dstPort
	t.HasPorts = t.portAttrs && PortsProto(t.Proto)
	return nil
}

func decodeTupleIP(b []byte, t *Tuple) error {
	it := nl.Attrs(b)
	for it.Next() {
		d := it.Data()
		switch it.Type() {
		case ctaIPv4Src, ctaIPv4Dst:
			if len(d) != 4 {
				return attrSizeError("CTA_IP_V4_SRC/DST", len(d))
			}
		case ctaIPv6Src, ctaIPv6Dst:
			if len(d) != 16 {
				return attrSizeError("CTA_IP_V6_SRC/DST", len(d))
			}
		default:
			continue
		}
		switch it.Type() {
		case ctaIPv4Src, ctaIPv6Src:
			t.Src = d
		default:
			t.Dst = d
		}
	}
	return it.Err()
}

func decodeTupleProto(b []byte, t *Tuple, srcPort, dstPort *bool) error {
	it := nl.Attrs(b)
	for it.Next() {
		d := it.Data()
		switch it.Type() {
		case ctaProtoNum:
			if len(d) != 1 {
				return attrSizeError("CTA_PROTO_NUM", len(d))
			}
			t.Proto = d[0]
		case ctaProtoSrcPort, ctaProtoDstPort:
			if len(d) != 2 {
				return attrSizeError("CTA_PROTO_SRC/DST_PORT", len(d))
			}
			if it.Type() == ctaProtoSrcPort {
				t.SrcPort, *srcPort = nl.BE16(d), true
			} else {
				t.DstPort, *dstPort = nl.BE16(d), true
			}
		case ctaProtoICMPID, ctaProtoICMPv6ID:
			if len(d) != 2 {
				return attrSizeError("CTA_PROTO_ICMP(V6)_ID", len(d))
			}
			t.ICMPID, t.HasICMP = nl.BE16(d), true
		case ctaProtoICMPType, ctaProtoICMPv6Type:
			if len(d) != 1 {
				return attrSizeError("CTA_PROTO_ICMP(V6)_TYPE", len(d))
			}
			t.ICMPType, t.HasICMP = d[0], true
		case ctaProtoICMPCode, ctaProtoICMPv6Code:
			if len(d) != 1 {
				return attrSizeError("CTA_PROTO_ICMP(V6)_CODE", len(d))
			}
			t.ICMPCode, t.HasICMP = d[0], true
		}
	}
	return it.Err()
}

// appendTuple appends t as a nested attribute of type typ (CTA_TUPLE_ORIG,
// ...), in the form ctnetlink expects in requests.
func appendTuple(b []byte, typ uint16, t *Tuple) []byte {
	b, tup := nl.BeginNest(b, typ)
	b, ip := nl.BeginNest(b, ctaTupleIP)
	if len(t.Src) == 16 || len(t.Dst) == 16 {
		b = nl.AppendAttr(b, ctaIPv6Src, t.Src)
		b = nl.AppendAttr(b, ctaIPv6Dst, t.Dst)
	} else {
		b = nl.AppendAttr(b, ctaIPv4Src, t.Src)
		b = nl.AppendAttr(b, ctaIPv4Dst, t.Dst)
	}
	b = nl.EndNest(b, ip)
	b, proto := nl.BeginNest(b, ctaTupleProto)
	b = nl.AppendU8(b, ctaProtoNum, t.Proto)
	switch {
	case t.Proto == ProtoICMP:
		b = nl.AppendBE16(b, ctaProtoICMPID, t.ICMPID)
		b = nl.AppendU8(b, ctaProtoICMPType, t.ICMPType)
		b = nl.AppendU8(b, ctaProtoICMPCode, t.ICMPCode)
	case t.Proto == ProtoICMPv6:
		b = nl.AppendBE16(b, ctaProtoICMPv6ID, t.ICMPID)
		b = nl.AppendU8(b, ctaProtoICMPv6Type, t.ICMPType)
		b = nl.AppendU8(b, ctaProtoICMPv6Code, t.ICMPCode)
	case t.HasPorts || t.portAttrs || t.Proto == ProtoGRE:
		b = nl.AppendBE16(b, ctaProtoSrcPort, t.SrcPort)
		b = nl.AppendBE16(b, ctaProtoDstPort, t.DstPort)
	}
	b = nl.EndNest(b, proto)
	if t.HasZone {
		b = nl.AppendBE16(b, ctaTupleZone, t.Zone)
	}
	return nl.EndNest(b, tup)
}

func attrSizeError(name string, got int) error {
	return fmt.Errorf("%w: %s has %d bytes", ErrAttrSize, name, got)
}
