// Package ipfix is the IPFIX sink: conntrack flows exported as IPFIX
// (RFC 7011) records over UDP or TCP to a flow collector (nfdump's nfcapd,
// pmacct's nfacctd, Wireshark, ...), IPv4 and IPv6, with 64-bit counters
// per direction, millisecond start and end times, NAT translations, ICMP
// type and code, and the conntrack id, zone and mark.
//
// The walk turns each flow into one or two queued records (internal/ipfix
// AppendRecord) and never waits: records are held until they fill a
// message or are a second old, then handed to a bounded queue
// (internal/sinkq) whose writer goroutine packs them into messages for the
// current connection: templates and sequence numbers belong to that
// connection (the transport session), so a new TCP connection starts
// clean. What does not fit in the queue is dropped and counted, or
// spooled to disk under overflow=spool (sinkq.Options): spooled records
// come back through the same writer and encoder, in order.
package ipfix

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/ipfix"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sinkq"
)

// Config holds IPFIX's options: ulogd2's six, then the additions.
type Config struct {
	OID          int    `ulogd:"oid"`
	Host         string `ulogd:"host"`
	Port         int    `ulogd:"port"`
	Proto        string `ulogd:"proto"`
	MTU          int    `ulogd:"mtu"`
	SendTemplate string `ulogd:"send_template"`

	TemplateRefresh int `ulogd:"template_refresh"` // seconds, UDP; 0: never again
	Biflow          int `ulogd:"biflow"`           // 1: one RFC 5103 record per flow
	MarkPEN         int `ulogd:"mark_pen"`         // enterprise number of the mark element; 0: no mark

	// The send queue: queue_records, queue_bytes (0: 128 bytes per
	// record of queue_records), overflow, spool_dir, spool_size.
	sinkq.Options
}

// newConfig: the queue's defaults are the shared ones but for its bounds,
// 65536 records and 128 bytes of memory for each (queue_bytes=0).
func newConfig() *Config {
	q := sinkq.DefaultOptions()
	q.QueueRecords, q.QueueBytes = 65536, 0
	return &Config{
		Port:            4739,
		Proto:           "tcp",
		MTU:             512,
		SendTemplate:    "once",
		TemplateRefresh: 60,
		Options:         q,
	}
}

// Input key indexes: ulogd2's fourteen (mandatory), then the optional
// ones.
const (
	inOrigSaddr = iota
	inOrigDaddr
	inOrigPackets
	inOrigBytes
	inReplyPackets
	inReplyBytes
	inStartSec
	inStartUsec
	inEndSec
	inEndUsec
	inOrigSport
	inOrigDport
	inProto
	inMark
	// Optional.
	inReplySaddr
	inReplyDaddr
	inReplySport
	inReplyDport
	inICMPType
	inICMPCode
	inICMPv6Type
	inICMPv6Code
	inID
	inEvent
	inZone
	numInputs
)

