package nflog

// nfnetlink framing (linux/netfilter/nfnetlink.h).
const (
	nfnlSubsysULOG = 4 // NFNL_SUBSYS_ULOG
	nfnetlinkV0    = 0 // NFNETLINK_V0, nfgenmsg.version
	nfgenmsgLen    = 4 // sizeof(struct nfgenmsg): family, version, res_id (be16)
)

// nfnetlink_log message types (enum nfulnl_msg_types), the low byte of
// nlmsg_type.
const (
	nfulnlMsgPacket = 0 // NFULNL_MSG_PACKET: a logged packet (kernel → user)
	nfulnlMsgConfig = 1 // NFULNL_MSG_CONFIG: a configuration request (user → kernel)
)

// MsgTypePacket is the nlmsg_type of a logged packet message.
const MsgTypePacket = nfnlSubsysULOG<<8 | nfulnlMsgPacket

// Netlink header flags (linux/netlink.h) used here.
const (
	nlmFRequest = 0x1 // NLM_F_REQUEST
	nlmFAck     = 0x4 // NLM_F_ACK
)

// Packet attributes (enum nfulnl_attr_type).
const (
	nfulaPacketHdr      = 1  // NFULA_PACKET_HDR: struct nfulnl_msg_packet_hdr {be16 hw_protocol; u8 hook; u8 pad}
	nfulaMark           = 2  // NFULA_MARK: be32 skb mark
	nfulaTimestamp      = 3  // NFULA_TIMESTAMP: struct nfulnl_msg_packet_timestamp {be64 sec; be64 usec}
	nfulaIfindexIndev   = 4  // NFULA_IFINDEX_INDEV: be32 input interface
	nfulaIfindexOutdev  = 5  // NFULA_IFINDEX_OUTDEV: be32 output interface
	nfulaIfindexPhysIn  = 6  // NFULA_IFINDEX_PHYSINDEV: be32 bridge port the packet came in on
	nfulaIfindexPhysOut = 7  // NFULA_IFINDEX_PHYSOUTDEV: be32 bridge port it leaves on
	nfulaHwaddr         = 8  // NFULA_HWADDR: struct nfulnl_msg_packet_hw {be16 hw_addrlen; u16 pad; u8 hw_addr[8]}
	nfulaPayload        = 9  // NFULA_PAYLOAD: the packet from the network header on (copy_range bytes at most)
	nfulaPrefix         = 10 // NFULA_PREFIX: NUL-terminated log prefix
	nfulaUID            = 11 // NFULA_UID: be32 uid of the owning socket
	nfulaSeq            = 12 // NFULA_SEQ: be32 per-instance sequence number (NFULNL_CFG_F_SEQ)
	nfulaSeqGlobal      = 13 // NFULA_SEQ_GLOBAL: be32 per-netns sequence number (NFULNL_CFG_F_SEQ_GLOBAL)
	nfulaGID            = 14 // NFULA_GID: be32 gid of the owning socket
	nfulaHwtype         = 15 // NFULA_HWTYPE: be16 ARPHRD_* type of the device
	nfulaHwheader       = 16 // NFULA_HWHEADER: the link-layer header
	nfulaHwlen          = 17 // NFULA_HWLEN: be16 length of the link-layer header
	nfulaCT             = 18 // NFULA_CT: nested ctnetlink attributes of the packet's conntrack entry
	nfulaCTInfo         = 19 // NFULA_CT_INFO: be32 enum ip_conntrack_info
	nfulaVLAN           = 20 // NFULA_VLAN: nested VLAN tag (NFULA_VLAN_PROTO, NFULA_VLAN_TCI)
	nfulaL2Hdr          = 21 // NFULA_L2HDR: the link-layer header of bridged packets
	nfulaMaxKnown       = nfulaL2Hdr
)

// Attributes nested in NFULA_VLAN (enum nfulnl_vlan_attr).
const (
	nfulaVLANProto = 1 // NFULA_VLAN_PROTO: be16 VLAN ethertype (0x8100, 0x88a8)
	nfulaVLANTCI   = 2 // NFULA_VLAN_TCI: be16 tag control information
)

// Sizes of the fixed-layout attribute payloads.
const (
	packetHdrLen  = 4  // struct nfulnl_msg_packet_hdr
	timestampLen  = 16 // struct nfulnl_msg_packet_timestamp
	hwaddrLen     = 12 // struct nfulnl_msg_packet_hw
	hwaddrMax     = 8  // hw_addr[8]
	configModeLen = 6  // struct nfulnl_msg_config_mode (packed): be32 copy_range, u8 copy_mode, u8 pad
)

// Configuration attributes (enum nfulnl_attr_config).
const (
	nfulaCfgCmd      = 1 // NFULA_CFG_CMD: struct nfulnl_msg_config_cmd
	nfulaCfgMode     = 2 // NFULA_CFG_MODE: struct nfulnl_msg_config_mode
	nfulaCfgNlbufsiz = 3 // NFULA_CFG_NLBUFSIZ: be32 size of the kernel's batch buffer
	nfulaCfgTimeout  = 4 // NFULA_CFG_TIMEOUT: be32 flush timeout in 1/100 s
	nfulaCfgQthresh  = 5 // NFULA_CFG_QTHRESH: be32 packets per batch
	nfulaCfgFlags    = 6 // NFULA_CFG_FLAGS: be16 NFULNL_CFG_F_*
)

// Configuration commands (enum nfulnl_msg_config_cmds).
const (
	cmdBind     = 1 // NFULNL_CFG_CMD_BIND: create the group's instance, owned by this socket
	cmdUnbind   = 2 // NFULNL_CFG_CMD_UNBIND: destroy it
	cmdPFBind   = 3 // NFULNL_CFG_CMD_PF_BIND: make nfnetlink_log the family's default logger
	cmdPFUnbind = 4 // NFULNL_CFG_CMD_PF_UNBIND: remove the family's default logger
)

// Copy modes (NFULNL_COPY_*).
const (
	CopyNone   = 0 // NFULNL_COPY_NONE: nothing (only useful with a counter)
	CopyMeta   = 1 // NFULNL_COPY_META: metadata without payload
	CopyPacket = 2 // NFULNL_COPY_PACKET: metadata and up to copy_range bytes of payload
)

// CopyRangeMax is the largest copy range; the kernel clamps it to what fits
// an attribute (65531 bytes of payload).
const CopyRangeMax = 0xffff

// Configuration flags (NFULNL_CFG_F_*).
const (
	FlagSeq       = 0x1 // NFULNL_CFG_F_SEQ: add NFULA_SEQ
	FlagSeqGlobal = 0x2 // NFULNL_CFG_F_SEQ_GLOBAL: add NFULA_SEQ_GLOBAL
	FlagConntrack = 0x4 // NFULNL_CFG_F_CONNTRACK: add NFULA_CT and NFULA_CT_INFO
)
