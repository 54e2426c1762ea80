package daemon

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestSdNotify(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"path", func(t *testing.T) string { return filepath.Join(t.TempDir(), "notify") }},
		{"abstract", func(t *testing.T) string {
			return fmt.Sprintf("@ulogdtest-%d-%d", os.Getpid(), time.Now().UnixNano())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.addr(t)
			srv, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			t.Setenv("NOTIFY_SOCKET", addr)
			for _, state := range []string{"READY=1", "STATUS=running\nRELOADING=1", "STOPPING=1"} {
				sent, err := SdNotify(state)
				if !sent || err != nil {
					t.Fatalf("SdNotify(%q) = %v, %v", state, sent, err)
				}
				if got := recvDatagram(t, srv); got != state {
					t.Errorf("received %q, want %q", got, state)
				}
			}
		})
	}
}

func TestSdNotifyNoSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	if sent, err := SdNotify("READY=1"); sent || err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v, %v", sent, err)
	}
	t.Setenv("NOTIFY_SOCKET", "vsock:2:1234")
	if sent, err := SdNotify("READY=1"); sent || err == nil {
		t.Errorf("vsock address: %v, %v", sent, err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent"))
	if sent, err := SdNotify("READY=1"); sent || err == nil {
		t.Errorf("absent socket: %v, %v", sent, err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"30000000", "", 30 * time.Second},
		{"30000000", self, 30 * time.Second},
		{"30000000", "1", 0},
		{"30000000", "x", 0},
		{"0", "", 0},
		{"-5", "", 0},
		{"abc", "", 0},
	} {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		if got := WatchdogInterval(); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", tc.usec, tc.pid, got, tc.want)
		}
	}
}
