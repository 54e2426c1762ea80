package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCPUTicks(t *testing.T) {
	// A comm with spaces and a ')' must not shift the fields.
	stat := "4242 (ulo gd) x) S 1 4242 4242 0 -1 4194560 1047 0 0 0 123 45 0 0 -100 0 3 0 9910 1300000 900 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 99 2 0 0 0 0 0 0 0 0 0 0 0\n"
	user, sys, err := cpuTicks([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if user != 123 || sys != 45 {
		t.Errorf("cpuTicks = %d, %d; want 123, 45", user, sys)
	}
	if _, _, err := cpuTicks([]byte("12 (x S 1")); err == nil {
		t.Error("cpuTicks accepted a stat without ')'")
	}
	if _, _, err := cpuTicks([]byte("12 (x) S 1 2")); err == nil {
		t.Error("cpuTicks accepted a short stat")
	}
}

func TestStatusKB(t *testing.T) {
	status := "Name:\tulogd\nUmask:\t0022\nVmPeak:\t  712345 kB\nVmHWM:\t    9876 kB\nVmRSS:\t    9000 kB\n"
	got, err := statusKB([]byte(status), "VmHWM")
	if err != nil || got != 9876 {
		t.Errorf("statusKB(VmHWM) = %d, %v; want 9876", got, err)
	}
	if _, err := statusKB([]byte(status), "VmSwap"); err == nil {
		t.Error("statusKB found a missing key")
	}
}

func TestParseNetlink(t *testing.T) {
	text := `sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
000000003afb880f 0   0          00000000 0        0        0     2        0        4       
00000000c1a2b3d4 12  3551       00000005 2304     0        0     2        1784     77123   
00000000c1a2b3d5 12  4294960001 00000000 0        0        0     2        0        77124   
`
	got, err := parseNetlink([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []nlSock{
		{Proto: 0, Inode: 4},
		{Proto: 12, PortID: 3551, Groups: 5, Rmem: 2304, Drops: 1784, Inode: 77123},
		{Proto: 12, PortID: 4294960001, Inode: 77124},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseNetlink (-want +got):\n%s", d)
	}
	if _, err := parseNetlink([]byte("sk Eth Pid\n")); err == nil {
		t.Error("parseNetlink accepted a header without Drops")
	}
}

func TestSocketInode(t *testing.T) {
	for link, want := range map[string]uint64{"socket:[77123]": 77123, "pipe:[5]": 0, "socket:[x]": 0, "/dev/null": 0} {
		got, ok := socketInode(link)
		if got != want || ok != (want != 0) {
			t.Errorf("socketInode(%q) = %d, %v", link, got, ok)
		}
	}
}

func TestParseNftCounter(t *testing.T) {
	text := `table inet ubench {
	chain pre {
		type filter hook prerouting priority filter; policy accept;
		ct state new counter packets 200000 bytes 5600000
	}
}
`
	got, err := parseNftCounter(text)
	if err != nil || got != 200000 {
		t.Errorf("parseNftCounter = %d, %v; want 200000", got, err)
	}
	if _, err := parseNftCounter("table inet x {\n}\n"); err == nil {
		t.Error("parseNftCounter found a counter in a ruleset without one")
	}
}

func TestLineCounter(t *testing.T) {
	var c lineCounter
	c.feed([]byte("Jan  1 00:00:00 h [NEW] ORIG: SRC=1\nJan  1 00:00:00 h [DEST"))
	c.feed([]byte("ROY] ORIG: SRC=1\nJan  1 00:00:00 h IN=veth0 OUT= SRC=1\n"))
	c.feed([]byte(`{"ct.id": 7, "ct.event": 1, "src_ip": "10.200.0.1"}` + "\n" + `{"ct.event": 4}` + "\n"))
	want := lineCounter{Lines: 5, New: 2, Destroy: 2}
	if d := cmp.Diff(want, c, cmp.AllowUnexported(lineCounter{})); d != "" {
		t.Errorf("lineCounter (-want +got):\n%s", d)
	}
}
