package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/nl"
)

// Configuration message builders. Each appends one NFULNL_MSG_CONFIG
// message, with NLM_F_REQUEST|NLM_F_ACK, to buf and returns it; a buf with
// 64 bytes of capacity is reused without allocation. group is the log group
// (nfgenmsg.res_id); family is nfgenmsg.nfgen_family (AF_UNSPEC except for
// the per-family commands).

func appendConfigHeader(buf []byte, seq uint32, family uint8, group uint16) []byte {
	b := nl.AppendHeader(buf, nfnlSubsysULOG<<8|nfulnlMsgConfig, nlmFRequest|nlmFAck, seq)
	b = append(b, family, nfnetlinkV0)
	return binary.BigEndian.AppendUint16(b, group)
}

func appendCmd(buf []byte, seq uint32, family uint8, group uint16, cmd uint8) []byte {
	start := len(buf)
	b := appendConfigHeader(buf, seq, family, group)
	b = nl.AppendU8(b, nfulaCfgCmd, cmd)
	return nl.FinishMsg(b, start)
}

// AppendBind builds NFULNL_CFG_CMD_BIND for group: the kernel creates the
// group's instance, owned by the sending socket (EBUSY/EPERM if another
// socket owns it).
func AppendBind(buf []byte, seq uint32, group uint16) []byte {
	return appendCmd(buf, seq, unix.AF_UNSPEC, group, cmdBind)
}

// AppendUnbind builds NFULNL_CFG_CMD_UNBIND for group.
func AppendUnbind(buf []byte, seq uint32, group uint16) []byte {
	return appendCmd(buf, seq, unix.AF_UNSPEC, group, cmdUnbind)
}

// AppendPFBind builds NFULNL_CFG_CMD_PF_BIND for protocol family pf.
func AppendPFBind(buf []byte, seq uint32, pf uint8) []byte {
	return appendCmd(buf, seq, pf, 0, cmdPFBind)
}

// AppendPFUnbind builds NFULNL_CFG_CMD_PF_UNBIND for protocol family pf.
func AppendPFUnbind(buf []byte, seq uint32, pf uint8) []byte {
	return appendCmd(buf, seq, pf, 0, cmdPFUnbind)
}

// AppendMode builds NFULA_CFG_MODE: copy mode (CopyPacket, ...) and range.
func AppendMode(buf []byte, seq uint32, group uint16, mode uint8, copyRange uint32) []byte {
	start := len(buf)
	b := appendConfigHeader(buf, seq, unix.AF_UNSPEC, group)
	var d [configModeLen]byte
	binary.BigEndian.PutUint32(d[0:4], copyRange)
	d[4] = mode
	b = nl.AppendAttr(b, nfulaCfgMode, d[:])
	return nl.FinishMsg(b, start)
}

func appendU32Config(buf []byte, seq uint32, group uint16, typ uint16, v uint32) []byte {
	start := len(buf)
	b := appendConfigHeader(buf, seq, unix.AF_UNSPEC, group)
	b = nl.AppendBE32(b, typ, v)
	return nl.FinishMsg(b, start)
}

// AppendNlBufSiz builds NFULA_CFG_NLBUFSIZ: the size of the kernel's batch
// buffer, i.e. of the datagrams it sends (the kernel accepts 4 KiB-ish to
// 128 KiB; a single larger packet still gets its own datagram).
func AppendNlBufSiz(buf []byte, seq uint32, group uint16, size uint32) []byte {
	return appendU32Config(buf, seq, group, nfulaCfgNlbufsiz, size)
}

// AppendTimeout builds NFULA_CFG_TIMEOUT: flush a partial batch after
// hundredths seconds (kernel default 100, i.e. 1 s).
func AppendTimeout(buf []byte, seq uint32, group uint16, hundredths uint32) []byte {
	return appendU32Config(buf, seq, group, nfulaCfgTimeout, hundredths)
}

// AppendQThresh builds NFULA_CFG_QTHRESH: packets per batch (kernel default
// 100; 1 sends every packet at once).
func AppendQThresh(buf []byte, seq uint32, group uint16, n uint32) []byte {
	return appendU32Config(buf, seq, group, nfulaCfgQthresh, n)
}

// AppendFlags builds NFULA_CFG_FLAGS (FlagSeq, FlagSeqGlobal,
// FlagConntrack). The kernel refuses FlagConntrack with EOPNOTSUPP when it
// is built without CONFIG_NETFILTER_NETLINK_GLUE_CT.
func AppendFlags(buf []byte, seq uint32, group uint16, flags uint16) []byte {
	start := len(buf)
	b := appendConfigHeader(buf, seq, unix.AF_UNSPEC, group)
	b = nl.AppendBE16(b, nfulaCfgFlags, flags)
	return nl.FinishMsg(b, start)
}

