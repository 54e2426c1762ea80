package ctnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/ulogd-go/ulogd/internal/nl"
	"golang.org/x/sys/unix"
)

// Dump sends a DumpRequest on c (a socket dedicated to request/response
// work, joined to no multicast group) and reads the reply until NLMSG_DONE,
// calling fn for each decoded entry. The *Event and the slices it holds are
// valid only during the call.
//
// Replies to other requests (stale sequence numbers) are ignored. If the
// kernel reports ENOBUFS, a truncated datagram, a message that does not
// decode or an inconsistent dump, Dump still reads the dump to its end (so
// that c can serve the next request) and then returns the first such error:
// nl.ErrNoBuffers, nl.ErrTruncated, the decode error, or ErrDumpInterrupted.
// An NLMSG_ERROR answer is returned as an error wrapping the unix.Errno.
func Dump(c *nl.Conn, family uint8, zero bool, fn func(*Event)) error {
	s := c.NextSeq()
	var req [nl.HeaderLen + nfgenmsgLen]byte
	if err := c.Send(DumpRequest(req[:0], s, family, zero)); err != nil {
		return fmt.Errorf("ctnl: send dump request: %w", err)
	}
	b := nl.NewBatch(8, nl.DefaultDatagramSize)
	var ev Event
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	for {
		n, err := c.Receive(b)
		if errors.Is(err, nl.ErrNoBuffers) {
			keep(err)
			continue
		}
		if err != nil {
			return err
		}
		for i := range n {
			if b.Truncated(i) {
				keep(nl.ErrTruncated)
				continue
			}
			for rest := b.Datagram(i); len(rest) > 0; {
				var m nl.Msg
				m, rest, err = nl.NextMsg(rest)
				if err != nil {
					keep(err)
					break
				}
				if m.Seq != s {
					continue
				}
				if m.Flags&nlmFDumpIntr != 0 {
					keep(ErrDumpInterrupted)
				}
				switch {
				case m.IsDone():
					// NLMSG_DONE carries the dump's final status (an int).
					if len(m.Payload) >= 4 {
						if code := int32(binary.NativeEndian.Uint32(m.Payload)); code < 0 {
							keep(fmt.Errorf("ctnl: dump: %w", os.NewSyscallError("netlink", unix.Errno(-code))))
						}
					}
					return first
				case m.IsError():
					code, err := nl.ErrorCode(m.Payload)
					if err != nil {
						return err
					}
					if code != 0 {
						return fmt.Errorf("ctnl: dump: %w", os.NewSyscallError("netlink", unix.Errno(code)))
					}
				case m.IsControl():
				default:
					if err := Decode(m, &ev); err != nil {
						keep(err)
						continue
					}
					fn(&ev)
				}
			}
		}
	}
}

// Exists asks the kernel whether the entry with ev's original tuple (and
// zone) is still in the conntrack table. ENOENT means false with a nil error.
// Use a socket dedicated to request/response work; an nl.ErrNoBuffers on it
// is returned as is (the answer may have been lost) and the caller retries.
func Exists(c *nl.Conn, ev *Event) (bool, error) {
	s := c.NextSeq()
	var req [256]byte
	if err := c.Send(GetRequest(req[:0], s, ev)); err != nil {
		return false, fmt.Errorf("ctnl: send get request: %w", err)
	}
	b := nl.NewBatch(4, nl.EventDatagramSize)
	found := false
	for {
		n, err := c.Receive(b)
		if err != nil {
			// Including nl.ErrNoBuffers: the reply may have been dropped,
			// so waiting for it could block for ever. The caller retries.
			return false, err
		}
		for i := range n {
			for rest := b.Datagram(i); len(rest) > 0; {
				var m nl.Msg
				m, rest, err = nl.NextMsg(rest)
				if err != nil {
					return false, err
				}
				if m.Seq != s {
					continue
				}
				if !m.IsError() {
					if !m.IsControl() {
						found = true
					}
					continue
				}
				code, err := nl.ErrorCode(m.Payload)
				switch {
				case err != nil:
					return false, err
				case code == 0:
					return found, nil
				case unix.Errno(code) == unix.ENOENT:
					return false, nil
				default:
					return false, fmt.Errorf("ctnl: get: %w", os.NewSyscallError("netlink", unix.Errno(code)))
				}
			}
		}
	}
}
