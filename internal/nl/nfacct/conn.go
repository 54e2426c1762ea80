package nfacct

import (
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Conn is an nfnetlink socket for accounting requests. Its methods may be
// called from any goroutine; requests are serialised.
type Conn struct {
	c *netlink.Conn
}

// Dial opens a netfilter netlink socket in the calling thread's network
// namespace, or in the namespace open as file descriptor netns when it is
// not 0.
func Dial(netns int) (*Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("nfacct: open netlink socket: %w", err)
	}
	return &Conn{c: c}, nil
}

// Close closes the socket; a request in progress returns an error.
func (c *Conn) Close() error { return c.c.Close() }

// Dump asks for every accounting object and calls fn for each, in the
// kernel's order, with the object's message payload (nfgenmsg header and
// attributes, which Decode reads), valid until fn returns. With zero the kernel resets each object's counters as it
// reports them, in one atomic exchange per counter (NFNL_MSG_ACCT_GET_CTRZERO):
// no packet counted between two zeroing dumps is lost or counted twice.
func (c *Conn) Dump(zero bool, fn func(o Object, payload []byte)) error {
	msgs, err := c.dump(zero)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := decodeMsg(m.Header.Type, m.Data, fn); err != nil {
			return err
		}
	}
	return nil
}

// dump sends a dump request and returns the answer's messages.
func (c *Conn) dump(zero bool) ([]netlink.Message, error) {
	typ := msgGet
	if zero {
		typ = msgGetCtrZero
	}
	msgs, err := c.c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(subsysAcct<<8 | typ),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: header(),
	})
	if err != nil {
		return nil, fmt.Errorf("nfacct: dump: %w", err)
	}
	return msgs, nil
}

// Add creates an accounting object with the given name and initial
// counters (and quota, when o.Flags asks for one). It fails with an error
// matching unix.EEXIST when the name exists.
func (c *Conn) Add(o Object) error {
	if o.Name == "" || len(o.Name) > NameMax {
		return fmt.Errorf("nfacct: object name %q: want 1 to %d bytes", o.Name, NameMax)
	}
	data, err := encodeObject(o)
	if err != nil {
		return fmt.Errorf("nfacct: add %q: %w", o.Name, err)
	}
	return c.ack("add "+o.Name, msgNew, netlink.Create|netlink.Excl, data)
}

// Del deletes the named object, or every unused object when name is
// empty. Deleting an object a rule still uses fails with EBUSY.
func (c *Conn) Del(name string) error {
	data := header()
	if name != "" {
		ae := netlink.NewAttributeEncoder()
		ae.String(attrName, name)
		b, err := ae.Encode()
		if err != nil {
			return err
		}
		data = append(data, b...)
	}
	return c.ack("delete "+name, msgDel, 0, data)
}

// ack sends a request that expects an acknowledgement.
func (c *Conn) ack(what string, typ int, flags netlink.HeaderFlags, data []byte) error {
	_, err := c.c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(subsysAcct<<8 | typ),
			Flags: netlink.Request | netlink.Acknowledge | flags,
		},
		Data: data,
	})
	if err != nil {
		var oe *netlink.OpError
		if errors.As(err, &oe) {
			return fmt.Errorf("nfacct: %s: %w", what, oe.Err)
		}
		return fmt.Errorf("nfacct: %s: %w", what, err)
	}
	return nil
}
