package unixsock

import (
	"bytes"
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/keys/pktkeys"
)

// Wire format (NuFW → ulogd). A client writes a stream of frames:
//
//	offset  size  field
//	0       4     marker 0x41C90FD4, big endian
//	4       2     total_size, big endian: frame length minus 4
//	6       4     version/reserved, ignored
//	10      2     payload_length, big endian
//	12      n     payload: the IPv4 or IPv6 packet
//	12+n    …     padding up to a multiple of 8 (counted from the payload)
//	…             options, each: id (4, BE), length (4, BE), value,
//	              value padded to a multiple of 8
//
// The u32 option values (4, time; 201, user id) are in the sender's host
// byte order: NuFW copies the integer as it is in memory, and ulogd2 reads
// it the same way.
const (
	marker     = 0x41C90FD4
	markerLen  = 4
	offTotal   = 4
	offPLen    = 10
	offPayload = 12
	// minFrameLen is the smallest frame: the header with an empty payload.
	minFrameLen = offPayload
	optHdrLen   = 8
	alignTo     = 8
)

// Option ids (ulogd2's ULOGD2_OPT_*).
const (
	optUnused   = 0   // ULOGD2_OPT_UNUSED: ignored silently
	optPrefix   = 1   // log prefix, string
	optIn       = 2   // input interface, string
	optOut      = 3   // output interface, string
	optTimeSec  = 4   // packet time, seconds, host-order u32
	optUserName = 200 // string
	optUserID   = 201 // host-order u32
	optOSName   = 202 // string
	optOSRel    = 203 // string
	optOSVers   = 204 // string
	optAppName  = 205 // string
	optState    = 206 // u8: 0 drop, 1 open, 2 established, 3 close, 4 unknown
)

func align8(n int) int { return (n + alignTo - 1) &^ (alignTo - 1) }

// problem says why a frame was rejected or why a client's stream cannot
// go on.
type problem uint8

const (
	frameOK          problem = iota
	needMore                 // the frame is not complete yet
	badMarker                // the stream is out of sync: close the client
	frameTooShort            // total_size smaller than the header
	frameTooLong             // frame longer than bufsize
	badPayloadLength         // payload_length runs past the frame
	optionOverrun            // an option's length runs past the frame
)

func (p problem) String() string {
	switch p {
	case frameOK:
		return "ok"
	case needMore:
		return "incomplete frame"
	case badMarker:
		return "invalid frame marker"
	case frameTooShort:
		return "total_size smaller than the frame header"
	case frameTooLong:
		return "frame larger than bufsize"
	case badPayloadLength:
		return "payload_length runs past the end of the frame"
	case optionOverrun:
		return "option length runs past the end of the frame"
	}
	return "unknown problem"
}

// stream cuts one client's byte stream into frames. The received bytes are
// buf[start:end]; a frame returned by next aliases buf and stays valid
// until the next call to space.
type stream struct {
	buf        []byte
	start, end int
	skip       int // bytes of a rejected frame still to discard
	limit      int // largest frame accepted
}

func newStream(limit int) *stream {
	return &stream{buf: make([]byte, limit), limit: limit}
}

// space returns where the next read goes, moving the unconsumed bytes to
// the front when the tail is full. It is never empty after next returned
// needMore.
func (s *stream) space() []byte {
	if s.start == s.end {
		s.start, s.end = 0, 0
	} else if s.end == len(s.buf) && s.start > 0 {
		s.end = copy(s.buf, s.buf[s.start:s.end])
		s.start = 0
	}
	return s.buf[s.end:]
}

// wrote records that n bytes were read into space().
func (s *stream) wrote(n int) { s.end += n }

// discard drops up to n bytes of a rejected frame; what is not received
// yet is dropped as it arrives.
func (s *stream) discard(n int) {
	k := min(n, s.end-s.start)
	s.start += k
	s.skip = n - k
}

// next returns the next complete frame. With needMore the caller reads
// more; with badMarker the stream cannot be resynchronised (got is the
// marker read); any other problem means a frame was rejected and skipped
// (got is its length), and the caller calls next again.
func (s *stream) next() (frame []byte, p problem, got uint32) {
	if s.skip > 0 {
		s.discard(s.skip)
		if s.skip > 0 {
			return nil, needMore, 0
		}
	}
	avail := s.end - s.start
	if avail < markerLen {
		return nil, needMore, 0
	}
	b := s.buf[s.start:s.end]
	if m := binary.BigEndian.Uint32(b); m != marker {
		return nil, badMarker, m
	}
	if avail < offTotal+2 {
		return nil, needMore, 0
	}
	total := markerLen + int(binary.BigEndian.Uint16(b[offTotal:]))
	switch {
	case total < minFrameLen:
		s.discard(total)
		return nil, frameTooShort, uint32(total)
	case total > s.limit:
		s.discard(total)
		return nil, frameTooLong, uint32(total)
	case avail < total:
		return nil, needMore, 0
	}
	s.start += total
	return b[:total:total], frameOK, 0
}

