package unixsock

import (
	"errors"
	"path/filepath"

	"github.com/ulogd-go/ulogd/internal/config"
)

// Config holds the options of a UNIXSOCK instance, in ulogd2's --info order
// and with its defaults.
type Config struct {
	SocketPath string `ulogd:"socket_path"`
	BufSize    int    `ulogd:"bufsize"`
	Perms      int    `ulogd:"perms"`
	Owner      string `ulogd:"owner"`
	Group      string `ulogd:"group"`
}

// DefaultSocketPath is socket_path's default.
const DefaultSocketPath = "/var/run/ulogd/ulogd2.sock"

func defaultConfig() *Config {
	return &Config{SocketPath: DefaultSocketPath, Perms: 0o600}
}

// maxPathLen is the longest unix socket path (sun_path is 108 bytes with
// its terminating NUL).
const maxPathLen = 107

// maxFrameLen is the largest frame the wire format can describe: the
// 4-byte marker plus a 16-bit total_size.
const maxFrameLen = markerLen + 0xffff

// validate checks the options. It is pure.
func (c *Config) validate() error {
	var errs []error
	if c.SocketPath == "" {
		errs = append(errs, errors.New("socket_path is empty"))
	} else if len(c.SocketPath) > maxPathLen {
		errs = append(errs, config.OptionErrorf("socket_path", "socket_path=%q: longer than the %d bytes a unix socket address holds", c.SocketPath, maxPathLen))
	}
	if c.BufSize != 0 && c.BufSize < minFrameLen {
		errs = append(errs, config.OptionErrorf("bufsize", "bufsize=%d: the largest accepted frame must hold at least a %d-byte header (0 = %d, the wire format's maximum)", c.BufSize, minFrameLen, maxFrameLen))
	}
	if c.Perms < 0 || c.Perms > 0o7777 {
		errs = append(errs, config.OptionErrorf("perms", "perms=%d: not a file mode (write it in octal, e.g. perms=0660)", c.Perms))
	}
	return errors.Join(errs...)
}

// frameLimit is the largest frame accepted, in bytes (marker included).
func (c *Config) frameLimit() int {
	if c.BufSize == 0 || c.BufSize > maxFrameLen {
		return maxFrameLen
	}
	return c.BufSize
}

// resource is the name under which the socket path is claimed.
func (c *Config) resource() string {
	return "unix:" + filepath.Clean(c.SocketPath)
}
