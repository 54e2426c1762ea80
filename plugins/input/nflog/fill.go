package nflog

import (
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/nl/nflog"
)

// slots maps each output key to its record slot.
type slots [numKeys]keys.Slot

// fill stores the keys of one packet, with ulogd2's valid-when rules (see
// the README's key table). raw is the whole netlink message (key "raw"); label is
// numeric_label; now is called only when the kernel sent no usable
// timestamp. Byte values alias the packet's buffer.
func (sl *slots) fill(r *keys.Record, p *nflog.Packet, raw []byte, label uint8, now func() time.Time) {
	r.SetUint(sl[kFamily], uint64(p.Family))
	r.SetUint(sl[kLabel], uint64(label))
	if p.HasHdr {
		r.SetUint(sl[kHook], uint64(p.Hook))
		r.SetUint(sl[kProtocol], uint64(p.HwProtocol))
	}
	if p.HwHeaderLen != 0 {
		r.SetBytes(sl[kRawMAC], p.HwHeader)
		r.SetUint(sl[kRawMACLen], uint64(p.HwHeaderLen))
		r.SetUint(sl[kRawType], uint64(p.HwType))
	}
	if p.HasHwAddr {
		r.SetBytes(sl[kRawMACSaddr], p.HwAddr)
		r.SetUint(sl[kRawMACAddrLen], uint64(p.HwAddrLen))
	}
	if p.HasPayload {
		r.SetBytes(sl[kRawPkt], p.Payload)
		r.SetUint(sl[kRawPktLen], uint64(len(p.Payload)))
	}
	r.SetUint(sl[kRawPktCount], 1)
	if p.HasPrefix {
		r.SetBytes(sl[kPrefix], p.Prefix)
	}
	if p.HasTimestamp && p.TimestampSec != 0 {
		r.SetUint(sl[kTimeSec], p.TimestampSec&0xffffffff)
		r.SetUint(sl[kTimeUsec], p.TimestampUsec&0xffffffff)
	} else {
		t := now()
		r.SetUint(sl[kTimeSec], uint64(t.Unix())&0xffffffff)
		r.SetUint(sl[kTimeUsec], uint64(t.Nanosecond()/1000))
	}
	r.SetUint(sl[kMark], uint64(p.Mark))
	if p.IfIndexIn != 0 {
		r.SetUint(sl[kIfindexIn], uint64(p.IfIndexIn))
	}
	if p.IfIndexOut != 0 {
		r.SetUint(sl[kIfindexOut], uint64(p.IfIndexOut))
	}
	if p.HasUID {
		r.SetUint(sl[kUID], uint64(p.UID))
	}
	if p.HasGID {
		r.SetUint(sl[kGID], uint64(p.GID))
	}
	if p.HasSeq {
		r.SetUint(sl[kSeqLocal], uint64(p.Seq))
	}
	if p.HasSeqGlobal {
		r.SetUint(sl[kSeqGlobal], uint64(p.SeqGlobal))
	}
	r.SetBytes(sl[kRaw], raw)
	if p.HasCT {
		r.SetBytes(sl[kCT], p.CT)
	}
}
