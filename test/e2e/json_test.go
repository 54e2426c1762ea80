package e2e

// Differential tests of the JSON sink: the reference ulogd2 (with the
// ulogd2-json plugin) and ours on the same kernel events, compared field
// by field and in field order after normalising only what docs/compat.md
// lists (see normalizeJSON).

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// jsonField is one member of a JSON object: its name and its raw value.
type jsonField struct{ K, V string }

// parseJSONFields decodes one record, keeping the order of its members.
func parseJSONFields(line string) ([]jsonField, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object: %q (%v)", line, err)
	}
	var out []jsonField
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%q: %v", line, err)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%q: %v", line, err)
		}
		out = append(out, jsonField{k.(string), string(raw)})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%q: %v", line, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data in %q", line)
	}
	return out, nil
}

func jsonGet(fs []jsonField, k string) (string, bool) {
	for _, f := range fs {
		if f.K == k {
			return f.V, true
		}
	}
	return "", false
}

func jsonDelete(fs []jsonField, names ...string) []jsonField {
	out := fs[:0:0]
	for _, f := range fs {
		keep := true
		for _, n := range names {
			keep = keep && f.K != n
		}
		if keep {
			out = append(out, f)
		}
	}
	return out
}

func jsonSet(fs []jsonField, k, v string) {
	for i := range fs {
		if fs[i].K == k {
			fs[i].V = v
		}
	}
}

var (
	// ulogd2: local time, usec only when oob.time.usec exists, and no
	// zone suffix when the offset is 0 (docs/compat.md J1), ±HHMM otherwise.
	refStampRE = regexp.MustCompile(`^"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{6})?([+-]\d{4})?"$`)
	// ours: RFC 3339, always usec and a ±HH:MM offset.
	ourStampRE = regexp.MustCompile(`^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d"$`)
)

