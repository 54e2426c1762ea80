package ctnl

import (
	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/nl"
)

// appendNfgen appends struct nfgenmsg.
func appendNfgen(b []byte, family uint8) []byte {
	return append(b, family, nfnetlinkV0, 0, 0) // res_id 0
}

// DumpRequest builds, into buf[:0], a request to dump the conntrack table:
// IPCTNL_MSG_CT_GET, or IPCTNL_MSG_CT_GET_CTRZERO when zero is set (the
// kernel replies with the counters and resets them), with
// NLM_F_REQUEST|NLM_F_DUMP. family selects AF_INET (2) or AF_INET6 (10)
// entries; 0 (AF_UNSPEC) dumps all. A buf of 20+ bytes capacity is reused
// without allocation.
func DumpRequest(buf []byte, seq uint32, family uint8, zero bool) []byte {
	typ := uint16(nfnlSubsysCTNetlink<<8 | ipctnlMsgCtGet)
	if zero {
		typ = nfnlSubsysCTNetlink<<8 | ipctnlMsgCtGetCtrZero
	}
	b := nl.AppendHeader(buf[:0], typ, nlmFRequest|nlmFDump, seq)
	b = appendNfgen(b, family)
	return nl.FinishMsg(b, 0)
}

// GetRequest builds, into buf[:0], an IPCTNL_MSG_CT_GET request for the one
// entry whose original tuple (and zone) match ev, with NLM_F_ACK so that the
// kernel always answers with an NLMSG_ERROR (0 after the entry, ENOENT when
// there is none). A buf of 128+ bytes capacity is reused without allocation.
func GetRequest(buf []byte, seq uint32, ev *Event) []byte {
	b := nl.AppendHeader(buf[:0], nfnlSubsysCTNetlink<<8|ipctnlMsgCtGet, nlmFRequest|nlmFAck, seq)
	family := ev.Family
	if family == 0 {
		family = unix.AF_INET
		if len(ev.Orig.Src) == 16 {
			family = unix.AF_INET6
		}
	}
	b = appendNfgen(b, family)
	b = appendTuple(b, ctaTupleOrig, &ev.Orig)
	if ev.Zone != 0 {
		b = nl.AppendBE16(b, ctaZone, ev.Zone)
	}
	return nl.FinishMsg(b, 0)
}
