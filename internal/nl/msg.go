package nl

import "encoding/binary"

// Netlink message header layout and control message types (linux/netlink.h).
const (
	HeaderLen = 16 // NLMSG_HDRLEN: sizeof(struct nlmsghdr), already 4-aligned

	typeNoop    = 0x1 // NLMSG_NOOP
	typeError   = 0x2 // NLMSG_ERROR
	typeDone    = 0x3 // NLMSG_DONE
	typeOverrun = 0x4 // NLMSG_OVERRUN
)

// Msg is one netlink message (struct nlmsghdr and its payload). Payload
// aliases the datagram it was read from.
type Msg struct {
	Type, Flags uint16 // nlmsg_type, nlmsg_flags
	Seq, Pid    uint32 // nlmsg_seq, nlmsg_pid
	Payload     []byte // the bytes after the header, nlmsg_len-16 long
}

// IsError reports whether m is an NLMSG_ERROR message (an error or an ACK).
func (m Msg) IsError() bool { return m.Type == typeError }

// IsDone reports whether m is an NLMSG_DONE message (end of a dump).
func (m Msg) IsDone() bool { return m.Type == typeDone }

// IsControl reports whether m is one of the netlink core control messages
// (NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN) rather than a
// subsystem message.
func (m Msg) IsControl() bool { return m.Type >= typeNoop && m.Type <= typeOverrun }

// align4 rounds n up to the netlink alignment (NLMSG_ALIGN / NLA_ALIGN).
func align4(n int) int { return (n + 3) &^ 3 }

// NextMsg decodes the netlink message at the start of buf and returns it with
// the rest of buf after it (alignment padding skipped). Call it while
// len(rest) > 0: several messages may be packed in one datagram (dumps).
//
// It checks that the header fits, that nlmsg_len covers at least the header
// and does not run past buf; otherwise it returns an error matching
// ErrMalformed and no message. It never panics and never allocates.
func NextMsg(buf []byte) (m Msg, rest []byte, err error) {
	if len(buf) < HeaderLen {
		return Msg{}, nil, errMsgShort
	}
	l := int(binary.NativeEndian.Uint32(buf[0:4]))
	if l < HeaderLen || l > len(buf) {
		return Msg{}, nil, errMsgLen
	}
	m = Msg{
		Type:    binary.NativeEndian.Uint16(buf[4:6]),
		Flags:   binary.NativeEndian.Uint16(buf[6:8]),
		Seq:     binary.NativeEndian.Uint32(buf[8:12]),
		Pid:     binary.NativeEndian.Uint32(buf[12:16]),
		Payload: buf[HeaderLen:l:l],
	}
	next := align4(l)
	if next > len(buf) {
		next = len(buf)
	}
	return m, buf[next:], nil
}

// ErrorCode returns the error number carried by an NLMSG_ERROR payload
// (struct nlmsgerr), as a positive errno: 0 is an acknowledgement, 2 is
// ENOENT and so on (convert with unix.Errno(errno)). The kernel stores it
// negated; this function undoes that.
func ErrorCode(payload []byte) (errno int32, err error) {
	if len(payload) < 4 {
		return 0, errErrorShort
	}
	return -int32(binary.NativeEndian.Uint32(payload[0:4])), nil
}

// AppendHeader appends a netlink header with nlmsg_len 0 to b; FinishMsg
// fills the length once the payload has been appended.
func AppendHeader(b []byte, typ, flags uint16, seq uint32) []byte {
	var h [HeaderLen]byte
	binary.NativeEndian.PutUint16(h[4:6], typ)
	binary.NativeEndian.PutUint16(h[6:8], flags)
	binary.NativeEndian.PutUint32(h[8:12], seq)
	return append(b, h[:]...)
}

// FinishMsg sets nlmsg_len of the message that starts at b[start:] to run to
// the end of b, and returns b.
func FinishMsg(b []byte, start int) []byte {
	binary.NativeEndian.PutUint32(b[start:start+4], uint32(len(b)-start))
	return b
}