var inputs = [numInputs]keys.Spec{
	inOrigSaddr:    {Name: "orig.ip.saddr", Type: keys.IPAddr},
	inOrigDaddr:    {Name: "orig.ip.daddr", Type: keys.IPAddr},
	inOrigPackets:  {Name: "orig.raw.pktcount", Type: keys.Uint64},
	inOrigBytes:    {Name: "orig.raw.pktlen", Type: keys.Uint64},
	inReplyPackets: {Name: "reply.raw.pktcount", Type: keys.Uint64},
	inReplyBytes:   {Name: "reply.raw.pktlen", Type: keys.Uint64},
	inStartSec:     {Name: "flow.start.sec", Type: keys.Uint32},
	inStartUsec:    {Name: "flow.start.usec", Type: keys.Uint32},
	inEndSec:       {Name: "flow.end.sec", Type: keys.Uint32},
	inEndUsec:      {Name: "flow.end.usec", Type: keys.Uint32},
	inOrigSport:    {Name: "orig.l4.sport", Type: keys.Uint16},
	inOrigDport:    {Name: "orig.l4.dport", Type: keys.Uint16},
	inProto:        {Name: "orig.ip.protocol", Type: keys.Uint8},
	inMark:         {Name: "ct.mark", Type: keys.Uint32},
	inReplySaddr:   {Name: "reply.ip.saddr", Type: keys.IPAddr, Flags: keys.Optional},
	inReplyDaddr:   {Name: "reply.ip.daddr", Type: keys.IPAddr, Flags: keys.Optional},
	inReplySport:   {Name: "reply.l4.sport", Type: keys.Uint16, Flags: keys.Optional},
	inReplyDport:   {Name: "reply.l4.dport", Type: keys.Uint16, Flags: keys.Optional},
	inICMPType:     {Name: "icmp.type", Type: keys.Uint8, Flags: keys.Optional},
	inICMPCode:     {Name: "icmp.code", Type: keys.Uint8, Flags: keys.Optional},
	inICMPv6Type:   {Name: "icmpv6.type", Type: keys.Uint8, Flags: keys.Optional},
	inICMPv6Code:   {Name: "icmpv6.code", Type: keys.Uint8, Flags: keys.Optional},
	inID:           {Name: "ct.id", Type: keys.Uint32, Flags: keys.Optional},
	inEvent:        {Name: "ct.event", Type: keys.Uint32, Flags: keys.Optional},
	inZone:         {Name: "ct.zone", Type: keys.Uint16, Flags: keys.Optional},
}

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the IPFIX plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "IPFIX",
		Kind:      plugin.Sink,
		Summary:   "export flows as IPFIX records to a collector over UDP or TCP (nfdump, pmacct, Wireshark)",
		Input:     plugin.DTFlow,
		Output:    plugin.DTSink,
		NewConfig: newConfig,
		Options: queueDocs(map[string]string{
			"oid":              "observation domain id, 1 to 4294967295 (mandatory: 0 is an error)",
			"host":             "collector: an IPv4 or IPv6 address (`::1`, `[fd00::1]`) or a name, resolved at each connection (mandatory)",
			"port":             "collector port",
			"proto":            "`tcp` or `udp` (nfdump's nfcapd and pmacct's nfacctd take UDP only)",
			"mtu":              "largest message in bytes: at least 253 (265 with `mark_pen`), at most 65507 over UDP; 1400 suits most links",
			"send_template":    "`once`: a template before the first record that uses it, per connection (and every `template_refresh` over UDP); `never`; anything else: in every message that uses it",
			"template_refresh": "UDP: seconds between two sendings of the templates; 0: once",
			"biflow":           "1: one record per flow with the RFC 5103 reverse counters, instead of one record per direction",
			"mark_pen":         "your IANA private enterprise number: `ct.mark` is exported as its element 1; 0: the mark is not exported",
		}),
		Sample: sample,
		Keys:   func(*Config) ([]keys.Spec, []keys.Spec, error) { return inputs[:], nil, nil },
		// The spool directory, when there is one (overflow=spool).
		Resources: func(c *Config) []string { return c.Options.Resources() },
		// New checks the values (--check builds every instance): the
		// defaults have no oid and no host, which Keys must accept.
		New: newSink,
	})
}

// queueDocs adds the queue options' descriptions to docs (IPFIX's own
// words for queue_records and queue_bytes).
func queueDocs(docs map[string]string) map[string]string {
	sinkq.AddOptionDocs(docs)
	docs["queue_records"] = "records the send queue holds in memory (at most 1048576); more are dropped and counted, or see `overflow`"
	docs["queue_bytes"] = "bytes the send queue holds in memory; 0: 128 for each of `queue_records`"
	return docs
}

// maxQueueRecords bounds queue_records: the queue takes 128 bytes per
// record (records are 31 to about 150 bytes long, 60 to 80 for most).
const maxQueueRecords = 1 << 20

// options is a Config checked and decoded.
type options struct {
	domain  uint32
	network string // "udp" or "tcp"
	addr    string // host:port for net.Dial
	mtu     int
	mode    ipfix.TemplateMode
	refresh time.Duration
	biflow  bool
	markPEN uint32
	queue   sinkq.Options // queue_bytes resolved
}

