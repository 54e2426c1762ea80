package pcap

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // zones for TestTimezoneWest, whatever the system has

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// provides is what NFLOG and BASE give PCAP.
var provides = []keys.Spec{
	{Name: "raw.pkt", Type: keys.Raw},
	{Name: "raw.pktlen", Type: keys.Uint32},
	{Name: "ip.totlen", Type: keys.Uint16},
	{Name: "oob.time.sec", Type: keys.Uint32},
	{Name: "oob.time.usec", Type: keys.Uint32},
	{Name: "oob.family", Type: keys.Uint8},
	{Name: "ip6.payloadlen", Type: keys.Uint16},
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// le is a little-endian u32 in hex (these goldens are for little-endian
// hosts: the format is host order).
func le(v uint32) string { return hex.EncodeToString(binary.LittleEndian.AppendUint32(nil, v)) }

func requireLittleEndian(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("golden bytes are for little-endian hosts")
	}
}

// inUTC runs the test with time.Local = UTC (thiszone 0).
func inUTC(t *testing.T) {
	old := time.Local
	time.Local = time.UTC
	t.Cleanup(func() { time.Local = old })
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Packets from the reference's own capture (an ICMP echo request over
// IPv4 and an ICMPv6 echo over IPv6, shortened).
const (
	ipv4Pkt = "45000054d62940004001667d7f0000017f0000010800ac8c696d0001"
	ipv6Pkt = "6001199a00403a40000000000000000000000000000000010000000000000000000000000000000180003 7ee696e0001"
)

// The header ulogd2 writes in UTC, as observed from the reference.
const refHeader = "d4c3b2a1 0200 0400 00000000 00000000 00000100 65000000"

func TestHeaderAndRecordsGolden(t *testing.T) {
	requireLittleEndian(t)
	inUTC(t)
	path := filepath.Join(t.TempDir(), "x.pcap")
	h := plugintest.New(t, "pcap1:PCAP", "[pcap1]\nfile=\""+path+"\"\nsync=1\n", provides)
	v4, v6 := unhex(t, ipv4Pkt), unhex(t, ipv6Pkt)
	// IPv4: len is ip.totlen (the whole packet was 84 bytes, 28 captured).
	h.Event(map[string]any{"raw.pkt": v4, "raw.pktlen": len(v4), "ip.totlen": 84, "oob.family": 2,
		"oob.time.sec": 0x6b073b3c, "oob.time.usec": 0x0b9f85})
	// IPv6: len is ip6.payloadlen + 40.
	h.Event(map[string]any{"raw.pkt": v6, "raw.pktlen": len(v6), "ip6.payloadlen": 64, "oob.family": 10,
		"oob.time.sec": 0x6b073b3d, "oob.time.usec": 1})
	// Another family (bridge): len = caplen; raw.pktlen bounds what is
	// captured.
	h.Event(map[string]any{"raw.pkt": v4, "raw.pktlen": 20, "ip.totlen": 84, "oob.family": 7,
		"oob.time.sec": 0x6b073b3e, "oob.time.usec": 2})
	if got := read(t, path); len(got) != 0 {
		t.Fatalf("written before the end of the batch: %d bytes", len(got))
	}
	h.Flush()
	want := unhex(t, refHeader+
		"3c3b076b 859f0b00 1c000000 54000000"+ipv4Pkt+
		"3d3b076b 01000000 "+le(uint32(len(v6)))+" 68000000"+ipv6Pkt+
		"3e3b076b 02000000 14000000 14000000"+ipv4Pkt[:40])
	if diff := cmp.Diff(hex.EncodeToString(want), hex.EncodeToString(read(t, path))); diff != "" {
		t.Errorf("file (-want +got):\n%s", diff)
	}

	// The reader in this test agrees.
	f := readPcap(t, read(t, path))
	if f.linktype != 101 || f.snaplen != 65536 || f.thiszone != 0 || len(f.recs) != 3 {
		t.Fatalf("header %+v, %d records", f, len(f.recs))
	}
	if r := f.recs[1]; r.sec != 0x6b073b3d || r.usec != 1 || r.length != 104 || !bytes.Equal(r.data, v6) {
		t.Errorf("record 1 = %+v", r)
	}
}

func TestNoTimestampUsesNow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.pcap")
	h := plugintest.New(t, "pcap1:PCAP", "[pcap1]\nfile=\""+path+"\"\nsync=1\n", provides)
	before := time.Now().Unix()
	// oob.time.usec missing: both must be valid to be used.
	h.Event(map[string]any{"raw.pkt": unhex(t, ipv4Pkt), "raw.pktlen": 28, "ip.totlen": 84, "oob.family": 2,
		"oob.time.sec": 5})
	h.Flush()
	after := time.Now().Unix()
	f := readPcap(t, read(t, path))
	if len(f.recs) != 1 {
		t.Fatalf("%d records", len(f.recs))
	}
	if s := int64(f.recs[0].sec); s < before || s > after {
		t.Errorf("timestamp %d, want now (%d..%d)", s, before, after)
	}
}

