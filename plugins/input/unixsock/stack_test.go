package unixsock

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/plugintest"
	"github.com/ulogd-go/ulogd/internal/testutil"

	_ "github.com/ulogd-go/ulogd/plugins/filter/base"
	_ "github.com/ulogd-go/ulogd/plugins/filter/ip2str"
	_ "github.com/ulogd-go/ulogd/plugins/filter/printpkt"
	_ "github.com/ulogd-go/ulogd/plugins/output/logemu"
)

// TestStackLOGEMU runs the NuFW stack of the README through the real
// plugins and checks the line ulogd2 writes for it.
func TestStackLOGEMU(t *testing.T) {
	t.Parallel()
	dir := socketDir(t)
	sock := filepath.Join(dir, "ulogd2.sock")
	out := filepath.Join(dir, "syslogemu.log")
	text := fmt.Sprintf(`[global]
stack=nuauth1:UNIXSOCK,base1:BASE,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU

[nuauth1]
socket_path=%q
perms=0660

[emu1]
file=%q
sync=1
`, sock, out)
	_, stop := plugintest.StartGraph(t, text, nil)

	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket: %v %v", fi, err)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const sec = 1700000000
	opts := []opt{
		strOpt(optPrefix, "MYPREFIX"),
		strOpt(optIn, "eth0"),
		strOpt(optOut, "eth1"),
		{optTimeSec, hostU32(sec)},
		strOpt(optUserName, "alice"),
		{optState, []byte{1}},
	}
	if _, err := c.Write(buildFrame(icmpEcho, opts...)); err != nil {
		t.Fatal(err)
	}

	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	want := time.Unix(sec, 0).Format(time.Stamp) + " " + host + " " +
		"MYPREFIX IN=eth0 OUT=eth1 MAC= SRC=10.99.0.1 DST=10.99.0.2 LEN=28 TOS=00 PREC=0x00 TTL=64 ID=4660 PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1 \n"
	var got string
	testutil.WaitFor(t, 10*time.Second, "a complete line in "+out, func() bool {
		b, _ := os.ReadFile(out)
		got = string(b)
		return strings.HasSuffix(got, "\n")
	})
	if got != want {
		t.Errorf("LOGEMU line:\n got %q\nwant %q", got, want)
	}

	stop()
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket not removed at stop: %v", err)
	}
}
