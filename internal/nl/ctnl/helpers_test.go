package ctnl

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/netnstest"
	"github.com/ulogd-go/ulogd/internal/nl"
)

// captured is one received conntrack message: the raw datagram and its decode.
type captured struct {
	raw []byte
	ev  Event // aliases raw
}

// openIn opens a NETLINK_NETFILTER socket inside ns, joined to groups.
func openIn(t *testing.T, ns *netnstest.NS, groups ...uint32) *nl.Conn {
	t.Helper()
	c := ns.OpenNetfilter(t)
	if len(groups) > 0 {
		if err := c.JoinGroups(groups...); err != nil {
			t.Fatalf("JoinGroups: %v", err)
		}
	} else {
		// Request/response socket: a lost reply fails the test instead of
		// hanging it.
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
	}
	return c
}

// collect receives conntrack messages until match has accepted want of them
// or the timeout passes. Every decoded message is returned, matched or not.
func collect(t *testing.T, c *nl.Conn, want int, timeout time.Duration, match func(*Event) bool) (all []captured, matched int) {
	t.Helper()
	b := nl.NewBatch(16, nl.EventDatagramSize)
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	for matched < want {
		n, err := c.Receive(b)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return all, matched
		}
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		for i := range n {
			if b.Truncated(i) {
				t.Fatalf("datagram %d truncated", i)
			}
			raw := slices.Clone(b.Datagram(i))
			for rest := raw; len(rest) > 0; {
				m, r, err := nl.NextMsg(rest)
				if err != nil {
					t.Fatalf("NextMsg: %v", err)
				}
				rest = r
				var cp captured
				cp.raw = raw
				if err := Decode(m, &cp.ev); err != nil {
					t.Fatalf("Decode: %v (% x)", err, raw)
				}
				all = append(all, cp)
				if match == nil || match(&cp.ev) {
					matched++
				}
			}
		}
	}
	return all, matched
}

func addr(b []byte) string {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return fmt.Sprintf("?%x", b)
	}
	return a.String()
}

func (e *Event) String() string {
	return fmt.Sprintf("%v fam=%d proto=%d %s:%d->%s:%d icmp=%v/%d/%d/%d reply %s:%d->%s:%d pkts=%d/%d bytes=%d/%d ctr=%v id=%d mark=%d status=%#x timeout=%d zone=%d start=%d stop=%d unk=%d",
		e.Type, e.Family, e.Orig.Proto, addr(e.Orig.Src), e.Orig.SrcPort, addr(e.Orig.Dst), e.Orig.DstPort,
		e.Orig.HasICMP, e.Orig.ICMPType, e.Orig.ICMPCode, e.Orig.ICMPID,
		addr(e.Reply.Src), e.Reply.SrcPort, addr(e.Reply.Dst), e.Reply.DstPort,
		e.OrigPackets, e.ReplyPackets, e.OrigBytes, e.ReplyBytes, e.HasCounters, e.ID, e.Mark, e.Status, e.Timeout, e.Zone, e.Start, e.Stop, e.Unknown)
}
