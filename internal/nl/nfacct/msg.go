package nfacct

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
)

// nfnetlink constants (linux/netfilter/nfnetlink.h, nfnetlink_acct.h).
const (
	subsysAcct = 7 // NFNL_SUBSYS_ACCT

	msgNew        = 0 // NFNL_MSG_ACCT_NEW
	msgGet        = 1 // NFNL_MSG_ACCT_GET
	msgGetCtrZero = 2 // NFNL_MSG_ACCT_GET_CTRZERO
	msgDel        = 3 // NFNL_MSG_ACCT_DEL

	attrName    = 1  // NFACCT_NAME: NUL-terminated string
	attrPkts    = 2  // NFACCT_PKTS: be64
	attrBytes   = 3  // NFACCT_BYTES: be64
	attrUse     = 4  // NFACCT_USE: be32
	attrFlags   = 5  // NFACCT_FLAGS: be32
	attrQuota   = 6  // NFACCT_QUOTA: be64
	nfgenLen    = 4  // struct nfgenmsg
	hdrLen      = 16 // struct nlmsghdr
	nfnlVersion = 0  // NFNETLINK_V0

	// NameMax is the longest object name the kernel accepts, in bytes
	// (NFACCT_NAME_MAX 32, including the terminating NUL).
	NameMax = 31
)

// Object flags (NFACCT_F_*).
const (
	FlagQuotaPkts  = 1 << 0 // the quota counts packets
	FlagQuotaBytes = 1 << 1 // the quota counts bytes
	FlagOverQuota  = 1 << 2 // the quota has been reached
)

// Object is one accounting object as the kernel reports it.
type Object struct {
	Name  string
	Pkts  uint64
	Bytes uint64
	Use   uint32 // references: the object itself plus every rule using it
	Flags uint32 // Flag* bits
	Quota uint64 // with FlagQuotaPkts or FlagQuotaBytes
}

// Decoding errors.
var (
	ErrShort     = errors.New("nfacct: message shorter than its nfgenmsg header")
	ErrNoName    = errors.New("nfacct: object without a name")
	ErrNoCounter = errors.New("nfacct: object without packet or byte counter")
	ErrType      = errors.New("nfacct: not an accounting object message")
)

// Decode decodes the payload of an accounting object message (nfgenmsg
// header, then attributes), as the kernel sends it in answer to a dump.
// An object must have a name and both counters; unknown attributes are
// skipped, attributes of a wrong length are errors.
func Decode(payload []byte) (Object, error) {
	var o Object
	if len(payload) < nfgenLen {
		return o, ErrShort
	}
	ad, err := netlink.NewAttributeDecoder(payload[nfgenLen:])
	if err != nil {
		return o, fmt.Errorf("nfacct: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	var name, pkts, bytes bool
	for ad.Next() {
		switch ad.Type() {
		case attrName:
			b := ad.Bytes()
			if n := len(b); n > 0 && b[n-1] == 0 {
				b = b[:n-1]
			}
			if len(b) == 0 || len(b) > NameMax {
				return o, fmt.Errorf("nfacct: object name of %d bytes (want 1 to %d)", len(b), NameMax)
			}
			o.Name, name = string(b), true
		case attrPkts:
			o.Pkts, pkts = ad.Uint64(), true
		case attrBytes:
			o.Bytes, bytes = ad.Uint64(), true
		case attrUse:
			o.Use = ad.Uint32()
		case attrFlags:
			o.Flags = ad.Uint32()
		case attrQuota:
			o.Quota = ad.Uint64()
		}
	}
	if err := ad.Err(); err != nil {
		return Object{}, fmt.Errorf("nfacct: %w", err)
	}
	switch {
	case !name:
		return Object{}, ErrNoName
	case !pkts || !bytes:
		return Object{}, fmt.Errorf("%w (%q)", ErrNoCounter, o.Name)
	}
	return o, nil
}

// isObject reports whether a netlink message type is an accounting object
// (NFNL_MSG_ACCT_NEW, which the kernel uses for dump answers).
func isObject(t netlink.HeaderType) bool {
	return t == netlink.HeaderType(subsysAcct<<8|msgNew)
}

// DecodeMessages decodes a sequence of netlink messages as read from the
// socket (one or several datagrams of a dump answer) and calls fn for
// every object in order. NLMSG_DONE ends the sequence; an NLMSG_ERROR is
// returned as an error; other control messages are skipped.
func DecodeMessages(b []byte, fn func(Object)) error {
	for len(b) > 0 {
		if len(b) < hdrLen {
			return fmt.Errorf("nfacct: %d trailing bytes, shorter than a netlink header", len(b))
		}
		l := int(binary.NativeEndian.Uint32(b))
		if l < hdrLen || l > len(b) {
			return fmt.Errorf("nfacct: netlink message length %d with %d bytes left", l, len(b))
		}
		typ := netlink.HeaderType(binary.NativeEndian.Uint16(b[4:]))
		data := b[hdrLen:l]
		b = b[min((l+3)&^3, len(b)):]
		switch {
		case typ == netlink.Done:
			return nil
		case typ == netlink.Error:
			if len(data) < 4 {
				return errors.New("nfacct: truncated netlink error message")
			}
			if code := int32(binary.NativeEndian.Uint32(data)); code != 0 {
				return fmt.Errorf("nfacct: kernel error %d", -code)
			}
			continue
		}
		if err := decodeMsg(typ, data, func(o Object, _ []byte) { fn(o) }); err != nil {
			return err
		}
	}
	return nil
}

// decodeMsg decodes one message of a dump answer other than NLMSG_DONE and
// NLMSG_ERROR: control messages are skipped, anything else must be an
// accounting object, handed to fn with its payload.
func decodeMsg(typ netlink.HeaderType, data []byte, fn func(Object, []byte)) error {
	if typ < 0x10 { // NLMSG_NOOP, NLMSG_OVERRUN, reserved control types
		return nil
	}
	if !isObject(typ) {
		return fmt.Errorf("%w (type %#x)", ErrType, uint16(typ))
	}
	o, err := Decode(data)
	if err != nil {
		return err
	}
	fn(o, data)
	return nil
}

// header builds the nfgenmsg that starts every request.
func header() []byte {
	return []byte{0 /* AF_UNSPEC */, nfnlVersion, 0, 0}
}

// encodeObject builds the payload of an NFNL_MSG_ACCT_NEW request.
func encodeObject(o Object) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(attrName, o.Name)
	ae.Uint64(attrPkts, o.Pkts)
	ae.Uint64(attrBytes, o.Bytes)
	if o.Flags&(FlagQuotaPkts|FlagQuotaBytes) != 0 {
		ae.Uint32(attrFlags, o.Flags&(FlagQuotaPkts|FlagQuotaBytes))
		ae.Uint64(attrQuota, o.Quota)
	}
	b, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	return append(header(), b...), nil
}
