package nl

import "errors"

// Sentinel errors. Compare with errors.Is.
var (
	// ErrClosed is returned by operations on a Conn after Close, including a
	// Receive that was blocked when Close was called.
	ErrClosed = errors.New("nl: use of closed netlink socket")

	// ErrDrained is returned by TryReceive when the socket is empty (or
	// is to be left to fill for the coalescing delay): the reader does
	// what it does before a pause and calls Wait. It is not a failure.
	ErrDrained = errors.New("nl: socket drained")

	// ErrNoBuffers reports that the kernel dropped messages because the
	// socket receive buffer was full (ENOBUFS). Events were lost; the socket
	// stays usable and later messages are delivered normally.
	ErrNoBuffers = errors.New("nl: receive buffer overrun (ENOBUFS): messages lost")

	// ErrTruncated reports a datagram larger than the Batch slot it was
	// received into (MSG_TRUNC); its tail was cut off by the kernel.
	ErrTruncated = errors.New("nl: datagram truncated (MSG_TRUNC): batch slot too small")

	// ErrMalformed is matched (errors.Is) by every error the message and
	// attribute walkers report for input that does not follow the netlink
	// wire format.
	ErrMalformed = errors.New("nl: malformed netlink data")
)

// malformed is a specific wire-format error that also matches ErrMalformed.
type malformed string

func (e malformed) Error() string        { return "nl: malformed netlink data: " + string(e) }
func (e malformed) Is(target error) bool { return target == ErrMalformed }

// The specific wire-format errors. They are values (not built per call), so
// reporting them does not allocate.
var (
	errMsgShort     error = malformed("message shorter than a netlink header")
	errMsgLen       error = malformed("nlmsg_len smaller than the header or beyond the buffer")
	errAttrTrailing error = malformed("trailing bytes shorter than an attribute header")
	errAttrLen      error = malformed("nla_len smaller than the header or beyond the buffer")
	errErrorShort   error = malformed("NLMSG_ERROR payload shorter than 4 bytes")
)