// check validates cfg: every error is one that --check reports.
func check(cfg *Config) (options, error) {
	var o options
	var errs []error
	bad := func(option, format string, args ...any) {
		errs = append(errs, config.OptionErrorf(option, format, args...))
	}
	if cfg.OID <= 0 {
		bad("oid", "invalid Observation ID %d: oid must be 1 to 4294967295", cfg.OID)
	}
	o.domain = uint32(cfg.OID)
	switch host := cfg.Host; {
	case host == "":
		bad("host", "no destination host specified: set host to an IPv4 or IPv6 address or a host name")
	case !validHost(host):
		bad("host", "host %q is neither an IP address nor a host name", host)
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		bad("port", "port %d out of range 1 to 65535", cfg.Port)
	}
	o.addr = net.JoinHostPort(strings.Trim(cfg.Host, "[]"), strconv.Itoa(cfg.Port))
	maxMTU := 65535
	switch strings.ToLower(cfg.Proto) {
	case "udp":
		o.network, maxMTU = "udp", 65507
	case "tcp":
		o.network = "tcp"
	default:
		bad("proto", "unsupported protocol '%s': proto must be tcp or udp", cfg.Proto)
	}
	if cfg.MarkPEN < 0 {
		bad("mark_pen", "mark_pen %d is not an enterprise number", cfg.MarkPEN)
	}
	o.markPEN = uint32(cfg.MarkPEN)
	if minMTU := ipfix.MinMTU(o.markPEN); cfg.MTU < minMTU || cfg.MTU > maxMTU {
		bad("mtu", "mtu %d out of range %d to %d (the largest record with its template must fit)", cfg.MTU, minMTU, maxMTU)
	}
	o.mtu = cfg.MTU
	switch cfg.SendTemplate {
	case "once":
		o.mode = ipfix.TemplateOnce
	case "never":
		o.mode = ipfix.TemplateNever
	default: // ulogd2: anything else means every message
		o.mode = ipfix.TemplateAlways
	}
	if cfg.TemplateRefresh < 0 {
		bad("template_refresh", "template_refresh %d: seconds, 0 or more", cfg.TemplateRefresh)
	}
	o.refresh = time.Duration(cfg.TemplateRefresh) * time.Second
	o.biflow = cfg.Biflow != 0
	if cfg.QueueRecords < 1 || cfg.QueueRecords > maxQueueRecords {
		bad("queue_records", "queue_records %d out of range 1 to %d", cfg.QueueRecords, maxQueueRecords)
	}
	o.queue = cfg.Options
	o.queue.QueueRecords = min(max(o.queue.QueueRecords, 1), maxQueueRecords) // reported above
	if o.queue.QueueBytes == 0 {
		o.queue.QueueBytes = o.queue.QueueRecords * 128
	}
	errs = append(errs, o.queue.Check())
	return o, errors.Join(errs...)
}