func parseRefStamp(v string) (time.Time, bool, error) {
	m := refStampRE.FindStringSubmatch(v)
	if m == nil {
		return time.Time{}, false, fmt.Errorf("reference time stamp %s is malformed", v)
	}
	if m[3] != "" {
		t, err := time.Parse("2006-01-02T15:04:05-0700", m[1]+m[3])
		if err != nil {
			return t, false, err
		}
		if m[2] != "" {
			us, _ := strconv.Atoi(m[2][1:])
			t = t.Add(time.Duration(us) * time.Microsecond)
		}
		return t, m[2] != "", nil
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", m[1], time.Local)
	if err == nil && m[2] != "" {
		us, _ := strconv.Atoi(m[2][1:])
		t = t.Add(time.Duration(us) * time.Microsecond)
	}
	return t, m[2] != "", err
}

// normalizeJSON is the ONE place that lists what may differ between the
// reference's JSON records and ours; each rule names its docs/compat.md
// entry:
//
//  1. J1: the time stamp. Ours is RFC 3339 with microseconds and the UTC
//     offset always; ulogd2 omits a zero offset (J1), writes ±HHMM
//     otherwise, and has no sub-second part for NFCT. Both are checked
//     to be well formed and to name (nearly) the same instant, then
//     removed.
//
//  2. N7 (NFCT stacks only): ours has icmpv6.type, icmpv6.code (ICMPv6 flows) and
//     ct.zone; they are removed from ours.
//
//  3. P1 (BASE): tcp.offset and tcp.reserved are always 0 in ulogd2:
//     checked to be 0 there, then removed from both.
//
//  4. P2 (BASE): icmp.csum and icmpv6.csum are byte-swapped in ulogd2:
//     the reference's value is swapped back.
//
//  5. P3 (BASE): icmp.gateway is in host order in ulogd2: the
//     reference's value is swapped back.
//
//  6. T7: oob.time.* (NFLOG, packets sent by the host itself carry no
//     kernel time stamp) and flow.start.* (NFCT, NEW events without a
//     kernel start time) are the time each daemon read the event: they
//     are compared within a second, not exactly.
func normalizeJSON(t *testing.T, ref, ours []jsonField, nfct bool, slack time.Duration) (r, o []jsonField) {
	t.Helper()
	rv, rok := jsonGet(ref, "timestamp")
	ov, ook := jsonGet(ours, "timestamp")
	if rok != ook {
		t.Errorf("time stamp present in ref: %v, in ours: %v", rok, ook)
	}
	if rok && ook {
		rt, _, err := parseRefStamp(rv)
		if err != nil {
			t.Error(err)
		}
		if !ourStampRE.MatchString(ov) {
			t.Errorf("our time stamp %s is not RFC 3339 with microseconds and offset", ov)
		}
		ot, err := time.Parse(time.RFC3339Nano, strings.Trim(ov, `"`))
		if err != nil {
			t.Error(err)
		}
		if d := ot.Sub(rt); d > slack || d < -slack {
			t.Errorf("time stamps %s (ref) and %s (ours) are %v apart", rv, ov, d)
		}
	}
	ref = jsonDelete(ref, "timestamp")
	ours = jsonDelete(ours, "timestamp")
	if nfct {
		ours = jsonDelete(ours, "icmpv6.type", "icmpv6.code", "ct.zone")
	}
	for _, k := range []string{"tcp.offset", "tcp.reserved"} {
		if v, ok := jsonGet(ref, k); ok && v != "0" {
			t.Errorf("reference %s = %s, expected the 2.0.8 quirk value 0", k, v)
		}
	}
	ref = jsonDelete(ref, "tcp.offset", "tcp.reserved")
	ours = jsonDelete(ours, "tcp.offset", "tcp.reserved")
	swap := func(k string, bits int) {
		v, ok := jsonGet(ref, k)
		if !ok {
			return
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil {
			t.Errorf("reference %s = %s: %v", k, v, err)
			return
		}
		if bits == 16 {
			n = n>>8 | (n&0xff)<<8
		} else {
			n = n>>24 | (n>>8)&0xff00 | (n&0xff00)<<8 | (n&0xff)<<24
		}
		jsonSet(ref, k, strconv.FormatUint(n, 10))
	}
	swap("icmp.csum", 16)
	swap("icmpv6.csum", 16)
	swap("icmp.gateway", 32)
	// T7: times sampled when the event is read, within a second.
	for _, k := range []string{"oob.time", "flow.start"} {
		rs, rok := jsonGet(ref, k+".sec")
		osec, ook := jsonGet(ours, k+".sec")
		if !rok || !ook {
			continue
		}
		ru, _ := jsonGet(ref, k+".usec")
		ou, _ := jsonGet(ours, k+".usec")
		if d := usecs(osec, ou) - usecs(rs, ru); d > time.Second.Microseconds() || d < -time.Second.Microseconds() {
			t.Errorf("%s %s.%s (ref) and %s.%s (ours) are more than a second apart", k, rs, ru, osec, ou)
		}
		for _, fs := range [][]jsonField{ref, ours} {
			jsonSet(fs, k+".sec", `"S"`)
			jsonSet(fs, k+".usec", `"U"`)
		}
	}
	return ref, ours
}

func usecs(sec, usec string) int64 {
	s, _ := strconv.ParseInt(sec, 10, 64)
	u, _ := strconv.ParseInt(usec, 10, 64)
	return s*1e6 + u
}

// compareJSON parses and normalises both outputs and requires the same
// records, field by field, in the same order. It returns our records.
func compareJSON(t *testing.T, refLines, oursLines []string, nfct bool, slack time.Duration) [][]jsonField {
	t.Helper()
	parse := func(lines []string) [][]jsonField {
		var out [][]jsonField
		for _, l := range lines {
			fs, err := parseJSONFields(l)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fs)
		}
		return out
	}
	ref, ours := parse(refLines), parse(oursLines)
	if len(ref) != len(ours) {
		t.Errorf("%d reference records, %d of ours:\nref:\n%s\nours:\n%s", len(ref), len(ours),
			strings.Join(refLines, ""), strings.Join(oursLines, ""))
		return ours
	}
	for i := range ref {
		r, o := normalizeJSON(t, ref[i], ours[i], nfct, slack)
		if !cmp.Equal(r, o) {
			t.Errorf("record %d differs (-ref +ours):\n%s\nref:  %s\nours: %s", i, cmp.Diff(r, o),
				refLines[i], oursLines[i])
		}
	}
	return ours
}

var jsonBarrierSport atomic.Int64

// jsonBarrier makes a marker flow or datagram A → B:BarrierPort and waits
// until each file has its record (isMarker says which one); it returns
// each file's records before it, without any record matching drop.
func jsonBarrier(t *testing.T, files []string, isMarker func(fs []jsonField, sport int) bool,
	drop func(fs []jsonField) bool, before func(sport int)) [][]string {
	t.Helper()
	sport := 32000 + int(jsonBarrierSport.Add(1))
	before(sport)
	res := make([][]string, len(files))
	for i, f := range files {
		lines := WaitLinesMatch(t, f, linesTimeout, "JSON barrier record", func(l string) bool {
			fs, err := parseJSONFields(l)
			return err == nil && isMarker(fs, sport)
		})
		for _, l := range lines {
			fs, err := parseJSONFields(l)
			if err != nil {
				t.Fatal(err)
			}
			if !drop(fs) {
				res[i] = append(res[i], l)
			}
		}
	}
	return res
}

func jsonNFCTConfig(opts NFCTOptions) func(logfile, out string) string {
	return func(logfile, out string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "[global]\nlogfile=%q\nloglevel=1\n", logfile)
		b.WriteString("stack=ct1:NFCT,ip2str1:IP2STR,json1:JSON\n\n[ct1]\n")
		if opts.EventMask != 0 {
			fmt.Fprintf(&b, "event_mask=%d\n", opts.EventMask)
		}
		if opts.HashEnable != nil {
			fmt.Fprintf(&b, "hash_enable=%d\n", *opts.HashEnable)
		}
		fmt.Fprintf(&b, "\n[json1]\nfile=%q\nsync=1\n", out)
		return b.String()
	}
}

