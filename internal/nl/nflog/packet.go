package nflog

import (
	"bytes"

	"github.com/ulogd-go/ulogd/internal/nl"
)

// Packet is a decoded NFULNL_MSG_PACKET. Byte slices alias the message
// buffer and are valid only as long as it is; Has* fields say whether the
// kernel sent the matching attribute.
type Packet struct {
	Family uint8  // nfgenmsg.nfgen_family: 2 IPv4, 10 IPv6, 7 bridge, 3 ARP
	Group  uint16 // nfgenmsg.res_id: the log group

	// NFULA_PACKET_HDR (always sent by the kernel).
	HwProtocol uint16 // link-layer protocol (ethertype), host order: 0x0800, 0x86dd, 0x0806
	Hook       uint8  // netfilter hook: 0 prerouting, 1 input, 2 forward, 3 output, 4 postrouting
	HasHdr     bool

	Mark    uint32 // NFULA_MARK (sent only when non-zero)
	HasMark bool

	// NFULA_TIMESTAMP: the skb's receive time (usually incoming packets only).
	TimestampSec, TimestampUsec uint64
	HasTimestamp                bool

	// NFULA_IFINDEX_*: 0 when absent.
	IfIndexIn, IfIndexOut         uint32
	IfIndexPhysIn, IfIndexPhysOut uint32

	// NFULA_HWADDR: the source hardware address, HwAddrLen bytes of at most 8.
	HwAddr    []byte
	HwAddrLen uint16
	HasHwAddr bool

	Payload    []byte // NFULA_PAYLOAD: the packet from its network header on
	HasPayload bool

	Prefix    []byte // NFULA_PREFIX without its trailing NUL ("" for nft's default)
	HasPrefix bool

	UID, GID       uint32 // NFULA_UID, NFULA_GID: owner of the local socket
	HasUID, HasGID bool

	Seq, SeqGlobal        uint32 // NFULA_SEQ, NFULA_SEQ_GLOBAL
	HasSeq, HasSeqGlobal  bool
	HwType                uint16 // NFULA_HWTYPE: ARPHRD_* (1 Ethernet)
	HasHwType             bool
	HwHeader              []byte // NFULA_HWHEADER: link-layer header
	HwHeaderLen           uint16 // NFULA_HWLEN
	HasHwHeader, HasHwLen bool
	CT                    []byte // NFULA_CT: nested ctnetlink attributes
	HasCT                 bool
	CTInfo                uint32 // NFULA_CT_INFO: enum ip_conntrack_info
	HasCTInfo             bool
	VLANProto, VLANTCI    uint16 // NFULA_VLAN
	HasVLAN               bool
	L2Header              []byte // NFULA_L2HDR (bridge family)
	HasL2Header           bool

	// Unknown counts attributes this decoder does not know (types above
	// NFULA_L2HDR, or 0), which it skipped.
	Unknown int
}

// Decode decodes an nfnetlink_log packet message into p, which it resets
// first. Unknown attributes are skipped and counted in p.Unknown; an
// attribute too short for its type and malformed framing are errors (never
// panics). Decode does not allocate.
func Decode(m nl.Msg, p *Packet) error {
	*p = Packet{}
	if m.Type != MsgTypePacket {
		return ErrNotPacket
	}
	if len(m.Payload) < nfgenmsgLen {
		return ErrShortMsg
	}
	p.Family = m.Payload[0]
	p.Group = nl.BE16(m.Payload[2:4])
	it := nl.Attrs(m.Payload[nfgenmsgLen:])
	for it.Next() {
		d := it.Data()
		switch it.Type() {
		case nfulaPacketHdr:
			if len(d) < packetHdrLen {
				return errPacketHdr
			}
			p.HwProtocol = nl.BE16(d)
			p.Hook = d[2]
			p.HasHdr = true
		case nfulaMark:
			if len(d) < 4 {
				return errMark
			}
			p.Mark, p.HasMark = nl.BE32(d), true
		case nfulaTimestamp:
			if len(d) < timestampLen {
				return errTimestamp
			}
			p.TimestampSec = nl.BE64(d)
			p.TimestampUsec = nl.BE64(d[8:])
			p.HasTimestamp = true
		case nfulaIfindexIndev, nfulaIfindexOutdev, nfulaIfindexPhysIn, nfulaIfindexPhysOut:
			if len(d) < 4 {
				return errIfindex
			}
			v := nl.BE32(d)
			switch it.Type() {
			case nfulaIfindexIndev:
				p.IfIndexIn = v
			case nfulaIfindexOutdev:
				p.IfIndexOut = v
			case nfulaIfindexPhysIn:
				p.IfIndexPhysIn = v
			default:
				p.IfIndexPhysOut = v
			}
		case nfulaHwaddr:
			if len(d) < hwaddrLen {
				return errHwaddr
			}
			p.HwAddrLen = nl.BE16(d)
			p.HwAddr = d[4 : 4+min(int(p.HwAddrLen), hwaddrMax)]
			p.HasHwAddr = true
		case nfulaPayload:
			p.Payload, p.HasPayload = d, true
		case nfulaPrefix:
			if i := bytes.IndexByte(d, 0); i >= 0 {
				d = d[:i]
			}
			p.Prefix, p.HasPrefix = d, true
		case nfulaUID:
			if len(d) < 4 {
				return errUID
			}
			p.UID, p.HasUID = nl.BE32(d), true
		case nfulaGID:
			if len(d) < 4 {
				return errGID
			}
			p.GID, p.HasGID = nl.BE32(d), true
		case nfulaSeq:
			if len(d) < 4 {
				return errSeq
			}
			p.Seq, p.HasSeq = nl.BE32(d), true
		case nfulaSeqGlobal:
			if len(d) < 4 {
				return errSeqGlobal
			}
			p.SeqGlobal, p.HasSeqGlobal = nl.BE32(d), true
		case nfulaHwtype:
			if len(d) < 2 {
				return errHwtype
			}
			p.HwType, p.HasHwType = nl.BE16(d), true
		case nfulaHwheader:
			p.HwHeader, p.HasHwHeader = d, true
		case nfulaHwlen:
			if len(d) < 2 {
				return errHwlen
			}
			p.HwHeaderLen, p.HasHwLen = nl.BE16(d), true
		case nfulaCT:
			p.CT, p.HasCT = d, true
		case nfulaCTInfo:
			if len(d) < 4 {
				return errCTInfo
			}
			p.CTInfo, p.HasCTInfo = nl.BE32(d), true
		case nfulaVLAN:
			// A malformed nested VLAN attribute is ignored: it is not
			// worth losing the packet for.
			in := nl.Attrs(d)
			for in.Next() {
				switch in.Type() {
				case nfulaVLANProto:
					p.VLANProto = nl.BE16(in.Data())
				case nfulaVLANTCI:
					p.VLANTCI = nl.BE16(in.Data())
				}
			}
			p.HasVLAN = true
		case nfulaL2Hdr:
			p.L2Header, p.HasL2Header = d, true
		default:
			p.Unknown++
		}
	}
	return it.Err()
}
