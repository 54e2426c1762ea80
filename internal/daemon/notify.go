package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// SdNotify sends one sd_notify(3) datagram ("READY=1", "STOPPING=1",
// "RELOADING=1", "STATUS=...", several separated by newlines) to the socket
// named by $NOTIFY_SOCKET: a path, or an abstract socket written "@name".
// Without $NOTIFY_SOCKET it returns false, nil, so callers need not know
// whether they run under systemd. The environment is left as it is.
func SdNotify(state string) (sent bool, err error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return false, nil
	}
	if addr[0] != '/' && addr[0] != '@' {
		return false, fmt.Errorf("sd_notify: unsupported NOTIFY_SOCKET %q", addr)
	}
	// The net package maps a leading '@' to the abstract namespace.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	n, err := c.Write([]byte(state))
	if err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	if n != len(state) {
		return false, errors.New("sd_notify: short write")
	}
	return true, nil
}

// WatchdogInterval returns the systemd watchdog timeout from $WATCHDOG_USEC,
// or 0 when there is none, the value is not a positive number, or
// $WATCHDOG_PID is set to another process. The daemon should send
// "WATCHDOG=1" at about half this interval.
func WatchdogInterval() time.Duration {
	us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" {
		pid, err := strconv.Atoi(p)
		if err != nil || pid != os.Getpid() {
			return 0
		}
	}
	return time.Duration(us) * time.Microsecond
}
