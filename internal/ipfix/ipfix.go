// Package ipfix encodes flow records as IPFIX messages (RFC 7011), with
// the information elements that nfdump, pmacct and Wireshark decode.
//
// A record's template follows from what the record holds: its address
// family and the optional element groups set in Flow.Has. Each combination
// has its own template id (TemplateID), so the encoder needs no
// negotiation: a template is put into a message right before the first
// record that uses it (or into every message, or never, see TemplateMode).
//
// A flow is first turned into a record (AppendRecord: its template id and
// its data record), which is what a sink queues; the Encoder of a
// transport session then packs records into messages in a buffer it owns,
// without allocating once the buffer has grown to the message size:
//
//	rec = ipfix.AppendRecord(rec[:0], &f, markPEN)
//	...
//	if !e.Fits(rec) {
//		send(e.Finish(now)) // the message so far; valid until the next Add
//	}
//	e.Add(rec)
//
// The header's sequence number is the number of data records finished
// before the message (RFC 7011 section 3.1), so a collector sees a gap
// when a message is lost.
package ipfix

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// Information element numbers (IANA "IPFIX Information Elements").
const (
	IEOctetDeltaCount                  = 1
	IEPacketDeltaCount                 = 2
	IEProtocolIdentifier               = 4
	IESourceTransportPort              = 7
	IESourceIPv4Address                = 8
	IEDestinationTransportPort         = 11
	IEDestinationIPv4Address           = 12
	IESourceIPv6Address                = 27
	IEDestinationIPv6Address           = 28
	IEICMPTypeCodeIPv4                 = 32
	IEFlowEndReason                    = 136
	IEICMPTypeCodeIPv6                 = 139
	IEFlowID                           = 148
	IEFlowStartMilliseconds            = 152
	IEFlowEndMilliseconds              = 153
	IEPostNATSourceIPv4Address         = 225
	IEPostNATDestinationIPv4Address    = 226
	IEPostNAPTSourceTransportPort      = 227
	IEPostNAPTDestinationTransportPort = 228
	IEIngressVRFID                     = 234
	IEBiflowDirection                  = 239
	IEPostNATSourceIPv6Address         = 281
	IEPostNATDestinationIPv6Address    = 282
)

// ReversePEN is the private enterprise number of the reverse information
// elements of RFC 5103: element n under it is the reverse of IANA element n.
const ReversePEN = 29305

// MarkElement is the element number of the conntrack mark under the
// enterprise number given to the encoder (Encoder.MarkPEN).
const MarkElement = 1

// Set ids.
const (
	setTemplate = 2
	// FirstTemplateID is the lowest template id (RFC 7011: data sets
	// have ids 256 and up).
	FirstTemplateID = 256
)

// HeaderLen is the length of the message header.
const HeaderLen = 16

// Elems is a set of optional element groups.
type Elems uint16

// Optional element groups of a record.
const (
	// HasTimes: flowStartMilliseconds and flowEndMilliseconds.
	HasTimes Elems = 1 << iota
	// HasICMP: icmpTypeCodeIPv4 or icmpTypeCodeIPv6.
	HasICMP
	// HasReverse: the RFC 5103 reverse octetDeltaCount and
	// packetDeltaCount (a biflow record).
	HasReverse
	// HasNAT: post-NAT(P) source and destination addresses and ports.
	HasNAT
	// HasFlowID: flowId.
	HasFlowID
	// HasDirection: biflowDirection.
	HasDirection
	// HasEndReason: flowEndReason.
	HasEndReason
	// HasZone: ingressVRFID (the conntrack zone).
	HasZone
	// HasMark: the conntrack mark, an enterprise-specific element (only
	// encoded when the encoder has a MarkPEN).
	HasMark

	numElems = iota
)

// AllElems is every optional group.
const AllElems Elems = 1<<numElems - 1

// MaxTemplateID is the highest template id the encoder uses.
const MaxTemplateID = FirstTemplateID + 2<<numElems - 1

// Flow is one flow record. Addresses are both IPv4 or both IPv6 (an IPv4
// Src makes the record IPv4); the post-NAT addresses have the family of
// Src.
type Flow struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
	Octets, Packets  uint64 // this direction's delta counters

	Has Elems // the optional groups below that the record carries

	StartMs, EndMs           uint64 // HasTimes: ms since the Unix epoch
	ICMPType, ICMPCode       uint8  // HasICMP
	RevOctets, RevPackets    uint64 // HasReverse
	PostSrc, PostDst         netip.Addr
	PostSrcPort, PostDstPort uint16 // HasNAT (with PostSrc, PostDst)
	FlowID                   uint64 // HasFlowID
	Direction                uint8  // HasDirection: biflowDirection value
	EndReason                uint8  // HasEndReason: flowEndReason value
	Zone                     uint32 // HasZone
	Mark                     uint32 // HasMark
}

