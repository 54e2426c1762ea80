package graphite

import (
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/plugin"
)

func TestLines(t *testing.T) {
	for _, tc := range []struct {
		prefix, name string
		want         string
	}{
		{"netfilter.nfacct", "spec-icmp", "netfilter.nfacct.spec-icmp.pkts 3 1795630804\nnetfilter.nfacct.spec-icmp.bytes 252 1795630804\n"},
		{"", "http", "http.pkts 3 1795630804\nhttp.bytes 252 1795630804\n"},
		{"p", "a b\n\x7fc", "p.a_b__c.pkts 3 1795630804\np.a_b__c.bytes 252 1795630804\n"},
	} {
		got := string(appendLines([]byte("old"), tc.prefix, []byte(tc.name), 3, 252, 1795630804))
		if got != "old"+tc.want {
			t.Errorf("prefix %q name %q:\n got %q\nwant %q", tc.prefix, tc.name, got, "old"+tc.want)
		}
	}
	max := string(appendLines(nil, "x", []byte("y"), 1<<64-1, 1<<63, 1<<32-1))
	if !strings.Contains(max, "x.y.pkts 18446744073709551615 4294967295\n") || !strings.Contains(max, "x.y.bytes 9223372036854775808 ") {
		t.Errorf("64-bit counters: %q", max)
	}
}

// TestConfigErrors: every bad value is refused with the option named;
// an empty host passes Keys (the defaults) but not New.
func TestConfigErrors(t *testing.T) {
	d := Descriptor()
	for _, tc := range []struct {
		c    Config
		want string // "" = valid
	}{
		{Config{Host: "127.0.0.1", Port: "2003"}, ""},
		{Config{Host: "carbon.example.org", Port: "2003", Prefix: "a.b"}, ""},
		{Config{Host: "::1", Port: "1"}, ""},
		{Config{Host: "[fd00::5]", Port: "65535"}, ""},
		{Config{Host: "127.0.0.1", Port: "0"}, `port="0"`},
		{Config{Host: "127.0.0.1", Port: "65536"}, `port="65536"`},
		{Config{Host: "127.0.0.1", Port: "carbon"}, `port="carbon"`},
		{Config{Host: "127.0.0.1", Port: ""}, `port=""`},
		{Config{Host: "a host", Port: "2003"}, `host="a host"`},
		{Config{Host: "fd00::zz", Port: "2003"}, `host="fd00::zz"`},
		{Config{Host: "127.0.0.1", Port: "2003", Prefix: "a b"}, `prefix="a b"`},
	} {
		tc.c.Options = defaultConfig().Options
		_, _, err := d.Keys(&tc.c)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
	c := defaultConfig()
	if _, _, err := d.Keys(c); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if _, err := d.New(&plugin.Env{Config: c}); err == nil || !strings.Contains(err.Error(), `host=""`) {
		t.Errorf("New without host: %v", err)
	}
}
