// Package ipfixtest is an IPFIX decoder for tests, written from RFC 7011
// independently of the encoder's field tables: it learns templates from
// the messages it reads, as a collector does, and maps the records' known
// elements back to ipfix.Flow values. A collector listener (UDP or TCP)
// sits on top of it.
package ipfixtest

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/ulogd-go/ulogd/internal/ipfix"
)

// Field is one template field.
type Field struct {
	ID  uint16
	Len uint16
	PEN uint32
}

// Message is a decoded message header with its records.
type Message struct {
	Session    string // set by Listener: the transport session it came in
	Length     int
	ExportTime uint32
	Sequence   uint32
	Domain     uint32
	Templates  []uint16 // ids of the templates it carried, in order
	Records    []Record
}

// Record is one data record: its template id and the value of every field.
type Record struct {
	Template uint16
	Fields   []Field
	Values   [][]byte
}

// Decoder keeps the templates of one transport session.
type Decoder struct {
	Templates map[uint16][]Field
	MarkPEN   uint32 // the enterprise number of the mark element
}

// NewDecoder returns a decoder with no templates.
func NewDecoder(markPEN uint32) *Decoder {
	return &Decoder{Templates: make(map[uint16][]Field), MarkPEN: markPEN}
}

// Decode parses one message. A data set whose template is unknown is an
// error (the encoder must send templates first).
func (d *Decoder) Decode(b []byte) (*Message, error) {
	be := binary.BigEndian
	if len(b) < 16 {
		return nil, fmt.Errorf("message of %d bytes: shorter than the header", len(b))
	}
	if v := be.Uint16(b); v != 10 {
		return nil, fmt.Errorf("version %d, want 10", v)
	}
	m := &Message{
		Length:     int(be.Uint16(b[2:])),
		ExportTime: be.Uint32(b[4:]),
		Sequence:   be.Uint32(b[8:]),
		Domain:     be.Uint32(b[12:]),
	}
	if m.Length != len(b) {
		return nil, fmt.Errorf("header length %d, message is %d bytes", m.Length, len(b))
	}
	for p := b[16:]; len(p) > 0; {
		if len(p) < 4 {
			return nil, fmt.Errorf("%d trailing bytes", len(p))
		}
		id, n := be.Uint16(p), int(be.Uint16(p[2:]))
		if n < 4 || n > len(p) {
			return nil, fmt.Errorf("set %d: length %d out of bounds (%d left)", id, n, len(p))
		}
		body := p[4:n]
		p = p[n:]
		switch {
		case id == 2:
			for len(body) > 0 {
				if len(body) < 4 {
					return nil, fmt.Errorf("template set: %d trailing bytes", len(body))
				}
				tid, cnt := be.Uint16(body), int(be.Uint16(body[2:]))
				body = body[4:]
				if tid < 256 {
					return nil, fmt.Errorf("template id %d < 256", tid)
				}
				fs := make([]Field, 0, cnt)
				for range cnt {
					if len(body) < 4 {
						return nil, fmt.Errorf("template %d: truncated", tid)
					}
					f := Field{ID: be.Uint16(body) &^ 0x8000, Len: be.Uint16(body[2:])}
					ent := be.Uint16(body)&0x8000 != 0
					body = body[4:]
					if ent {
						if len(body) < 4 {
							return nil, fmt.Errorf("template %d: truncated enterprise number", tid)
						}
						f.PEN = be.Uint32(body)
						body = body[4:]
					}
					if f.Len == 0xffff {
						return nil, fmt.Errorf("template %d: variable-length field %d not expected", tid, f.ID)
					}
					fs = append(fs, f)
				}
				d.Templates[tid] = fs
				m.Templates = append(m.Templates, tid)
			}
		case id == 3:
			return nil, fmt.Errorf("unexpected options template set")
		case id < 256:
			return nil, fmt.Errorf("reserved set id %d", id)
		default:
			fs, ok := d.Templates[id]
			if !ok {
				return nil, fmt.Errorf("data set %d without its template", id)
			}
			size := 0
			for _, f := range fs {
				size += int(f.Len)
			}
			if size == 0 {
				return nil, fmt.Errorf("template %d has no fields", id)
			}
			for len(body) >= size {
				r := Record{Template: id, Fields: fs, Values: make([][]byte, len(fs))}
				for i, f := range fs {
					r.Values[i] = body[:f.Len:f.Len]
					body = body[f.Len:]
				}
				m.Records = append(m.Records, r)
			}
			if len(body) >= 4 {
				return nil, fmt.Errorf("data set %d: %d bytes left over (padding is shorter than a record)", id, len(body))
			}
		}
	}
	return m, nil
}

