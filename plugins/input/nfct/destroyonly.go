package nfct

// DESTROY-only hash mode. With net.netfilter.nf_conntrack_timestamp=1 the
// kernel's DESTROY event carries the flow's start and stop times
// (CTA_TIMESTAMP), which is all the flow table adds to a DESTROY record:
// hash mode then joins the DESTROY group only, reads no NEW or UPDATE
// event and tracks no new flow. The table keeps only the flows of the
// initial dump (they may never send a DESTROY: the silent sweep checks
// them) and drains as they end.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
)

const sysctlTimestamp = "nf_conntrack_timestamp"

// canSkipNew reports whether the instance's records could come from DESTROY
// events alone: hash event mode with DESTROY in event_mask. Polling mode
// and SIGUSR2 read the table, not events, and keep it.
func (in *instance) canSkipNew() bool {
	return in.table != nil && !in.polling && in.cfg.EventMask&maskDestroy != 0
}

// timestampsOn reads net.netfilter.nf_conntrack_timestamp in the instance's
// network namespace; ok is false when it cannot be read.
func (in *instance) timestampsOn() (on, ok bool) {
	b, err := in.ns.readFile(procConntrack + sysctlTimestamp)
	if err != nil {
		return false, false
	}
	return strings.TrimSpace(string(b)) != "0", true
}

// eventGroups returns the multicast groups the event socket joins.
func (in *instance) eventGroups() []uint32 {
	if in.destroyOnly.Load() {
		return []uint32{ctnl.GroupDestroy}
	}
	return groupsOf(in.cfg.EventMask)
}

// skippedGroups are the groups of event_mask that DESTROY-only mode does
// not join.
func (in *instance) skippedGroups() []uint32 {
	return groupsOf(in.cfg.EventMask &^ maskDestroy)
}

func (in *instance) noteDestroyOnly(ctx context.Context) {
	in.log.Log(ctx, logging.LevelNotice, "NFCT: net.netfilter.nf_conntrack_timestamp is 1: DESTROY events carry the flows' start times, so hash mode reads DESTROY events only and tracks no new flow")
}

// untimedDestroy notes a DESTROY without a start time in DESTROY-only mode
// (a flow created before nf_conntrack_timestamp was turned on): its record
// goes out as a table miss does in hash mode, without flow.start.
func (in *instance) untimedDestroy() {
	in.rx.untimed++
	if in.rx.untimedNote.Allow(time.Now()) {
		in.log.Log(context.Background(), logging.LevelNotice,
			"NFCT DESTROY without a start time (the flow was created before net.netfilter.nf_conntrack_timestamp=1): its record has no flow.start",
			"count", in.rx.untimed)
	}
}

// recheckTimestamps follows a change of nf_conntrack_timestamp at run
// time (maintenance goroutine, every netlink_resync_timeout seconds).
// Turned on: the NEW and UPDATE groups are left; the table drains as its
// flows end. Turned off: they are joined again, then a dump puts the flows
// that started meanwhile into the table (their DESTROY events would carry
// no start).
func (m *maintainer) recheckTimestamps() error {
	in := m.in
	if !in.canSkipNew() {
		return nil
	}
	on, ok := in.timestampsOn()
	if !ok || on == in.destroyOnly.Load() {
		return nil
	}
	in.mu.Lock()
	c := in.conn
	var err error
	switch {
	case c == nil:
		err = errors.New("no event socket")
	case on:
		if err = c.LeaveGroups(in.skippedGroups()...); err == nil {
			in.destroyOnly.Store(true)
		}
	default:
		if err = c.JoinGroups(in.skippedGroups()...); err == nil {
			in.destroyOnly.Store(false)
		}
	}
	in.mu.Unlock()
	if err != nil {
		return fmt.Errorf("nf_conntrack_timestamp changed to %v: %w", on, err)
	}
	if on {
		in.noteDestroyOnly(context.Background())
		return nil
	}
	in.log.Log(context.Background(), logging.LevelNotice, "NFCT: net.netfilter.nf_conntrack_timestamp is 0 now: hash mode reads NEW events and tracks flows again")
	return in.dumpFlows(func(ev *ctnl.Event, t timeval) {
		// Created while the socket was subscribed: their DESTROY
		// will come, so they are not silent.
		if ok, first := in.table.upsert(ev, t); !ok && first {
			in.tableFull()
		}
	})
}
