package ctnl

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ulogd-go/ulogd/internal/nl"
	"golang.org/x/sys/unix"
)

// Filter selects conntrack events in the kernel, before they are queued on
// the socket (ulogd's accept_src_filter, accept_dst_filter and
// accept_proto_filter). All conditions apply to the original tuple.
//
// A message is accepted iff all of these hold:
//   - Src is empty, or the source address is in one of the Src prefixes of
//     its family, or no Src prefix has its family;
//   - the same for Dst and the destination address;
//   - Protos is empty, or the layer-4 protocol is in Protos.
//
// Messages that are not conntrack entries (NLMSG_ERROR, NLMSG_DONE,
// expectations) and conntrack messages without an original tuple are
// always accepted.
//
// Attach the program to event sockets only. The kernel runs a socket filter
// once per datagram, on its first message; a dump reply datagram packs many
// entries and often the closing NLMSG_DONE, so a filtered socket loses parts
// of dumps (and a Dump on it can wait for ever).
type Filter struct {
	Src, Dst []netip.Prefix
	Protos   []uint8
}

// Empty reports whether f accepts everything (no program is needed).
func (f Filter) Empty() bool { return len(f.Src) == 0 && len(f.Dst) == 0 && len(f.Protos) == 0 }

// Offsets into a ctnetlink message as the socket filter sees it.
const (
	offNfgenFamily = nl.HeaderLen               // nfgenmsg.nfgen_family
	offAttrs       = nl.HeaderLen + nfgenmsgLen // first attribute
	acceptAll      = 0xffffffff                 // return value: keep the whole message
	memOrigTuple   = 0                          // scratch slot M[0]: offset of CTA_TUPLE_ORIG
)

// offSubsys is the offset of the byte of nlmsg_type (host order) that holds
// the nfnetlink subsystem id.
var offSubsys = func() uint32 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], 0x0100)
	if b[1] == 1 {
		return 5 // little endian: high byte second
	}
	return 4
}()

// Program compiles f into a classic BPF socket filter for nl.Conn.AttachFilter.
// It walks the attributes with the kernel's SKF_AD_NLATTR and
// SKF_AD_NLATTR_NEST helpers: CTA_TUPLE_ORIG → CTA_TUPLE_IP →
// CTA_IP_V4_SRC/..., and CTA_TUPLE_ORIG → CTA_TUPLE_PROTO → CTA_PROTO_NUM.
// An empty Filter compiles to a program that accepts everything.
func (f Filter) Program() ([]unix.SockFilter, error) {
	for _, p := range slices.Concat(f.Src, f.Dst) {
		if !p.IsValid() {
			return nil, fmt.Errorf("%w: invalid prefix %v", ErrFilter, p)
		}
	}
	a := newAsm()
	const accept, reject = "accept", "reject"

	// Only ctnetlink messages are examined.
	a.ldb(offSubsys)
	a.jeq(nfnlSubsysCTNetlink, "", accept)
	// M[0] = offset of CTA_TUPLE_ORIG; none: accept (userspace decides).
	a.ldImm(offAttrs)
	a.ldxImm(ctaTupleOrig)
	a.ldAnc(skfAdNlattr)
	a.jeq(0, accept, "")
	a.st(memOrigTuple)

	if len(f.Src) > 0 {
		addrClause(a, f.Src, ctaIPv4Src, ctaIPv6Src, reject)
	}
	if len(f.Dst) > 0 {
		addrClause(a, f.Dst, ctaIPv4Dst, ctaIPv6Dst, reject)
	}
	if len(f.Protos) > 0 {
		// X = offset of CTA_PROTO_NUM; A = its value.
		a.ldMem(memOrigTuple)
		a.ldxImm(ctaTupleProto)
		a.ldAnc(skfAdNlattrNest)
		a.jeq(0, reject, "")
		a.ldxImm(ctaProtoNum)
		a.ldAnc(skfAdNlattrNest)
		a.jeq(0, reject, "")
		a.tax()
		a.ldbInd(nl.AttrHeaderLen)
		protos := slices.Clone(f.Protos)
		slices.Sort(protos)
		for _, p := range slices.Compact(protos) {
			next := a.newLabel("proto")
			a.jeq(uint32(p), "", next)
			a.jmp(accept)
			a.mark(next)
		}
		a.jmp(reject)
	}
	a.mark(accept)
	a.ret(acceptAll)
	a.mark(reject)
	a.ret(0)
	return a.assemble()
}

// addrClause emits the check of one address list: fall through when the
// address matches (or its family is unconstrained), jump to reject if not.
func addrClause(a *asm, prefixes []netip.Prefix, v4Attr, v6Attr uint32, reject string) {
	var v4, v6 []netip.Prefix
	for _, p := range prefixes {
		if p.Addr().Is4() {
			v4 = append(v4, p.Masked())
		} else {
			v6 = append(v6, p.Masked())
		}
	}
	ok := a.newLabel("addrok")
	l4, l6 := a.newLabel("v4_"), a.newLabel("v6_")
	a.ldb(offNfgenFamily)
	a.jeq(unix.AF_INET, l4, "")
	a.jeq(unix.AF_INET6, l6, ok) // other families: no constraint

	for _, fam := range []struct {
		label string
		list  []netip.Prefix
		attr  uint32
	}{{l4, v4, v4Attr}, {l6, v6, v6Attr}} {
		a.mark(fam.label)
		if len(fam.list) == 0 {
			a.jmp(ok) // this family is not listed: no constraint
			continue
		}
		// X = offset of the address attribute.
		a.ldMem(memOrigTuple)
		a.ldxImm(ctaTupleIP)
		a.ldAnc(skfAdNlattrNest)
		a.jeq(0, reject, "")
		a.ldxImm(fam.attr)
		a.ldAnc(skfAdNlattrNest)
		a.jeq(0, reject, "")
		a.tax()
		for _, p := range fam.list {
			next := a.newLabel("pfx")
			addr := p.Addr().AsSlice()
			bits := p.Bits()
			for w := 0; w*32 < len(addr)*8; w++ {
				m := wordMask(bits - w*32)
				if m == 0 {
					break
				}
				a.ldwInd(nl.AttrHeaderLen + uint32(4*w))
				if m != 0xffffffff {
					a.and(m)
				}
				a.jeq(binary.BigEndian.Uint32(addr[4*w:])&m, "", next)
			}
			a.jmp(ok)
			a.mark(next)
		}
		a.jmp(reject)
	}
	a.mark(ok)
}

// wordMask is the 32-bit mask covering the first bits bits of a word.
func wordMask(bits int) uint32 {
	switch {
	case bits <= 0:
		return 0
	case bits >= 32:
		return 0xffffffff
	}
	return ^uint32(0) << (32 - bits)
}
