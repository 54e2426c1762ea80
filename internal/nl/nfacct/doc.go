// Package nfacct speaks nfnetlink_acct, the kernel's extended accounting
// objects (the objects `nfacct add NAME` creates and the xtables match
// `-m nfacct --nfacct-name NAME` counts into): it dumps them, optionally
// zeroing their counters in the same atomic step (NFNL_MSG_ACCT_GET_CTRZERO),
// and creates and deletes them.
//
// Objects live in the network namespace of the socket. Decode and
// DecodeMessages are pure and allocate only the object names; they are what
// the fuzz tests exercise.
package nfacct
