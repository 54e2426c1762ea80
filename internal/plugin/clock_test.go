package plugin

import (
	"testing"
	"time"
)

func TestBatchClock(t *testing.T) {
	reads := 0
	c := BatchClock{Now: func() time.Time { reads++; return time.Unix(int64(reads), 0) }}
	a, b := c.Time(), c.Time()
	c.Reset()
	d := c.Time()
	if !a.Equal(b) || !d.After(b) || reads != 2 {
		t.Fatalf("%v %v | reset | %v after %d reads: want the first two equal, the third later, 2 reads", a, b, d, reads)
	}
	var z BatchClock // zero value: time.Now
	if time.Since(z.Time()) > time.Minute {
		t.Fatal("zero BatchClock is not time.Now")
	}
}
