package nflog

import (
	"context"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/nl/eventsock"
	"github.com/ulogd-go/ulogd/internal/nl/nflog"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// receiver is the receive loop's handler: it decodes the packet messages
// and emits one record per packet.
type receiver struct {
	in  *instance
	rec *keys.Record
	e   plugin.Emitter
}

// receive is the packet loop: it never stops on its own. Overruns,
// truncated datagrams and decode errors are counted and reported; only
// Stop (or ctx) ends it.
func (in *instance) receive(e plugin.Emitter) {
	if n := in.rx.startLost; n != 0 {
		in.rx.loop.Count(e, n)
		in.log.Log(context.Background(), logging.LevelNotice, "NFLOG packets logged while the group was being configured were discarded", "lost", n)
	}
	in.rx.h = receiver{in: in, rec: e.NewRecord(), e: e}
	in.rx.loop.Run(in.done, e, &in.rx.h)
}

// Message handles one netlink message of the log socket.
func (r *receiver) Message(m nl.Msg, raw []byte) error {
	if m.Type != nflog.MsgTypePacket {
		// NLMSG_DONE ends a kernel batch; NLMSG_ERROR answers the unbind
		// sent at stop.
		return nil
	}
	in := r.in
	p := &in.rx.pkt
	if err := nflog.Decode(m, p); err != nil {
		return err
	}
	in.rx.unknown += uint64(p.Unknown)
	if in.rx.loop.SeqCounts && p.HasSeq {
		in.checkSeq(r.e, p.Seq)
	}
	in.sl.fill(r.rec, p, raw, uint8(in.cfg.NumericLabel), in.now)
	r.e.Emit(r.rec)
	return nil
}

// checkSeq counts a gap in the per-instance sequence (seq_local) as lost
// packets. The kernel numbers the instance's packets from 0; a packet it
// could not queue on the socket (ENOBUFS) or that did not fit the
// datagram still used its number. A backward jump is not counted.
func (in *instance) checkSeq(e plugin.Emitter, seq uint32) {
	rx := &in.rx
	want := uint32(0)
	if rx.haveSeq {
		want = rx.lastSeq + 1
	}
	rx.lastSeq, rx.haveSeq = seq, true
	gap := seq - want
	if gap == 0 || gap >= 1<<31 {
		return
	}
	rx.loop.Count(e, uint64(gap))
	if rx.gapNote.Allow(time.Now()) {
		in.log.Log(context.Background(), logging.LevelNotice, "NFLOG sequence gap: packets were lost",
			"missing", gap, "lost", eventsock.LostOf(e), "seq", seq)
	}
}
