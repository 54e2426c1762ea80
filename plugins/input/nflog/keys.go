package nflog

import "github.com/ulogd-go/ulogd/internal/keys"

// Output key indexes, in ulogd2's --info order.
const (
	kRawMAC = iota
	kRawPkt
	kRawPktLen
	kRawPktCount
	kPrefix
	kTimeSec
	kTimeUsec
	kMark
	kIfindexIn
	kIfindexOut
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
	kRaw
	kCT
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
	kIfindexIn:     {Name: "oob.ifindex_in", Type: keys.Uint32},
	kIfindexOut:    {Name: "oob.ifindex_out", Type: keys.Uint32},
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
	kRaw:           {Name: "raw", Type: keys.Raw},
	kCT:            {Name: "ct", Type: keys.Raw},
}

// OutputKeys returns the NFLOG output keys in declaration order.
func OutputKeys() []keys.Spec {
	out := make([]keys.Spec, numKeys)
	copy(out, outputKeys[:])
	return out
}
