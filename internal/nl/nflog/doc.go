// Package nflog speaks nfnetlink_log (NFNL_SUBSYS_ULOG), the kernel side of
// nft's `log group N` and iptables' `-j NFLOG`: configuration commands
// (bind a group, copy mode, batching, flags) and a zero-allocation decoder
// for the packet messages.
//
// Configuration is request/response on an nl.Conn (Control); the packet
// receive path is the caller's: it reads the same socket with nl.Batch and
// hands every message to Decode. A Packet's slices alias the received
// buffer.
package nflog
