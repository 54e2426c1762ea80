package json

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"

	_ "github.com/ulogd-go/ulogd/plugins/filter/base"
	_ "github.com/ulogd-go/ulogd/plugins/filter/ifindex"
	"github.com/ulogd-go/ulogd/plugins/input/nflog"
)

// The Debian JSON packet stack: NFLOG, BASE, IFINDEX, IP2STR, HWHDR, JSON.
// JSON sees every upstream key (101, wildcard duplicates bound to their
// nearest provider, so that their slots are not in stack order); a TCP/IPv4
// packet makes about a quarter of them valid.
var realFilters = []string{"BASE", "IFINDEX", "IP2STR", "HWHDR"}

// realUpstream returns JSON's upstream keys in the real stack, laid out as
// plugintest.NewChain lays out the record (the source's keys, then each
// filter's outputs), each bound to its nearest provider as the stack
// builder binds a wildcard sink's keys.
func realUpstream(tb testing.TB) []keys.Bound {
	tb.Helper()
	var up []keys.Bound
	add := func(inst string, specs []keys.Spec) {
		for _, s := range specs {
			up = append(up, keys.Bound{Spec: s, Slot: keys.Slot(len(up)), Instance: inst})
		}
	}
	add("log2", nflog.OutputKeys())
	for _, name := range realFilters {
		d, ok := plugin.Default.Lookup(name)
		if !ok {
			tb.Fatalf("%s is not registered", name)
		}
		_, out, err := d.Keys(nil)
		if err != nil {
			tb.Fatal(err)
		}
		add(strings.ToLower(name), out)
	}
	// Nearest provider: the last key of that name.
	last := map[string]int{}
	for i, u := range up {
		last[u.Name] = i
	}
	for i := range up {
		j := last[up[i].Name]
		up[i].Slot, up[i].Instance = up[j].Slot, up[j].Instance
	}
	return up
}

// tcpSYN is an IPv4 TCP SYN from 10.99.0.2:48142 to 10.99.0.1:5001 with
// options (60 bytes).
var tcpSYN = []byte{
	0x45, 0x00, 0x00, 0x3c, 0x6c, 0x1e, 0x40, 0x00, 0x40, 0x06, 0xba, 0x8f,
	10, 99, 0, 2, 10, 99, 0, 1,
	0xbc, 0x0e, 0x13, 0x89, 0x3d, 0x4f, 0x2a, 0x11, 0x00, 0x00, 0x00, 0x00,
	0xa0, 0x02, 0xfa, 0xf0, 0x14, 0x5c, 0x00, 0x00,
	0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x6b, 0x0c, 0x6e, 0x34,
	0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
}

// realPacket returns a record of the real stack holding what NFLOG, BASE,
// IFINDEX, IP2STR and HWHDR make of an incoming TCP SYN, with byte values
// outside any arena.
func realPacket(tb testing.TB) *keys.Record {
	tb.Helper()
	c := plugintest.NewChain(tb, nflog.OutputKeys(), realFilters...)
	r := c.Rec
	set := func(name string, v any) {
		s, ok := c.Src[name]
		if !ok {
			tb.Fatalf("NFLOG has no key %s", name)
		}
		switch v := v.(type) {
		case int:
			r.SetUint(s, uint64(v))
		case []byte:
			r.SetBytes(s, v)
		}
	}
	// What NFLOG sets for such a packet (see its fill).
	set("oob.family", 2)
	set("raw.label", 0)
	set("oob.hook", 1)
	set("oob.protocol", 0x0800)
	set("raw.mac", mac)
	set("raw.mac_len", len(mac))
	set("raw.type", 1)
	set("raw.mac.saddr", mac[6:12])
	set("raw.mac.addrlen", 6)
	set("raw.pkt", tcpSYN)
	set("raw.pktlen", len(tcpSYN))
	set("raw.pktcount", 1)
	set("oob.prefix", []byte("IN-LOG "))
	set("oob.time.sec", 1795630316)
	set("oob.time.usec", 96894)
	set("oob.mark", 0)
	set("oob.ifindex_in", 2)
	set("raw", make([]byte, 160))
	for i, st := range c.Steps {
		if realFilters[i] == "IFINDEX" {
			// Not started (its link cache needs netlink): set what it
			// sets for an incoming packet.
			r.SetBytes(c.Key["oob.in"], []byte("eth0"))
			r.SetBytes(c.Key["oob.out"], []byte{})
			continue
		}
		if st.Interp(r) != plugin.Continue {
			tb.Fatalf("%s dropped the packet", realFilters[i])
		}
	}
	return c.Snapshot()
}

