package ctnl

import (
	"github.com/ulogd-go/ulogd/internal/nl"
)

// Top-level conntrack attributes (enum ctattr_type).
const (
	ctaTupleOrig     = 1  // CTA_TUPLE_ORIG: nested original-direction tuple
	ctaTupleReply    = 2  // CTA_TUPLE_REPLY: nested reply-direction tuple
	ctaStatus        = 3  // CTA_STATUS: be32 IPS_* status bits
	ctaProtoInfo     = 4  // CTA_PROTOINFO: nested TCP/SCTP/DCCP state (not decoded)
	ctaHelp          = 5  // CTA_HELP: nested helper name (not decoded)
	ctaNATSrc        = 6  // CTA_NAT_SRC: obsolete NAT info (not decoded)
	ctaTimeout       = 7  // CTA_TIMEOUT: be32 seconds until expiry
	ctaMark          = 8  // CTA_MARK: be32 connmark
	ctaCountersOrig  = 9  // CTA_COUNTERS_ORIG: nested counters, original direction
	ctaCountersReply = 10 // CTA_COUNTERS_REPLY: nested counters, reply direction
	ctaUse           = 11 // CTA_USE: be32 reference count
	ctaID            = 12 // CTA_ID: be32 conntrack id
	ctaNATDst        = 13 // CTA_NAT_DST: obsolete NAT info (not decoded)
	ctaTupleMaster   = 14 // CTA_TUPLE_MASTER: nested tuple of the master (not decoded)
	ctaSeqAdjOrig    = 15 // CTA_SEQ_ADJ_ORIG: nested TCP sequence adjustment (not decoded)
	ctaSeqAdjReply   = 16 // CTA_SEQ_ADJ_REPLY (not decoded)
	ctaSecmark       = 17 // CTA_SECMARK: obsolete (not decoded)
	ctaZone          = 18 // CTA_ZONE: be16 conntrack zone
	ctaSecCtx        = 19 // CTA_SECCTX: nested security context (not decoded)
	ctaTimestamp     = 20 // CTA_TIMESTAMP: nested start/stop times
	ctaMarkMask      = 21 // CTA_MARK_MASK: requests only
	ctaLabels        = 22 // CTA_LABELS: connlabel bitmap (not decoded)
	ctaLabelsMask    = 23 // CTA_LABELS_MASK: requests only
	ctaSynProxy      = 24 // CTA_SYNPROXY: nested synproxy state (not decoded)
	ctaFilter        = 25 // CTA_FILTER: requests only
	ctaStatusMask    = 26 // CTA_STATUS_MASK: requests only
	ctaTimestampEvt  = 27 // CTA_TIMESTAMP_EVENT: be64 event time in ns (not decoded)
	ctaMaxKnown      = ctaTimestampEvt
)

// EventType is the kind of a conntrack event, with ulogd's ct.event values
// (which are also the event_mask bits).
type EventType uint8

// Event types.
const (
	New     EventType = 1 // IPCTNL_MSG_CT_NEW with NLM_F_CREATE or NLM_F_EXCL
	Update  EventType = 2 // any other IPCTNL_MSG_CT_NEW (events, dump and get replies)
	Destroy EventType = 4 // IPCTNL_MSG_CT_DELETE

	EventNew     = New     // alias of New
	EventUpdate  = Update  // alias of Update
	EventDestroy = Destroy // alias of Destroy
)

// String returns NEW, UPDATE, DESTROY or UNKNOWN.
func (t EventType) String() string {
	switch t {
	case New:
		return "NEW"
	case Update:
		return "UPDATE"
	case Destroy:
		return "DESTROY"
	}
	return "UNKNOWN"
}