func TestJSONDiffNFCT(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		opts  NFCTOptions
		event int // ct.event of the barrier: 1 NEW, 4 DESTROY
		news  int // records per flow
		dests int
	}{
		{"new-only", NFCTOptions{EventMask: 1, HashEnable: Int(0)}, 1, 1, 0},
		{"new+destroy", NFCTOptions{EventMask: 5, HashEnable: Int(0)}, 4, 1, 1},
		{"hash", NFCTOptions{}, 4, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewNSPair(t, NSOptions{Conntrack: true, Accounting: true, Timestamps: true})
			both := StartBoth(t, p, jsonNFCTConfig(tc.opts))
			flows := standardTraffic(t, p)
			got := jsonBarrier(t, []string{both.RefOut, both.OursOut},
				func(fs []jsonField, sport int) bool {
					dp, _ := jsonGet(fs, "orig.l4.dport")
					sp, _ := jsonGet(fs, "orig.l4.sport")
					ev, _ := jsonGet(fs, "ct.event")
					return dp == strconv.Itoa(BarrierPort) && sp == strconv.Itoa(sport) && ev == strconv.Itoa(tc.event)
				},
				func(fs []jsonField) bool {
					dp, _ := jsonGet(fs, "orig.l4.dport")
					return dp == strconv.Itoa(BarrierPort)
				},
				func(sport int) {
					if tc.event == 4 {
						p.FlushConntrack(t)
					}
					if _, err := p.UDPFromGo(false, sport, BarrierPort, []byte("barrier")); err != nil {
						t.Fatalf("barrier flow: %v", err)
					}
					if tc.event == 4 {
						p.Exec(t, p.A, "conntrack", "-D", "-p", "udp", "--sport", strconv.Itoa(sport),
							"--dport", strconv.Itoa(BarrierPort))
					}
				})
			// NFCT has no packet time: each daemon stamps with its now.
			ours := compareJSON(t, got[0], got[1], true, 2*time.Second)
			var n, d int
			for _, fs := range ours {
				ev, _ := jsonGet(fs, "ct.event")
				n += btoi(ev == "1")
				d += btoi(ev == "4")
				for _, k := range []string{"src_ip", "dest_ip", "ct.id", "orig.ip.protocol"} {
					if _, ok := jsonGet(fs, k); !ok {
						t.Errorf("record without %s: %v", k, fs)
					}
				}
			}
			if n != tc.news*len(flows) || d != tc.dests*len(flows) {
				t.Errorf("%d NEW and %d DESTROY records, want %d and %d:\n%s", n, d,
					tc.news*len(flows), tc.dests*len(flows), strings.Join(got[1], ""))
			}
		})
	}
}

