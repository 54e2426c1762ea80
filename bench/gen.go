package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// genConfig drives the load generator.
type genConfig struct {
	Flows     int           // datagrams to send, one flow each
	Rate      int           // flows per second; 0 = as fast as possible
	MaxTime   time.Duration // stop sending after this long even if Flows is not reached
	Delete    bool          // delete each flow with ctnetlink DeleteLag flows after creating it
	DeleteLag int           // flows between creation and deletion
}

// genResult is what the generator did.
type genResult struct {
	Sent       int
	SendErrs   int
	Deletes    int // delete requests sent
	DeleteErrs int // requests the kernel refused (e.g. ENOENT)
	Elapsed    time.Duration
}

// Rate returns the achieved send rate.
func (r genResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// flowTuple returns the spoofed source of flow i: one address of srcNet and
// a source port, unique for i < 2^16 * 64000.
func flowTuple(i int) (src [4]byte, sport uint16) {
	src = [4]byte{10, 200, byte(i >> 8), byte(i)}
	return src, uint16(1024 + i>>16)
}

// generator sends from the client namespace and deletes in the server one.
type generator struct {
	raw   int // IPPROTO_RAW socket in the client namespace
	ct    int // ctnetlink socket in the server namespace, or -1
	pkt   [32]byte
	dst   unix.SockaddrInet4
	del   []byte
	delRx []byte
	seq   uint32
}

func newGenerator(n *testNet, withDelete bool) (*generator, error) {
	g := &generator{raw: -1, ct: -1, delRx: make([]byte, 1<<16)}
	g.dst.Addr = [4]byte{10, 201, 0, 2}
	err := inNamespace(n.Client, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		g.raw = fd
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	})
	if err != nil {
		g.Close()
		return nil, err
	}
	if withDelete {
		err = inNamespace(n.Server, func() error {
			fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
			if err != nil {
				return fmt.Errorf("ctnetlink socket: %w", err)
			}
			g.ct = fd
			if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
				return err
			}
			// Errors come back with the request header only.
			unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
			return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
		})
		if err != nil {
			g.Close()
			return nil, err
		}
	}
	// IPv4 header; the kernel fills total length, id and checksum.
	p := g.pkt[:]
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[6:], 0x4000) // DF
	p[8] = 64                                 // TTL
	p[9] = unix.IPPROTO_UDP
	copy(p[16:20], g.dst.Addr[:])
	// UDP header, no checksum, 4 bytes of payload.
	binary.BigEndian.PutUint16(p[22:], dstPort)
	binary.BigEndian.PutUint16(p[24:], 12)
	copy(p[28:], "ubnc")
	return g, nil
}

func (g *generator) Close() {
	if g.raw >= 0 {
		unix.Close(g.raw)
	}
	if g.ct >= 0 {
		unix.Close(g.ct)
	}
}

func (g *generator) send(i int) error {
	src, sport := flowTuple(i)
	copy(g.pkt[12:16], src[:])
	binary.BigEndian.PutUint16(g.pkt[20:], sport)
	return unix.Sendto(g.raw, g.pkt[:], 0, &g.dst)
}

// Netlink and ctnetlink constants used by the delete request.
const (
	nlmFRequest      = 0x1
	ctMsgDelete      = 1<<8 | 2 // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE
	nlaFNested       = 0x8000
	ctaTupleOrig     = 1
	ctaTupleIP       = 1
	ctaTupleProto    = 2
	ctaIPv4Src       = 1
	ctaIPv4Dst       = 2
	ctaProtoNum      = 1
	ctaProtoSrcPort  = 2
	ctaProtoDstPort  = 3
	deleteMsgLen     = 16 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8
	deletesPerSend   = 64
	nlmsgErrorType   = 2
	nlmsgHeaderLen   = 16
	nlmsgErrorMinLen = nlmsgHeaderLen + 4
)

