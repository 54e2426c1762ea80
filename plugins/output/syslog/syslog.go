// Package syslog is the SYSLOG sink: it sends the "print" key of each event
// to the local syslog daemon, as ulogd2 does through syslog(3).
//
// Each event is one datagram to /dev/log, formatted as glibc's syslog(3)
// formats it after openlog("ulogd", LOG_NDELAY|LOG_PID, LOG_DAEMON):
//
//	<PRI>Mmm dd hh:mm:ss ulogd[PID]: message
package syslog

import (
	_ "embed"

	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Config holds SYSLOG's options.
type Config struct {
	Facility string `ulogd:"facility"`
	Level    string `ulogd:"level"`
}

// facilityDaemon is LOG_DAEMON, the facility given to openlog().
const facilityDaemon = 3 << 3

// socketPath is the local syslog socket, every sink's path at
// construction (tests set the field to their own socket).
const socketPath = "/dev/log"

// facilities are the names ulogd2 accepts, with their syslog.h values.
var facilities = map[string]int{
	"LOG_DAEMON": 3 << 3,
	"LOG_KERN":   0,
	"LOG_LOCAL0": 16 << 3,
	"LOG_LOCAL1": 17 << 3,
	"LOG_LOCAL2": 18 << 3,
	"LOG_LOCAL3": 19 << 3,
	"LOG_LOCAL4": 20 << 3,
	"LOG_LOCAL5": 21 << 3,
	"LOG_LOCAL6": 22 << 3,
	"LOG_LOCAL7": 23 << 3,
	"LOG_USER":   1 << 3,
}

// levels are the names ulogd2 accepts, with their syslog.h values.
var levels = map[string]int{
	"LOG_EMERG":   0,
	"LOG_ALERT":   1,
	"LOG_CRIT":    2,
	"LOG_ERR":     3,
	"LOG_WARNING": 4,
	"LOG_NOTICE":  5,
	"LOG_INFO":    6,
	"LOG_DEBUG":   7,
}

var inputs = []keys.Spec{{Name: "print", Type: keys.String}}

// priority returns the <PRI> value for a configuration. As with glibc's
// syslog(3), facility 0 (LOG_KERN, the default) is replaced by the openlog
// facility LOG_DAEMON: the default configuration logs as daemon.notice
// (<29>), exactly like ulogd2 (docs/compat.md T5).
func priority(cfg *Config) (int, error) {
	fac, ok := facilities[cfg.Facility]
	if !ok {
		return 0, fmt.Errorf("unknown facility '%s'", cfg.Facility)
	}
	lvl, ok := levels[cfg.Level]
	if !ok {
		return 0, fmt.Errorf("unknown level '%s'", cfg.Level)
	}
	if fac == 0 {
		fac = facilityDaemon
	}
	return fac | lvl, nil
}

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the SYSLOG plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "SYSLOG",
		Kind:      plugin.Sink,
		Summary:   "send the print key to the local syslog daemon (/dev/log)",
		Input:     plugin.DTPacket | plugin.DTFlow,
		Output:    plugin.DTSink,
		NewConfig: func() *Config { return &Config{Facility: "LOG_KERN", Level: "LOG_NOTICE"} },
		Options: map[string]string{
			"facility": "one of `LOG_DAEMON`, `LOG_KERN`, `LOG_LOCAL0` … `LOG_LOCAL7`, `LOG_USER` (`LOG_KERN`, 0, logs as `LOG_DAEMON`, as in ulogd2)",
			"level":    "one of `LOG_EMERG`, `LOG_ALERT`, `LOG_CRIT`, `LOG_ERR`, `LOG_WARNING`, `LOG_NOTICE`, `LOG_INFO`, `LOG_DEBUG`",
		},
		Sample: sample,
		Keys: func(cfg *Config) ([]keys.Spec, []keys.Spec, error) {
			if _, err := priority(cfg); err != nil {
				return nil, nil, err
			}
			return inputs, nil, nil
		},
		New: func(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
			pri, err := priority(cfg)
			if err != nil {
				return nil, err
			}
			return &sink{pri: pri, print: env.In[0], path: socketPath, now: time.Now}, nil
		},
	})
}

type sink struct {
	pri   int
	print keys.Slot
	path  string // the syslog socket; tests point it elsewhere
	now   func() time.Time

	conn   net.Conn
	stream bool // connected to a SOCK_STREAM socket: messages end in NUL
	pid    int

	// "<PRI>Mmm dd hh:mm:ss ulogd[PID]: " is formatted once per second.
	headSec int64
	head    []byte
	buf     []byte
}

// Start connects to the syslog socket (openlog with LOG_NDELAY connects at
// once). A missing socket is a start error.
func (s *sink) Start(context.Context) error {
	s.pid = os.Getpid()
	s.headSec = -1
	s.buf = make([]byte, 0, 4096)
	if err := s.dial(); err != nil {
		return fmt.Errorf("can't connect to syslog at %s: %w", s.path, err)
	}
	return nil
}

// dial connects to the socket as a datagram socket, or as a stream socket
// when that is what listens there (glibc does the same).
func (s *sink) dial() error {
	c, err := net.Dial("unixgram", s.path)
	if err == nil {
		s.conn, s.stream = c, false
		return nil
	}
	c, err2 := net.Dial("unix", s.path)
	if err2 == nil {
		s.conn, s.stream = c, true
		return nil
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

func (s *sink) Stop(context.Context) error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// Interp sends the print key, verbatim, as one message.
func (s *sink) Interp(r *keys.Record) plugin.Verdict {
	if !r.Valid(s.print) {
		return plugin.Continue
	}
	now := s.now()
	if sec := now.Unix(); sec != s.headSec {
		s.headSec = sec
		h := append(s.head[:0], '<')
		h = strconv.AppendInt(h, int64(s.pri), 10)
		h = append(h, '>')
		h = now.AppendFormat(h, time.Stamp)
		h = append(h, " ulogd["...)
		h = strconv.AppendInt(h, int64(s.pid), 10)
		s.head = append(h, "]: "...)
	}
	b := append(s.buf[:0], s.head...)
	b = append(b, r.Bytes(s.print)...)
	s.buf = b
	if err := s.send(b); err != nil {
		return plugin.Fail
	}
	return plugin.Continue
}

// send writes one message, reconnecting once when the write fails (the
// syslog daemon was restarted).
func (s *sink) send(msg []byte) error {
	var err error
	for range 2 {
		if s.conn == nil {
			if err = s.dial(); err != nil {
				return err
			}
		}
		out := msg
		if s.stream {
			out = append(msg, 0)
			s.buf = out[:len(msg)]
		}
		if _, err = s.conn.Write(out); err == nil {
			return nil
		}
		s.conn.Close()
		s.conn = nil
	}
	return err
}

// Reopen reconnects to the syslog socket on SIGHUP (ulogd2 does nothing).
// A failed connect keeps the old connection.
func (s *sink) Reopen() error {
	old, oldStream := s.conn, s.stream
	if err := s.dial(); err != nil {
		s.conn, s.stream = old, oldStream
		return fmt.Errorf("can't connect to syslog at %s: %w", s.path, err)
	}
	if old != nil {
		old.Close()
	}
	return nil
}
