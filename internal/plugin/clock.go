package plugin

import "time"

// BatchClock gives sinks the time for records that carry none of their own
// (flows), read once per receive batch instead of once per record: the
// records of a batch were received together, within a millisecond. A sink
// calls Time while formatting and Reset in its Flush, which the engine calls
// at the end of every batch (and every second).
type BatchClock struct {
	Now func() time.Time // the clock; time.Now when nil
	t   time.Time
	ok  bool
}

// Time returns the batch's time, reading the clock on the first call
// after a Reset.
func (c *BatchClock) Time() time.Time {
	if !c.ok {
		if c.Now == nil {
			c.Now = time.Now
		}
		c.t, c.ok = c.Now(), true
	}
	return c.t
}

// Reset makes the next Time read the clock again.
func (c *BatchClock) Reset() { c.ok = false }
