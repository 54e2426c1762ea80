package e2e

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Helpers for the differential tests of the text sinks (GPRINT, OPRINT,
// NACCT), whose records are not PRINTFLOW lines, so the generic Barrier
// cannot find its marker in them.

// kv is one "name=value" of a GPRINT line or an OPRINT block.
type kv struct{ k, v string }

// textRecord is one event as written by a text sink.
type textRecord []kv

func (r textRecord) get(k string) (string, bool) {
	for _, p := range r {
		if p.k == k {
			return p.v, true
		}
	}
	return "", false
}

func (r textRecord) String() string {
	var b strings.Builder
	for i, p := range r {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.k + "=" + p.v)
	}
	return b.String()
}

// textFormat says how to cut a sink's file into records.
type textFormat int

const (
	fmtGPRINT textFormat = iota // one comma-separated line per event
	fmtOPRINT                   // a boundary line, then one name=value line per key
	fmtNACCT                    // one tab-separated line: fields named f1..f8
)

// parseRecords cuts lines into records. A trailing OPRINT block may be
// incomplete while the file is being written; callers only use records
// before a barrier marker, which is complete once the marker's last line
// is there (one write per batch).
func parseRecords(t testing.TB, f textFormat, lines []string) []textRecord {
	t.Helper()
	var recs []textRecord
	for _, l := range lines {
		switch f {
		case fmtGPRINT:
			var r textRecord
			for _, field := range strings.Split(l, ",") {
				k, v, ok := strings.Cut(field, "=")
				if !ok {
					t.Errorf("GPRINT field %q without '=' in %q", field, l)
				}
				r = append(r, kv{k, v})
			}
			recs = append(recs, r)
		case fmtOPRINT:
			if l == "===>PACKET BOUNDARY" {
				recs = append(recs, textRecord{})
				continue
			}
			k, v, ok := strings.Cut(l, "=")
			if !ok || len(recs) == 0 {
				t.Errorf("OPRINT line %q outside a block or without '='", l)
				continue
			}
			recs[len(recs)-1] = append(recs[len(recs)-1], kv{k, v})
		case fmtNACCT:
			var r textRecord
			for i, field := range strings.Split(l, "\t") {
				r = append(r, kv{"f" + strconv.Itoa(i+1), field})
			}
			if len(r) != 8 {
				t.Errorf("NACCT line with %d fields, want 8: %q", len(r), l)
			}
			recs = append(recs, r)
		}
	}
	return recs
}

// barrierKind says which kernel events carry the marker.
type barrierKind int

const (
	barrierDestroy barrierKind = iota // NFCT: flush, marker flow, delete it
	barrierPacket                     // NFLOG: the marker packet itself
)

// isBarrier reports whether a record is about a barrier flow or packet
// (any direction), and whether it is the marker with source port sport.
func isBarrier(f textFormat, r textRecord, sport int) (barrier, marker bool) {
	bp, sp := strconv.Itoa(BarrierPort), strconv.Itoa(sport)
	var src, dst []string
	switch f {
	case fmtNACCT:
		src, dst = []string{"f4"}, []string{"f6"}
	default:
		src = []string{"orig.l4.sport", "udp.sport"}
		dst = []string{"orig.l4.dport", "udp.dport"}
	}
	for i := range src {
		s, _ := r.get(src[i])
		d, _ := r.get(dst[i])
		if d == bp || s == bp {
			barrier = true
			if s == sp && d == bp {
				marker = true
			}
		}
	}
	if f != fmtNACCT && marker {
		// NFCT: only the DESTROY of the marker flow ends the wait.
		if ev, ok := r.get("ct.event"); ok && ev != "4" {
			marker = false
		}
	}
	return barrier, marker
}

// textBarrier makes sure every event before it is in each file, and
// returns each file's records before the marker, without barrier records.
func (p *NSPair) textBarrier(t testing.TB, kind barrierKind, f textFormat, files ...string) [][]textRecord {
	t.Helper()
	if kind == barrierDestroy {
		p.FlushConntrack(t)
	}
	sport := 30000 + int(barrierSport.Add(1))
	if _, err := p.UDPFromGo(false, sport, BarrierPort, []byte("barrier")); err != nil {
		t.Fatalf("barrier flow: %v", err)
	}
	if kind == barrierDestroy {
		p.Exec(t, p.A, "conntrack", "-D", "-p", "udp", "--sport", strconv.Itoa(sport), "--dport", strconv.Itoa(BarrierPort))
	}
	res := make([][]textRecord, len(files))
	for i, file := range files {
		var recs []textRecord
		WaitFor(t, linesTimeout, fmt.Sprintf("barrier marker (sport %d) in %s", sport, file), func() bool {
			all := parseRecords(t, f, ReadLines(t, file))
			for j, r := range all {
				if _, m := isBarrier(f, r, sport); m {
					recs = all[:j]
					return true
				}
			}
			return false
		})
		for _, r := range recs {
			if b, _ := isBarrier(f, r, sport); !b {
				res[i] = append(res[i], r)
			}
		}
	}
	return res
}

// startTextPair starts the reference and ours in p.A with config(logfile,
// out, ref); ref tells the function which daemon it writes for (e.g. a
// different NFLOG group).
func startTextPair(t *testing.T, p *NSPair, config func(logfile, out string, ref bool) string) *Pair {
	t.Helper()
	refBin, ours := RefBinary(t), OurBinary(t)
	dir := t.TempDir()
	r := &Pair{RefOut: filepath.Join(dir, "ref.out"), OursOut: filepath.Join(dir, "ours.out")}
	refLog, oursLog := filepath.Join(dir, "ref.log"), filepath.Join(dir, "ours.log")
	refConf := WriteConfig(t, filepath.Join(dir, "ref.conf"), config(refLog, r.RefOut, true))
	oursConf := WriteConfig(t, filepath.Join(dir, "ours.conf"), config(oursLog, r.OursOut, false))
	r.Ref = StartDaemon(t, DaemonSpec{Name: "ref", Binary: refBin, Netns: p.A, Config: refConf, Logfile: refLog})
	r.Ours = StartDaemon(t, DaemonSpec{Name: "ours", Binary: ours, Netns: p.A, Config: oursConf, Logfile: oursLog})
	return r
}

// ulogd2Addr renders an address as ulogd2 2.0.8's GPRINT (reversed=false)
// or OPRINT (reversed=true) prints an IPADDR key: the first four bytes of
// the value as a dotted quad, in memory order or reversed.
func ulogd2Addr(a netip.Addr, reversed bool) string {
	var b [4]byte
	if a.Is4() {
		b = a.As4()
	} else {
		s := a.As16()
		copy(b[:], s[:4])
	}
	if reversed {
		b[0], b[1], b[2], b[3] = b[3], b[2], b[1], b[0]
	}
	return netip.AddrFrom4(b).String()
}

// checkStamp checks a GPRINT "timestamp=" value: well formed and within
// two minutes of now (local time).
func checkStamp(t testing.TB, v string) {
	t.Helper()
	ts, err := time.ParseInLocation("2006/01/02-15:04:05", v, time.Local)
	if err != nil {
		t.Errorf("bad GPRINT timestamp %q: %v", v, err)
		return
	}
	if d := time.Since(ts); d > 2*time.Minute || d < -2*time.Minute {
		t.Errorf("GPRINT timestamp %q is %v away from now", v, d)
	}
}
