package ctnl

import "github.com/ulogd-go/ulogd/internal/nl"

// Children of CTA_TIMESTAMP (enum ctattr_tstamp).
const (
	ctaTimestampStart = 1 // CTA_TIMESTAMP_START: be64 ns since the epoch
	ctaTimestampStop  = 2 // CTA_TIMESTAMP_STOP: be64 ns since the epoch (DESTROY only)
	ctaTimestampPad   = 3 // CTA_TIMESTAMP_PAD: alignment padding, skipped
)

// decodeTimestamp decodes the flow's start and stop times.
func decodeTimestamp(b []byte, ev *Event) error {
	it := nl.Attrs(b)
	for it.Next() {
		d := it.Data()
		switch it.Type() {
		case ctaTimestampStart, ctaTimestampStop:
			if len(d) != 8 {
				return attrSizeError("CTA_TIMESTAMP_START/STOP", len(d))
			}
			if it.Type() == ctaTimestampStart {
				ev.Start, ev.HasStart = nl.BE64(d), true
			} else {
				ev.Stop, ev.HasStop = nl.BE64(d), true
			}
		case ctaTimestampPad:
		}
	}
	return it.Err()
}
