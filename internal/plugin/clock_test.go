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

// TestBatchClockRereadsInBursts checks that without a Reset (a source
// reading a long burst flushes only when its socket is empty) one reading
// serves at most ClockEvery records.
func TestBatchClockRereadsInBursts(t *testing.T) {
	reads := 0
	c := BatchClock{Now: func() time.Time { reads++; return time.Unix(int64(reads), 0) }}
	var got []time.Time
	for range 3*ClockEvery + 1 {
		got = append(got, c.Time())
	}
	if reads != 4 {
		t.Fatalf("%d clock reads for %d records, want 4", reads, len(got))
	}
	for i, tm := range got {
		if want := time.Unix(int64(i/ClockEvery+1), 0); !tm.Equal(want) {
			t.Fatalf("record %d stamped %v, want %v", i, tm, want)
		}
	}
}
