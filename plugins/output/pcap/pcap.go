// Package pcap is the PCAP sink: it appends every packet to a file in the
// classic libpcap format (link type RAW: records start at the IP header),
// readable by tcpdump and Wireshark.
package pcap

import (
	_ "embed"

	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/fileout"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// Config holds PCAP's options.
type Config struct {
	File string `ulogd:"file"`
	Sync int    `ulogd:"sync"`
}

// Input key indexes, in declaration order.
const (
	inPkt = iota
	inPktLen
	inTotLen
	inTimeSec
	inTimeUsec
	inFamily
	inIP6PayloadLen
	numInputs
)

// The inputs are all mandatory, as in ulogd2: the stack must have BASE.
var inputs = [numInputs]keys.Spec{
	inPkt:           {Name: "raw.pkt", Type: keys.Raw},
	inPktLen:        {Name: "raw.pktlen", Type: keys.Uint32},
	inTotLen:        {Name: "ip.totlen", Type: keys.Uint16},
	inTimeSec:       {Name: "oob.time.sec", Type: keys.Uint32},
	inTimeUsec:      {Name: "oob.time.usec", Type: keys.Uint32},
	inFamily:        {Name: "oob.family", Type: keys.Uint8},
	inIP6PayloadLen: {Name: "ip6.payloadlen", Type: keys.Uint16},
}

// Classic libpcap file format constants.
const (
	magic        = 0xa1b2c3d4 // microsecond timestamps, written in host order
	versionMajor = 2
	versionMinor = 4
	snapLen      = 65536
	linkTypeRaw  = 101 // LINKTYPE_RAW: the packet starts at the IPv4/IPv6 header
	headerLen    = 24  // struct pcap_file_header
	recordLen    = 16  // struct pcap_pkthdr as stored in files
	ip6HeaderLen = 40
)

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the PCAP plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "PCAP",
		Kind:      plugin.Sink,
		Summary:   "write packets to a libpcap file (link type RAW)",
		Input:     plugin.DTPacket,
		Output:    plugin.DTSink,
		NewConfig: func() *Config { return &Config{File: "/var/log/ulogd.pcap"} },
		Options: map[string]string{
			"file": "capture file, opened for appending (created with mode 0640)",
			"sync": "1: write at the end of every batch of packets",
		},
		Sample: sample,
		Keys: func(*Config) ([]keys.Spec, []keys.Spec, error) {
			return inputs[:], nil, nil
		},
		Resources: func(cfg *Config) []string { return fileout.Resources(cfg.File) },
		New: func(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
			if err := fileout.CheckPath(cfg.File); err != nil {
				return nil, err
			}
			if len(env.In) != numInputs {
				return nil, fmt.Errorf("PCAP: %d input slots, want %d", len(env.In), numInputs)
			}
			s := &sink{
				Sink: fileout.NewSink(cfg.File, cfg.Sync != 0, env.Log, fileout.Texts{
					Open:   "can't open " + cfg.File,
					Reopen: "can't reopen " + cfg.File,
					Notice: "reopening capture file",
				}),
				now: time.Now, log: env.Log,
			}
			copy(s.in[:], env.In)
			return s, nil
		},
	})
}

// sink is one PCAP instance. fileout.Sink opens, flushes, reopens and
// closes the file; PCAP adds the file header and its write-error message.
type sink struct {
	fileout.Sink
	in  [numInputs]keys.Slot
	now func() time.Time
	log *slog.Logger

	lastErr int64 // unix second of the last "Error during write" message
}

// appendHeader appends the pcap file header, in host byte order, with
// thiszone = the local zone's standard offset in seconds west of UTC (C's
// timezone variable).
func appendHeader(b []byte, thiszone int32) []byte {
	e := binary.NativeEndian
	b = e.AppendUint32(b, magic)
	b = e.AppendUint16(b, versionMajor)
	b = e.AppendUint16(b, versionMinor)
	b = e.AppendUint32(b, uint32(thiszone))
	b = e.AppendUint32(b, 0) // sigfigs
	b = e.AppendUint32(b, snapLen)
	return e.AppendUint32(b, linkTypeRaw)
}

