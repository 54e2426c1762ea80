package ctnl

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/netnstest"
	"github.com/ulogd-go/ulogd/internal/nl"
	"golang.org/x/sys/unix"
)

var capture = flag.Bool("capture", false, "capture real ctnetlink messages into testdata/ and rewrite testdata/golden.json (needs root)")

// tupleView and eventView are the golden (JSON) form of a decoded Event.
type tupleView struct {
	Src, Dst           string
	Proto              uint8
	SrcPort, DstPort   uint16
	HasPorts           bool
	ICMPType, ICMPCode uint8
	ICMPID             uint16
	HasICMP            bool
	Zone               uint16
	HasZone            bool
}

type eventView struct {
	Type                                             string
	Family                                           uint8
	Orig, Reply                                      tupleView
	OrigPackets, OrigBytes, ReplyPackets, ReplyBytes uint64
	HasCounters                                      bool
	Mark                                             uint32
	HasMark                                          bool
	ID                                               uint32
	HasID                                            bool
	Status, Timeout                                  uint32
	Zone                                             uint16
	Use                                              uint32
	Start, Stop                                      uint64
	HasStart, HasStop                                bool
	Unknown                                          int
}

func viewAddr(b []byte) string {
	if b == nil {
		return ""
	}
	return addr(b)
}

func viewTuple(t *Tuple) tupleView {
	return tupleView{viewAddr(t.Src), viewAddr(t.Dst), t.Proto, t.SrcPort, t.DstPort, t.HasPorts,
		t.ICMPType, t.ICMPCode, t.ICMPID, t.HasICMP, t.Zone, t.HasZone}
}

func view(e *Event) eventView {
	return eventView{e.Type.String(), e.Family, viewTuple(&e.Orig), viewTuple(&e.Reply),
		e.OrigPackets, e.OrigBytes, e.ReplyPackets, e.ReplyBytes, e.HasCounters,
		e.Mark, e.HasMark, e.ID, e.HasID, e.Status, e.Timeout, e.Zone, e.Use,
		e.Start, e.Stop, e.HasStart, e.HasStop, e.Unknown}
}

// decodeAll decodes every conntrack message of a datagram; NLMSG_DONE and
// other control messages are skipped.
func decodeAll(raw []byte) ([]eventView, error) {
	var out []eventView
	for rest := raw; len(rest) > 0; {
		m, r, err := nl.NextMsg(rest)
		if err != nil {
			return out, err
		}
		rest = r
		if m.IsControl() {
			continue
		}
		var ev Event
		if err := Decode(m, &ev); err != nil {
			return out, err
		}
		out = append(out, view(&ev))
	}
	return out, nil
}

const goldenFile = "testdata/golden.json"

// TestCapture regenerates testdata/ from a real kernel when run with
// -capture: go test -run TestCapture -capture ./internal/nl/ctnl/
func TestCapture(t *testing.T) {
	if !*capture {
		t.Skip("run with -capture to regenerate testdata/ from the kernel")
	}
	ns := netnstest.NewNS(t)
	ns.EnableConntrack(t)
	c := openIn(t, ns, GroupNew, GroupUpdate, GroupDestroy)
	tcpFlow(t, ns, "tcp4", "127.0.0.1:40001", []byte("hello"))
	tcpFlow(t, ns, "tcp6", "[::1]:40002", []byte("hello, world"))
	udpSend(t, ns, "udp4", "127.0.0.1:40003", []byte("ping"))
	ns.Run(t, "ping", "-c1", "-W1", "127.0.0.1")
	ns.Run(t, "ping", "-6", "-c1", "-W1", "::1")
	conntrackIns(t, ns, "-s", "fd00::1", "-d", "fd00::2", "-p", "udp", "--sport", "5000", "--dport", "53", "-m", "42", "--zone", "7")
	conntrackIns(t, ns, "-s", "10.0.0.1", "-d", "10.0.0.2", "-p", "sctp", "--sport", "5000", "--dport", "6000",
		"--state", "ESTABLISHED", "--orig-vtag", "1", "--reply-vtag", "2")
	conntrackIns(t, ns, "-s", "10.0.0.3", "-d", "10.0.0.4", "-p", "gre", "--srckey", "1", "--dstkey", "2")
	// A dump datagram with several entries (and its NLMSG_DONE if it fits).
	d := openIn(t, ns)
	var req [64]byte
	if err := d.Send(DumpRequest(req[:0], 1, 0, false)); err != nil {
		t.Fatal(err)
	}
	b := nl.NewBatch(1, nl.DefaultDatagramSize)
	if _, err := d.Receive(b); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"dump.bin": slices.Clone(b.Datagram(0))}
	ns.Run(t, "conntrack", "-F")
	all, _ := collect(t, c, 1<<30, 300*time.Millisecond, nil)
	for _, cp := range all {
		name := fmt.Sprintf("%s-%s-%s.bin", cp.ev.Type, famName(cp.ev.Family), protoName(cp.ev.Orig.Proto))
		if _, ok := files[name]; !ok {
			files[name] = cp.raw
		}
	}
	golden := map[string][]eventView{}
	for name, raw := range files {
		if err := os.WriteFile(filepath.Join("testdata", name), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		evs, err := decodeAll(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		golden[name] = evs
	}
	out, _ := json.MarshalIndent(golden, "", "  ")
	if err := os.WriteFile(goldenFile, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %d captures", len(files))
}

func famName(f uint8) string {
	switch f {
	case unix.AF_INET:
		return "ipv4"
	case unix.AF_INET6:
		return "ipv6"
	}
	return "af" + strconv.Itoa(int(f))
}

func protoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "icmpv6"
	case ProtoSCTP:
		return "sctp"
	case ProtoGRE:
		return "gre"
	}
	return "proto" + strconv.Itoa(int(p))
}