// newReal builds a JSON instance on the real packet stack, and returns it
// with its upstream keys.
func newReal(tb testing.TB, cfg *Config) (*direct, []keys.Bound) {
	tb.Helper()
	up := realUpstream(tb)
	env := &plugin.Env{ID: "json1", Plugin: "JSON", Config: cfg, Upstream: up}
	inst, err := newSink(env, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return &direct{s: inst.(*sink), rec: realPacket(tb)}, up
}

func TestRealPacketRecord(t *testing.T) {
	withLocal(t, "UTC")
	d, up := newReal(t, newConfig())
	valid := 0
	for _, u := range up {
		if d.rec.Valid(u.Slot) {
			valid++
		}
	}
	if len(up) != 101 || valid > 60 {
		t.Errorf("%d upstream keys, %d valid: the benchmark no longer models the real stack", len(up), valid)
	}
	got := string(d.s.encode(nil, d.rec))
	const want = `{"timestamp": "2026-11-25T18:11:56.096894+00:00", "dvc": "Netfilter", ` +
		`"raw.pktlen": 60, "raw.pktcount": 1, "oob.prefix": "IN-LOG ", "oob.time.sec": 1795630316, "oob.time.usec": 96894, ` +
		`"oob.mark": 0, "oob.ifindex_in": 2, "oob.hook": 1, "raw.mac_len": 14, "oob.family": 2, "oob.protocol": 2048, ` +
		`"raw.label": 0, "raw.type": 1, "raw.mac.addrlen": 6, ` +
		`"ip.protocol": 6, "ip.tos": 0, "ip.ttl": 64, "ip.totlen": 60, "ip.ihl": 5, "ip.csum": 47759, "ip.id": 27678, "ip.fragoff": 16384, ` +
		`"src_port": 48142, "dest_port": 5001, "tcp.seq": 1028598289, "tcp.ackseq": 0, "tcp.window": 64240, "tcp.offset": 10, ` +
		`"tcp.reserved": 0, "tcp.urg": 0, "tcp.ack": 0, "tcp.psh": 0, "tcp.rst": 0, "tcp.syn": 1, "tcp.fin": 0, "tcp.res1": 0, "tcp.res2": 0, "tcp.csum": 5212, ` +
		`"oob.in": "eth0", "oob.out": "", "src_ip": "10.99.0.2", "dest_ip": "10.99.0.1", ` +
		`"mac.saddr.str": "1e:1d:28:ef:3e:33", "mac.daddr.str": "36:01:d3:9b:7d:ff", "mac.str": "36:01:d3:9b:7d:ff:1e:1d:28:ef:3e:33:08:00"}` + "\n"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// BenchmarkRealPacketFile: a TCP/IPv4 packet through the real stack's
// layout (101 upstream keys, most of them invalid).
func BenchmarkRealPacketFile(b *testing.B) {
	d, _ := newReal(b, cfgWith(func(c *Config) { c.File = os.DevNull }))
	startFile(b, d)
	d.s.Interp(d.rec)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d.s.Interp(d.rec)
	}
}

// BenchmarkEncode measures encode alone (no file, no queue).
func BenchmarkEncode(b *testing.B) {
	for _, tc := range []struct {
		name  string
		specs []keys.Spec
		fill  func(*keys.Record)
	}{{"RealPacket", nil, nil}, {"Flow21", flow21, fillFlow}, {"Packet", pkt, fillPacket}} {
		b.Run(tc.name, func(b *testing.B) {
			var d *direct
			if tc.specs == nil {
				d, _ = newReal(b, newConfig())
			} else {
				d = newDirect(b, cfgWith(func(c *Config) { c.Mode = "tcp" }), tc.specs)
				tc.fill(d.rec)
			}
			buf := d.s.encode(nil, d.rec)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				buf = d.s.encode(buf[:0], d.rec)
			}
		})
	}
}

// ---------------------------------------------------------------------
// The bulk walk and the fast paths against the reference: encode as it
// was written first (every occurrence checked in turn, strings escaped
// byte by byte, strconv for integers).