// biflowDirection and flowEndReason values.
const (
	DirectionInitiator        = 1 // the record's source started the flow
	DirectionReverseInitiator = 2 // the record's source is the responder
	EndIdleTimeout            = 1
	EndActiveTimeout          = 2
	EndOfFlowDetected         = 3
	EndForced                 = 4
)

// V6 reports whether the record is IPv6.
func (f *Flow) V6() bool { return !f.Src.Is4() }

// TemplateID returns the id of the template that describes a record of
// the given family and optional groups.
func TemplateID(v6 bool, has Elems) uint16 {
	id := FirstTemplateID + uint16(has&AllElems)<<1
	if v6 {
		id |= 1
	}
	return id
}

// field is one template entry.
type field struct {
	id  uint16
	len uint16
	pen uint32
}

// fields returns the template fields of a template id, in record order.
func fields(v6 bool, has Elems, markPEN uint32) []field {
	a := 4
	if v6 {
		a = 16
	}
	src, dst := uint16(IESourceIPv4Address), uint16(IEDestinationIPv4Address)
	if v6 {
		src, dst = IESourceIPv6Address, IEDestinationIPv6Address
	}
	fs := []field{
		{id: src, len: uint16(a)},
		{id: dst, len: uint16(a)},
		{id: IESourceTransportPort, len: 2},
		{id: IEDestinationTransportPort, len: 2},
		{id: IEProtocolIdentifier, len: 1},
		{id: IEOctetDeltaCount, len: 8},
		{id: IEPacketDeltaCount, len: 8},
	}
	if has&HasTimes != 0 {
		fs = append(fs, field{id: IEFlowStartMilliseconds, len: 8}, field{id: IEFlowEndMilliseconds, len: 8})
	}
	if has&HasICMP != 0 {
		id := uint16(IEICMPTypeCodeIPv4)
		if v6 {
			id = IEICMPTypeCodeIPv6
		}
		fs = append(fs, field{id: id, len: 2})
	}
	if has&HasReverse != 0 {
		fs = append(fs, field{id: IEOctetDeltaCount, len: 8, pen: ReversePEN},
			field{id: IEPacketDeltaCount, len: 8, pen: ReversePEN})
	}
	if has&HasNAT != 0 {
		ps, pd := uint16(IEPostNATSourceIPv4Address), uint16(IEPostNATDestinationIPv4Address)
		if v6 {
			ps, pd = IEPostNATSourceIPv6Address, IEPostNATDestinationIPv6Address
		}
		fs = append(fs, field{id: ps, len: uint16(a)}, field{id: pd, len: uint16(a)},
			field{id: IEPostNAPTSourceTransportPort, len: 2}, field{id: IEPostNAPTDestinationTransportPort, len: 2})
	}
	if has&HasFlowID != 0 {
		fs = append(fs, field{id: IEFlowID, len: 8})
	}
	if has&HasDirection != 0 {
		fs = append(fs, field{id: IEBiflowDirection, len: 1})
	}
	if has&HasEndReason != 0 {
		fs = append(fs, field{id: IEFlowEndReason, len: 1})
	}
	if has&HasZone != 0 {
		fs = append(fs, field{id: IEIngressVRFID, len: 4})
	}
	if has&HasMark != 0 && markPEN != 0 {
		fs = append(fs, field{id: MarkElement, len: 4, pen: markPEN})
	}
	return fs
}

