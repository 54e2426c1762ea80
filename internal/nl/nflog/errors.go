package nflog

import "errors"

// Sentinel errors. Compare with errors.Is.
var (
	// ErrNotPacket: the message is not an NFULNL_MSG_PACKET of the
	// nfnetlink_log subsystem.
	ErrNotPacket = errors.New("nflog: not an nfnetlink_log packet message")

	// ErrShortMsg: the payload is shorter than struct nfgenmsg.
	ErrShortMsg = errors.New("nflog: message shorter than the nfnetlink header")

	// ErrAttrSize: an attribute is too short for its type.
	ErrAttrSize = errors.New("nflog: attribute too short for its type")

	// ErrNoAck: no acknowledgement arrived for a configuration request
	// before the deadline.
	ErrNoAck = errors.New("nflog: no answer to the configuration request")
)

// attrError is ErrAttrSize for one attribute. The values are built once
// (below), so that reporting them does not allocate.
type attrError string

func (e attrError) Error() string        { return "nflog: " + string(e) + " attribute too short for its type" }
func (e attrError) Is(target error) bool { return target == ErrAttrSize }

var (
	errPacketHdr error = attrError("NFULA_PACKET_HDR")
	errMark      error = attrError("NFULA_MARK")
	errTimestamp error = attrError("NFULA_TIMESTAMP")
	errIfindex   error = attrError("NFULA_IFINDEX_*")
	errHwaddr    error = attrError("NFULA_HWADDR")
	errUID       error = attrError("NFULA_UID")
	errGID       error = attrError("NFULA_GID")
	errSeq       error = attrError("NFULA_SEQ")
	errSeqGlobal error = attrError("NFULA_SEQ_GLOBAL")
	errHwtype    error = attrError("NFULA_HWTYPE")
	errHwlen     error = attrError("NFULA_HWLEN")
	errCTInfo    error = attrError("NFULA_CT_INFO")
)