// refEncode is the reference encoder on s's layout.
func refEncode(s *sink, r *keys.Record) []byte {
	l := &s.lay
	b, first := s.appendHead(nil, r)
	seen := make([]bool, len(l.fields))
	for _, o := range l.occs {
		if !r.Valid(o.slot) || seen[o.field] {
			continue
		}
		f := &l.fields[o.field]
		if len(f.srcs) > 1 && o.kind == kString && !utf8.Valid(r.Bytes(o.slot)) {
			continue
		}
		mark := len(b)
		if !first {
			b = append(b, ", "...)
		}
		b = append(b, bytes.TrimPrefix(f.key, []byte(", "))...)
		ok := false
		for j := len(f.srcs) - 1; j >= 0 && !ok; j-- {
			if src := f.srcs[j]; r.Valid(src.slot) {
				b, ok = refValue(b, r, src)
			}
		}
		if !ok {
			b = b[:mark]
			continue
		}
		seen[o.field] = true
		first = false
	}
	return append(b, "}\n"...)
}

// refValue is appendValue with strconv for unsigned integers and strings
// escaped one byte at a time (the other kinds did not change).
func refValue(b []byte, r *keys.Record, src source) ([]byte, bool) {
	switch src.kind {
	case kUint:
		return strconv.AppendUint(b, r.Uint(src.slot), 10), true
	case kString:
		return refString(b, r.Bytes(src.slot))
	}
	return appendValue(b, r, src)
}

// refString is appendString one byte at a time.
func refString(b, s []byte) ([]byte, bool) {
	if !utf8.Valid(s) {
		return b, false
	}
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, `\b`...)
		case c == '\f':
			b = append(b, `\f`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '\r':
			b = append(b, `\r`...)
		case c == '\t':
			b = append(b, `\t`...)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"'), true
}

