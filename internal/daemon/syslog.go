package daemon

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// DefaultSyslogPath is the socket the syslog destination sends to.
const DefaultSyslogPath = "/dev/log"

// syslogSeverity maps a ulogd level number to an RFC 3164 severity.
func syslogSeverity(u int) int {
	switch u {
	case 1:
		return 7 // debug
	case 3:
		return 6 // info
	case 5:
		return 5 // notice
	case 7:
		return 3 // err
	default:
		return 2 // crit
	}
}

const facilityDaemon = 3

// syslogLine formats r as glibc's syslog(3) does for the local socket:
// "<PRI>Mmm dd hh:mm:ss ulogd[PID]: message".
func (l *Log) syslogLine(r *record) []byte {
	b := make([]byte, 0, 40+len(r.text))
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(facilityDaemon<<3|syslogSeverity(r.ulvl)), 10)
	b = append(b, '>')
	b = r.t.Local().AppendFormat(b, time.Stamp)
	b = append(b, " ulogd["...)
	b = strconv.AppendInt(b, int64(l.pid), 10)
	b = append(b, "]: "...)
	return append(b, r.text...)
}

// writeSyslog sends r to the syslog socket, connecting (or reconnecting once,
// after a syslog daemon restart) as needed. It reports false when the
// message could not be sent; the caller then writes it to stderr. Called
// with l.mu held.
func (l *Log) writeSyslog(r *record) bool {
	msg := l.syslogLine(r)
	for attempt := 0; attempt < 2; attempt++ {
		if l.syslogConn == nil {
			if err := l.dialSyslog(); err != nil {
				if !l.syslogSaid {
					l.syslogSaid = true
					l.stderr.Write(fileLine(&record{
						t: r.t, ulvl: 7, where: here(),
						text: []byte(fmt.Sprintf("can't send to syslog at %s: %v; logging to stderr", l.syslogPath, err)),
					}))
				}
				return false
			}
		}
		out := msg
		if l.syslogNet == "unix" {
			out = append(msg, 0) // stream sockets: glibc ends each message with NUL
		}
		if _, err := l.syslogConn.Write(out); err == nil {
			return true
		}
		l.syslogConn.Close()
		l.syslogConn = nil
	}
	return false
}

func (l *Log) dialSyslog() error {
	var errs []error
	for _, network := range []string{"unixgram", "unix"} {
		c, err := net.Dial(network, l.syslogPath)
		if err == nil {
			l.syslogConn, l.syslogNet, l.syslogSaid = c, network, false
			return nil
		}
		errs = append(errs, err)
	}
	// The datagram error is the telling one (ENOENT, ECONNREFUSED).
	var oe *net.OpError
	if errors.As(errs[0], &oe) {
		return oe.Err
	}
	return errs[0]
}