// validHost accepts an IP address (IPv6 also in brackets, with a zone) or
// a DNS name.
func validHost(h string) bool {
	if s, ok := strings.CutPrefix(h, "["); ok {
		s, ok = strings.CutSuffix(s, "]")
		_, err := netip.ParseAddr(s)
		return ok && err == nil
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// tunables pace the sink; tests change them on their instance.
type tunables struct {
	// holdMax is how long records wait in the walk for more to fill a
	// message before they are queued (checked at every Flush: the end of
	// each receive batch, and every second).
	holdMax time.Duration
	// drain bounds how long Stop waits for the queue to empty.
	drain time.Duration
	// now is the instance's clock (template refresh, held records).
	now func() time.Time
	// redialMin and redialMax bound the wait between two connection
	// attempts (zero: sinkq's 1 s and 30 s).
	redialMin, redialMax time.Duration
}

func defaultTunables() tunables {
	return tunables{holdMax: time.Second, drain: 2 * time.Second, now: time.Now}
}

// sink is one IPFIX instance.
type sink struct {
	opt options
	in  [numInputs]keys.Slot
	log *slog.Logger
	tun tunables

	q *sinkq.Queue
	w *sinkq.Writer

	// Records waiting in the walk until they fill a message.
	held      []byte
	heldEnds  []int
	heldSince time.Time
	flow      ipfix.Flow
}

func newSink(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
	o, err := check(cfg)
	if err != nil {
		return nil, err
	}
	if len(env.In) != numInputs {
		return nil, fmt.Errorf("IPFIX: %d input slots for %d keys", len(env.In), numInputs)
	}
	s := &sink{opt: o, log: env.Logger(), tun: defaultTunables()}
	copy(s.in[:], env.In)
	return s, nil
}

func (s *sink) Start(ctx context.Context) error {
	q, err := s.opt.queue.Open()
	if err != nil {
		return fmt.Errorf("IPFIX: %w", err)
	}
	s.q = q
	peer := s.opt.network + ":" + s.opt.addr
	s.w = sinkq.NewWriter(s.q, sinkq.WriterConfig{
		// With a spool, a collector down at start-up is waited for.
		StartAnyway: q.Spool() != nil,
		Dial:        s.dial,
		BackoffMin:  s.tun.redialMin,
		BackoffMax:  s.tun.redialMax,
		Drain:       s.tun.drain,
		Log:         s.log,
		Peer:        peer,
		Texts: sinkq.Texts{
			Full:      "IPFIX: send queue full, dropping records",
			SendError: "IPFIX: can't send",
			Redial:    "IPFIX: can't connect",
			Connected: "IPFIX: connected",
			DropStop:  "IPFIX: records dropped",
		},
	})
	if err := s.w.Start(ctx); err != nil {
		return fmt.Errorf("IPFIX: can't connect to %s: %w", peer, err)
	}
	if q.Spool() == nil { // else the writer may still be dialling (it logs the connection)
		s.log.Info("IPFIX: connected to " + peer)
	}
	return nil
}

func (s *sink) Stop(ctx context.Context) error {
	if s.w == nil {
		return nil
	}
	s.push()
	err := s.w.Stop(ctx)
	s.w = nil
	return err
}

// Dropped counts the records that could not be sent (plugin.Dropper).
func (s *sink) Dropped() uint64 {
	if s.q == nil {
		return 0
	}
	return s.q.Dropped()
}

// Reopen opens a new connection (SIGHUP): the collector's name is
// resolved again, and a new transport session starts.
func (s *sink) Reopen() error {
	if s.w != nil {
		s.w.Reconnect()
	}
	return nil
}

// Written counts the records the collector's connection took (for TCP,
// less those it lost unacknowledged).
func (s *sink) Written() uint64 {
	if s.q == nil {
		return 0
	}
	return s.q.Written()
}

// Flush queues the held records once the oldest has waited holdMax.
func (s *sink) Flush() error {
	if len(s.heldEnds) > 0 && s.tun.now().Sub(s.heldSince) >= s.tun.holdMax {
		s.push()
	}
	return nil
}

// push hands the held records to the queue.
func (s *sink) push() {
	start := 0
	for _, end := range s.heldEnds {
		if s.w != nil {
			s.w.Push(s.held[start:end])
		}
		start = end
	}
	s.held, s.heldEnds = s.held[:0], s.heldEnds[:0]
}

// hold appends the record of s.flow, and queues the held records once
// they fill a message.
func (s *sink) hold() {
	if len(s.heldEnds) == 0 {
		s.heldSince = s.tun.now()
	}
	s.held = ipfix.AppendRecord(s.held, &s.flow, s.opt.markPEN)
	s.heldEnds = append(s.heldEnds, len(s.held))
	// Records are a little shorter than their share of a message (2
	// bytes of template id against the headers): close enough.
	if len(s.held) >= s.opt.mtu {
		s.push()
	}
}

// ICMP echo-like requests and their replies, for the reply direction's
// record.
var icmpReply = map[uint8]uint8{8: 0, 13: 14, 15: 16, 17: 18}
var icmpv6Reply = map[uint8]uint8{128: 129}

const (
	protoICMP    = 1
	protoTCP     = 6
	protoICMPv6  = 58
	eventDestroy = 4
)

// icmp returns the event's ICMP or ICMPv6 type and code, if it has them.
func (s *sink) icmp(r *keys.Record, proto uint8) (typ, code uint8, ok bool) {
	in := &s.in
	switch {
	case proto == protoICMP && r.Valid(in[inICMPType]):
		return uint8(r.Uint(in[inICMPType])), uint8(r.Uint(in[inICMPCode])), true
	case proto == protoICMPv6 && r.Valid(in[inICMPv6Type]):
		return uint8(r.Uint(in[inICMPv6Type])), uint8(r.Uint(in[inICMPv6Code])), true
	}
	return 0, 0, false
}

// Interp exports one conntrack event.
func (s *sink) Interp(r *keys.Record) plugin.Verdict {
	in := &s.in
	osrc, odst := r.Bytes(in[inOrigSaddr]), r.Bytes(in[inOrigDaddr])
	src, ok1 := netip.AddrFromSlice(osrc)
	dst, ok2 := netip.AddrFromSlice(odst)
	if !ok1 || !ok2 || len(osrc) != len(odst) {
		return plugin.Continue // ulogd2 skips a flow without a source address
	}
	f := &s.flow
	*f = ipfix.Flow{
		Src: src, Dst: dst,
		SrcPort: uint16(r.Uint(in[inOrigSport])), DstPort: uint16(r.Uint(in[inOrigDport])),
		Proto:  uint8(r.Uint(in[inProto])),
		Octets: r.Uint(in[inOrigBytes]), Packets: r.Uint(in[inOrigPackets]),
	}
	if r.Valid(in[inStartSec]) {
		f.Has |= ipfix.HasTimes
		f.StartMs = r.Uint(in[inStartSec])*1000 + r.Uint(in[inStartUsec])/1000
		f.EndMs = f.StartMs
		if r.Valid(in[inEndSec]) {
			f.EndMs = r.Uint(in[inEndSec])*1000 + r.Uint(in[inEndUsec])/1000
		}
	}
	icmpType, icmpCode, isICMP := s.icmp(r, f.Proto)
	if isICMP {
		f.Has |= ipfix.HasICMP
		f.ICMPType, f.ICMPCode = icmpType, icmpCode
		// NetFlow's convention, which pmacct and nfdump follow: type and
		// code in the destination port.
		f.SrcPort, f.DstPort = 0, uint16(icmpType)<<8|uint16(icmpCode)
	}
	if r.Valid(in[inID]) {
		f.Has |= ipfix.HasFlowID
		f.FlowID = r.Uint(in[inID])
	}
	if r.Valid(in[inEvent]) && r.Uint(in[inEvent])&eventDestroy != 0 {
		// Conntrack ends a TCP flow on FIN or RST, anything else when it
		// times out (or is flushed).
		f.Has |= ipfix.HasEndReason
		f.EndReason = ipfix.EndIdleTimeout
		if f.Proto == protoTCP {
			f.EndReason = ipfix.EndOfFlowDetected
		}
	}
	if z := r.Uint(in[inZone]); z != 0 {
		f.Has |= ipfix.HasZone
		f.Zone = uint32(z)
	}
	if r.Valid(in[inMark]) {
		f.Has |= ipfix.HasMark
		f.Mark = uint32(r.Uint(in[inMark]))
	}

	// The reply tuple, when known: the reply direction's record, and the
	// NAT translation when it is not the mirror of the original.
	rsrc, ok1 := netip.AddrFromSlice(r.Bytes(in[inReplySaddr]))
	rdst, ok2 := netip.AddrFromSlice(r.Bytes(in[inReplyDaddr]))
	haveReply := ok1 && ok2 && rsrc.Is4() == src.Is4()
	rsport, rdport := uint16(r.Uint(in[inReplySport])), uint16(r.Uint(in[inReplyDport]))
	if f.Has&ipfix.HasICMP != 0 {
		rsport, rdport = 0, 0 // ICMP ids are no ports
	}
	osport, odport := f.SrcPort, f.DstPort
	if f.Has&ipfix.HasICMP != 0 {
		osport, odport = 0, 0
	}
	nat := haveReply && (rsrc != dst || rdst != src || rsport != odport || rdport != osport)
	if nat {
		f.Has |= ipfix.HasNAT
		f.PostSrc, f.PostDst = rdst, rsrc
		f.PostSrcPort, f.PostDstPort = rdport, rsport
		if f.Has&ipfix.HasICMP != 0 {
			f.PostSrcPort, f.PostDstPort = 0, 0
		}
	}
	replyOctets, replyPackets := r.Uint(in[inReplyBytes]), r.Uint(in[inReplyPackets])
	if s.opt.biflow {
		f.Has |= ipfix.HasReverse
		f.RevOctets, f.RevPackets = replyOctets, replyPackets
		s.hold()
		return plugin.Continue
	}
	f.Has |= ipfix.HasDirection
	f.Direction = ipfix.DirectionInitiator
	s.hold()
	if replyPackets == 0 {
		return plugin.Continue // no traffic came back: no reply flow
	}
	// The reply direction: from the responder, as the reply packets were
	// before the kernel translated them back.
	f.Direction = ipfix.DirectionReverseInitiator
	f.Octets, f.Packets = replyOctets, replyPackets
	if haveReply {
		f.Src, f.Dst = rsrc, rdst
	} else {
		f.Src, f.Dst = dst, src
	}
	if f.Has&ipfix.HasICMP != 0 {
		t := icmpType
		if f.Proto == protoICMP {
			if rt, ok := icmpReply[t]; ok {
				t = rt
			}
		} else if rt, ok := icmpv6Reply[t]; ok {
			t = rt
		}
		f.ICMPType = t
		f.SrcPort, f.DstPort = 0, uint16(t)<<8|uint16(icmpCode)
	} else if haveReply {
		f.SrcPort, f.DstPort = rsport, rdport
	} else {
		f.SrcPort, f.DstPort = odport, osport
	}
	if nat {
		f.PostSrc, f.PostDst = dst, src
		f.PostSrcPort, f.PostDstPort = odport, osport
	}
	s.hold()
	return plugin.Continue
}
