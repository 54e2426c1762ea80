package testutil

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
)

// TestNewNetns checks that namespaces are distinct, and that the cleanup
// deletes them and ends what still runs in them.
func TestNewNetns(t *testing.T) {
	RequireRoot(t)
	RequireTools(t, "ip", "sleep")
	var a, b string
	var sleeper *exec.Cmd
	t.Run("create", func(t *testing.T) {
		a, b = NewNetns(t), NewNetns(t)
		if a == b {
			t.Fatalf("two namespaces named %s", a)
		}
		sleeper = exec.Command("ip", "netns", "exec", a, "sleep", "600")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
	})
	for _, ns := range []string{a, b} {
		if _, err := os.Stat("/var/run/netns/" + ns); !os.IsNotExist(err) {
			t.Errorf("namespace %s still there after its test: %v", ns, err)
		}
	}
	if sleeper == nil || sleeper.Process == nil {
		return
	}
	if err := sleeper.Wait(); err == nil {
		t.Error("the process left in the namespace exited normally, want killed")
	} else if ws, ok := sleeper.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Errorf("the process left in the namespace ended with %v, want SIGKILL", err)
	}
}

// TestSweepStaleNetns checks that a namespace named for a process that is
// gone is deleted, and one of a live process is kept.
func TestSweepStaleNetns(t *testing.T) {
	RequireRoot(t)
	RequireTools(t, "ip", "true")
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	stale := NetnsPrefix + strconv.Itoa(gone.Process.Pid) + "-t1"
	live := NetnsPrefix + strconv.Itoa(os.Getpid()) + "-sweeptest"
	for _, ns := range []string{stale, live} {
		if out, err := ipCommand("netns", "add", ns); err != nil {
			t.Fatalf("ip netns add %s: %v\n%s", ns, err, out)
		}
		t.Cleanup(func() { _, _ = ipCommand("netns", "del", ns) })
	}
	sweepStaleNetns()
	if _, err := os.Stat("/var/run/netns/" + stale); !os.IsNotExist(err) {
		t.Errorf("stale namespace %s not deleted: %v", stale, err)
	}
	if _, err := os.Stat("/var/run/netns/" + live); err != nil {
		t.Errorf("namespace %s of a live process deleted: %v", live, err)
	}
}
