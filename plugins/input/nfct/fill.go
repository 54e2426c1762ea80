package nfct

import (
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
)

// ct.event values (ulogd's NFCT_T_NEW/UPDATE/DESTROY).
const (
	eventNew     = 1
	eventUpdate  = 2
	eventDestroy = 4
)

// slots maps each output key to its record slot.
type slots [numKeys]keys.Slot

// setAddr stores an address aliasing b when it has an address length.
func setAddr(r *keys.Record, s keys.Slot, b []byte) {
	if len(b) == 4 || len(b) == 16 {
		r.SetBytes(s, b)
	}
}

// fillTuple fills the keys of one direction.
func (sl *slots) fillTuple(r *keys.Record, t *ctnl.Tuple, saddr, daddr, proto, sport, dport int) {
	setAddr(r, sl[saddr], t.Src)
	setAddr(r, sl[daddr], t.Dst)
	r.SetUint(sl[proto], uint64(t.Proto))
	if t.HasPorts && ctnl.PortsProto(t.Proto) {
		r.SetUint(sl[sport], uint64(t.SrcPort))
		r.SetUint(sl[dport], uint64(t.DstPort))
	}
}

// fill stores every key of ev except the flow.* times. event is the
// ct.event value; raw, when not nil, is the whole netlink message (ct key).
// Byte values alias ev's buffers: they stay valid until Emit returns.
func (sl *slots) fill(r *keys.Record, ev *ctnl.Event, event uint32, raw []byte) {
	sl.fillTuple(r, &ev.Orig, kOrigSaddr, kOrigDaddr, kOrigProto, kOrigSport, kOrigDport)
	sl.fillTuple(r, &ev.Reply, kReplySaddr, kReplyDaddr, kReplyProto, kReplySport, kReplyDport)
	// Counters are always valid: 0 when the kernel does not account.
	r.SetUint(sl[kOrigBytes], ev.OrigBytes)
	r.SetUint(sl[kOrigPackets], ev.OrigPackets)
	r.SetUint(sl[kReplyBytes], ev.ReplyBytes)
	r.SetUint(sl[kReplyPackets], ev.ReplyPackets)
	if ev.Orig.HasICMP {
		switch ev.Orig.Proto {
		case ctnl.ProtoICMP:
			r.SetUint(sl[kICMPCode], uint64(ev.Orig.ICMPCode))
			r.SetUint(sl[kICMPType], uint64(ev.Orig.ICMPType))
		case ctnl.ProtoICMPv6:
			r.SetUint(sl[kICMPv6Type], uint64(ev.Orig.ICMPType))
			r.SetUint(sl[kICMPv6Code], uint64(ev.Orig.ICMPCode))
		}
	}
	r.SetUint(sl[kMark], uint64(ev.Mark))
	r.SetUint(sl[kID], uint64(ev.ID))
	r.SetUint(sl[kEvent], uint64(event))
	r.SetUint(sl[kFamily], uint64(ev.Family))
	r.SetUint(sl[kOOBProto], 0)
	if raw != nil {
		r.SetBytes(sl[kCT], raw)
	}
	r.SetUint(sl[kZone], uint64(ev.Zone))
}

// timeval is a flow time as ulogd keeps it. A zero sec means "not set".
type timeval struct {
	sec, usec uint32
}

// nsToTimeval converts a kernel timestamp (ns since the epoch).
func nsToTimeval(ns uint64) timeval {
	return timeval{sec: uint32(ns / 1e9), usec: uint32(ns % 1e9 / 1e3)}
}

// timeToTimeval converts a wall-clock time.
func timeToTimeval(t time.Time) timeval {
	return timeval{sec: uint32(t.Unix()), usec: uint32(t.Nanosecond() / 1e3)}
}

// startOf returns the kernel's start timestamp of ev, or the zero timeval.
func startOf(ev *ctnl.Event) timeval {
	if ev.HasStart {
		return nsToTimeval(ev.Start)
	}
	return timeval{}
}

// stopOf returns the kernel's stop timestamp of ev, or the zero timeval.
func stopOf(ev *ctnl.Event) timeval {
	if ev.HasStop {
		return nsToTimeval(ev.Stop)
	}
	return timeval{}
}

// or returns t, or the fallback when t is not set.
func (t timeval) or(fallback timeval) timeval {
	if t.sec == 0 {
		return fallback
	}
	return t
}

// setTime stores t in the sec/usec pair; a zero second value leaves both
// invalid.
func (sl *slots) setTime(r *keys.Record, sec, usec int, t timeval) {
	if t.sec == 0 {
		return
	}
	r.SetUint(sl[sec], uint64(t.sec))
	r.SetUint(sl[usec], uint64(t.usec))
}

func (sl *slots) setStart(r *keys.Record, t timeval) { sl.setTime(r, kStartSec, kStartUsec, t) }
func (sl *slots) setEnd(r *keys.Record, t timeval)   { sl.setTime(r, kEndSec, kEndUsec, t) }
