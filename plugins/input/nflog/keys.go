package nflog

import (
	"slices"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/keys/pktkeys"
)

// Output key indexes, in ulogd2's --info order: the packet keys (package
// pktkeys, with the interfaces as indexes), then raw and ct.
const (
	kRawMAC        = pktkeys.RawMAC
	kRawPkt        = pktkeys.RawPkt
	kRawPktLen     = pktkeys.RawPktLen
	kRawPktCount   = pktkeys.RawPktCount
	kPrefix        = pktkeys.Prefix
	kTimeSec       = pktkeys.TimeSec
	kTimeUsec      = pktkeys.TimeUsec
	kMark          = pktkeys.Mark
	kIfindexIn     = pktkeys.IfIn
	kIfindexOut    = pktkeys.IfOut
	kHook          = pktkeys.Hook
	kRawMACLen     = pktkeys.RawMACLen
	kSeqLocal      = pktkeys.SeqLocal
	kSeqGlobal     = pktkeys.SeqGlobal
	kFamily        = pktkeys.Family
	kProtocol      = pktkeys.Protocol
	kUID           = pktkeys.UID
	kGID           = pktkeys.GID
	kLabel         = pktkeys.Label
	kRawType       = pktkeys.RawType
	kRawMACSaddr   = pktkeys.RawMACSaddr
	kRawMACAddrLen = pktkeys.RawMACAddrLen
)

// NFLOG's own keys.
const (
	kRaw = pktkeys.N + iota
	kCT
	numKeys
)

// outputKeys are the output keys, indexed as above.
var outputKeys = pktkeys.Table(pktkeys.IfIndexIn, pktkeys.IfIndexOut,
	keys.Spec{Name: "raw", Type: keys.Raw},
	keys.Spec{Name: "ct", Type: keys.Raw},
)

// OutputKeys returns the NFLOG output keys in declaration order.
func OutputKeys() []keys.Spec { return slices.Clone(outputKeys) }