// AppendTemplateSet appends a template set (set id 2) holding the
// template of each id in ids, for an encoder with the given mark PEN.
func AppendTemplateSet(b []byte, markPEN uint32, ids ...uint16) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, setTemplate)
	b = append(b, 0, 0) // length, below
	for _, id := range ids {
		b = appendTemplate(b, id, markPEN)
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

func appendTemplate(b []byte, id uint16, markPEN uint32) []byte {
	v6 := id&1 != 0
	has := Elems(id-FirstTemplateID) >> 1
	fs := fields(v6, has, markPEN)
	b = binary.BigEndian.AppendUint16(b, id)
	b = binary.BigEndian.AppendUint16(b, uint16(len(fs)))
	for _, f := range fs {
		if f.pen != 0 {
			b = binary.BigEndian.AppendUint16(b, f.id|0x8000)
			b = binary.BigEndian.AppendUint16(b, f.len)
			b = binary.BigEndian.AppendUint32(b, f.pen)
			continue
		}
		b = binary.BigEndian.AppendUint16(b, f.id)
		b = binary.BigEndian.AppendUint16(b, f.len)
	}
	return b
}

// templateLen is the length of a template record for id.
func templateLen(id uint16, markPEN uint32) int {
	v6 := id&1 != 0
	n := 4
	for _, f := range fields(v6, Elems(id-FirstTemplateID)>>1, markPEN) {
		n += 4
		if f.pen != 0 {
			n += 4
		}
	}
	return n
}

// TemplateMode says when templates are sent.
type TemplateMode uint8

// Template modes (ulogd2's send_template option).
const (
	// TemplateOnce sends a template in the first message that uses it,
	// and again after ResendTemplates.
	TemplateOnce TemplateMode = iota
	// TemplateNever sends no template (the collector is configured by
	// other means).
	TemplateNever
	// TemplateAlways sends, in every message, the templates its records
	// use.
	TemplateAlways
)

// AppendRecord appends f as a queued record: its template id (2 bytes,
// big endian) then its data record, for an encoder with the given mark
// enterprise number (0: the mark is left out). Encoder.Add takes it.
func AppendRecord(b []byte, f *Flow, markPEN uint32) []byte {
	v6 := f.V6()
	h := f.Has & AllElems
	if markPEN == 0 {
		h &^= HasMark
	}
	b = binary.BigEndian.AppendUint16(b, TemplateID(v6, h))
	return appendRecord(b, f, v6, h)
}

// RecordTemplate returns the template id of a record made by AppendRecord.
func RecordTemplate(rec []byte) uint16 { return binary.BigEndian.Uint16(rec) }

// Encoder builds the IPFIX messages of one transport session (a UDP
// destination, a TCP connection) from records made by AppendRecord. It is
// not safe for concurrent use.
type Encoder struct {
	Domain  uint32       // observation domain id
	MTU     int          // maximum message length (see MinMTU)
	Mode    TemplateMode // when templates are sent
	MarkPEN uint32       // enterprise number of the mark element; 0: no mark

	msg     []byte // the message being built (header included once started)
	records int    // data records in msg
	seq     uint32 // data records finished before msg
	setAt   int    // offset of the open data set's header, or 0
	setID   uint16 // its template id

	sent  [numTemplates / 64]uint64 // templates sent (TemplateOnce)
	inMsg [numTemplates / 64]uint64 // templates in msg
}

const numTemplates = MaxTemplateID + 1 - FirstTemplateID

// ErrTooBig is returned by Add for a record that cannot fit a message of
// MTU bytes even alone (with its template).
var ErrTooBig = errors.New("ipfix: record larger than the MTU")

// MinMTU is the smallest MTU that takes any record with its template.
func MinMTU(markPEN uint32) int {
	return HeaderLen + 4 + templateLen(MaxTemplateID, markPEN) + 4 + len(AppendRecord(nil, &Flow{
		Src: netip.IPv6Unspecified(), Dst: netip.IPv6Unspecified(), PostSrc: netip.IPv6Unspecified(),
		PostDst: netip.IPv6Unspecified(), Has: AllElems,
	}, markPEN)) - 2
}

func bit(set []uint64, id uint16) bool {
	i := id - FirstTemplateID
	return set[i/64]&(1<<(i%64)) != 0
}

func setBit(set []uint64, id uint16) {
	i := id - FirstTemplateID
	set[i/64] |= 1 << (i % 64)
}

// needs returns how many bytes adding rec to the current message takes.
func (e *Encoder) needs(rec []byte) int {
	id := RecordTemplate(rec)
	n := len(rec) - 2
	if len(e.msg) == 0 {
		n += HeaderLen
	}
	if e.setAt == 0 || e.setID != id {
		n += 4 // a new data set header
	}
	if e.wantTemplate(id) {
		n += 4 + templateLen(id, e.MarkPEN)
	}
	return n
}

func (e *Encoder) wantTemplate(id uint16) bool {
	switch e.Mode {
	case TemplateNever:
		return false
	case TemplateAlways:
		return !bit(e.inMsg[:], id)
	}
	return !bit(e.sent[:], id)
}

// Fits reports whether rec can be added to the current message. An empty
// message always takes a record (Add reports ErrTooBig if it cannot).
func (e *Encoder) Fits(rec []byte) bool {
	return len(e.msg) == 0 || len(e.msg)+e.needs(rec) <= e.MTU
}

// Pending returns the number of records in the current message.
func (e *Encoder) Pending() int { return e.records }

// Add appends rec's data record (and, when due, its template) to the
// current message. The caller checks Fits first and finishes the message
// when it returns false; otherwise the message may exceed the MTU. A
// record shorter than its template id is refused.
func (e *Encoder) Add(rec []byte) error {
	if len(rec) < 3 {
		return errors.New("ipfix: empty record")
	}
	id := RecordTemplate(rec)
	if id < FirstTemplateID || id > MaxTemplateID {
		return errors.New("ipfix: record with a bad template id")
	}
	if len(e.msg) == 0 {
		if e.needs(rec) > e.MTU {
			return ErrTooBig
		}
		e.msg = append(e.msg[:0], make([]byte, HeaderLen)...)
	}
	if e.wantTemplate(id) {
		e.closeSet()
		e.msg = AppendTemplateSet(e.msg, e.MarkPEN, id)
		setBit(e.sent[:], id)
		setBit(e.inMsg[:], id)
	}
	if e.setAt == 0 || e.setID != id {
		e.closeSet()
		e.setAt, e.setID = len(e.msg), id
		e.msg = binary.BigEndian.AppendUint16(e.msg, id)
		e.msg = append(e.msg, 0, 0)
	}
	e.msg = append(e.msg, rec[2:]...)
	e.records++
	return nil
}

func (e *Encoder) closeSet() {
	if e.setAt != 0 {
		binary.BigEndian.PutUint16(e.msg[e.setAt+2:], uint16(len(e.msg)-e.setAt))
		e.setAt = 0
	}
}

func appendAddr(b []byte, a netip.Addr, v6 bool) []byte {
	if v6 {
		x := a.As16()
		return append(b, x[:]...)
	}
	x := a.As4()
	return append(b, x[:]...)
}

func appendRecord(b []byte, f *Flow, v6 bool, h Elems) []byte {
	be := binary.BigEndian
	b = appendAddr(b, f.Src, v6)
	b = appendAddr(b, f.Dst, v6)
	b = be.AppendUint16(b, f.SrcPort)
	b = be.AppendUint16(b, f.DstPort)
	b = append(b, f.Proto)
	b = be.AppendUint64(b, f.Octets)
	b = be.AppendUint64(b, f.Packets)
	if h&HasTimes != 0 {
		b = be.AppendUint64(b, f.StartMs)
		b = be.AppendUint64(b, f.EndMs)
	}
	if h&HasICMP != 0 {
		b = append(b, f.ICMPType, f.ICMPCode)
	}
	if h&HasReverse != 0 {
		b = be.AppendUint64(b, f.RevOctets)
		b = be.AppendUint64(b, f.RevPackets)
	}
	if h&HasNAT != 0 {
		b = appendAddr(b, f.PostSrc, v6)
		b = appendAddr(b, f.PostDst, v6)
		b = be.AppendUint16(b, f.PostSrcPort)
		b = be.AppendUint16(b, f.PostDstPort)
	}
	if h&HasFlowID != 0 {
		b = be.AppendUint64(b, f.FlowID)
	}
	if h&HasDirection != 0 {
		b = append(b, f.Direction)
	}
	if h&HasEndReason != 0 {
		b = append(b, f.EndReason)
	}
	if h&HasZone != 0 {
		b = be.AppendUint32(b, f.Zone)
	}
	if h&HasMark != 0 {
		b = be.AppendUint32(b, f.Mark)
	}
	return b
}

// Finish completes the current message with its header (export time now)
// and returns it; nil when no record was added. The bytes are valid until
// the next Add. The next message's sequence number counts this one's
// records.
func (e *Encoder) Finish(now time.Time) []byte {
	if len(e.msg) == 0 {
		return nil
	}
	e.closeSet()
	m := e.msg
	be := binary.BigEndian
	be.PutUint16(m[0:], 10)
	be.PutUint16(m[2:], uint16(len(m)))
	be.PutUint32(m[4:], uint32(now.Unix()))
	be.PutUint32(m[8:], e.seq)
	be.PutUint32(m[12:], e.Domain)
	e.seq += uint32(e.records)
	e.records = 0
	e.msg = e.msg[:0]
	clear(e.inMsg[:])
	return m
}

// Drop forgets the current message, unsent: its records do not count in
// the sequence, and its templates count as not sent.
func (e *Encoder) Drop() {
	if len(e.msg) == 0 {
		return
	}
	for i := range e.inMsg {
		e.sent[i] &^= e.inMsg[i]
	}
	clear(e.inMsg[:])
	e.records, e.setAt = 0, 0
	e.msg = e.msg[:0]
}

// Sequence returns the sequence number the next message will carry.
func (e *Encoder) Sequence() uint32 { return e.seq }

// ResendTemplates makes the following messages carry their templates
// again (a UDP refresh).
func (e *Encoder) ResendTemplates() { clear(e.sent[:]) }

// MessageSequence returns the sequence number in a message's header.
func MessageSequence(m []byte) uint32 { return binary.BigEndian.Uint32(m[8:]) }