// randString returns text to log: mostly plain ASCII of any length, with
// now and then characters to escape, multi-byte UTF-8 or invalid bytes.
func randString(rng *rand.Rand) []byte {
	special := []string{`"`, `\`, "\n", "\t", "\x00", "\x1f", "\x7f", "é", "€", "𝄞", "\xff", "\xed\xa0\x80", "\xe2\x82"}
	var s []byte
	for range rng.IntN(50) {
		if rng.IntN(30) == 0 {
			s = append(s, special[rng.IntN(len(special))]...)
		} else {
			s = append(s, byte(' '+rng.IntN(95)))
		}
	}
	return s
}

// randUint returns integers of every width.
func randUint(rng *rand.Rand) uint64 {
	return rng.Uint64() >> rng.IntN(64)
}

// randLayout returns upstream keys with aliased and repeated names, types
// JSON writes and types it leaves out, slots shared, out of order or
// unbound, and the record types of those slots.
func randLayout(rng *rand.Rand) ([]keys.Bound, []keys.Type) {
	names := []string{"tcp.sport", "udp.sport", "sctp.sport", "ip.saddr.str", "orig.ip.saddr.str",
		"raw.label", "oob.time.sec", "oob.time.usec", "oob.prefix", "a", "b", "c",
		"a.key.name.too.long.for.the.padded.copy"}
	types := []keys.Type{keys.Uint8, keys.Uint16, keys.Uint32, keys.Uint64, keys.Bool,
		keys.Int8, keys.Int16, keys.Int32, keys.Int64, keys.String, keys.String, keys.Raw, keys.IPAddr}
	nslots := 1 + rng.IntN(200)
	slotTypes := make([]keys.Type, nslots)
	for i := range slotTypes {
		slotTypes[i] = types[rng.IntN(len(types))]
	}
	var up []keys.Bound
	for i := range nslots {
		name := "k" + strconv.Itoa(i)
		if rng.IntN(4) == 0 {
			name = names[rng.IntN(len(names))]
		}
		slot := keys.Slot(i)
		switch rng.IntN(12) {
		case 0: // bound elsewhere, as a wildcard duplicate
			slot = keys.Slot(rng.IntN(nslots))
		case 1:
			if rng.IntN(10) == 0 {
				slot = keys.NoSlot
			}
		}
		typ := slotTypes[i]
		if slot >= 0 && rng.IntN(2) == 0 {
			typ = slotTypes[slot]
		}
		up = append(up, keys.Bound{Spec: keys.Spec{Name: name, Type: typ}, Slot: slot})
	}
	return up, slotTypes
}

// fillRandom sets every slot of r, then invalidates each with probability
// p.
func fillRandom(rng *rand.Rand, r *keys.Record, p float64) {
	r.Reset()
	for i := range r.Len() {
		s := keys.Slot(i)
		if r.Type(s).IsInteger() {
			r.SetUint(s, randUint(rng))
		} else {
			r.SetBytes(s, randString(rng))
		}
		if rng.Float64() < p {
			r.Invalidate(s)
		}
	}
	if rng.IntN(8) == 0 {
		r.SetUint(0, 0) // 0 is common, and the label's "blocked"
	}
}

var walkConfigs = []func(*Config){
	func(*Config) {},
	func(c *Config) { c.EventV1 = 1; c.BooleanLabel = 1 },
	// Nothing before the first field: it has no ", ".
	func(c *Config) { c.Timestamp = 0; c.Device = "\xff" },
	func(c *Config) { c.Timestamp = 0; c.EventV1 = 1; c.Device = "" },
}

// checkWalk encodes n random records of the layout with s and compares
// them with the reference, and the bulk walk with the plain one.
func checkWalk(t *testing.T, rng *rand.Rand, s *sink, r *keys.Record, n int) {
	t.Helper()
	s.now = func() time.Time { return time.Unix(1795630316, 123456789) }
	var buf []byte
	for i := range n {
		fillRandom(rng, r, []float64{0, 0.1, 0.5, 0.75, 0.9, 1}[i%6])
		bulk := append([]int32(nil), s.lay.validOccs(r)...)
		if all := s.lay.validOccsAll(r); !slices.Equal(bulk, all) {
			t.Fatalf("record %d: bulk walk %v, plain walk %v", i, bulk, all)
		}
		buf = s.encode(buf[:0], r)
		if want := refEncode(s, r); !bytes.Equal(buf, want) {
			t.Fatalf("record %d:\n got %q\nwant %q", i, buf, want)
		}
		if i < 20 {
			checkLine(t, buf)
		}
		// The same shape with other values: encoded with the plan the
		// record above left (when the layout allows one).
		refill(rng, r)
		buf = s.encode(buf[:0], r)
		if want := refEncode(s, r); !bytes.Equal(buf, want) {
			t.Fatalf("record %d, same shape:\n got %q\nwant %q", i, buf, want)
		}
	}
}

// refill gives r's valid slots new random values, keeping its shape.
func refill(rng *rand.Rand, r *keys.Record) {
	for i := range r.Len() {
		s := keys.Slot(i)
		switch {
		case !r.Valid(s):
		case r.Type(s).IsInteger():
			r.SetUint(s, randUint(rng))
		default:
			r.SetBytes(s, randString(rng))
		}
	}
}

// TestPlansPerShape checks that records alternating between two shapes
// (NEW and DESTROY flows differ in their keys) each replay their own plan:
// two plans are built, and every record still matches the reference.
func TestPlansPerShape(t *testing.T) {
	withLocal(t, "UTC")
	rng := rand.New(rand.NewPCG(5, 6))
	d := newDirect(t, cfgWith(func(c *Config) { c.Mode = "tcp" }), flow21)
	d.s.now = func() time.Time { return time.Unix(1795630316, 123456789) }
	var buf []byte
	for i := range 20 {
		fillFlow(d.rec)
		if i%2 == 1 {
			d.rec.Invalidate(17)
			d.rec.Invalidate(18)
		}
		refill(rng, d.rec)
		buf = d.s.encode(buf[:0], d.rec)
		if want := refEncode(d.s, d.rec); !bytes.Equal(buf, want) {
			t.Fatalf("record %d:\n got %q\nwant %q", i, buf, want)
		}
	}
	if n := d.s.lay.nextPlan; n != 2 {
		t.Errorf("nextPlan = %d after two shapes, want 2 (a plan built for each)", n)
	}
}

func TestBulkWalkMatchesReference(t *testing.T) {
	withLocal(t, "UTC")
	rng := rand.New(rand.NewPCG(1, 2))
	for ci, f := range walkConfigs {
		t.Run("real/"+strconv.Itoa(ci), func(t *testing.T) {
			d, _ := newReal(t, cfgWith(f))
			// The real stack's wildcard duplicates are out of slot order:
			// the walk takes a few more words, it is not given up.
			if n := len(d.s.lay.words); n == 0 || n > 8 {
				t.Errorf("%d slotWords", n)
			}
			checkWalk(t, rng, d.s, d.rec, 2000)
		})
		for _, tc := range []struct {
			name  string
			specs []keys.Spec
		}{{"flow21", flow21}, {"packet", pkt}, {"packetKeys", packetKeys}, {"flowKeys", flowKeys}} {
			t.Run(tc.name+"/"+strconv.Itoa(ci), func(t *testing.T) {
				d := newDirect(t, cfgWith(f), tc.specs)
				if n := len(d.s.lay.words); n != 1 {
					t.Errorf("%d slotWords for ascending slots in one word", n)
				}
				checkWalk(t, rng, d.s, d.rec, 500)
			})
		}
	}
	t.Run("random", func(t *testing.T) {
		var plain, cut int // layouts walked key by key, and with runs cut
		for i := range 300 {
			up, types := randLayout(rng)
			cfg := cfgWith(walkConfigs[i%len(walkConfigs)])
			inst, err := newSink(&plugin.Env{ID: "json1", Plugin: "JSON", Config: cfg, Upstream: up}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := inst.(*sink)
			switch {
			case s.lay.words == nil:
				plain++
			case len(s.lay.words) > (len(types)+63)/64:
				cut++
			}
			checkWalk(t, rng, s, keys.NewRecord(types), 50)
		}
		if plain == 0 || cut < 100 {
			t.Errorf("%d layouts without bulk walk, %d with slots out of order: not the cases meant", plain, cut)
		}
	})
}

func TestAppendUint(t *testing.T) {
	vals := []uint64{0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, math.MaxUint32, math.MaxUint64, math.MaxUint64 - 1}
	for p := uint64(10); p < math.MaxUint64/10; p *= 10 {
		vals = append(vals, p-1, p, p+1)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		vals = append(vals, randUint(rng))
	}
	buf := make([]byte, 24)
	for _, v := range vals {
		want := strconv.AppendUint([]byte("x"), v, 10)
		if got := appendUint([]byte("x"), v); !bytes.Equal(got, want) {
			t.Fatalf("appendUint %d: %q, want %q", v, got, want)
		}
		for i := range buf {
			buf[i] = '#'
		}
		buf[0] = 'x'
		end := putUint(buf, 1, v)
		if got := buf[:end]; !bytes.Equal(got, want) || end < len(buf) && buf[end] != '#' {
			t.Fatalf("putUint %d: %q (then %q), want %q", v, got, buf[end:], want)
		}
	}
}

func checkString(t *testing.T, s []byte) {
	t.Helper()
	got, ok := appendString([]byte("x"), s)
	want, wok := refString([]byte("x"), s)
	if ok != wok || !bytes.Equal(got, want) {
		t.Fatalf("%q: %q %v, want %q %v", s, got, ok, want, wok)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "a", "1234567", "12345678", "123456789", "0123456789abcdef",
		"0123456\"", "01234567\\", "0123456\x1f89", "0123456\x7f", "0123456é", "0123456\xff",
		"\x00\x01\x02\x03\x04\x05\x06\x07", "\x20\x21\x22\x5b\x5c\x5d\x7e\x7f", "abcdefgh\b\f\n\r\tij",
		"€€€€€€", "\xed\xa0\x80abcdefgh", "abcdefgh\xe2\x82"} {
		checkString(t, []byte(s))
	}
	// Every byte at every position of a 16-byte string.
	for c := range 256 {
		for i := range 16 {
			s := []byte("abcdefghijklmnop")
			s[i] = byte(c)
			checkString(t, s)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 20000 {
		checkString(t, randString(rng))
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "IN-LOG ", "a\"b\\c\td\ne", "0123456\x1f89", "é€𝄞", "bad\xff\xfe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) { checkString(t, s) })
}

// Records without a time of their own are stamped with the time of their
// receive batch: one clock read per batch, a new one after each Flush.
func TestFlowTimeOncePerBatch(t *testing.T) {
	d := newDirect(t, cfgWith(func(c *Config) { c.Mode = "tcp" }), flow21)
	reads := 0
	d.s.now = func() time.Time {
		reads++
		return time.Unix(1795630316+int64(reads), 0)
	}
	stamp := func() string {
		fillFlow(d.rec)
		return checkLine(t, d.s.encode(nil, d.rec))["timestamp"].(string)
	}
	a, b := stamp(), stamp()
	d.s.Flush()
	c := stamp()
	if a != b || b == c || reads != 2 {
		t.Fatalf("time stamps %s, %s | flush | %s with %d clock reads: want the first two equal, the third later, 2 reads", a, b, c, reads)
	}
}
