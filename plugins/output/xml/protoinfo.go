package xml

import (
	"errors"

	"github.com/ulogd-go/ulogd/internal/nl"
)

// ctExtra is what the flow element needs beyond ctnl.Event: which
// optional attributes were present (ctnl reports a missing one as 0) and
// the protocol state from CTA_PROTOINFO, which ctnl does not decode.
type ctExtra struct {
	state                                  string
	hasTimeout, hasZone, hasUse, hasStatus bool
}

// Top-level ctnetlink attributes looked at here (enum ctattr_type).
const (
	ctaStatus    = 3  // CTA_STATUS
	ctaProtoInfo = 4  // CTA_PROTOINFO: nested, one child per protocol
	ctaTimeout   = 7  // CTA_TIMEOUT
	ctaUse       = 11 // CTA_USE
	ctaZone      = 18 // CTA_ZONE
)

// Children of CTA_PROTOINFO (enum ctattr_protoinfo); each holds a nested
// *_STATE attribute of type 1 with a u8 state.
const (
	ctaProtoInfoTCP   = 1 // CTA_PROTOINFO_TCP
	ctaProtoInfoDCCP  = 2 // CTA_PROTOINFO_DCCP
	ctaProtoInfoSCTP  = 3 // CTA_PROTOINFO_SCTP
	ctaProtoInfoState = 1 // CTA_PROTOINFO_{TCP,DCCP,SCTP}_STATE
)

var errProtoInfo = errors.New("malformed CTA_PROTOINFO")

// State names as libnetfilter_conntrack prints them; an unknown value
// prints the first (NONE), as it does.
var (
	tcpStates = [...]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
		"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}
	sctpStates = [...]string{"NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED",
		"SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT"}
	dccpStates = [...]string{"NONE", "REQUEST", "RESPOND", "PARTOPEN", "OPEN", "CLOSEREQ",
		"CLOSING", "TIMEWAIT"}
)

// decode walks the top-level attributes of a ctnetlink message payload
// (after struct nfgenmsg). ctnl.Decode has already validated the framing.
func (x *ctExtra) decode(payload []byte) error {
	*x = ctExtra{}
	if len(payload) < 4 {
		return nil
	}
	it := nl.Attrs(payload[4:])
	for it.Next() {
		switch it.Type() {
		case ctaStatus:
			x.hasStatus = true
		case ctaTimeout:
			x.hasTimeout = true
		case ctaUse:
			x.hasUse = true
		case ctaZone:
			x.hasZone = true
		case ctaProtoInfo:
			if err := x.decodeProtoInfo(it.Data()); err != nil {
				return err
			}
		}
	}
	return it.Err()
}

func (x *ctExtra) decodeProtoInfo(b []byte) error {
	it := nl.Attrs(b)
	for it.Next() {
		var names []string
		switch it.Type() {
		case ctaProtoInfoTCP:
			names = tcpStates[:]
		case ctaProtoInfoDCCP:
			names = dccpStates[:]
		case ctaProtoInfoSCTP:
			names = sctpStates[:]
		default:
			continue
		}
		in := nl.Attrs(it.Data())
		for in.Next() {
			if in.Type() != ctaProtoInfoState {
				continue
			}
			d := in.Data()
			if len(d) != 1 {
				return errProtoInfo
			}
			if int(d[0]) < len(names) {
				x.state = names[d[0]]
			} else {
				x.state = names[0]
			}
		}
		if in.Err() != nil {
			return errProtoInfo
		}
	}
	if it.Err() != nil {
		return errProtoInfo
	}
	return nil
}