const jsonPacketStack = "log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,mac2str1:HWHDR,json1:JSON"

func TestJSONDiffNFLOG(t *testing.T) {
	t.Parallel()
	p := NewNSPair(t, NSOptions{})
	const oursGroup, refGroup = 1, 2
	logs := func(prefix string) string {
		return fmt.Sprintf("log prefix %q group %d log prefix %q group %d", prefix, oursGroup, prefix, refGroup)
	}
	p.Nft(t, p.A, fmt.Sprintf(`table inet ulogdjson {
	chain out {
		type filter hook output priority 0;
		ip daddr %s %s
		ip6 daddr %s %s
	}
	chain in {
		type filter hook input priority 0;
		ip saddr %s %s
		ip6 saddr %s %s
	}
}`, p.B4, logs("OUT-LOG"), p.B6, logs("OUT-LOG"), p.B4, logs("IN-LOG"), p.B6, logs("IN-LOG")))
	// B drops the barrier datagrams silently (no ICMP error to log).
	p.Nft(t, p.B, fmt.Sprintf(`table inet ulogdjsondrop {
	chain in {
		type filter hook input priority 0;
		udp dport %d drop
	}
}`, BarrierPort))

	ref, ours := RefBinary(t), OurBinary(t)
	dir := t.TempDir()
	start := func(name, bin string, group int) (*Daemon, string) {
		out := filepath.Join(dir, name+".json")
		logfile := filepath.Join(dir, name+".log")
		conf := WriteConfig(t, filepath.Join(dir, name+".conf"), fmt.Sprintf(
			"[global]\nlogfile=%q\nloglevel=1\nstack=%s\n\n[log1]\ngroup=%d\nnetlink_qthreshold=1\n\n[json1]\nfile=%q\nsync=1\n",
			logfile, jsonPacketStack, group, out))
		return StartDaemon(t, DaemonSpec{Name: name, Binary: bin, Netns: p.A, Config: conf, Logfile: logfile}), out
	}
	_, refOut := start("ref", ref, refGroup)
	_, oursOut := start("ours", ours, oursGroup)

	standardTraffic(t, p)
	isBarrier := func(fs []jsonField) bool {
		dp, _ := jsonGet(fs, "dest_port")
		return dp == strconv.Itoa(BarrierPort)
	}
	got := jsonBarrier(t, []string{refOut, oursOut},
		func(fs []jsonField, sport int) bool {
			sp, _ := jsonGet(fs, "src_port")
			return isBarrier(fs) && sp == strconv.Itoa(sport)
		},
		isBarrier,
		func(sport int) {
			if _, err := p.UDPFromGo(false, sport, BarrierPort, []byte("barrier")); err != nil {
				t.Fatalf("barrier datagram: %v", err)
			}
		})
	// Locally sent packets have no kernel time stamp: each daemon stamps
	// them when it reads them.
	oursRecs := compareJSON(t, got[0], got[1], false, time.Second)
	if len(oursRecs) < 20 {
		t.Errorf("only %d packet records", len(oursRecs))
	}
	var in, out int
	for _, fs := range oursRecs {
		pfx, _ := jsonGet(fs, "oob.prefix")
		in += btoi(pfx == `"IN-LOG"`)
		out += btoi(pfx == `"OUT-LOG"`)
	}
	if in == 0 || out == 0 {
		t.Errorf("%d IN-LOG and %d OUT-LOG records: want both", in, out)
	}
}
