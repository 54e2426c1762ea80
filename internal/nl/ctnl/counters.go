package ctnl

import "github.com/ulogd-go/ulogd/internal/nl"

// Children of CTA_COUNTERS_ORIG / CTA_COUNTERS_REPLY (enum ctattr_counters).
const (
	ctaCountersPackets   = 1 // CTA_COUNTERS_PACKETS: be64
	ctaCountersBytes     = 2 // CTA_COUNTERS_BYTES: be64
	ctaCounters32Packets = 3 // CTA_COUNTERS32_PACKETS: be32 (old kernels)
	ctaCounters32Bytes   = 4 // CTA_COUNTERS32_BYTES: be32 (old kernels)
	ctaCountersPad       = 5 // CTA_COUNTERS_PAD: alignment padding, skipped
)

// decodeCounters decodes one direction's packet and byte counters.
func decodeCounters(b []byte, packets, bytes *uint64) error {
	it := nl.Attrs(b)
	for it.Next() {
		d := it.Data()
		switch it.Type() {
		case ctaCountersPackets, ctaCountersBytes:
			if len(d) != 8 {
				return attrSizeError("CTA_COUNTERS_PACKETS/BYTES", len(d))
			}
			if it.Type() == ctaCountersPackets {
				*packets = nl.BE64(d)
			} else {
				*bytes = nl.BE64(d)
			}
		case ctaCounters32Packets, ctaCounters32Bytes:
			if len(d) != 4 {
				return attrSizeError("CTA_COUNTERS32_PACKETS/BYTES", len(d))
			}
			if it.Type() == ctaCounters32Packets {
				*packets = uint64(nl.BE32(d))
			} else {
				*bytes = uint64(nl.BE32(d))
			}
		case ctaCountersPad:
		}
	}
	return it.Err()
}