func TestAppendWithoutHeaderAndReopen(t *testing.T) {
	inUTC(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "x.pcap")
	ev := map[string]any{"raw.pkt": unhex(t, ipv4Pkt), "raw.pktlen": 28, "ip.totlen": 84, "oob.family": 2,
		"oob.time.sec": 1, "oob.time.usec": 2}
	// An existing non-empty file gets no second header.
	hdr := unhex(t, refHeader)
	if err := os.WriteFile(path, hdr, 0o640); err != nil {
		t.Fatal(err)
	}
	h := &plugintest.FileHarness{Harness: plugintest.New(t, "pcap1:PCAP", "[pcap1]\nfile=\""+path+"\"\nsync=1\n", provides), File: path}
	h.Event(ev)
	h.Flush()
	if f := readPcap(t, read(t, path)); len(f.recs) != 1 {
		t.Fatalf("appended file has %d records, want 1", len(f.recs))
	}
	// Reopen on the same, non-empty file: no header.
	if err := h.Reopen(); err != nil {
		t.Fatal(err)
	}
	h.Event(ev)
	h.Flush()
	if f := readPcap(t, read(t, path)); len(f.recs) != 2 {
		t.Fatalf("after a plain reopen: %d records, want 2", len(f.recs))
	}
	// logrotate moves the file away: the new file starts with a header,
	// a record still buffered goes to the old one.
	h.Event(ev)
	rotated := h.Rotate()
	h.Event(ev)
	h.Flush()
	if f := readPcap(t, read(t, rotated)); len(f.recs) != 3 {
		t.Errorf("rotated file: %d records, want 3", len(f.recs))
	}
	if f := readPcap(t, read(t, path)); len(f.recs) != 1 {
		t.Errorf("new file: %d records, want 1", len(f.recs))
	}
	// copytruncate: the file is emptied in place; the header comes back.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Reopen(); err != nil {
		t.Fatal(err)
	}
	h.Event(ev)
	h.Flush()
	if f := readPcap(t, read(t, path)); len(f.recs) != 1 {
		t.Errorf("truncated file: %d records, want 1", len(f.recs))
	}
}

func TestMalformedInputNoPanic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.pcap")
	h := plugintest.New(t, "pcap1:PCAP", "[pcap1]\nfile=\""+path+"\"\nsync=1\n", provides)
	pkt := unhex(t, ipv4Pkt)
	for _, ev := range []map[string]any{
		{},                                   // nothing valid: no packet, no record
		{"raw.pktlen": 100, "oob.family": 2}, // no packet bytes
		{"raw.pkt": []byte{}, "raw.pktlen": 0, "oob.family": 2},
		{"raw.pkt": pkt, "raw.pktlen": 1 << 20, "oob.family": 10}, // pktlen beyond the bytes, no ip6 key
		{"raw.pkt": pkt, "oob.family": 2},                         // no pktlen, no totlen
		{"raw.pkt": pkt[:3], "raw.pktlen": 3, "ip.totlen": 65535, "oob.family": 2},
	} {
		h.Event(ev)
	}
	h.Flush()
	f := readPcap(t, read(t, path))
	want := []record{
		{caplen: 0, length: 0},
		{caplen: 28, length: 28},
		{caplen: 28, length: 28},
		{caplen: 3, length: 65535},
	}
	if len(f.recs) != len(want) {
		t.Fatalf("%d records, want %d", len(f.recs), len(want))
	}
	for i, w := range want {
		if r := f.recs[i]; r.caplen != w.caplen || r.length != w.length {
			t.Errorf("record %d: caplen %d len %d, want %d %d", i, r.caplen, r.length, w.caplen, w.length)
		}
	}
}

