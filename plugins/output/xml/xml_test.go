package xml

import (
	"bytes"
	"encoding/binary"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
	"github.com/ulogd-go/ulogd/internal/nl/nflog"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

var update = flag.Bool("xml.update", false, "rewrite testdata/*.golden")

// fixed is the clock of these tests: Wednesday 25 November 2026,
// 18:01:07 local time.
var fixed = time.Date(2026, 11, 25, 18, 1, 7, 0, time.Local)

const fixedWhen = "<when><hour>18</hour><min>01</min><sec>07</sec><wday>4</wday><day>25</day><month>11</month><year>2026</year></when>"

func fixedClock() time.Time { return fixed }

// xmlSink is an XML sink built from its descriptor and started, over a
// record holding the keys its source provides.
type xmlSink struct {
	*sink
	r    *keys.Record
	slot map[string]keys.Slot
}

// newSink builds an XML sink for cfg behind a source providing provides,
// with the clock and standard output given (nil: the real ones), and
// starts it; it is stopped when the test ends.
func newSink(tb testing.TB, cfg *Config, provides []keys.Spec, clock func() time.Time, stdout io.Writer) *xmlSink {
	tb.Helper()
	up, r := plugintest.Upstream(provides)
	in := [numInputs]keys.Slot{keys.NoSlot, keys.NoSlot, keys.NoSlot}
	slot := map[string]keys.Slot{}
	for _, u := range up {
		slot[u.Name] = u.Slot
		for i, spec := range inputs {
			if spec.Name == u.Name {
				in[i] = u.Slot
			}
		}
	}
	d, _ := plugin.Default.Lookup("XML")
	inst, err := d.New(&plugin.Env{ID: "xml1", Plugin: "XML", Config: cfg, In: in[:], Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	s := inst.(*sink)
	s.clock, s.stdout = clock, stdout
	plugintest.Started(tb, s)
	return &xmlSink{sink: s, r: r, slot: slot}
}

// event writes one event holding vals (key name → value).
func (x *xmlSink) event(vals map[string][]byte) plugin.Verdict {
	for k, v := range vals {
		x.r.SetBytes(x.slot[k], v)
	}
	v := x.Interp(x.r)
	x.r.Reset()
	return v
}

// nflogMsgs returns every message of the NFLOG captures (each datagram is
// prefixed by its length, u32 little endian), as whole messages.
func nflogMsgs(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile("../../../internal/nl/nflog/testdata/packets.bin")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for len(b) >= 4 {
		n := int(binary.LittleEndian.Uint32(b))
		if 4+n > len(b) {
			t.Fatal("packets.bin: truncated")
		}
		for dg := b[4 : 4+n]; len(dg) > 0; {
			_, rest, err := nl.NextMsg(dg)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, dg[:len(dg)-len(rest)])
			dg = rest
		}
		b = b[4+n:]
	}
	return out
}

// ctMsgs returns the conntrack captures by file name.
func ctMsgs(t testing.TB) map[string][]byte {
	t.Helper()
	return testutil.ReadFiles(t, "../../../internal/nl/ctnl/testdata/*-*.bin")
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -xml.update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestPacketLinesGolden(t *testing.T) {
	t.Parallel()
	var f formatter
	var out strings.Builder
	for i, m := range nflogMsgs(t) {
		line, _, err := f.appendPacket(nil, m, fixed)
		if err != nil {
			// The captures include the kernel's replies to config commands.
			if !strings.Contains(err.Error(), "not an nfnetlink_log packet") {
				t.Errorf("message %d: %v", i, err)
			}
			continue
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	checkGolden(t, "packets.golden", out.String())

	// One line spelled out: an outgoing UDP packet with a mark and nft's
	// empty default prefix.
	want := "<log>" + fixedWhen + "<prefix></prefix><hook>3</hook><hw><proto>0800</proto></hw><mark>42</mark>" +
		"<outdev>1</outdev><payload>45000022634a40004011d97e7f0000017f000001a74e1389000efe2168656c6c6f0a</payload></log>"
	if !strings.Contains(out.String(), want+"\n") {
		t.Errorf("no line\n%s\nin\n%s", want, out.String())
	}
}

func TestFlowLinesGolden(t *testing.T) {
	t.Parallel()
	var f formatter
	msgs := ctMsgs(t)
	names := make([]string, 0, len(msgs))
	for n := range msgs {
		names = append(names, n)
	}
	sort.Strings(names)
	var out strings.Builder
	for _, n := range names {
		line, err := f.appendFlowMsg(nil, msgs[n], fixed)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		out.WriteString(n + " " + string(line) + "\n")
	}
	checkGolden(t, "flows.golden", out.String())

	// The DESTROY line the reference writes, with this capture's values
	// (the capture has kernel timestamps: <deltatime>).
	want := `<flow><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>127.0.0.1</src><dst>127.0.0.1</dst></layer3>` +
		`<layer4 protonum="6" protoname="tcp"><sport>54958</sport><dport>40001</dport></layer4><counters><packets>5</packets><bytes>273</bytes></counters></meta>` +
		`<meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>127.0.0.1</src><dst>127.0.0.1</dst></layer3>` +
		`<layer4 protonum="6" protoname="tcp"><sport>40001</sport><dport>54958</dport></layer4><counters><packets>3</packets><bytes>164</bytes></counters></meta>` +
		`<meta direction="independent"><state>TIME_WAIT</state><timeout>119</timeout><id>4030577649</id><assured/><deltatime>0</deltatime></meta>` + fixedWhen + `</flow>`
	got, err := f.appendFlowMsg(nil, msgs["DESTROY-ipv4-tcp.bin"], fixed)
	if err != nil || string(got) != want {
		t.Errorf("DESTROY-ipv4-tcp (%v):\n got %s\nwant %s", err, got, want)
	}

	// NFLOG's "ct" (the NFULA_CT attributes) renders the same flow.
	raw := msgs["NEW-ipv4-tcp.bin"]
	m, _, _ := nl.NextMsg(raw)
	fromMsg, _ := f.appendFlowMsg(nil, raw, fixed)
	fromAttrs, err := f.appendFlowAttrs(nil, m.Payload[4:], 2, fixed)
	if err != nil || !bytes.Equal(fromMsg, fromAttrs) {
		t.Errorf("from attributes (%v):\n%s\nwant\n%s", err, fromAttrs, fromMsg)
	}
}

// TestDeltatime: the flow's age in whole seconds, from the kernel
// timestamps, as libnetfilter_conntrack prints it.
func TestDeltatime(t *testing.T) {
	t.Parallel()
	start := uint64(fixed.Add(-75*time.Second).UnixNano()) + 400_000_000
	for _, tc := range []struct {
		name string
		ev   ctnl.Event
		want string
	}{
		{"ended", ctnl.Event{Start: start, HasStart: true, Stop: start + 2_900_000_000, HasStop: true}, "<deltatime>2</deltatime>"},
		{"running: until the line's time", ctnl.Event{Start: start, HasStart: true}, "<deltatime>75</deltatime>"},
		{"no timestamps", ctnl.Event{}, ""},
		{"stop alone", ctnl.Event{Stop: start, HasStop: true}, ""},
	} {
		if got := string(appendDeltatime(nil, &tc.ev, fixed)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestEscapedPrefix(t *testing.T) {
	t.Parallel()
	b := nl.AppendHeader(nil, nflog.MsgTypePacket, 0, 0)
	b = append(b, 2, 0, 0, 1)
	b = append(b, nl.AppendAttr(nil, 1, []byte{0x08, 0x00, 3, 0})...)     // NFULA_PACKET_HDR
	b = append(b, nl.AppendAttr(nil, 10, []byte("a<b>&\"c'\x01\x00"))...) // NFULA_PREFIX
	b = nl.FinishMsg(b, 0)
	var f formatter
	got, _, err := f.appendPacket(nil, b, fixed)
	want := "<log>" + fixedWhen + "<prefix>a&lt;b&gt;&amp;&quot;c&apos;\uFFFD</prefix><hook>3</hook><hw><proto>0800</proto></hw></log>"
	if err != nil || string(got) != want {
		t.Errorf("(%v)\n got %s\nwant %s", err, got, want)
	}
}

var ctProvides = []keys.Spec{{Name: "ct", Type: keys.Raw}}

var pktProvides = []keys.Spec{{Name: "raw", Type: keys.Raw}, {Name: "ct", Type: keys.Raw}}

func TestFileNamingAndRotation(t *testing.T) {
	t.Parallel()
	now := fixed
	dir := t.TempDir()
	h := newSink(t, &Config{Directory: dir, Sync: 1}, ctProvides, func() time.Time { return now }, nil)
	first := filepath.Join(dir, "ulogd-flow-25112026-180107.xml")
	const header = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<conntrack>\n"
	if got := plugintest.ReadFile(t, first); got != header {
		t.Fatalf("new file = %q, want the header", got)
	}
	ct := ctMsgs(t)["NEW-ipv4-udp.bin"]
	h.event(map[string][]byte{"ct": ct})
	h.Flush()
	line, _ := new(formatter).appendFlowMsg(nil, ct, now)
	if got := plugintest.ReadFile(t, first); got != header+string(line)+"\n" {
		t.Fatalf("file = %q", got)
	}
	// SIGHUP: the document is closed, a new one starts in a new file.
	now = now.Add(65 * time.Second)
	if err := h.Reopen(); err != nil {
		t.Fatal(err)
	}
	if got := plugintest.ReadFile(t, first); got != header+string(line)+"\n</conntrack>\n" {
		t.Errorf("old file = %q, want it closed", got)
	}
	second := filepath.Join(dir, "ulogd-flow-25112026-180212.xml")
	h.event(map[string][]byte{"ct": ct})
	h.Flush()
	line2, _ := new(formatter).appendFlowMsg(nil, ct, now)
	if got := plugintest.ReadFile(t, second); got != header+string(line2)+"\n" {
		t.Errorf("new file = %q", got)
	}
	h.Stop(t.Context())
	if got := plugintest.ReadFile(t, second); !strings.HasSuffix(got, "</conntrack>\n") {
		t.Errorf("after stop = %q, want the closing tag", got)
	}
}

func TestPacketKindAndStdout(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	h := newSink(t, &Config{Stdout: 1, Sync: 1}, pktProvides, fixedClock, &buf)
	msgs := nflogMsgs(t)
	h.event(map[string][]byte{"raw": msgs[0]})
	h.event(nil) // nothing valid: no line
	h.Flush()
	line, _, _ := new(formatter).appendPacket(nil, msgs[0], fixed)
	want := "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<packet>\n" + string(line) + "\n"
	if got := buf.String(); got != want {
		t.Errorf("stdout = %q\nwant %q", got, want)
	}
	h.Stop(t.Context())
	if !strings.HasSuffix(buf.String(), "\n</packet>\n") {
		t.Errorf("stdout after stop = %q", buf.String())
	}
}

func TestSync0Buffers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := newSink(t, &Config{Directory: dir}, ctProvides, fixedClock, nil)
	file := filepath.Join(dir, "ulogd-flow-25112026-180107.xml")
	h.event(map[string][]byte{"ct": ctMsgs(t)["NEW-ipv4-udp.bin"]})
	h.Flush()
	if got := plugintest.ReadFile(t, file); got != "" {
		t.Fatalf("sync=0 wrote at once: %q", got)
	}
	h.Stop(t.Context())
	if got := plugintest.ReadFile(t, file); strings.Count(got, "\n") != 4 {
		t.Errorf("after stop = %q, want header, line and footer", got)
	}
}

func TestMalformedInputNoPanic(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	hp := newSink(t, &Config{Stdout: 1, Sync: 1}, pktProvides, fixedClock, &buf)
	hc := newSink(t, &Config{Stdout: 1, Sync: 1}, ctProvides, fixedClock, &buf)
	garbage := [][]byte{nil, {0}, {1, 2, 3, 4, 5}, bytes.Repeat([]byte{0xff}, 40), make([]byte, 16)}
	for _, g := range garbage {
		hp.event(map[string][]byte{"raw": g})
		hp.event(map[string][]byte{"raw": nflogMsgs(t)[0], "ct": g})
		hc.event(map[string][]byte{"ct": g})
	}
	// Every truncation and a corrupted length of real messages.
	inputs := nflogMsgs(t)[:4]
	for _, m := range ctMsgs(t) {
		inputs = append(inputs, m)
	}
	for _, m := range inputs {
		for n := range len(m) {
			cut := append([]byte(nil), m[:n]...)
			if n >= 4 {
				binary.NativeEndian.PutUint32(cut, uint32(n))
			}
			hp.event(map[string][]byte{"raw": cut, "ct": cut})
			hc.event(map[string][]byte{"ct": cut})
			bad := append([]byte(nil), m...)
			if n >= 16 && n+2 <= len(m) {
				binary.NativeEndian.PutUint16(bad[n:], 0xfff0) // an attribute length
				hp.event(map[string][]byte{"raw": bad})
				hc.event(map[string][]byte{"ct": bad})
			}
		}
	}
	hp.Flush()
	hc.Flush()
	for _, l := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		if l != "" && !strings.HasPrefix(l, "<") {
			t.Fatalf("broken line %q", l)
		}
	}
}

func TestFormatAllocations(t *testing.T) {
	var f formatter
	pkt := nflogMsgs(t)[0]
	ct := ctMsgs(t)["DESTROY-ipv4-tcp.bin"]
	buf := make([]byte, 0, 8192)
	n := testing.AllocsPerRun(200, func() {
		b, _, _ := f.appendPacket(buf[:0], pkt, fixed)
		f.appendFlowMsg(b, ct, fixed)
	})
	if n != 0 {
		t.Errorf("%v allocations per event", n)
	}
}
