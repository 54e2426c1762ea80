package addrfilter

import (
	"context"
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/logging"
)

// InputKeys returns the two input keys a Check reads, in the order a
// filter declares them first: oob.family, oob.protocol.
func InputKeys() []keys.Spec {
	return []keys.Spec{
		{Name: "oob.family", Type: keys.Uint8},
		{Name: "oob.protocol", Type: keys.Uint16},
	}
}

// Check is one filter instance's family check, as ulogd2 makes it: the
// family (oob.family) says whether the addresses are IP addresses, and for
// a bridge family the ethertype (oob.protocol) says it. An event of any
// other family fails, and the first such problem is logged once per
// instance.
type Check struct {
	// Family and Protocol are the slots of oob.family and oob.protocol.
	Family, Protocol keys.Slot
	// ARP accepts the ARP family (IP2STR converts arp.* addresses).
	ARP bool
	// UnknownFamily is the filter's message for a family it does not
	// handle.
	UnknownFamily string
	// Log receives the notice.
	Log *slog.Logger

	noted bool
}

// OK reports whether the addresses of r may be converted. When not, the
// event is to fail (the engine counts it); the first problem of the
// instance is logged as a notice.
func (c *Check) OK(r *keys.Record) bool {
	switch r.Uint(c.Family) {
	case unix.NFPROTO_IPV4, unix.NFPROTO_IPV6:
	case unix.NFPROTO_ARP:
		if !c.ARP {
			c.notice(c.UnknownFamily)
			return false
		}
	case unix.NFPROTO_BRIDGE:
		if !r.Valid(c.Protocol) {
			c.notice("No protocol inside AF_BRIDGE packet")
			return false
		}
		switch r.Uint(c.Protocol) {
		case unix.ETH_P_IP, unix.ETH_P_ARP, unix.ETH_P_IPV6:
		default:
			c.notice("Unknown protocol inside AF_BRIDGE packet")
			return false
		}
	default:
		c.notice(c.UnknownFamily)
		return false
	}
	return true
}

// notice logs msg unless a problem was logged already.
func (c *Check) notice(msg string) {
	if !c.noted {
		c.noted = true
		c.Log.Log(context.Background(), logging.LevelNotice, msg)
	}
}