func TestTimezoneWest(t *testing.T) {
	now := time.Date(2026, 7, 15, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		zone string
		want int32
	}{
		{"UTC", 0},
		{"Europe/Berlin", -3600}, // observed f0f1ffff
		{"America/New_York", 18000},
		{"Australia/Sydney", -36000}, // summer time in January
		{"Asia/Kolkata", -19800},
	} {
		loc, err := time.LoadLocation(tc.zone)
		if err != nil {
			t.Fatal(err)
		}
		if got := timezoneWest(loc, now); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.zone, got, tc.want)
		}
	}
}

func TestOpenFailureFailsStart(t *testing.T) {
	d, _ := plugin.Default.Lookup("PCAP")
	cfg := &Config{File: plugintest.MissingDir + "/x.pcap"}
	inst, err := d.New(&plugin.Env{ID: "p", Config: cfg, In: make([]keys.Slot, numInputs), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	plugintest.StartFails(t, inst, "can't open "+cfg.File)
}

// TestNoAllocPerPacket: appending a record does not allocate.
func TestNoAllocPerPacket(t *testing.T) {
	d, _ := plugin.Default.Lookup("PCAP")
	cfg := &Config{File: filepath.Join(t.TempDir(), "x.pcap"), Sync: 1}
	in, r := plugintest.Inputs(provides)
	inst, err := d.New(&plugin.Env{ID: "p", Config: cfg, In: in, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer inst.Stop(t.Context())
	s := inst.(*sink)
	pkt := unhex(t, ipv4Pkt)
	n := testing.AllocsPerRun(1000, func() {
		r.SetBytes(inPkt, pkt)
		r.SetUint(inPktLen, uint64(len(pkt)))
		r.SetUint(inTotLen, 84)
		r.SetUint(inFamily, 2)
		r.SetUint(inTimeSec, 1)
		r.SetUint(inTimeUsec, 2)
		if s.Interp(r) != plugin.Continue {
			t.Fatal("Interp failed")
		}
		s.Flush()
		r.Reset()
	})
	if n != 0 {
		t.Errorf("%v allocations per packet", n)
	}
}

// A minimal reader of classic pcap files (host byte order).

type record struct {
	sec, usec, caplen, length uint32
	data                      []byte
}

type pcapFile struct {
	thiszone                   int32
	sigfigs, snaplen, linktype uint32
	recs                       []record
}

func readPcap(t *testing.T, b []byte) pcapFile {
	t.Helper()
	f, err := parsePcap(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func parsePcap(b []byte) (pcapFile, error) {
	var f pcapFile
	e := binary.NativeEndian
	if len(b) < 24 {
		return f, errors.New("short header")
	}
	if e.Uint32(b) != 0xa1b2c3d4 || e.Uint16(b[4:]) != 2 || e.Uint16(b[6:]) != 4 {
		return f, errors.New("bad magic or version")
	}
	f.thiszone = int32(e.Uint32(b[8:]))
	f.sigfigs, f.snaplen, f.linktype = e.Uint32(b[12:]), e.Uint32(b[16:]), e.Uint32(b[20:])
	b = b[24:]
	for len(b) > 0 {
		if len(b) < 16 {
			return f, errors.New("short record header")
		}
		r := record{sec: e.Uint32(b), usec: e.Uint32(b[4:]), caplen: e.Uint32(b[8:]), length: e.Uint32(b[12:])}
		if uint64(len(b)-16) < uint64(r.caplen) {
			return f, errors.New("short record")
		}
		r.data = b[16 : 16+r.caplen]
		b = b[16+r.caplen:]
		f.recs = append(f.recs, r)
	}
	return f, nil
}
