package xml

import (
	"encoding/binary"
	"os"
	"testing"
	"time"
)

// TestSumObject formats the first object of a captured nfnetlink_acct dump
// (name "plain", 3 packets, 252 bytes) as libnetfilter_acct does, and
// refuses a message that is not an object.
func TestSumObject(t *testing.T) {
	raw, err := os.ReadFile("../../../internal/nl/nfacct/testdata/dump-zero-false.bin")
	if err != nil {
		t.Fatal(err)
	}
	n := binary.NativeEndian.Uint32(raw)
	payload := raw[16:n]
	when := time.Date(2026, 11, 25, 8, 5, 4, 0, time.UTC) // a Wednesday
	got, err := appendSum([]byte("x"), payload, when)
	want := "x<obj><name>plain</name><pkts>00000000000000000003</pkts><bytes>00000000000000000252</bytes>" +
		"<hour>8</hour><min>05</min><sec>04</sec><wday>4</wday><day>25</day><month>11</month><year>2026</year></obj>"
	if err != nil || string(got) != want {
		t.Errorf("appendSum:\n got %s, %v\nwant %s", got, err, want)
	}
	if _, err := appendSum(nil, payload[:8], when); err == nil {
		t.Error("a truncated object was formatted")
	}
}
