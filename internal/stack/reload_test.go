package stack_test

import (
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
	_ "github.com/ulogd-go/ulogd/plugins/all"
)

// TestMetricsListen: metrics_listen= takes address:port once; anything
// else is an error on its line.
func TestMetricsListen(t *testing.T) {
	const stackLine = "stack=ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU\n[emu1]\nfile=\"/tmp/x.log\"\n"
	for _, c := range []struct{ value, err string }{
		{`"127.0.0.1:19756"`, ""},
		{`"[::1]:19756"`, ""},
		{`":19756"`, ""},
		{`"127.0.0.1"`, `t.conf:2: metrics_listen="127.0.0.1": want address:port, such as 127.0.0.1:19756`},
		{`"127.0.0.1:http"`, `t.conf:2: metrics_listen="127.0.0.1:http": port "http" is not a number from 0 to 65535`},
		{`"127.0.0.1:70000"`, `port "70000" is not a number`},
		{"\"127.0.0.1:1\"\nmetrics_listen=\"127.0.0.1:2\"", `t.conf:3: option "metrics_listen" occurred more than once (first on line 2)`},
	} {
		f, err := config.Parse("t.conf", []byte("[global]\nmetrics_listen="+c.value+"\n"+stackLine))
		if err != nil {
			t.Fatal(err)
		}
		g, err := stack.Build(f, plugin.Default, nil)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.value, err)
		case c.err == "" && g.Global.MetricsListen != strings.Trim(c.value, `"`):
			t.Errorf("%s: MetricsListen %q", c.value, g.Global.MetricsListen)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want %q", c.value, err, c.err)
		}
	}
}
