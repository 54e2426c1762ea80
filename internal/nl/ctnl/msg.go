package ctnl

// nfnetlink framing (linux/netfilter/nfnetlink.h, nfnetlink_compat.h).
const (
	nfnlSubsysCTNetlink = 1 // NFNL_SUBSYS_CTNETLINK
	nfnetlinkV0         = 0 // NFNETLINK_V0, nfgenmsg.version
	nfgenmsgLen         = 4 // sizeof(struct nfgenmsg): family, version, res_id(be16)
)

// ctnetlink message types (enum cntl_msg_types), the low byte of nlmsg_type.
const (
	ipctnlMsgCtNew        = 0 // IPCTNL_MSG_CT_NEW: event NEW/UPDATE, dump and get replies
	ipctnlMsgCtGet        = 1 // IPCTNL_MSG_CT_GET: get one entry or dump the table
	ipctnlMsgCtDelete     = 2 // IPCTNL_MSG_CT_DELETE: event DESTROY
	ipctnlMsgCtGetCtrZero = 3 // IPCTNL_MSG_CT_GET_CTRZERO: get/dump and zero the counters
)

// Netlink header flags (linux/netlink.h) used here.
const (
	nlmFRequest  = 0x1   // NLM_F_REQUEST
	nlmFMulti    = 0x2   // NLM_F_MULTI
	nlmFAck      = 0x4   // NLM_F_ACK
	nlmFDumpIntr = 0x10  // NLM_F_DUMP_INTR
	nlmFDump     = 0x300 // NLM_F_DUMP = NLM_F_ROOT|NLM_F_MATCH
	nlmFExcl     = 0x200 // NLM_F_EXCL (on a CT_NEW event: the entry is new)
	nlmFCreate   = 0x400 // NLM_F_CREATE (on a CT_NEW event: the entry is new)
)

// Multicast group numbers for nl.Conn.JoinGroups (enum nfnetlink_groups).
// ulogd's event_mask bit 1<<(g-1) selects group g.
const (
	GroupNew        = 1 // NFNLGRP_CONNTRACK_NEW
	GroupUpdate     = 2 // NFNLGRP_CONNTRACK_UPDATE
	GroupDestroy    = 3 // NFNLGRP_CONNTRACK_DESTROY
	GroupExpNew     = 4 // NFNLGRP_CONNTRACK_EXP_NEW
	GroupExpUpdate  = 5 // NFNLGRP_CONNTRACK_EXP_UPDATE
	GroupExpDestroy = 6 // NFNLGRP_CONNTRACK_EXP_DESTROY
)
