package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// NetnsPrefix starts the name of every namespace NewNetns creates:
// ulogdtest-<pid>-…, so that a later run can tell which ones a test
// process that no longer exists left behind.
const NetnsPrefix = "ulogdtest-"

// netnsTimeout bounds each ip command of NewNetns and its cleanup.
const netnsTimeout = 10 * time.Second

var (
	netnsCounter atomic.Int64
	sweepOnce    sync.Once
)

// NewNetns creates a network namespace with a name no other test, in this
// process or another, has (ulogdtest-<pid>-t<n>), brings its loopback up,
// and returns the name. In t.Cleanup, also when the test fails, it kills
// what still runs in the namespace (a namespace with processes in it
// outlives its name) and deletes it. It skips t unless root and the ip
// command are there. The first call in a process deletes the namespaces
// ulogdtest-<pid>-… whose process is gone (a test binary killed by
// -timeout runs no cleanup).
func NewNetns(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	RequireTools(t, "ip")
	sweepOnce.Do(sweepStaleNetns)
	name := fmt.Sprintf("%s%d-t%d", NetnsPrefix, os.Getpid(), netnsCounter.Add(1))
	if out, err := ipCommand("netns", "add", name); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := ipCommand("netns", "pids", name); err == nil {
			for _, f := range strings.Fields(string(out)) {
				// The test process itself is listed when one of its
				// threads (maybe the main one) was moved into the
				// namespace and never back.
				if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if out, err := ipCommand("netns", "del", name); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	if out, err := ipCommand("-n", name, "link", "set", "lo", "up"); err != nil {
		t.Fatalf("in %s: ip link set lo up: %v\n%s", name, err, out)
	}
	return name
}

// sweepStaleNetns deletes the namespaces ulogdtest-<pid>-… whose pid no
// longer exists.
func sweepStaleNetns() {
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), NetnsPrefix)
		if !ok {
			continue
		}
		p, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			_, _ = ipCommand("netns", "del", e.Name())
		}
	}
}

// ipCommand runs ip with args (bounded) and returns its combined output.
func ipCommand(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), netnsTimeout)
	defer cancel()
	return exec.CommandContext(ctx, "ip", args...).CombinedOutput()
}