// optStats counts the options of a frame that were ignored.
type optStats struct {
	unknown       uint32 // options with an unknown id
	malformed     uint32 // known options with a value too short for their type
	lastUnknown   uint32 // id of the last unknown option
	lastMalformed uint32 // id of the last malformed option
}

// decode fills r from one complete frame (as returned by next). Values
// alias the frame. now is used for oob.time when the frame has no time
// option. On a problem nothing is set.
func decode(r *keys.Record, sl *slots, f []byte, now time.Time, st *optStats) problem {
	if len(f) < minFrameLen {
		return frameTooShort
	}
	plen := int(binary.BigEndian.Uint16(f[offPLen:]))
	end := offPayload + plen
	if end > len(f) {
		return badPayloadLength
	}
	// Check every option header before setting anything, so that a
	// rejected frame leaves no value behind.
	opts := min(offPayload+align8(plen), len(f)) // padding may be missing when no option follows
	for off := opts; len(f)-off >= optHdrLen; {
		olen := binary.BigEndian.Uint32(f[off+4:])
		if uint64(olen) > uint64(len(f)-off-optHdrLen) {
			return optionOverrun
		}
		off = min(off+optHdrLen+align8(int(olen)), len(f))
	}

	pkt := f[offPayload:end:end]
	r.SetBytes(sl[pktkeys.RawPkt], pkt)
	r.SetUint(sl[pktkeys.RawPktLen], uint64(plen))
	r.SetUint(sl[pktkeys.RawPktCount], 1)
	var family uint64
	if plen > 0 {
		switch pkt[0] >> 4 {
		case 4:
			family = unix.AF_INET
		case 6:
			family = unix.AF_INET6
		}
	}
	r.SetUint(sl[pktkeys.Family], family)

	hasTime := false
	for off := opts; len(f)-off >= optHdrLen; {
		id := binary.BigEndian.Uint32(f[off:])
		olen := int(binary.BigEndian.Uint32(f[off+4:]))
		v := f[off+optHdrLen : off+optHdrLen+olen : off+optHdrLen+olen]
		off = min(off+optHdrLen+align8(olen), len(f))
		switch id {
		case optPrefix:
			r.SetBytes(sl[pktkeys.Prefix], cstring(v))
		case optIn:
			r.SetBytes(sl[pktkeys.IfIn], cstring(v))
		case optOut:
			r.SetBytes(sl[pktkeys.IfOut], cstring(v))
		case optUserName:
			r.SetBytes(sl[kUserName], cstring(v))
		case optOSName:
			r.SetBytes(sl[kOSName], cstring(v))
		case optOSRel:
			r.SetBytes(sl[kOSRel], cstring(v))
		case optOSVers:
			r.SetBytes(sl[kOSVers], cstring(v))
		case optAppName:
			r.SetBytes(sl[kAppName], cstring(v))
		case optTimeSec, optUserID:
			if len(v) < 4 {
				st.malformed++
				st.lastMalformed = id
				continue
			}
			n := uint64(binary.NativeEndian.Uint32(v))
			if id == optTimeSec {
				r.SetUint(sl[pktkeys.TimeSec], n)
				r.SetUint(sl[pktkeys.TimeUsec], 0)
				hasTime = true
			} else {
				r.SetUint(sl[kUserID], n)
			}
		case optUnused:
			// Zero padding read as an option: nothing to do.
		case optState:
			if len(v) < 1 {
				st.malformed++
				st.lastMalformed = id
				continue
			}
			r.SetUint(sl[pktkeys.Label], uint64(v[0]))
		default:
			st.unknown++
			st.lastUnknown = id
		}
	}
	if !hasTime {
		r.SetUint(sl[pktkeys.TimeSec], uint64(now.Unix()))
		r.SetUint(sl[pktkeys.TimeUsec], uint64(now.Nanosecond()/1000))
	}
	return frameOK
}

// cstring cuts a NUL-terminated string at its NUL; a value without one is
// taken whole.
func cstring(v []byte) []byte {
	if i := bytes.IndexByte(v, 0); i >= 0 {
		return v[:i:i]
	}
	return v
}