// Event is a decoded conntrack message: an event, or one entry of a dump or
// get reply. Byte slices alias the message buffer.
type Event struct {
	Type   EventType
	Family uint8 // nfgenmsg.nfgen_family: 2 (AF_INET) or 10 (AF_INET6)

	Orig, Reply Tuple // CTA_TUPLE_ORIG, CTA_TUPLE_REPLY

	// CTA_COUNTERS_ORIG/REPLY, 64- or 32-bit. Present when the kernel
	// accounts (nf_conntrack_acct=1).
	OrigPackets, OrigBytes, ReplyPackets, ReplyBytes uint64
	HasCounters                                      bool

	Mark    uint32 // CTA_MARK
	HasMark bool
	ID      uint32 // CTA_ID
	HasID   bool
	Status  uint32 // CTA_STATUS, 0 if absent (DESTROY events omit it on some kernels)
	Timeout uint32 // CTA_TIMEOUT in seconds, 0 if absent
	Zone    uint16 // CTA_ZONE, 0 if absent (the default zone)
	Use     uint32 // CTA_USE, 0 if absent

	// CTA_TIMESTAMP_START/STOP in ns since the epoch (nf_conntrack_timestamp=1).
	Start, Stop       uint64
	HasStart, HasStop bool

	// Unknown counts top-level attributes this decoder does not know
	// (types newer than CTA_TIMESTAMP_EVENT). Known attributes that are not
	// decoded (protoinfo, helper, labels, ...) are not counted.
	Unknown int
}

// Decode decodes a ctnetlink message into ev, which it resets first. It
// accepts IPCTNL_MSG_CT_NEW (NEW if NLM_F_CREATE or NLM_F_EXCL is set, else
// UPDATE; dump and get replies decode as UPDATE) and IPCTNL_MSG_CT_DELETE
// (DESTROY). Unknown and padding attributes are skipped; malformed input is
// an error, never a panic. Decode does not allocate unless it fails.
func Decode(m nl.Msg, ev *Event) error {
	*ev = Event{}
	if m.Type>>8 != nfnlSubsysCTNetlink {
		return ErrNotConntrack
	}
	switch m.Type & 0xff {
	case ipctnlMsgCtNew:
		if m.Flags&(nlmFCreate|nlmFExcl) != 0 {
			ev.Type = New
		} else {
			ev.Type = Update
		}
	case ipctnlMsgCtDelete:
		ev.Type = Destroy
	default:
		return ErrMsgType
	}
	if len(m.Payload) < nfgenmsgLen {
		return ErrShortMsg
	}
	ev.Family = m.Payload[0]
	it := nl.Attrs(m.Payload[nfgenmsgLen:])
	for it.Next() {
		d := it.Data()
		var err error
		switch it.Type() {
		case ctaTupleOrig:
			err = decodeTuple(d, &ev.Orig)
		case ctaTupleReply:
			err = decodeTuple(d, &ev.Reply)
		case ctaStatus:
			ev.Status, err = be32Attr("CTA_STATUS", d)
		case ctaTimeout:
			ev.Timeout, err = be32Attr("CTA_TIMEOUT", d)
		case ctaMark:
			ev.Mark, err = be32Attr("CTA_MARK", d)
			ev.HasMark = err == nil
		case ctaCountersOrig:
			err = decodeCounters(d, &ev.OrigPackets, &ev.OrigBytes)
			ev.HasCounters = true
		case ctaCountersReply:
			err = decodeCounters(d, &ev.ReplyPackets, &ev.ReplyBytes)
			ev.HasCounters = true
		case ctaUse:
			ev.Use, err = be32Attr("CTA_USE", d)
		case ctaID:
			ev.ID, err = be32Attr("CTA_ID", d)
			ev.HasID = err == nil
		case ctaZone:
			if len(d) != 2 {
				err = attrSizeError("CTA_ZONE", len(d))
			}
			ev.Zone = nl.BE16(d)
		case ctaTimestamp:
			err = decodeTimestamp(d, ev)
		default:
			if it.Type() == 0 || it.Type() > ctaMaxKnown {
				ev.Unknown++
			}
			// Known but not needed by ulogd's keys: protoinfo, helper, NAT,
			// master tuple, seqadj, secmark, secctx, labels, synproxy,
			// request-only attributes and the event timestamp.
		}
		if err != nil {
			return err
		}
	}
	return it.Err()
}

func be32Attr(name string, d []byte) (uint32, error) {
	if len(d) != 4 {
		return 0, attrSizeError(name, len(d))
	}
	return nl.BE32(d), nil
}
