// Package nfaccttest makes the kernel count packets into accounting
// objects without the iptables command: it installs, through nf_tables,
// the rule `iptables -m nfacct --nfacct-name NAME` installs through
// iptables-nft (an nft_compat expression running the xtables match
// "nfacct").
package nfaccttest

import (
	"encoding/binary"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Table is the nf_tables table (family ip) Count creates.
const Table = "ulogd_nfacct"

// nf_tables constants (linux/netfilter/nf_tables.h, nfnetlink.h).
const (
	subsysNftables = 10
	msgBatchBegin  = 0x10
	msgBatchEnd    = 0x11
	msgNewTable    = 0
	msgNewChain    = 3
	msgNewRule     = 6

	tableName  = 1 // NFTA_TABLE_NAME
	chainTable = 1 // NFTA_CHAIN_TABLE
	chainName  = 3 // NFTA_CHAIN_NAME
	chainHook  = 4 // NFTA_CHAIN_HOOK
	chainType  = 7 // NFTA_CHAIN_TYPE
	hookNum    = 1 // NFTA_HOOK_HOOKNUM
	hookPrio   = 2 // NFTA_HOOK_PRIORITY
	ruleTable  = 1 // NFTA_RULE_TABLE
	ruleChain  = 2 // NFTA_RULE_CHAIN
	ruleExprs  = 4 // NFTA_RULE_EXPRESSIONS
	listElem   = 1 // NFTA_LIST_ELEM
	exprName   = 1 // NFTA_EXPR_NAME
	exprData   = 2 // NFTA_EXPR_DATA
	matchName  = 1 // NFTA_MATCH_NAME
	matchRev   = 2 // NFTA_MATCH_REV
	matchInfo  = 3 // NFTA_MATCH_INFO
	metaDreg   = 1 // NFTA_META_DREG
	metaKey    = 2 // NFTA_META_KEY
	cmpSreg    = 1 // NFTA_CMP_SREG
	cmpOp      = 2 // NFTA_CMP_OP
	cmpData    = 3 // NFTA_CMP_DATA
	dataValue  = 1 // NFTA_DATA_VALUE

	reg1        = 1  // NFT_REG_1
	metaL4Proto = 16 // NFT_META_L4PROTO
	cmpEq       = 0  // NFT_CMP_EQ
	protoICMP   = 1

	hookLocalOut = 3 // NF_INET_LOCAL_OUT

	// matchInfoLen is sizeof(struct xt_nfacct_match_info) on 64-bit
	// kernels: char name[32] and a kernel pointer.
	matchInfoLen = 40
)

// Count installs, in the network namespace open as file descriptor netns
// (0: the calling thread's), a table "ulogd_nfacct" (family ip) whose
// output chain counts every locally sent ICMP packet into each named
// accounting object, which must exist: `meta l4proto icmp` followed by the
// nfacct match. A ping to 127.0.0.1 then counts the echo request and the
// echo reply (84 bytes each), and nothing else sent in the namespace.
func Count(netns int, names ...string) error {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return fmt.Errorf("nfaccttest: %w", err)
	}
	defer c.Close()

	table := attrs(func(ae *netlink.AttributeEncoder) { ae.String(tableName, Table) })
	chain := attrs(func(ae *netlink.AttributeEncoder) {
		ae.String(chainTable, Table)
		ae.String(chainName, "out")
		ae.Nested(chainHook, func(ae *netlink.AttributeEncoder) error {
			ae.Uint32(hookNum, hookLocalOut)
			ae.Uint32(hookPrio, 0)
			return nil
		})
		ae.String(chainType, "filter")
	})
	msgs := []netlink.Message{batch(msgBatchBegin), nft(msgNewTable, table), nft(msgNewChain, chain)}
	for _, name := range names {
		info := make([]byte, matchInfoLen)
		if len(name) >= 32 {
			return fmt.Errorf("nfaccttest: name %q longer than 31 bytes", name)
		}
		copy(info, name)
		msgs = append(msgs, nft(msgNewRule, attrs(func(ae *netlink.AttributeEncoder) {
			ae.String(ruleTable, Table)
			ae.String(ruleChain, "out")
			ae.Nested(ruleExprs, func(ae *netlink.AttributeEncoder) error {
				ae.Nested(listElem, func(ae *netlink.AttributeEncoder) error {
					ae.String(exprName, "meta")
					ae.Nested(exprData, func(ae *netlink.AttributeEncoder) error {
						ae.Uint32(metaDreg, reg1)
						ae.Uint32(metaKey, metaL4Proto)
						return nil
					})
					return nil
				})
				ae.Nested(listElem, func(ae *netlink.AttributeEncoder) error {
					ae.String(exprName, "cmp")
					ae.Nested(exprData, func(ae *netlink.AttributeEncoder) error {
						ae.Uint32(cmpSreg, reg1)
						ae.Uint32(cmpOp, cmpEq)
						ae.Nested(cmpData, func(ae *netlink.AttributeEncoder) error {
							ae.Bytes(dataValue, []byte{protoICMP})
							return nil
						})
						return nil
					})
					return nil
				})
				ae.Nested(listElem, func(ae *netlink.AttributeEncoder) error {
					ae.String(exprName, "match")
					ae.Nested(exprData, func(ae *netlink.AttributeEncoder) error {
						ae.String(matchName, "nfacct")
						ae.Uint32(matchRev, 0)
						ae.Bytes(matchInfo, info)
						return nil
					})
					return nil
				})
				return nil
			})
		})))
	}
	msgs = append(msgs, batch(msgBatchEnd))
	if _, err := c.SendMessages(msgs); err != nil {
		return fmt.Errorf("nfaccttest: send: %w", err)
	}
	// One acknowledgement per request between the batch markers; an error
	// comes back instead of its acknowledgement.
	for acks := 0; acks < len(msgs)-2; {
		got, err := c.Receive()
		if err != nil {
			return fmt.Errorf("nfaccttest: nf_tables: %w", err)
		}
		acks += len(got)
	}
	return nil
}

func attrs(fn func(ae *netlink.AttributeEncoder)) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	fn(ae)
	b, err := ae.Encode()
	if err != nil {
		panic(err) // only fixed, well-formed attributes are encoded
	}
	return b
}

// nft builds an nf_tables request (family ip) asking for an
// acknowledgement.
func nft(typ int, data []byte) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(subsysNftables<<8 | typ),
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create,
		},
		Data: append([]byte{unix.NFPROTO_IPV4, 0, 0, 0}, data...),
	}
}

// batch builds a batch begin or end marker for the nf_tables subsystem.
func batch(typ int) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, 0, 0, subsysNftables}, // res_id big-endian
	}
}