// appendDelete appends an IPCTNL_MSG_CT_DELETE request for flow i (no ACK:
// the kernel only answers failures).
func (g *generator) appendDelete(b []byte, i int) []byte {
	src, sport := flowTuple(i)
	g.seq++
	ne := binary.NativeEndian
	attr := func(b []byte, typ uint16, l int) []byte {
		b = ne.AppendUint16(b, uint16(l))
		return ne.AppendUint16(b, typ)
	}
	b = ne.AppendUint32(b, deleteMsgLen)
	b = ne.AppendUint16(b, ctMsgDelete)
	b = ne.AppendUint16(b, nlmFRequest)
	b = ne.AppendUint32(b, g.seq)
	b = ne.AppendUint32(b, 0)
	b = append(b, unix.AF_INET, 0, 0, 0) // nfgenmsg
	b = attr(b, ctaTupleOrig|nlaFNested, 4+4+8+8+4+8+8+8)
	b = attr(b, ctaTupleIP|nlaFNested, 4+8+8)
	b = attr(b, ctaIPv4Src, 8)
	b = append(b, src[:]...)
	b = attr(b, ctaIPv4Dst, 8)
	b = append(b, g.dst.Addr[:]...)
	b = attr(b, ctaTupleProto|nlaFNested, 4+8+8+8)
	b = attr(b, ctaProtoNum, 5)
	b = append(b, unix.IPPROTO_UDP, 0, 0, 0)
	b = attr(b, ctaProtoSrcPort, 6)
	b = binary.BigEndian.AppendUint16(b, sport)
	b = append(b, 0, 0)
	b = attr(b, ctaProtoDstPort, 6)
	b = binary.BigEndian.AppendUint16(b, dstPort)
	return append(b, 0, 0)
}

// deleteRange deletes flows [from, to) and returns how many requests it sent.
func (g *generator) deleteRange(from, to int, res *genResult) error {
	for from < to {
		n := min(to-from, deletesPerSend)
		b := g.del[:0]
		for i := range n {
			b = g.appendDelete(b, from+i)
		}
		g.del = b
		if err := unix.Sendto(g.ct, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return fmt.Errorf("ctnetlink delete: %w", err)
		}
		res.Deletes += n
		from += n
	}
	g.drainErrors(res)
	return nil
}

// drainErrors counts the NLMSG_ERROR answers queued on the delete socket.
func (g *generator) drainErrors(res *genResult) {
	for {
		n, _, err := unix.Recvfrom(g.ct, g.delRx, unix.MSG_DONTWAIT)
		if err != nil || n <= 0 {
			return
		}
		b := g.delRx[:n]
		for len(b) >= nlmsgErrorMinLen {
			l := int(binary.NativeEndian.Uint32(b))
			if l < nlmsgHeaderLen || l > len(b) {
				break
			}
			if binary.NativeEndian.Uint16(b[4:]) == nlmsgErrorType && int32(binary.NativeEndian.Uint32(b[16:])) != 0 {
				res.DeleteErrs++
			}
			b = b[(l+3)&^3:]
		}
	}
}

// run sends cfg.Flows datagrams at cfg.Rate (token bucket), deleting each
// flow cfg.DeleteLag flows later when cfg.Delete is set, then deletes the
// tail. It is bounded by cfg.MaxTime.
func (g *generator) run(cfg genConfig) (genResult, error) {
	var res genResult
	const chunk = 16
	start := time.Now()
	deadline := start.Add(cfg.MaxTime)
	deleted := 0
	for res.Sent < cfg.Flows {
		now := time.Now()
		if now.After(deadline) {
			break
		}
		burst := min(chunk, cfg.Flows-res.Sent)
		if cfg.Rate > 0 {
			due := int(now.Sub(start).Seconds()*float64(cfg.Rate)) + 1
			if due <= res.Sent {
				time.Sleep(200 * time.Microsecond)
				continue
			}
			burst = min(burst, due-res.Sent)
		}
		for range burst {
			if err := g.send(res.Sent); err != nil {
				if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
					res.SendErrs++
					continue
				}
				return res, fmt.Errorf("send: %w", err)
			}
			res.Sent++
		}
		if cfg.Delete && res.Sent-deleted >= cfg.DeleteLag+deletesPerSend {
			to := res.Sent - cfg.DeleteLag
			if err := g.deleteRange(deleted, to, &res); err != nil {
				return res, err
			}
			deleted = to
		}
	}
	res.Elapsed = time.Since(start)
	if cfg.Delete {
		// Let the last datagrams cross the veth before deleting them.
		time.Sleep(50 * time.Millisecond)
		if err := g.deleteRange(deleted, res.Sent, &res); err != nil {
			return res, err
		}
		time.Sleep(50 * time.Millisecond)
		g.drainErrors(&res)
	}
	return res, nil
}
