package xml

import (
	"bytes"
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/nl/nflog"
	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

var update = flag.Bool("xml.update", false, "rewrite testdata/*.golden")

// fixed is the clock of these tests: Wednesday 25 November 2026,
// 18:01:07 local time.
var fixed = time.Date(2026, 11, 25, 18, 1, 7, 0, time.Local)

const fixedWhen = "<when><hour>18</hour><min>01</min><sec>07</sec><wday>4</wday><day>25</day><month>11</month><year>2026</year></when>"

func setClock(t *testing.T, f func() time.Time) {
	old := clock
	clock = f
	t.Cleanup(func() { clock = old })
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

	// The spec's observed DESTROY line, with this capture's values.
	want := `<flow><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>127.0.0.1</src><dst>127.0.0.1</dst></layer3>` +
		`<layer4 protonum="6" protoname="tcp"><sport>54958</sport><dport>40001</dport></layer4><counters><packets>5</packets><bytes>273</bytes></counters></meta>` +
		`<meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>127.0.0.1</src><dst>127.0.0.1</dst></layer3>` +
		`<layer4 protonum="6" protoname="tcp"><sport>40001</sport><dport>54958</dport></layer4><counters><packets>3</packets><bytes>164</bytes></counters></meta>` +
		`<meta direction="independent"><state>TIME_WAIT</state><timeout>119</timeout><id>4030577649</id><assured/></meta>` + fixedWhen + `</flow>`
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

func TestEscapedPrefix(t *testing.T) {
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
	now := fixed
	setClock(t, func() time.Time { return now })
	dir := t.TempDir()
	h := plugintest.New(t, "xml1:XML", "[xml1]\ndirectory=\""+dir+"\"\nsync=1\n", ctProvides)
	first := filepath.Join(dir, "ulogd-flow-25112026-180107.xml")
	const header = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<conntrack>\n"
	if got := plugintest.ReadFile(t, first); got != header {
		t.Fatalf("new file = %q, want the header", got)
	}
	ct := ctMsgs(t)["NEW-ipv4-udp.bin"]
	h.Event(map[string]any{"ct": ct})
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
	h.Event(map[string]any{"ct": ct})
	h.Flush()
	line2, _ := new(formatter).appendFlowMsg(nil, ct, now)
	if got := plugintest.ReadFile(t, second); got != header+string(line2)+"\n" {
		t.Errorf("new file = %q", got)
	}
	h.Graph.Stop(t.Context())
	if got := plugintest.ReadFile(t, second); !strings.HasSuffix(got, "</conntrack>\n") {
		t.Errorf("after stop = %q, want the closing tag", got)
	}
}

func TestPacketKindAndStdout(t *testing.T) {
	setClock(t, func() time.Time { return fixed })
	var buf bytes.Buffer
	old := stdout
	stdout = &buf
	t.Cleanup(func() { stdout = old })
	h := plugintest.New(t, "xml1:XML", "[xml1]\nstdout=1\nsync=1\n", pktProvides)
	msgs := nflogMsgs(t)
	h.Event(map[string]any{"raw": msgs[0]})
	h.Event(map[string]any{}) // nothing valid: no line
	h.Flush()
	line, _, _ := new(formatter).appendPacket(nil, msgs[0], fixed)
	want := "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<packet>\n" + string(line) + "\n"
	if got := buf.String(); got != want {
		t.Errorf("stdout = %q\nwant %q", got, want)
	}
	h.Graph.Stop(t.Context())
	if !strings.HasSuffix(buf.String(), "\n</packet>\n") {
		t.Errorf("stdout after stop = %q", buf.String())
	}
}

func TestSync0Buffers(t *testing.T) {
	setClock(t, func() time.Time { return fixed })
	dir := t.TempDir()
	h := &plugintest.FileHarness{
		Harness: plugintest.New(t, "xml1:XML", "[xml1]\ndirectory=\""+dir+"\"\n", ctProvides),
		File:    filepath.Join(dir, "ulogd-flow-25112026-180107.xml"),
	}
	if got := h.BuffersUntilStop(map[string]any{"ct": ctMsgs(t)["NEW-ipv4-udp.bin"]}); strings.Count(got, "\n") != 4 {
		t.Errorf("after stop = %q, want header, line and footer", got)
	}
}

func TestMalformedInputNoPanic(t *testing.T) {
	setClock(t, func() time.Time { return fixed })
	var buf bytes.Buffer
	old := stdout
	stdout = &buf
	t.Cleanup(func() { stdout = old })
	hp := plugintest.New(t, "xml1:XML", "[xml1]\nstdout=1\nsync=1\n", pktProvides)
	hc := plugintest.New(t, "xml2:XML", "[xml2]\nstdout=1\nsync=1\n", ctProvides)
	garbage := [][]byte{nil, {0}, {1, 2, 3, 4, 5}, bytes.Repeat([]byte{0xff}, 40), make([]byte, 16)}
	for _, g := range garbage {
		hp.Event(map[string]any{"raw": g})
		hp.Event(map[string]any{"raw": nflogMsgs(t)[0], "ct": g})
		hc.Event(map[string]any{"ct": g})
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
			hp.Event(map[string]any{"raw": cut, "ct": cut})
			hc.Event(map[string]any{"ct": cut})
			bad := append([]byte(nil), m...)
			if n >= 16 && n+2 <= len(m) {
				binary.NativeEndian.PutUint16(bad[n:], 0xfff0) // an attribute length
				hp.Event(map[string]any{"raw": bad})
				hc.Event(map[string]any{"ct": bad})
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
