package nl

import "time"

// SetLastSleep sets the last coalescing sleep, as if Receive had slept d,
// so that a test can start from a full delay instead of the ramp that
// begins after every wait.
func SetLastSleep(c *Conn, d time.Duration) {
	c.rmu.Lock()
	c.lastSleep = d
	c.rmu.Unlock()
}
