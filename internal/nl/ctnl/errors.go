package ctnl

import "errors"

// Sentinel errors. Compare with errors.Is; attribute errors are wrapped with
// the attribute's kernel name.
var (
	// ErrNotConntrack: the message does not belong to the ctnetlink
	// subsystem (for example an expectation or NFLOG message).
	ErrNotConntrack = errors.New("ctnl: not a ctnetlink message")

	// ErrMsgType: a ctnetlink message that is neither IPCTNL_MSG_CT_NEW nor
	// IPCTNL_MSG_CT_DELETE (for example a statistics reply).
	ErrMsgType = errors.New("ctnl: unexpected ctnetlink message type")

	// ErrShortMsg: the payload is shorter than struct nfgenmsg.
	ErrShortMsg = errors.New("ctnl: message shorter than the nfnetlink header")

	// ErrAttrSize: an attribute has the wrong payload size for its type.
	ErrAttrSize = errors.New("ctnl: attribute has the wrong size")

	// ErrDumpInterrupted: the kernel flagged the dump as inconsistent
	// (NLM_F_DUMP_INTR); the table changed while it was being walked.
	ErrDumpInterrupted = errors.New("ctnl: dump interrupted (NLM_F_DUMP_INTR), results may be inconsistent")

	// ErrFilter: the Filter cannot be compiled (invalid prefix, program too long).
	ErrFilter = errors.New("ctnl: invalid filter")
)
