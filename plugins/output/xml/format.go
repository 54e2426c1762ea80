package xml

import (
	"errors"
	"net/netip"
	"strconv"
	"time"

	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
	"github.com/ulogd-go/ulogd/internal/nl/nfacct"
	"github.com/ulogd-go/ulogd/internal/nl/nflog"
)

// formatter renders packets and flows in the element layout of
// libnetfilter_log's and libnetfilter_conntrack's XML output, which ulogd2
// uses. It keeps its decode state between events to avoid allocating.
type formatter struct {
	pkt     nflog.Packet
	ev      ctnl.Event
	extra   ctExtra
	scratch []byte // NFLOG's ct attributes re-framed as a message
}

var errShortRaw = errors.New("not a netlink message")

const hexDigits = "0123456789abcdef"

// appendWhen appends <when>…</when> for t in local time.
func appendWhen(b []byte, t time.Time) []byte {
	b = append(b, "<when>"...)
	b = appendTime(b, t)
	return append(b, "</when>"...)
}

// appendTime appends the fields of struct tm for t in local time (wday 1
// = Sunday, as the C libraries print tm_wday+1).
func appendTime(b []byte, t time.Time) []byte {
	year, month, day := t.Date()
	hour, min, sec := t.Clock()
	b = append(b, "<hour>"...)
	b = strconv.AppendInt(b, int64(hour), 10)
	b = append(b, "</hour><min>"...)
	b = append2(b, min)
	b = append(b, "</min><sec>"...)
	b = append2(b, sec)
	b = append(b, "</sec><wday>"...)
	b = strconv.AppendInt(b, int64(t.Weekday())+1, 10)
	b = append(b, "</wday><day>"...)
	b = strconv.AppendInt(b, int64(day), 10)
	b = append(b, "</day><month>"...)
	b = strconv.AppendInt(b, int64(month), 10)
	b = append(b, "</month><year>"...)
	b = strconv.AppendInt(b, int64(year), 10)
	return append(b, "</year>"...)
}

// appendSum appends the <obj> element of an accounting object (the NFACCT
// "sum" key: its nfnetlink_acct message), as libnetfilter_acct prints it
// with the time fields: counters with 20 digits, then the time of the
// line without a <when> wrapper.
func appendSum(b, msg []byte, t time.Time) ([]byte, error) {
	o, err := nfacct.Decode(msg)
	if err != nil {
		return b, err
	}
	b = append(b, "<obj><name>"...)
	b = appendEscaped(b, []byte(o.Name))
	b = append(b, "</name><pkts>"...)
	b = append20(b, o.Pkts)
	b = append(b, "</pkts><bytes>"...)
	b = append20(b, o.Bytes)
	b = append(b, "</bytes>"...)
	b = appendTime(b, t)
	return append(b, "</obj>"...), nil
}

// append20 appends v with 20 digits, zero-padded.
func append20(b []byte, v uint64) []byte {
	var d [20]byte
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, d[:]...)
}

// append2 appends n (0–99) with two digits.
func append2(b []byte, n int) []byte {
	return append(b, byte('0'+n/10%10), byte('0'+n%10))
}

