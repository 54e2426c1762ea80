package unixsock

import "github.com/ulogd-go/ulogd/internal/keys"

// Output key indexes, in ulogd2's --info order (spec Appendix A.1). Most of
// the NFLOG-like keys are declared for compatibility and never set: NuFW
// sends no MAC header, mark, hook, sequence numbers or uid/gid.
const (
	kRawMAC = iota
	kRawPkt
	kRawPktLen
	kRawPktCount
	kPrefix
	kTimeSec
	kTimeUsec
	kMark
	kIn
	kOut
	kHook
	kRawMACLen
	kSeqLocal
	kSeqGlobal
	kFamily
	kProtocol
	kUID
	kGID
	kLabel
	kRawType
	kRawMACSaddr
	kRawMACAddrLen
	kUserName
	kUserID
	kOSName
	kOSRel
	kOSVers
	kAppName
	numKeys
)

var outputKeys = [numKeys]keys.Spec{
	kRawMAC:        {Name: "raw.mac", Type: keys.Raw},
	kRawPkt:        {Name: "raw.pkt", Type: keys.Raw},
	kRawPktLen:     {Name: "raw.pktlen", Type: keys.Uint32},
	kRawPktCount:   {Name: "raw.pktcount", Type: keys.Uint32},
	kPrefix:        {Name: "oob.prefix", Type: keys.String},
	kTimeSec:       {Name: "oob.time.sec", Type: keys.Uint32},
	kTimeUsec:      {Name: "oob.time.usec", Type: keys.Uint32},
	kMark:          {Name: "oob.mark", Type: keys.Uint32},
	kIn:            {Name: "oob.in", Type: keys.String},
	kOut:           {Name: "oob.out", Type: keys.String},
	kHook:          {Name: "oob.hook", Type: keys.Uint8},
	kRawMACLen:     {Name: "raw.mac_len", Type: keys.Uint16},
	kSeqLocal:      {Name: "oob.seq.local", Type: keys.Uint32},
	kSeqGlobal:     {Name: "oob.seq.global", Type: keys.Uint32},
	kFamily:        {Name: "oob.family", Type: keys.Uint8},
	kProtocol:      {Name: "oob.protocol", Type: keys.Uint16},
	kUID:           {Name: "oob.uid", Type: keys.Uint32},
	kGID:           {Name: "oob.gid", Type: keys.Uint32},
	kLabel:         {Name: "raw.label", Type: keys.Uint8},
	kRawType:       {Name: "raw.type", Type: keys.Uint16},
	kRawMACSaddr:   {Name: "raw.mac.saddr", Type: keys.Raw},
	kRawMACAddrLen: {Name: "raw.mac.addrlen", Type: keys.Uint16},
	kUserName:      {Name: "nufw.user.name", Type: keys.String},
	kUserID:        {Name: "nufw.user.id", Type: keys.Uint32},
	kOSName:        {Name: "nufw.os.name", Type: keys.String},
	kOSRel:         {Name: "nufw.os.rel", Type: keys.String},
	kOSVers:        {Name: "nufw.os.vers", Type: keys.String},
	kAppName:       {Name: "nufw.app.name", Type: keys.String},
}

// OutputKeys returns the UNIXSOCK output keys in declaration order.
func OutputKeys() []keys.Spec {
	out := make([]keys.Spec, numKeys)
	copy(out, outputKeys[:])
	return out
}

// slots maps output key indexes to record slots.
type slots [numKeys]keys.Slot