// Control sends configuration requests on a Conn and waits for their
// acknowledgement. It is meant for the set-up phase of the socket that
// will receive the group's packets: packets that already arrive while it
// waits are not its answer; they are discarded and counted in Skipped.
//
// A Control is not safe for concurrent use, and no Receive may run on the
// Conn while a request is in flight.
type Control struct {
	c       *nl.Conn
	b       *nl.Batch
	buf     []byte
	Timeout time.Duration // per request; 0 means 5 s

	// Skipped counts messages other than the answers (logged packets)
	// that were read and discarded while waiting; a truncated datagram
	// counts its whole messages plus one.
	Skipped int
}

// NewControl returns a Control for c.
func NewControl(c *nl.Conn) *Control {
	return &Control{c: c, b: nl.NewBatch(4, nl.DefaultDatagramSize), buf: make([]byte, 0, 64)}
}

// PFBind sends NFULNL_CFG_CMD_PF_BIND for pf and waits for the answer.
func (ct *Control) PFBind(pf uint8) error {
	s := ct.c.NextSeq()
	return ct.do(AppendPFBind(ct.buf[:0], s, pf), s, "pf_bind")
}

// PFUnbind sends NFULNL_CFG_CMD_PF_UNBIND for pf.
func (ct *Control) PFUnbind(pf uint8) error {
	s := ct.c.NextSeq()
	return ct.do(AppendPFUnbind(ct.buf[:0], s, pf), s, "pf_unbind")
}

// Bind binds group to the socket.
func (ct *Control) Bind(group uint16) error {
	s := ct.c.NextSeq()
	return ct.do(AppendBind(ct.buf[:0], s, group), s, "bind")
}

// Unbind releases group.
func (ct *Control) Unbind(group uint16) error {
	s := ct.c.NextSeq()
	return ct.do(AppendUnbind(ct.buf[:0], s, group), s, "unbind")
}

// SetMode sets the copy mode and range of group.
func (ct *Control) SetMode(group uint16, mode uint8, copyRange uint32) error {
	s := ct.c.NextSeq()
	return ct.do(AppendMode(ct.buf[:0], s, group, mode, copyRange), s, "set mode")
}

// SetNlBufSiz sets the kernel batch buffer size of group.
func (ct *Control) SetNlBufSiz(group uint16, size uint32) error {
	s := ct.c.NextSeq()
	return ct.do(AppendNlBufSiz(ct.buf[:0], s, group, size), s, "set nlbufsiz")
}

// SetTimeout sets the flush timeout of group in 1/100 s.
func (ct *Control) SetTimeout(group uint16, hundredths uint32) error {
	s := ct.c.NextSeq()
	return ct.do(AppendTimeout(ct.buf[:0], s, group, hundredths), s, "set timeout")
}

// SetQThresh sets the batch threshold of group in packets.
func (ct *Control) SetQThresh(group uint16, n uint32) error {
	s := ct.c.NextSeq()
	return ct.do(AppendQThresh(ct.buf[:0], s, group, n), s, "set qthresh")
}

// SetFlags sets the NFULNL_CFG_F_* flags of group.
func (ct *Control) SetFlags(group uint16, flags uint16) error {
	s := ct.c.NextSeq()
	return ct.do(AppendFlags(ct.buf[:0], s, group, flags), s, "set flags")
}

// do sends req and reads until the NLMSG_ERROR carrying seq. A negative
// answer is returned as an *os.SyscallError wrapping the unix.Errno, so
// that errors.Is(err, unix.EOPNOTSUPP) works.
func (ct *Control) do(req []byte, seq uint32, what string) error {
	if err := ct.c.Send(req); err != nil {
		return fmt.Errorf("nflog: %s: send: %w", what, err)
	}
	to := ct.Timeout
	if to <= 0 {
		to = 5 * time.Second
	}
	if err := ct.c.SetReadDeadline(time.Now().Add(to)); err != nil {
		return fmt.Errorf("nflog: %s: %w", what, err)
	}
	defer ct.c.SetReadDeadline(time.Time{})
	for {
		n, err := ct.c.Receive(ct.b)
		switch {
		case errors.Is(err, nl.ErrNoBuffers):
			// Packets were dropped; the answer may still be queued.
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("nflog: %s: %w", what, ErrNoAck)
		case err != nil:
			return fmt.Errorf("nflog: %s: %w", what, err)
		}
		found, result := false, error(nil)
		for i := range n {
			if ct.b.Truncated(i) {
				ct.Skipped++
			}
			for rest := ct.b.Datagram(i); len(rest) > 0; {
				var m nl.Msg
				m, rest, err = nl.NextMsg(rest)
				if err != nil {
					break
				}
				if found || !m.IsError() || m.Seq != seq {
					// Packets read with the answer are discarded too:
					// count them all.
					if m.Type == MsgTypePacket {
						ct.Skipped++
					}
					continue
				}
				found = true
				code, err := nl.ErrorCode(m.Payload)
				switch {
				case err != nil:
					result = fmt.Errorf("nflog: %s: %w", what, err)
				case code != 0:
					result = fmt.Errorf("nflog: %s: %w", what, os.NewSyscallError("netlink", unix.Errno(code)))
				}
			}
		}
		if found {
			return result
		}
	}
}
