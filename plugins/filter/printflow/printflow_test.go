package printflow

import (
	"math"
	"strconv"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	_ "github.com/ulogd-go/ulogd/plugins/filter/ip2str"
)

// The keys NFCT provides (the subset PRINTFLOW and IP2STR read).
var nfctKeys = []keys.Spec{
	{Name: "orig.ip.saddr", Type: keys.IPAddr},
	{Name: "orig.ip.daddr", Type: keys.IPAddr},
	{Name: "orig.ip.protocol", Type: keys.Uint8},
	{Name: "orig.l4.sport", Type: keys.Uint16},
	{Name: "orig.l4.dport", Type: keys.Uint16},
	{Name: "orig.raw.pktlen", Type: keys.Uint64},
	{Name: "orig.raw.pktcount", Type: keys.Uint64},
	{Name: "reply.ip.saddr", Type: keys.IPAddr},
	{Name: "reply.ip.daddr", Type: keys.IPAddr},
	{Name: "reply.ip.protocol", Type: keys.Uint8},
	{Name: "reply.l4.sport", Type: keys.Uint16},
	{Name: "reply.l4.dport", Type: keys.Uint16},
	{Name: "reply.raw.pktlen", Type: keys.Uint64},
	{Name: "reply.raw.pktcount", Type: keys.Uint64},
	{Name: "icmp.code", Type: keys.Uint8},
	{Name: "icmp.type", Type: keys.Uint8},
	{Name: "ct.event", Type: keys.Uint32},
	{Name: "oob.family", Type: keys.Uint8},
	{Name: "oob.protocol", Type: keys.Uint8},
}

var a1, a2 = []byte{10, 99, 0, 1}, []byte{10, 99, 0, 2}

func flow(event, proto int, extra map[string]any) map[string]any {
	m := map[string]any{
		"orig.ip.saddr": a1, "orig.ip.daddr": a2, "reply.ip.saddr": a2, "reply.ip.daddr": a1,
		"orig.ip.protocol": proto, "reply.ip.protocol": proto, "ct.event": event, "oob.family": 2, "oob.protocol": 0,
		"orig.raw.pktlen": 0, "orig.raw.pktcount": 0, "reply.raw.pktlen": 0, "reply.raw.pktcount": 0,
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func TestPRINTFLOW(t *testing.T) {
	tests := []struct {
		name string
		in   map[string]any
		want string
	}{
		{
			// Observed from ulogd2.
			name: "tcp destroy with counters",
			in: flow(4, 6, map[string]any{"orig.l4.sport": 48142, "orig.l4.dport": 5001, "reply.l4.sport": 5001, "reply.l4.dport": 48142,
				"orig.raw.pktcount": 5, "orig.raw.pktlen": 274, "reply.raw.pktcount": 3, "reply.raw.pktlen": 164}),
			want: "[DESTROY] ORIG: SRC=10.99.0.1 DST=10.99.0.2 PROTO=TCP SPT=48142 DPT=5001 PKTS=5 BYTES=274 , REPLY: SRC=10.99.0.2 DST=10.99.0.1 PROTO=TCP SPT=5001 DPT=48142 PKTS=3 BYTES=164 \n",
		},
		{
			name: "udp new",
			in:   flow(1, 17, map[string]any{"orig.l4.sport": 58468, "orig.l4.dport": 5002, "reply.l4.sport": 5002, "reply.l4.dport": 58468}),
			want: "[NEW] ORIG: SRC=10.99.0.1 DST=10.99.0.2 PROTO=UDP SPT=58468 DPT=5002 PKTS=0 BYTES=0 , REPLY: SRC=10.99.0.2 DST=10.99.0.1 PROTO=UDP SPT=5002 DPT=58468 PKTS=0 BYTES=0 \n",
		},
		{
			// ulogd2 prints "TYPE=0 CODE=8" here (labels swapped); we print
			// the echo request's real type and code (docs/compat.md).
			name: "icmp echo: type and code under the right labels",
			in:   flow(1, 1, map[string]any{"icmp.type": 8, "icmp.code": 0}),
			want: "[NEW] ORIG: SRC=10.99.0.1 DST=10.99.0.2 PROTO=ICMP TYPE=8 CODE=0 PKTS=0 BYTES=0 , REPLY: SRC=10.99.0.2 DST=10.99.0.1 PROTO=ICMP TYPE=8 CODE=0 PKTS=0 BYTES=0 \n",
		},
		{
			name: "icmpv6 and other protocols print the number",
			in: map[string]any{"orig.ip.saddr": []byte{0xfd, 0x99, 15: 1}, "orig.ip.daddr": []byte{0xfd, 0x99, 15: 2},
				"reply.ip.saddr": []byte{0xfd, 0x99, 15: 2}, "reply.ip.daddr": []byte{0xfd, 0x99, 15: 1},
				"orig.ip.protocol": 58, "reply.ip.protocol": 58, "ct.event": 1, "oob.family": 10,
				"orig.raw.pktlen": 0, "orig.raw.pktcount": 0, "reply.raw.pktlen": 0, "reply.raw.pktcount": 0},
			want: "[NEW] ORIG: SRC=fd99::1 DST=fd99::2 PROTO=58 PKTS=0 BYTES=0 , REPLY: SRC=fd99::2 DST=fd99::1 PROTO=58 PKTS=0 BYTES=0 \n",
		},
		{
			name: "update, esp",
			in:   flow(2, 50, nil),
			want: "[UPDATE] ORIG: SRC=10.99.0.1 DST=10.99.0.2 PROTO=ESP PKTS=0 BYTES=0 , REPLY: SRC=10.99.0.2 DST=10.99.0.1 PROTO=ESP PKTS=0 BYTES=0 \n",
		},
		{
			name: "unknown event, no counters",
			in: map[string]any{"orig.ip.saddr": a1, "orig.ip.daddr": a2, "reply.ip.saddr": a2, "reply.ip.daddr": a1,
				"orig.ip.protocol": 132, "reply.ip.protocol": 132, "ct.event": 8, "oob.family": 2},
			want: "ORIG: SRC=10.99.0.1 DST=10.99.0.2 PROTO=132 , REPLY: SRC=10.99.0.2 DST=10.99.0.1 PROTO=132 \n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := plugintest.New(t, "ip2str1:IP2STR,print1:PRINTFLOW", "", nfctKeys)
			reached, out := h.Event(tt.in)
			if !reached {
				t.Fatal("event did not reach the end of the stack")
			}
			if got := out["print"]; got != tt.want {
				t.Errorf("line\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestAppendNumMatchesStrconv(t *testing.T) {
	check := func(v uint64) {
		t.Helper()
		if got, want := string(appendNum([]byte("x"), v)), "x"+strconv.FormatUint(v, 10)+" "; got != want {
			t.Fatalf("%d: %q, want %q", v, got, want)
		}
	}
	for v := range uint64(200000) {
		check(v)
	}
	for p := uint64(1); p < math.MaxUint64/10; p *= 10 {
		check(p - 1)
		check(p)
		check(p + 1)
	}
	check(math.MaxUint64)
}
