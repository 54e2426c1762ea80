package unixsock

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// ---------------------------------------------------------------------------
// Frame builder

// opt is one option of a test frame.
type opt struct {
	id  uint32
	val []byte
}

// buildFrame encodes a frame the way NuFW does: header, payload padded to
// 8, options with values padded to 8.
func buildFrame(payload []byte, opts ...opt) []byte {
	b := make([]byte, offPayload, offPayload+align8(len(payload))+64)
	binary.BigEndian.PutUint32(b, marker)
	binary.BigEndian.PutUint16(b[offPLen:], uint16(len(payload)))
	b = append(b, payload...)
	b = pad(b, offPayload)
	for _, o := range opts {
		b = binary.BigEndian.AppendUint32(b, o.id)
		b = binary.BigEndian.AppendUint32(b, uint32(len(o.val)))
		start := len(b)
		b = append(b, o.val...)
		b = pad(b, start)
	}
	binary.BigEndian.PutUint16(b[offTotal:], uint16(len(b)-markerLen))
	return b
}

// pad appends zeros until len(b)-from is a multiple of 8.
func pad(b []byte, from int) []byte {
	for (len(b)-from)%alignTo != 0 {
		b = append(b, 0)
	}
	return b
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func hostU32(n uint32) []byte { return binary.NativeEndian.AppendUint32(nil, n) }

func strOpt(id uint32, s string) opt { return opt{id, cstr(s)} }

// icmpEcho is the IPv4 ICMP echo request observed from ulogd2 with NuFW's frame:
// 10.99.0.1 → 10.99.0.2, LEN=28, TTL=64, ID=4660, echo id 7 seq 1.
var icmpEcho = []byte{
	0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00,
	10, 99, 0, 1, 10, 99, 0, 2,
	0x08, 0x00, 0xf7, 0xf7, 0x00, 0x07, 0x00, 0x01,
}

// ipv6Hdr is the start of an IPv6 header (version 6).
var ipv6Hdr = []byte{0x60, 0, 0, 0, 0, 0, 58, 64}

// allOpts is every option NuFW sends.
func allOpts() []opt {
	return []opt{
		strOpt(optPrefix, "MYPREFIX"),
		strOpt(optIn, "eth0"),
		strOpt(optOut, "eth1"),
		{optTimeSec, hostU32(1700000000)},
		strOpt(optUserName, "alice"),
		{optUserID, hostU32(1000)},
		strOpt(optOSName, "Linux"),
		strOpt(optOSRel, "6.1.0"),
		strOpt(optOSVers, "#1 SMP"),
		strOpt(optAppName, "/usr/bin/ping"),
		{optState, []byte{2}},
	}
}

// ---------------------------------------------------------------------------
// Test emitter

// rec is one emitted event: key name → value (uint64 for integers, string
// for strings and raw data). Invalid keys are absent.
type rec = plugintest.Values

// value is how the tests see a key's value (see rec).
func value(k keys.Spec, r *keys.Record, s keys.Slot) any {
	if k.Type.IsInteger() {
		return r.Uint(s)
	}
	return string(r.Bytes(s))
}

func snapshot(r *keys.Record) rec { return plugintest.Snapshot(outputKeys[:], r, value) }

// newTestEmitter returns an emitter that records a copy of every emitted
// event.
func newTestEmitter() *plugintest.Recorder { return plugintest.NewRecorder(outputKeys[:], value) }

func recordTypes() []keys.Type {
	types := make([]keys.Type, numKeys)
	for i, k := range outputKeys {
		types[i] = k.Type
	}
	return types
}

func identitySlots() *slots {
	var sl slots
	for i := range sl {
		sl[i] = keys.Slot(i)
	}
	return &sl
}

// ---------------------------------------------------------------------------
// Keys

func TestOutputKeys(t *testing.T) {
	t.Parallel()
	// Spec Appendix A.1, UNIXSOCK, in --info order.
	want := []keys.Spec{
		{Name: "raw.mac", Type: keys.Raw},
		{Name: "raw.pkt", Type: keys.Raw},
		{Name: "raw.pktlen", Type: keys.Uint32},
		{Name: "raw.pktcount", Type: keys.Uint32},
		{Name: "oob.prefix", Type: keys.String},
		{Name: "oob.time.sec", Type: keys.Uint32},
		{Name: "oob.time.usec", Type: keys.Uint32},
		{Name: "oob.mark", Type: keys.Uint32},
		{Name: "oob.in", Type: keys.String},
		{Name: "oob.out", Type: keys.String},
		{Name: "oob.hook", Type: keys.Uint8},
		{Name: "raw.mac_len", Type: keys.Uint16},
		{Name: "oob.seq.local", Type: keys.Uint32},
		{Name: "oob.seq.global", Type: keys.Uint32},
		{Name: "oob.family", Type: keys.Uint8},
		{Name: "oob.protocol", Type: keys.Uint16},
		{Name: "oob.uid", Type: keys.Uint32},
		{Name: "oob.gid", Type: keys.Uint32},
		{Name: "raw.label", Type: keys.Uint8},
		{Name: "raw.type", Type: keys.Uint16},
		{Name: "raw.mac.saddr", Type: keys.Raw},
		{Name: "raw.mac.addrlen", Type: keys.Uint16},
		{Name: "nufw.user.name", Type: keys.String},
		{Name: "nufw.user.id", Type: keys.Uint32},
		{Name: "nufw.os.name", Type: keys.String},
		{Name: "nufw.os.rel", Type: keys.String},
		{Name: "nufw.os.vers", Type: keys.String},
		{Name: "nufw.app.name", Type: keys.String},
	}
	in, out, err := keysOf(defaultConfig())
	if err != nil || in != nil {
		t.Fatalf("keysOf: in=%v err=%v", in, err)
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("output keys (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	long := "/tmp/" + string(make([]byte, 120))
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", *defaultConfig(), true},
		{"bufsize minimum", Config{SocketPath: "/x", BufSize: minFrameLen, Perms: 0o600}, true},
		{"bufsize too small", Config{SocketPath: "/x", BufSize: 8, Perms: 0o600}, false},
		{"bufsize negative", Config{SocketPath: "/x", BufSize: -1, Perms: 0o600}, false},
		{"empty path", Config{Perms: 0o600}, false},
		{"path too long", Config{SocketPath: long, Perms: 0o600}, false},
		{"perms too large", Config{SocketPath: "/x", Perms: 0o10000}, false},
	} {
		if err := tc.cfg.validate(); (err == nil) != tc.ok {
			t.Errorf("%s: validate = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if got := (&Config{}).frameLimit(); got != maxFrameLen {
		t.Errorf("default frame limit = %d, want %d", got, maxFrameLen)
	}
	if got := (&Config{BufSize: 1 << 20}).frameLimit(); got != maxFrameLen {
		t.Errorf("large bufsize frame limit = %d, want %d", got, maxFrameLen)
	}
	if got := (&Config{SocketPath: "/run//ulogd/../ulogd/s.sock"}).resource(); got != "unix:/run/ulogd/s.sock" {
		t.Errorf("resource = %q", got)
	}
}

// ---------------------------------------------------------------------------
// decode

var fixedNow = time.Unix(1600000000, 123456789)

func TestDecode(t *testing.T) {
	t.Parallel()
	nowKeys := rec{"oob.time.sec": uint64(1600000000), "oob.time.usec": uint64(123456)}
	base := func(pkt []byte, family uint64, extra rec) rec {
		r := rec{
			"raw.pkt":      string(pkt),
			"raw.pktlen":   uint64(len(pkt)),
			"raw.pktcount": uint64(1),
			"oob.family":   family,
		}
		for k, v := range nowKeys {
			r[k] = v
		}
		for k, v := range extra {
			r[k] = v
		}
		return r
	}
	// A frame without options and without padding after the payload, as
	// some senders compute total_size.
	unpadded := buildFrame(icmpEcho[:25])
	unpadded = unpadded[:offPayload+25]
	binary.BigEndian.PutUint16(unpadded[offTotal:], uint16(len(unpadded)-markerLen))

	for _, tc := range []struct {
		name  string
		frame []byte
		want  rec
		st    optStats
		p     problem
	}{
		{name: "no options", frame: buildFrame(icmpEcho), want: base(icmpEcho, 2, nil)},
		{name: "no options, no padding", frame: unpadded, want: base(icmpEcho[:25], 2, nil)},
		{name: "empty payload", frame: buildFrame(nil), want: base(nil, 0, nil)},
		{name: "IPv6", frame: buildFrame(ipv6Hdr), want: base(ipv6Hdr, 10, nil)},
		{name: "other version", frame: buildFrame([]byte{0x50, 1, 2}), want: base([]byte{0x50, 1, 2}, 0, nil)},
		{
			name:  "every option",
			frame: buildFrame(icmpEcho, allOpts()...),
			want: base(icmpEcho, 2, rec{
				"oob.prefix": "MYPREFIX", "oob.in": "eth0", "oob.out": "eth1",
				"oob.time.sec": uint64(1700000000), "oob.time.usec": uint64(0),
				"nufw.user.name": "alice", "nufw.user.id": uint64(1000),
				"nufw.os.name": "Linux", "nufw.os.rel": "6.1.0", "nufw.os.vers": "#1 SMP",
				"nufw.app.name": "/usr/bin/ping", "raw.label": uint64(2),
			}),
		},
		{
			name:  "strings without NUL, or with text after it",
			frame: buildFrame(icmpEcho, opt{optPrefix, []byte("NONUL")}, opt{optIn, []byte("eth0\x00junk")}, opt{optOut, nil}),
			want:  base(icmpEcho, 2, rec{"oob.prefix": "NONUL", "oob.in": "eth0", "oob.out": ""}),
		},
		{
			name:  "unknown options are counted, padding options ignored",
			frame: buildFrame(icmpEcho, opt{77, []byte{1, 2, 3}}, opt{0, nil}, strOpt(optPrefix, "P"), opt{9999, nil}),
			want:  base(icmpEcho, 2, rec{"oob.prefix": "P"}),
			st:    optStats{unknown: 2, lastUnknown: 9999},
		},
		{
			name:  "short integer options are ignored",
			frame: buildFrame(icmpEcho, opt{optTimeSec, []byte{1, 2}}, opt{optUserID, nil}, opt{optState, nil}),
			want:  base(icmpEcho, 2, nil),
			st:    optStats{malformed: 3, lastMalformed: optState},
		},
		{
			name:  "last of a repeated option wins",
			frame: buildFrame(icmpEcho, strOpt(optPrefix, "A"), strOpt(optPrefix, "B")),
			want:  base(icmpEcho, 2, rec{"oob.prefix": "B"}),
		},
		{
			name: "payload_length past the frame",
			frame: func() []byte {
				f := buildFrame(icmpEcho)
				binary.BigEndian.PutUint16(f[offPLen:], uint16(len(f)))
				return f
			}(),
			p: badPayloadLength,
		},
		{
			name: "option length past the frame",
			frame: func() []byte {
				f := buildFrame(icmpEcho, strOpt(optPrefix, "MYPREFIX"))
				binary.BigEndian.PutUint32(f[offPayload+32+4:], 17)
				return f
			}(),
			p: optionOverrun,
		},
		{
			name: "huge option length",
			frame: func() []byte {
				f := buildFrame(icmpEcho, strOpt(optPrefix, "MYPREFIX"))
				binary.BigEndian.PutUint32(f[offPayload+32+4:], 0xffffffff)
				return f
			}(),
			p: optionOverrun,
		},
		{name: "shorter than a header", frame: buildFrame(nil)[:8], p: frameTooShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := keys.NewRecord(recordTypes())
			var st optStats
			p := decode(r, identitySlots(), tc.frame, fixedNow, &st)
			if p != tc.p {
				t.Fatalf("decode = %v, want %v", p, tc.p)
			}
			got := snapshot(r)
			if tc.p != frameOK {
				if len(got) != 0 {
					t.Errorf("rejected frame set values: %v", got)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			if st != tc.st {
				t.Errorf("option stats = %+v, want %+v", st, tc.st)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// stream

type step struct {
	p     problem
	frame []byte
	got   uint32
}

// feed writes chunks into s and collects everything next returns.
func feed(s *stream, chunks ...[]byte) []step {
	var out []step
	for _, c := range chunks {
		for len(c) > 0 {
			n := copy(s.space(), c)
			s.wrote(n)
			c = c[n:]
			for {
				f, p, got := s.next()
				if p == needMore {
					break
				}
				out = append(out, step{p, append([]byte(nil), f...), got})
				if p == badMarker {
					return out
				}
			}
		}
	}
	return out
}

func split(b []byte, size int) [][]byte {
	var out [][]byte
	for len(b) > size {
		out = append(out, b[:size])
		b = b[size:]
	}
	return append(out, b)
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func TestStream(t *testing.T) {
	t.Parallel()
	f1 := buildFrame(icmpEcho)
	f2 := buildFrame(icmpEcho, allOpts()...)
	f3 := buildFrame(ipv6Hdr, strOpt(optPrefix, "v6"))
	big := buildFrame(make([]byte, 200))
	short := append([]byte(nil), f1[:offPayload]...)
	binary.BigEndian.PutUint16(short[offTotal:], 4) // frame of 8 bytes claimed
	bad := append([]byte{0xde, 0xad, 0xbe, 0xef}, f1[4:]...)
	ok := func(f []byte) step { return step{frameOK, f, 0} }

	for _, tc := range []struct {
		name   string
		limit  int
		chunks [][]byte
		want   []step
	}{
		{"one write, three frames", maxFrameLen, [][]byte{cat(f1, f2, f3)}, []step{ok(f1), ok(f2), ok(f3)}},
		{"byte by byte", maxFrameLen, split(cat(f1, f2, f3), 1), []step{ok(f1), ok(f2), ok(f3)}},
		{"odd chunks", maxFrameLen, split(cat(f2, f1, f2, f3), 7), []step{ok(f2), ok(f1), ok(f2), ok(f3)}},
		{"tight buffer", len(f2), split(cat(f1, f2, f1, f2), 5), []step{ok(f1), ok(f2), ok(f1), ok(f2)}},
		{"bad marker", maxFrameLen, [][]byte{cat(f1, bad, f1)}, []step{ok(f1), {badMarker, nil, 0xdeadbeef}}},
		{"bad marker split", maxFrameLen, split(cat(f1, bad), 3), []step{ok(f1), {badMarker, nil, 0xdeadbeef}}},
		{
			"oversized frame skipped",
			64, split(cat(f1, big, f1), 16),
			[]step{ok(f1), {frameTooLong, nil, uint32(len(big))}, ok(f1)},
		},
		{
			"oversized frame in one write",
			64, [][]byte{cat(big, f1)},
			[]step{{frameTooLong, nil, uint32(len(big))}, ok(f1)},
		},
		{
			// 8 bytes are skipped; the payload_length field and the
			// rest of the header are read as the next marker.
			"total_size below the header",
			maxFrameLen, [][]byte{cat(short, f1)},
			[]step{{frameTooShort, nil, 8}, {badMarker, nil, binary.BigEndian.Uint32(short[8:])}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := feed(newStream(tc.limit), tc.chunks...)
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(step{})); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Fuzzing and allocation

// FuzzFrame feeds arbitrary bytes to the frame parser, both as one frame
// and as a client stream cut in chunks: it must never panic, never read
// past a frame, and never return a frame longer than the limit.
func FuzzFrame(f *testing.F) {
	f.Add(buildFrame(icmpEcho), uint8(0), uint8(1))
	f.Add(buildFrame(icmpEcho, allOpts()...), uint8(3), uint8(7))
	f.Add(cat(buildFrame(ipv6Hdr), buildFrame(nil, opt{42, []byte{1}})), uint8(1), uint8(200))
	f.Add([]byte{0x41, 0xc9, 0x0f, 0xd4, 0, 0}, uint8(0), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, lim, chunk uint8) {
		r := keys.NewRecord(recordTypes())
		sl := identitySlots()
		var st optStats
		if len(data) <= maxFrameLen {
			decode(r, sl, data, fixedNow, &st)
			r.Reset()
		}
		limit := maxFrameLen
		if lim != 0 {
			limit = minFrameLen + int(lim)
		}
		s := newStream(limit)
		size := int(chunk) + 1
		for rest := data; len(rest) > 0; {
			sp := s.space()
			if len(sp) == 0 {
				t.Fatal("stream has no space after needMore")
			}
			n := copy(sp, rest[:min(size, len(rest))])
			s.wrote(n)
			rest = rest[n:]
			for {
				fr, p, _ := s.next()
				if p == needMore {
					break
				}
				if p == badMarker {
					return
				}
				if p == frameOK {
					if len(fr) > limit || len(fr) < minFrameLen {
						t.Fatalf("frame of %d bytes with limit %d", len(fr), limit)
					}
					decode(r, sl, fr, fixedNow, &st)
					r.Reset()
				}
			}
		}
	})
}

// frameLoop pushes one frame through the stream, decoder and emitter, as
// a client goroutine does.
func frameLoop(in *instance, s *stream, r *keys.Record, e *plugintest.Discard, frame []byte) {
	n := copy(s.space(), frame)
	s.wrote(n)
	in.process(s, r, e, fixedNow, 1)
}

func benchInstance() *instance {
	in := &instance{limit: maxFrameLen, done: make(chan struct{})}
	in.sl = *identitySlots()
	return in
}

func TestZeroAllocsPerFrame(t *testing.T) {
	in := benchInstance()
	e := plugintest.NewDiscard(outputKeys[:])
	r := e.NewRecord()
	s := newStream(maxFrameLen)
	frame := buildFrame(icmpEcho, allOpts()...)
	allocs := testing.AllocsPerRun(1000, func() { frameLoop(in, s, r, e, frame) })
	if allocs != 0 {
		t.Errorf("%.1f allocations per frame, want 0", allocs)
	}
	if e.Emitted < 1000 {
		t.Errorf("emitted %d frames", e.Emitted)
	}
}

func BenchmarkFrame(b *testing.B) {
	in := benchInstance()
	e := plugintest.NewDiscard(outputKeys[:])
	r := e.NewRecord()
	s := newStream(maxFrameLen)
	frame := buildFrame(icmpEcho, allOpts()...)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		frameLoop(in, s, r, e, frame)
	}
}
