// Package ctnl speaks ctnetlink, the conntrack subsystem of nfnetlink
// (NFNL_SUBSYS_CTNETLINK): zero-allocation decoding of conntrack events and
// dump replies, table dumps (optionally zeroing counters), single-flow
// lookups, and a classic BPF socket filter on the original tuple.
package ctnl
