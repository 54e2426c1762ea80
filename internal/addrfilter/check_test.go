package addrfilter

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
)

func TestCheck(t *testing.T) {
	const none = -1
	tests := []struct {
		name     string
		family   uint64
		protocol int
		arp      bool
		ok       bool
		msg      string
	}{
		{"inet", 2, none, false, true, ""},
		{"inet6", 10, none, false, true, ""},
		{"arp accepted", 3, none, true, true, ""},
		{"arp not accepted", 3, none, false, false, "Unknown family X"},
		{"bridge ipv4", 7, 0x0800, false, true, ""},
		{"bridge arp", 7, 0x0806, false, true, ""},
		{"bridge ipv6", 7, 0x86dd, false, true, ""},
		{"bridge without protocol", 7, none, false, false, "No protocol inside AF_BRIDGE packet"},
		{"bridge other ethertype", 7, 0x88cc, false, false, "Unknown protocol inside AF_BRIDGE packet"},
		{"other family", 4, 0x0800, true, false, "Unknown family X"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			c := Check{Family: 0, Protocol: 1, ARP: tt.arp, UnknownFamily: "Unknown family X",
				Log: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			r := keys.NewRecord([]keys.Type{keys.Uint8, keys.Uint16})
			for range 2 {
				r.SetUint(0, tt.family)
				if tt.protocol != none {
					r.SetUint(1, uint64(tt.protocol))
				}
				if got := c.OK(r); got != tt.ok {
					t.Errorf("OK = %v, want %v", got, tt.ok)
				}
				r.Reset()
			}
			got := log.String()
			if tt.msg == "" {
				if got != "" {
					t.Errorf("logged %q", got)
				}
				return
			}
			if n := strings.Count(got, "\n"); n != 1 || !strings.Contains(got, `level=INFO+2 msg="`+tt.msg+`"`) {
				t.Errorf("log %q: want %q once, as a notice", got, tt.msg)
			}
		})
	}
}

func TestInputKeys(t *testing.T) {
	in := InputKeys()
	if len(in) != 2 || in[0] != (keys.Spec{Name: "oob.family", Type: keys.Uint8}) ||
		in[1] != (keys.Spec{Name: "oob.protocol", Type: keys.Uint16}) {
		t.Errorf("InputKeys = %v", in)
	}
	in[0].Name = "changed"
	if InputKeys()[0].Name != "oob.family" {
		t.Error("InputKeys shares its slice")
	}
}
