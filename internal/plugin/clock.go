package plugin

import "time"

// BatchClock gives sinks the time for records that carry none of their own
// (flows), read once per receive batch instead of once per record: the
// records of a batch were received together, within a millisecond. A sink
// calls Time while formatting and Reset in its Flush, which a source calls
// when its socket is empty (and the engine every second). A burst can keep
// a source reading for seconds without a Flush, so the clock is also read
// again every ClockEvery records: at most a receive batch's worth of
// records share one reading.
type BatchClock struct {
	Now func() time.Time // the clock; time.Now when nil
	t   time.Time
	ok  bool
	n   int // Time calls since the clock was read
}

// ClockEvery is how many records a BatchClock reading serves at most: the
// 64 datagrams of one NFCT receive batch.
const ClockEvery = 64

// Time returns the batch's time, reading the clock on the first call
// after a Reset and on every ClockEvery-th call.
func (c *BatchClock) Time() time.Time {
	if !c.ok || c.n >= ClockEvery {
		if c.Now == nil {
			c.Now = time.Now
		}
		c.t, c.ok, c.n = c.Now(), true, 0
	}
	c.n++
	return c.t
}

// Reset makes the next Time read the clock again.
func (c *BatchClock) Reset() { c.ok = false }