// appendRecord appends one record header and the captured bytes.
func appendRecord(b []byte, sec, usec uint32, length uint32, pkt []byte) []byte {
	e := binary.NativeEndian
	b = e.AppendUint32(b, sec)
	b = e.AppendUint32(b, usec)
	b = e.AppendUint32(b, uint32(len(pkt)))
	b = e.AppendUint32(b, length)
	return append(b, pkt...)
}

// timezoneWest returns what C's timezone holds after tzset(): the standard
// (non-summer) offset of loc, in seconds west of UTC.
func timezoneWest(loc *time.Location, now time.Time) int32 {
	y := now.In(loc).Year()
	jan := time.Date(y, time.January, 1, 12, 0, 0, 0, loc)
	jul := time.Date(y, time.July, 1, 12, 0, 0, 0, loc)
	std := jan
	if jan.IsDST() && !jul.IsDST() {
		std = jul
	}
	_, off := std.Zone()
	return int32(-off)
}

func (s *sink) Start(ctx context.Context) error {
	if err := s.Sink.Start(ctx); err != nil {
		return err
	}
	s.headerIfEmpty()
	return nil
}

// headerIfEmpty queues the file header when the file at the path is empty
// (just created, or truncated by logrotate's copytruncate) and nothing is
// buffered for it yet.
func (s *sink) headerIfEmpty() {
	fi, err := os.Stat(s.W.Path())
	if err != nil || fi.Size() != 0 {
		return
	}
	// Records that could not be written to the old file stay buffered:
	// they go after the header.
	s.W.Prepend(appendHeader(make([]byte, 0, headerLen), timezoneWest(time.Local, s.now())))
}

func (s *sink) Stop(ctx context.Context) error {
	err := s.Sink.Stop(ctx)
	if err != nil {
		s.log.Error("Error during write: " + err.Error())
	}
	return err
}

// Interp appends one record to the buffer. It does not allocate once the
// buffer has grown to its working size.
func (s *sink) Interp(r *keys.Record) plugin.Verdict {
	if s.W == nil || !r.Valid(s.in[inPkt]) {
		// No packet bytes (NFLOG without payload): nothing to capture.
		return plugin.Continue
	}
	pkt := r.Bytes(s.in[inPkt])
	if r.Valid(s.in[inPktLen]) {
		if n := r.Uint(s.in[inPktLen]); n < uint64(len(pkt)) {
			pkt = pkt[:n]
		}
	}
	if len(pkt) > snapLen {
		pkt = pkt[:snapLen]
	}
	length := uint32(len(pkt))
	switch r.Uint(s.in[inFamily]) {
	case unix.AF_INET:
		if r.Valid(s.in[inTotLen]) {
			length = uint32(r.Uint(s.in[inTotLen]))
		}
	case unix.AF_INET6:
		if r.Valid(s.in[inIP6PayloadLen]) {
			length = uint32(r.Uint(s.in[inIP6PayloadLen])) + ip6HeaderLen
		}
	}
	var sec, usec uint32
	if r.Valid(s.in[inTimeSec]) && r.Valid(s.in[inTimeUsec]) {
		sec, usec = uint32(r.Uint(s.in[inTimeSec])), uint32(r.Uint(s.in[inTimeUsec]))
	} else {
		t := s.now()
		sec, usec = uint32(t.Unix()), uint32(t.Nanosecond()/1000)
	}
	if err := s.W.Commit(appendRecord(s.W.Buffer(), sec, usec, length, pkt)); err != nil {
		// The record stays buffered for the next attempt.
		s.writeError(err)
		return plugin.Fail
	}
	return plugin.Continue
}

// writeError logs a failed write, at most once per second.
func (s *sink) writeError(err error) {
	if now := s.now().Unix(); now != s.lastErr {
		s.lastErr = now
		s.log.Error("Error during write: " + err.Error())
	}
}

// Flush is called at the end of each receive batch (and every second).
func (s *sink) Flush() error {
	err := s.Sink.Flush()
	if err != nil {
		s.writeError(err)
	}
	return err
}

// Reopen reopens the file on SIGHUP (logrotate); a header is written when
// the file at the path is new or empty.
func (s *sink) Reopen() error {
	if err := s.Sink.Reopen(); err != nil || s.W == nil {
		return err
	}
	s.headerIfEmpty()
	return nil
}
