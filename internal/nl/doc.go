// Package nl is the netlink layer of the daemon's hot path: a raw AF_NETLINK
// socket that parks its reader on the Go runtime poller (through a private
// one-shot epoll instance), batched receive with recvmmsg into reused
// buffers, optional read coalescing, and zero-copy walkers over netlink
// messages and attributes.
//
// Nothing here allocates per received datagram. Slices handed out by Batch,
// NextMsg and AttrIter alias the receive buffer and stay valid only until the
// next Receive on the same Batch; callers that keep data must copy it.
//
// Request/response control work (NFLOG configuration, NFACCT) may instead use
// github.com/mdlayher/netlink; this package exists for the event receive path.
package nl
