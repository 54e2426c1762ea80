package json

import (
	"math"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
)

// appendTime writes the record's time: the packet's (oob.time.sec and
// .usec) when the source gives one, else now.
func (s *sink) appendTime(b []byte, r *keys.Record) []byte {
	l := &s.lay
	var sec int64
	var usec uint64
	if r.Valid(l.sec) {
		sec = int64(r.Uint(l.sec))
		usec = r.Uint(l.usec) // 0 when invalid
		if usec >= 1e6 {
			sec += int64(usec / 1e6)
			usec %= 1e6
		}
	} else {
		t := s.clock.Time()
		sec, usec = t.Unix(), uint64(t.Nanosecond()/1000)
	}
	return s.clk.append(b, sec, int(usec))
}

// clock formats time stamps as RFC 3339 local time with microseconds and
// a numeric UTC offset ("2026-11-25T19:11:57.117640+01:00"). The date,
// time and offset are computed once per second.
type clock struct {
	loc  *time.Location
	sec  int64
	date []byte // "2026-11-25T19:11:57"
	zone []byte // "+01:00"
}

func (c *clock) init(loc *time.Location) {
	c.loc = loc
	c.sec = math.MinInt64
	c.date = make([]byte, 0, 32)
	c.zone = make([]byte, 0, 16)
}

func (c *clock) append(b []byte, sec int64, usec int) []byte {
	if sec != c.sec {
		t := time.Unix(sec, 0).In(c.loc)
		c.date = t.AppendFormat(c.date[:0], "2006-01-02T15:04:05")
		c.zone = t.AppendFormat(c.zone[:0], "-07:00")
		c.sec = sec
	}
	b = append(b, c.date...)
	b = append(b, '.',
		byte('0'+usec/100000), byte('0'+usec/10000%10), byte('0'+usec/1000%10),
		byte('0'+usec/100%10), byte('0'+usec/10%10), byte('0'+usec%10))
	return append(b, c.zone...)
}
