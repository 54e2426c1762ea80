package eventsock

import (
	"log/slog"
	"time"

	"github.com/ulogd-go/ulogd/internal/logging"
)

// Errors counts a receive loop's errors other than overruns: messages it
// cannot decode, failed reads, datagrams a process sent and datagrams
// too large for their slot. Each kind is logged at most once per
// notice interval, with its count.
type Errors struct {
	Decode, Other                      uint64
	Foreign                            uint64 // datagrams not sent by the kernel
	Truncated                          uint64 // datagrams larger than their receive slot
	decodeNote, otherNote, foreignNote logging.Limiter
}

// CountForeign counts n datagrams that another process sent to the socket
// (the last from port id pid, not the kernel's 0), which nl.Conn.Receive
// dropped (nl.Batch.Foreign), and logs them with the count.
func (x *Errors) CountForeign(log *slog.Logger, source string, n int, pid uint32) {
	x.Foreign += uint64(n)
	if x.foreignNote.Allow(time.Now()) {
		log.Warn(source+" ignored netlink datagrams that the kernel did not send", "sender_port", pid, "count", x.Foreign)
	}
}

// DecodeError counts a message that cannot be decoded, and logs msg with
// err and the count.
func (x *Errors) DecodeError(log *slog.Logger, msg string, err error) {
	x.Decode++
	if x.decodeNote.Allow(time.Now()) {
		log.Warn(msg, "err", err, "count", x.Decode)
	}
}

// OtherError counts a failed read and logs msg with err and the count,
// then waits 10 ms (or until done is closed) so that a persistent error
// does not spin the loop.
func (x *Errors) OtherError(log *slog.Logger, msg string, err error, done <-chan struct{}) {
	x.Other++
	if x.otherNote.Allow(time.Now()) {
		log.Error(msg, "err", err, "count", x.Other)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Millisecond):
	}
}
