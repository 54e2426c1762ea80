package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ulogd-go/ulogd/internal/testutil"
)

// scriptTimeout bounds scripts/run-canonical.sh's start, which builds the
// daemon first.
const scriptTimeout = 3 * time.Minute

// childrenNamed returns the pids of the processes whose parent is ppid
// and whose command name is comm.
func childrenNamed(ppid int, comm string) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 || s[open+1:end] != comm || f[1] != strconv.Itoa(ppid) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestRunCanonicalScript runs scripts/run-canonical.sh as root in a
// private namespace (no firewall rule, conntrack sysctls at 0), stops it
// as a user would, and checks that the daemon is gone with it and that the
// script undid what it changed: the demo nft table and the sysctls.
func TestRunCanonicalScript(t *testing.T) {
	t.Parallel()
	RequireRoot(t)
	RequireTools(t, "ip", "bash", "nft", "conntrack", "sysctl")
	// One after the other: each run rebuilds bin/ulogd.
	for _, c := range []struct {
		name  string
		sig   syscall.Signal
		group bool // to the process group, as a terminal does
	}{
		{"kill", syscall.SIGTERM, false},
		{"ctrl-c", syscall.SIGINT, true},
		{"hangup", syscall.SIGHUP, false},
	} {
		t.Run(c.name, func(t *testing.T) { runCanonicalScript(t, c.sig, c.group) })
	}
}

// sigintIgnored reports whether this process ignores SIGINT, which its
// children then inherit and a non-interactive bash cannot trap (go test
// started in the background by a shell).
func sigintIgnored() bool {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "SigIgn:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(syscall.SIGINT-1)) != 0
		}
	}
	return false
}

func runCanonicalScript(t *testing.T, sig syscall.Signal, group bool) {
	if sig == syscall.SIGINT && sigintIgnored() {
		t.Skip("skipping: this process ignores SIGINT, so the script would too (go test started in the background)")
	}
	ns := NewNS(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logfile, out := filepath.Join(dir, "ulogd.log"), filepath.Join(dir, "syslogemu.log")
	conf := WriteConfig(t, filepath.Join(dir, "ulogd.conf"), CanonicalConfig(logfile, out, NFCTOptions{}))
	sysctls := []string{"net.netfilter.nf_conntrack_acct", "net.netfilter.nf_conntrack_timestamp"}
	sysctl := func(k string) string {
		return strings.TrimSpace(ExecIn(t, ns, "sysctl", "-n", k))
	}

	cmd := exec.Command("ip", "netns", "exec", ns, "bash", "scripts/run-canonical.sh")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "ULOGD_CONF="+conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: group}
	// A file, not a pipe: Wait must not wait for a daemon left behind.
	outPath := filepath.Join(dir, "script.out")
	output, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer output.Close()
	cmd.Stdout, cmd.Stderr = output, output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var daemon []int
	var waitErr error
	done := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
		// A daemon the script left behind: end it (it is ours).
		for _, pid := range daemon {
			if syscall.Kill(pid, 0) == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(outPath)
			t.Logf("script output:\n%s", b)
		}
	})

	// ip netns exec execs bash: the script's pid is cmd's.
	script := cmd.Process.Pid
	testutil.WaitFor(t, scriptTimeout, "the daemon's \"initialization finished\"", func() bool {
		b, _ := os.ReadFile(logfile)
		if !bytes.Contains(b, []byte("initialization finished")) {
			return false
		}
		daemon = childrenNamed(script, "ulogd")
		return len(daemon) == 1
	})
	if !strings.Contains(ExecIn(t, ns, "nft", "list", "tables"), "ulogd_go_demo") {
		t.Error("the script did not add the demo table in a namespace without conntrack rules")
	}
	for _, k := range sysctls {
		if v := sysctl(k); v != "1" {
			t.Errorf("while the daemon runs, %s = %s, want 1", k, v)
		}
	}
	if b, _ := os.ReadFile(outPath); !bytes.Contains(b, []byte("NFCT notes")) {
		t.Error("the script does not explain NFCT's no-connection-tracked-yet notice after adding the demo table")
	}

	target := script
	if group {
		target = -script
	}
	if err := syscall.Kill(target, sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("script after %v: %v, want exit status 0 (the daemon's)", sig, waitErr)
		}
	case <-time.After(3 * stopTimeout):
		// (The script stops the daemon, then undoes its nft table and
		// sysctls: on a loaded machine that has taken more than 10 s.)
		t.Fatalf("the script did not exit within %v of %v", 3*stopTimeout, sig)
	}
	if err := syscall.Kill(daemon[0], 0); err != syscall.ESRCH {
		t.Errorf("daemon pid %d still exists after the script's exit (kill 0: %v)", daemon[0], err)
	}
	if tables := ExecIn(t, ns, "nft", "list", "tables"); strings.Contains(tables, "ulogd_go_demo") {
		t.Errorf("the demo table is still there after the script's exit:\n%s", tables)
	}
	for _, k := range sysctls {
		if v := sysctl(k); v != "0" {
			t.Errorf("after the script's exit, %s = %s, want 0 (restored)", k, v)
		}
	}
}
