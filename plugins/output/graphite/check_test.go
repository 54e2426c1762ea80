package graphite

import (
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/plugintest"

	_ "github.com/ulogd-go/ulogd/plugins/input/nfacct"
)

// TestCheckErrors: what --check reports for bad GRAPHITE sections, each
// error with the file and line; a good section builds.
func TestCheckErrors(t *testing.T) {
	for _, tc := range []struct{ section, want string }{
		{"port=\"2003\"\n", `t.conf:5: stack 1, g1:GRAPHITE: mandatory option "host" not found in section [g1]`},
		{"host=\"\"\n", `t.conf:6: stack 1, g1:GRAPHITE: host="": GRAPHITE needs`},
		{"host=\"127.0.0.1\"\nport=\"http\"\n", `t.conf:7: stack 1, g1:GRAPHITE: port="http": not a TCP port number`},
		{"host=\"127.0.0.1\"\nport=\"70000\"\n", `port="70000"`},
		{"host=\"127.0.0.1\"\nprefix=\"a b\"\n", `prefix="a b"`},
		{"host=\"127.0.0.1\"\nqueue_records=0\n", "t.conf:7: stack 1, g1:GRAPHITE: queue_records must be positive"},
		{"host=\"127.0.0.1\"\noverflow=\"spool\"\n", "overflow=spool needs a spool_dir"},
		{"host=\"127.0.0.1\"\noverflow=\"spool\"\nspool_dir=\"/var/spool/ulogd/g\"\n", ""},
		{"host=\"carbon.example.org\"\nprefix=\"fw.acct\"\n", ""},
	} {
		err := plugintest.BuildError(t, "[global]\nstack=a1:NFACCT,g1:GRAPHITE\n[a1]\npollinterval=60\n[g1]\n"+tc.section)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: build error %v, want %q", tc.section, err, tc.want)
		}
	}
}
