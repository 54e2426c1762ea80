package daemon

import (
	"fmt"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

func TestDropPrivileges(t *testing.T) {
	testutil.RequireRoot(t)
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	var groups []int
	ids, err := u.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ids {
		g, _ := strconv.Atoi(s)
		groups = append(groups, g)
	}
	sort.Ints(groups)
	out, err := helperCmd(t, "privs", "ULOGD_TEST_USER=nobody").Output()
	if err != nil {
		t.Fatalf("helper: %v, output %q", err, out)
	}
	want := fmt.Sprintf("uid=%s euid=%s gid=%s egid=%s groups=%v regain=false\n", u.Uid, u.Uid, u.Gid, u.Gid, groups)
	// Every thread keeps CAP_NET_ADMIN (bit 12) and nothing else. A cgo
	// test binary cannot set capabilities on every thread: it says so
	// and keeps nothing (cmd/ulogd's test checks the CGO_ENABLED=0
	// daemon).
	if strings.Contains(string(out), errCgo.Error()) {
		want += "keep: " + errCgo.Error() + "\n" +
			"CapInh=0000000000000000 CapPrm=0000000000000000 CapEff=0000000000000000\n"
	} else {
		want += "keep: <nil>\n" +
			"CapInh=0000000000000000 CapPrm=0000000000001000 CapEff=0000000000001000\n"
	}
	if got := string(out); got != want {
		t.Errorf("helper reported\n%s\nwant\n%s", got, want)
	}
}

func TestDropPrivilegesUnknownUser(t *testing.T) {
	_, err := DropPrivileges("no-such-user-ulogdtest")
	if err == nil || err.Error() != "Unknown user no-such-user-ulogdtest." {
		t.Errorf("got %v", err)
	}
}

func TestDropPrivilegesInHelperUnknown(t *testing.T) {
	testutil.RequireRoot(t)
	out, err := helperCmd(t, "privs", "ULOGD_TEST_USER=no-such-user-ulogdtest").Output()
	if err == nil || !strings.Contains(string(out), "Unknown user no-such-user-ulogdtest.") {
		t.Errorf("helper: %v, %q", err, out)
	}
}