func appendHex(b, data []byte) []byte {
	for _, c := range data {
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

// appendEscaped appends s with the five XML special characters escaped.
// Control characters other than tab are not allowed in XML 1.0: they are
// written as U+FFFD.
func appendEscaped(b, s []byte) []byte {
	for _, c := range s {
		switch c {
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '&':
			b = append(b, "&amp;"...)
		case '"':
			b = append(b, "&quot;"...)
		case '\'':
			b = append(b, "&apos;"...)
		default:
			if c < 0x20 && c != '\t' {
				b = append(b, "\uFFFD"...)
			} else {
				b = append(b, c)
			}
		}
	}
	return b
}

func appendTag(b []byte, tag string, v uint64) []byte {
	b = append(b, '<')
	b = append(b, tag...)
	b = append(b, '>')
	b = strconv.AppendUint(b, v, 10)
	b = append(b, "</"...)
	b = append(b, tag...)
	return append(b, '>')
}

// appendPacket appends the <log> element of an nfnetlink_log message (the
// NFLOG "raw" key) and returns the packet's family.
func (f *formatter) appendPacket(b, raw []byte, when time.Time) ([]byte, uint8, error) {
	m, _, err := nl.NextMsg(raw)
	if err != nil {
		return b, 0, errShortRaw
	}
	p := &f.pkt
	if err := nflog.Decode(m, p); err != nil {
		return b, 0, err
	}
	b = append(b, "<log>"...)
	b = appendWhen(b, when)
	if p.HasPrefix {
		b = append(b, "<prefix>"...)
		b = appendEscaped(b, p.Prefix)
		b = append(b, "</prefix>"...)
	}
	if p.HasHdr {
		b = appendTag(b, "hook", uint64(p.Hook))
		b = append(b, "<hw><proto>"...)
		b = append(b, hexDigits[p.HwProtocol>>12], hexDigits[p.HwProtocol>>8&0xf],
			hexDigits[p.HwProtocol>>4&0xf], hexDigits[p.HwProtocol&0xf])
		b = append(b, "</proto>"...)
		if p.HasHwAddr {
			b = append(b, "<src>"...)
			b = appendHex(b, p.HwAddr)
			b = append(b, "</src>"...)
		}
		b = append(b, "</hw>"...)
	}
	if p.HasMark && p.Mark != 0 {
		b = appendTag(b, "mark", uint64(p.Mark))
	}
	for _, d := range [...]struct {
		tag string
		v   uint32
	}{{"indev", p.IfIndexIn}, {"outdev", p.IfIndexOut}, {"physindev", p.IfIndexPhysIn}, {"physoutdev", p.IfIndexPhysOut}} {
		if d.v != 0 {
			b = appendTag(b, d.tag, uint64(d.v))
		}
	}
	if p.HasPayload {
		b = append(b, "<payload>"...)
		b = appendHex(b, p.Payload)
		b = append(b, "</payload>"...)
	}
	return append(b, "</log>"...), p.Family, nil
}

// appendFlowMsg appends the <flow> element of a ctnetlink message (the
// NFCT "ct" key).
func (f *formatter) appendFlowMsg(b, raw []byte, when time.Time) ([]byte, error) {
	m, _, err := nl.NextMsg(raw)
	if err != nil {
		return b, errShortRaw
	}
	return f.appendFlow(b, m, when)
}

// appendFlowAttrs appends the <flow> element of the conntrack attributes
// NFLOG attaches to a packet (NFULA_CT).
func (f *formatter) appendFlowAttrs(b, attrs []byte, family uint8, when time.Time) ([]byte, error) {
	f.scratch = append(f.scratch[:0], family, 0, 0, 0)
	f.scratch = append(f.scratch, attrs...)
	m := nl.Msg{Type: ctnlSubsys << 8, Payload: f.scratch}
	return f.appendFlow(b, m, when)
}

const (
	ctnlSubsys = 1 // NFNL_SUBSYS_CTNETLINK

	ipsSeenReply = 1 << 1 // IPS_SEEN_REPLY
	ipsAssured   = 1 << 2 // IPS_ASSURED
)

func (f *formatter) appendFlow(b []byte, m nl.Msg, when time.Time) ([]byte, error) {
	ev := &f.ev
	if err := ctnl.Decode(m, ev); err != nil {
		return b, err
	}
	x := &f.extra
	if err := x.decode(m.Payload); err != nil {
		return b, err
	}
	b = append(b, "<flow>"...)
	b = appendTuple(b, "original", &ev.Orig, ev.Family, ev.HasCounters, ev.OrigPackets, ev.OrigBytes)
	b = appendTuple(b, "reply", &ev.Reply, ev.Family, ev.HasCounters, ev.ReplyPackets, ev.ReplyBytes)
	if x.state != "" || x.hasTimeout || ev.HasMark || x.hasZone || x.hasUse || x.hasStatus || ev.HasID ||
		ev.HasStart || ev.HasStop {
		b = append(b, `<meta direction="independent">`...)
		if x.state != "" {
			b = append(b, "<state>"...)
			b = append(b, x.state...)
			b = append(b, "</state>"...)
		}
		if x.hasTimeout {
			b = appendTag(b, "timeout", uint64(ev.Timeout))
		}
		if ev.HasMark {
			b = appendTag(b, "mark", uint64(ev.Mark))
		}
		if x.hasZone {
			b = appendTag(b, "zone", uint64(ev.Zone))
		}
		if x.hasUse {
			b = appendTag(b, "use", uint64(ev.Use))
		}
		if ev.HasID {
			b = appendTag(b, "id", uint64(ev.ID))
		}
		if x.hasStatus && ev.Status&ipsAssured != 0 {
			b = append(b, "<assured/>"...)
		}
		if x.hasStatus && ev.Status&ipsSeenReply == 0 {
			b = append(b, "<unreplied/>"...)
		}
		b = appendDeltatime(b, ev, when)
		b = append(b, "</meta>"...)
	}
	b = appendWhen(b, when)
	return append(b, "</flow>"...), nil
}

// appendDeltatime appends <deltatime>, the flow's age in whole seconds, as
// libnetfilter_conntrack prints it when the event carries kernel
// timestamps (nf_conntrack_timestamp=1): stop − start for a flow that
// ended (DESTROY), else now − start, now being the line's <when>.
func appendDeltatime(b []byte, ev *ctnl.Event, now time.Time) []byte {
	const nsPerSec = uint64(time.Second)
	switch {
	case ev.HasStart && ev.HasStop:
		return appendTag(b, "deltatime", (ev.Stop-ev.Start)/nsPerSec)
	case ev.HasStart:
		return appendTag(b, "deltatime", uint64(now.Unix()-int64(ev.Start/nsPerSec)))
	}
	return b
}

func appendTuple(b []byte, dir string, t *ctnl.Tuple, family uint8, counters bool, pkts, bytes uint64) []byte {
	b = append(b, `<meta direction="`...)
	b = append(b, dir...)
	b = append(b, `"><layer3 protonum="`...)
	l3 := family
	switch {
	case len(t.Src) == 4 || len(t.Dst) == 4:
		l3 = 2
	case len(t.Src) == 16 || len(t.Dst) == 16:
		l3 = 10
	}
	b = strconv.AppendUint(b, uint64(l3), 10)
	b = append(b, `" protoname="`...)
	b = append(b, l3Name(l3)...)
	b = append(b, `">`...)
	b = appendAddr(b, "src", t.Src)
	b = appendAddr(b, "dst", t.Dst)
	b = append(b, `</layer3><layer4 protonum="`...)
	b = strconv.AppendUint(b, uint64(t.Proto), 10)
	b = append(b, `" protoname="`...)
	b = append(b, l4Name(t.Proto)...)
	b = append(b, `">`...)
	switch t.Proto {
	case 6, 17, 33, 132, 136: // TCP, UDP, DCCP, SCTP, UDPLite
		b = appendTag(b, "sport", uint64(t.SrcPort))
		b = appendTag(b, "dport", uint64(t.DstPort))
	case 47: // GRE: the keys, in hex
		b = append(b, "<srckey>0x"...)
		b = strconv.AppendUint(b, uint64(t.SrcPort), 16)
		b = append(b, "</srckey><dstkey>0x"...)
		b = strconv.AppendUint(b, uint64(t.DstPort), 16)
		b = append(b, "</dstkey>"...)
	}
	b = append(b, "</layer4>"...)
	if t.HasZone {
		b = appendTag(b, "zone", uint64(t.Zone))
	}
	if counters {
		b = append(b, "<counters>"...)
		b = appendTag(b, "packets", pkts)
		b = appendTag(b, "bytes", bytes)
		b = append(b, "</counters>"...)
	}
	return append(b, "</meta>"...)
}

func appendAddr(b []byte, tag string, a []byte) []byte {
	var ip netip.Addr
	switch len(a) {
	case 4:
		ip = netip.AddrFrom4([4]byte(a))
	case 16:
		ip = netip.AddrFrom16([16]byte(a))
	default:
		return b
	}
	b = append(b, '<')
	b = append(b, tag...)
	b = append(b, '>')
	b = ip.AppendTo(b)
	b = append(b, "</"...)
	b = append(b, tag...)
	return append(b, '>')
}

func l3Name(f uint8) string {
	switch f {
	case 2:
		return "ipv4"
	case 10:
		return "ipv6"
	}
	return "unknown"
}

func l4Name(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 33:
		return "dccp"
	case 47:
		return "gre"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	case 136:
		return "udplite"
	}
	return "unknown"
}