func num(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// Get returns the value of element id under enterprise number pen (0:
// IANA) and whether the record has it.
func (r *Record) Get(pen uint32, id uint16) ([]byte, bool) {
	for i, f := range r.Fields {
		if f.ID == id && f.PEN == pen {
			return r.Values[i], true
		}
	}
	return nil, false
}

// Uint returns an unsigned element's value (0 when absent).
func (r *Record) Uint(pen uint32, id uint16) uint64 {
	v, _ := r.Get(pen, id)
	return num(v)
}

// Flow maps the record's elements to an ipfix.Flow, setting Has for each
// optional group it finds whole. An element it does not know is an error.
func (d *Decoder) Flow(r *Record) (ipfix.Flow, error) {
	var f ipfix.Flow
	seen := map[Field]bool{}
	addr := func(b []byte) netip.Addr {
		a, _ := netip.AddrFromSlice(b)
		return a
	}
	for i, fl := range r.Fields {
		v := r.Values[i]
		key := Field{ID: fl.ID, PEN: fl.PEN}
		if seen[key] {
			return f, fmt.Errorf("element %d/%d twice", fl.PEN, fl.ID)
		}
		seen[key] = true
		switch {
		case fl.PEN == ipfix.ReversePEN && fl.ID == ipfix.IEOctetDeltaCount:
			f.RevOctets = num(v)
		case fl.PEN == ipfix.ReversePEN && fl.ID == ipfix.IEPacketDeltaCount:
			f.RevPackets = num(v)
		case fl.PEN != 0 && fl.PEN == d.MarkPEN && fl.ID == ipfix.MarkElement:
			f.Mark = uint32(num(v))
			f.Has |= ipfix.HasMark
		case fl.PEN != 0:
			return f, fmt.Errorf("unknown enterprise element %d/%d", fl.PEN, fl.ID)
		default:
			switch fl.ID {
			case ipfix.IESourceIPv4Address, ipfix.IESourceIPv6Address:
				f.Src = addr(v)
			case ipfix.IEDestinationIPv4Address, ipfix.IEDestinationIPv6Address:
				f.Dst = addr(v)
			case ipfix.IESourceTransportPort:
				f.SrcPort = uint16(num(v))
			case ipfix.IEDestinationTransportPort:
				f.DstPort = uint16(num(v))
			case ipfix.IEProtocolIdentifier:
				f.Proto = uint8(num(v))
			case ipfix.IEOctetDeltaCount:
				f.Octets = num(v)
			case ipfix.IEPacketDeltaCount:
				f.Packets = num(v)
			case ipfix.IEFlowStartMilliseconds:
				f.StartMs = num(v)
			case ipfix.IEFlowEndMilliseconds:
				f.EndMs = num(v)
			case ipfix.IEICMPTypeCodeIPv4, ipfix.IEICMPTypeCodeIPv6:
				if len(v) != 2 {
					return f, fmt.Errorf("icmpTypeCode of %d bytes", len(v))
				}
				f.ICMPType, f.ICMPCode = v[0], v[1]
				f.Has |= ipfix.HasICMP
			case ipfix.IEPostNATSourceIPv4Address, ipfix.IEPostNATSourceIPv6Address:
				f.PostSrc = addr(v)
			case ipfix.IEPostNATDestinationIPv4Address, ipfix.IEPostNATDestinationIPv6Address:
				f.PostDst = addr(v)
			case ipfix.IEPostNAPTSourceTransportPort:
				f.PostSrcPort = uint16(num(v))
			case ipfix.IEPostNAPTDestinationTransportPort:
				f.PostDstPort = uint16(num(v))
			case ipfix.IEFlowID:
				f.FlowID = num(v)
				f.Has |= ipfix.HasFlowID
			case ipfix.IEBiflowDirection:
				f.Direction = uint8(num(v))
				f.Has |= ipfix.HasDirection
			case ipfix.IEFlowEndReason:
				f.EndReason = uint8(num(v))
				f.Has |= ipfix.HasEndReason
			case ipfix.IEIngressVRFID:
				f.Zone = uint32(num(v))
				f.Has |= ipfix.HasZone
			default:
				return f, fmt.Errorf("unknown element %d", fl.ID)
			}
		}
	}
	both := func(a, b Field, g ipfix.Elems) error {
		switch {
		case seen[a] && seen[b]:
			f.Has |= g
		case seen[a] || seen[b]:
			return fmt.Errorf("element %d/%d without %d/%d", a.PEN, a.ID, b.PEN, b.ID)
		}
		return nil
	}
	if err := both(Field{ID: ipfix.IEFlowStartMilliseconds}, Field{ID: ipfix.IEFlowEndMilliseconds}, ipfix.HasTimes); err != nil {
		return f, err
	}
	if err := both(Field{ID: ipfix.IEOctetDeltaCount, PEN: ipfix.ReversePEN}, Field{ID: ipfix.IEPacketDeltaCount, PEN: ipfix.ReversePEN}, ipfix.HasReverse); err != nil {
		return f, err
	}
	if err := both(Field{ID: ipfix.IEPostNAPTSourceTransportPort}, Field{ID: ipfix.IEPostNAPTDestinationTransportPort}, ipfix.HasNAT); err != nil {
		return f, err
	}
	if f.Has&ipfix.HasNAT != 0 && (!f.PostSrc.IsValid() || !f.PostDst.IsValid()) {
		return f, fmt.Errorf("post-NAT ports without post-NAT addresses")
	}
	if !f.Src.IsValid() || !f.Dst.IsValid() || f.Src.Is4() != f.Dst.Is4() {
		return f, fmt.Errorf("addresses %v and %v", f.Src, f.Dst)
	}
	return f, nil
}
