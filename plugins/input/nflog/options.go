package nflog

import (
	"errors"
	"math"

	"github.com/ulogd-go/ulogd/internal/config"
)

// Config holds the options of an NFLOG instance, in ulogd's --info order
// and with ulogd's defaults.
type Config struct {
	BufSize         int `ulogd:"bufsize"`
	Group           int `ulogd:"group"`
	Unbind          int `ulogd:"unbind"`
	Bind            int `ulogd:"bind"`
	SeqLocal        int `ulogd:"seq_local"`
	SeqGlobal       int `ulogd:"seq_global"`
	NumericLabel    int `ulogd:"numeric_label"`
	BufferSize      int `ulogd:"netlink_socket_buffer_size"`
	BufferMaxSize   int `ulogd:"netlink_socket_buffer_maxsize"`
	QThreshold      int `ulogd:"netlink_qthreshold"`
	QTimeout        int `ulogd:"netlink_qtimeout"`
	AttachConntrack int `ulogd:"attach_conntrack"`
}

// defaultConfig returns ulogd's defaults.
func defaultConfig() *Config {
	return &Config{
		BufSize: 150000,
		Group:   0,
		Unbind:  1,
	}
}

// minBufSize is the smallest per-datagram buffer: one page, the kernel's
// smallest batch.
const minBufSize = 4096

// validate checks the numeric options. It is pure.
func (c *Config) validate() error {
	var errs []error
	if c.BufSize < minBufSize {
		errs = append(errs, config.OptionErrorf("bufsize", "bufsize=%d: must be at least %d bytes (a full-size packet needs about 66000)", c.BufSize, minBufSize))
	}
	if c.Group < 0 || c.Group > math.MaxUint16 {
		errs = append(errs, config.OptionErrorf("group", "group=%d: must be a log group between 0 and 65535", c.Group))
	}
	if c.NumericLabel < 0 || c.NumericLabel > math.MaxUint8 {
		errs = append(errs, config.OptionErrorf("numeric_label", "numeric_label=%d: must be between 0 and 255 (raw.label is 8 bits)", c.NumericLabel))
	}
	if c.BufferSize < 0 {
		errs = append(errs, config.OptionErrorf("netlink_socket_buffer_size", "netlink_socket_buffer_size=%d: must not be negative", c.BufferSize))
	}
	if c.BufferMaxSize < 0 {
		errs = append(errs, config.OptionErrorf("netlink_socket_buffer_maxsize", "netlink_socket_buffer_maxsize=%d: must not be negative", c.BufferMaxSize))
	}
	if c.QThreshold < 0 {
		errs = append(errs, config.OptionErrorf("netlink_qthreshold", "netlink_qthreshold=%d: must not be negative", c.QThreshold))
	}
	if c.QTimeout < 0 {
		errs = append(errs, config.OptionErrorf("netlink_qtimeout", "netlink_qtimeout=%d: must not be negative", c.QTimeout))
	}
	return errors.Join(errs...)
}

// flags returns the NFULNL_CFG_F_* flags the options ask for.
func (c *Config) flags() uint16 {
	var f uint16
	if c.SeqLocal != 0 {
		f |= 0x1 // NFULNL_CFG_F_SEQ
	}
	if c.SeqGlobal != 0 {
		f |= 0x2 // NFULNL_CFG_F_SEQ_GLOBAL
	}
	if c.AttachConntrack != 0 {
		f |= 0x4 // NFULNL_CFG_F_CONNTRACK
	}
	return f
}
