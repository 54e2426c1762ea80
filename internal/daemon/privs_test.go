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
	if got := string(out); got != want {
		t.Errorf("helper reported %q, want %q", got, want)
	}
}

func TestDropPrivilegesUnknownUser(t *testing.T) {
	err := DropPrivileges("no-such-user-ulogdtest")
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
