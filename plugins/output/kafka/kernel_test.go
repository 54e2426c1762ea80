package kafka

// The real stack: conntrack flows of a private network namespace, through
// NFCT and IP2STR, produced to kfake and consumed back.

import (
	"fmt"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/netnstest"
	"github.com/ulogd-go/ulogd/internal/plugintest"

	_ "github.com/ulogd-go/ulogd/plugins/filter/ip2str"
	_ "github.com/ulogd-go/ulogd/plugins/input/nfct"
)

func TestKernelFlows(t *testing.T) {
	t.Parallel()
	ns := netnstest.NewNS(t)
	ns.EnableConntrack(t)
	c := cluster(t, 3)
	text := fmt.Sprintf(`[global]
stack=ct1:NFCT,ip2str1:IP2STR,k1:KAFKA

[ct1]
event_mask=0x00000001
hash_enable=0

[k1]
brokers=%q
topic="flows"
key="5tuple"
linger_ms=1
`, c.ListenAddrs()[0])
	// The sources' sockets are opened in the namespace; the client's
	// connections are made by its own goroutines, outside.
	ns.Do(t, func() { plugintest.StartGraph(t, text, nil) })
	const first, n = 6000, 300
	ns.UDPBurst(t, first, n)

	recs := consume(t, c.ListenAddrs(), n, 30*time.Second)
	keys := map[string]bool{}
	ports := map[float64]int{}
	for _, r := range recs {
		o := r.obj
		if o["orig.ip.protocol"] != float64(17) || o["src_ip"] != "127.0.0.1" || o["dest_ip"] != "127.0.0.1" ||
			o["ct.event"] != float64(1) || o["reply.l4.sport"] != o["orig.l4.dport"] {
			t.Fatalf("record %s: not a NEW UDP flow on 127.0.0.1", r.value)
		}
		if len(r.key) != 16 || keys[r.key] {
			t.Fatalf("record %s: key %q (16 hex digits, one per flow)", r.value, r.key)
		}
		keys[r.key] = true
		ports[o["orig.l4.dport"].(float64)]++
	}
	for p := first; p < first+n; p++ {
		if ports[float64(p)] != 1 {
			t.Fatalf("flow to port %d: %d records", p, ports[float64(p)])
		}
	}
}
