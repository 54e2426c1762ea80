package json

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/sinkq"
)

// natFlowKeys are NFCT's keys for a flow with NAT, then COMMUNITYID's.
var natFlowKeys = []keys.Spec{
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
	{Name: "ct.mark", Type: keys.Uint32},
	{Name: "ct.event", Type: keys.Uint32},
	{Name: "flow.start.sec", Type: keys.Uint32},
	{Name: "flow.start.usec", Type: keys.Uint32},
	{Name: "flow.end.sec", Type: keys.Uint32},
	{Name: "flow.end.usec", Type: keys.Uint32},
	{Name: "flow.community_id", Type: keys.String},
	{Name: "orig.ip.saddr.str", Type: keys.String}, // IP2STR's
}

const ecsConst = `"ecs.version": "8.11.0", "event.kind": "event", "event.category": ["network"], ` +
	`"observer.type": "firewall", "observer.product": "ulogd", "observer.vendor": "Netfilter"`

// TestECSFlow: a conntrack DESTROY of a connection from 10.0.0.5:40000
// to 192.0.2.80:8080 that was masqueraded to 203.0.113.1:61000 and
// forwarded (DNAT) to 10.1.0.9:80, in ECS. IP2STR's text keys give way to
// the ECS addresses, the protocol number to network.*.
func TestECSFlow(t *testing.T) {
	withLocal(t, "UTC")
	path := filepath.Join(t.TempDir(), "out.json")
	h := plugintest.New(t, "json1:JSON", "[json1]\nfile=\""+path+"\"\nsync=1\nlayout=\"ecs\"\n", natFlowKeys)
	ev := map[string]any{
		"orig.ip.saddr": []byte{10, 0, 0, 5}, "orig.ip.daddr": []byte{192, 0, 2, 80},
		"orig.ip.protocol": 6, "orig.l4.sport": 40000, "orig.l4.dport": 8080,
		"orig.raw.pktlen": 1200, "orig.raw.pktcount": 10,
		"reply.ip.saddr": []byte{10, 1, 0, 9}, "reply.ip.daddr": []byte{203, 0, 113, 1},
		"reply.ip.protocol": 6, "reply.l4.sport": 80, "reply.l4.dport": 61000,
		"reply.raw.pktlen": 64000, "reply.raw.pktcount": 50,
		"ct.mark": 7, "ct.event": 4,
		"flow.start.sec": 1795630392, "flow.start.usec": 5, "flow.end.sec": 1795630400, "flow.end.usec": 999999,
		"flow.community_id": "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "orig.ip.saddr.str": "10.0.0.5",
	}
	h.Event(ev)
	// The same flow without NAT.
	ev["reply.ip.saddr"], ev["reply.ip.daddr"] = []byte{192, 0, 2, 80}, []byte{10, 0, 0, 5}
	ev["reply.l4.sport"], ev["reply.l4.dport"], ev["ct.event"] = 8080, 40000, 1
	h.Event(ev)
	h.Flush()
	lines := readJSON(t, path)
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines {
		m := strings.Index(l, `"@timestamp": "`)
		if m != 1 {
			t.Fatalf("no @timestamp first: %s", l)
		}
		lines[i] = l[:m] + `"@timestamp": "TS"` + l[m+len(`"@timestamp": "2026-11-25T18:13:20.123456+00:00"`):]
	}
	keysPart := `"source.port": 40000, "destination.port": 8080, "source.bytes": 1200, "source.packets": 10, ` +
		`"ulogd.reply.ip.protocol": 6, `
	want := []string{
		`{"@timestamp": "TS", ` + ecsConst + `, ` + keysPart +
			`"ulogd.reply.l4.sport": 80, "ulogd.reply.l4.dport": 61000, "destination.bytes": 64000, "destination.packets": 50, ` +
			`"ulogd.ct.mark": 7, "network.community_id": "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", ` +
			`"source.ip": "10.0.0.5", "destination.ip": "192.0.2.80", "network.type": "ipv4", ` +
			`"network.iana_number": "6", "network.transport": "tcp", ` +
			`"source.nat.ip": "203.0.113.1", "source.nat.port": 61000, "destination.nat.ip": "10.1.0.9", "destination.nat.port": 80, ` +
			`"event.start": "2026-11-25T18:13:12.000005+00:00", "event.end": "2026-11-25T18:13:20.999999+00:00", ` +
			`"event.action": "destroy", "event.type": ["connection", "end"]}` + "\n",
		`{"@timestamp": "TS", ` + ecsConst + `, ` + keysPart +
			`"ulogd.reply.l4.sport": 8080, "ulogd.reply.l4.dport": 40000, "destination.bytes": 64000, "destination.packets": 50, ` +
			`"ulogd.ct.mark": 7, "network.community_id": "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", ` +
			`"source.ip": "10.0.0.5", "destination.ip": "192.0.2.80", "network.type": "ipv4", ` +
			`"network.iana_number": "6", "network.transport": "tcp", ` +
			`"event.start": "2026-11-25T18:13:12.000005+00:00", "event.end": "2026-11-25T18:13:20.999999+00:00", ` +
			`"event.action": "new", "event.type": ["connection", "start"]}` + "\n",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestECSPacket: an NFLOG packet (IPv6 UDP) in ECS: the prefix is the
// rule's name, the interfaces the observer's.
func TestECSPacket(t *testing.T) {
	withLocal(t, "UTC")
	path := filepath.Join(t.TempDir(), "out.json")
	h := plugintest.New(t, "json1:JSON", "[json1]\nfile=\""+path+"\"\nsync=1\nlayout=\"ecs\"\ndevice=\"fw1\"\n", []keys.Spec{
		{Name: "raw.pktlen", Type: keys.Uint32},
		{Name: "oob.prefix", Type: keys.String},
		{Name: "oob.time.sec", Type: keys.Uint32},
		{Name: "oob.time.usec", Type: keys.Uint32},
		{Name: "oob.in", Type: keys.String},
		{Name: "oob.out", Type: keys.String},
		{Name: "ip.saddr", Type: keys.IPAddr},
		{Name: "ip.daddr", Type: keys.IPAddr},
		{Name: "ip.protocol", Type: keys.Uint8},
		{Name: "udp.sport", Type: keys.Uint16},
		{Name: "udp.dport", Type: keys.Uint16},
	})
	src := []byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	dst := []byte{0x20, 0x01, 0x0d, 0xb8, 15: 2}
	h.Event(map[string]any{"raw.pktlen": 120, "oob.prefix": "DROP-IN", "oob.time.sec": 1795630316, "oob.time.usec": 96894,
		"oob.in": "eth0", "oob.out": "", "ip.saddr": src, "ip.daddr": dst, "ip.protocol": 17, "udp.sport": 5353, "udp.dport": 53})
	h.Flush()
	lines := readJSON(t, path)
	want := `{"@timestamp": "2026-11-25T18:11:56.096894+00:00", ` + strings.Replace(ecsConst, "Netfilter", "fw1", 1) +
		`, "ulogd.raw.pktlen": 120, "rule.name": "DROP-IN", "observer.ingress.interface.name": "eth0", ` +
		`"observer.egress.interface.name": "", "source.port": 5353, "destination.port": 53, ` +
		`"source.ip": "2001:db8::1", "destination.ip": "2001:db8::2", "network.type": "ipv6", ` +
		`"network.iana_number": "17", "network.transport": "udp"}` + "\n"
	if len(lines) != 1 || lines[0] != want {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, ""), want)
	}
}

func TestECSZeroAllocs(t *testing.T) {
	d := newDirect(t, cfgWith(func(c *Config) { c.Mode, c.Layout = "tcp", "ecs" }), natFlowKeys)
	queueOnly(d)
	r := d.rec
	r.SetBytes(0, []byte{10, 0, 0, 5})
	r.SetBytes(1, []byte{192, 0, 2, 80})
	r.SetUint(2, 6)
	r.SetUint(3, 40000)
	r.SetUint(4, 80)
	r.SetBytes(7, []byte{192, 0, 2, 80})
	r.SetBytes(8, []byte{203, 0, 113, 1})
	r.SetUint(10, 80)
	r.SetUint(11, 61000)
	r.SetUint(15, 4)
	r.SetUint(16, 1795630392)
	r.SetUint(18, 1795630400)
	var b sinkq.Batch
	d.s.Interp(r)
	drain(d, &b)
	if n := testing.AllocsPerRun(2000, func() {
		d.s.Interp(r)
		drain(d, &b)
	}); n != 0 {
		t.Errorf("%v allocations per event", n)
	}
	if !strings.Contains(string(b.Data), `"source.nat.ip": "203.0.113.1"`) {
		t.Errorf("record %s", b.Data)
	}
}
