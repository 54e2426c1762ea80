package nfacct

import (
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/plugintest"
)

// TestCheckErrors: what --check reports for bad NFACCT sections, with the
// file and line; building opens nothing, so it needs no privileges.
func TestCheckErrors(t *testing.T) {
	for _, tc := range []struct{ section, want string }{
		{"timestamp=1\n", `t.conf:3: stack 1, a1:NFACCT: mandatory option "pollinterval" not found in section [a1]`},
		{"pollinterval=0\n", `t.conf:4: stack 1, a1:NFACCT: pollinterval=0: NFACCT needs a poll interval`},
		{"pollinterval=-5\n", `pollinterval=-5`},
		{"pollinterval=5x\n", `pollinterval`},
		{"pollinterval=5\nzerocounter=0\ntimestamp=1\n", ""},
	} {
		err := plugintest.BuildError(t, "[global]\nstack=a1:NFACCT,gp1:GPRINT\n[a1]\n"+tc.section+"[gp1]\nfile=\"/nonexistent/x.log\"\n")
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: build error %v, want %q", tc.section, err, tc.want)
		}
	}
}
