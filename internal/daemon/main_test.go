package daemon

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// Some tests need a second process: the test binary re-executes itself with
// ULOGD_TEST_HELPER naming the role, and TestMain runs that role instead of
// the tests.
const helperEnv = "ULOGD_TEST_HELPER"

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(runHelper(role))
	}
	os.Exit(m.Run())
}

// helperCmd returns a command running the test binary in the given role.
func helperCmd(t *testing.T, role string, env ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+role)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	return cmd
}

func runHelper(role string) int {
	switch role {
	case "holdpid":
		// Create the pid file, say so, hold it until stdin closes.
		if _, err := CreatePidFile(os.Getenv("ULOGD_TEST_PIDFILE"), nil); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		return 0
	case "privs":
		if err := DropPrivileges(os.Getenv("ULOGD_TEST_USER")); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		groups, _ := syscall.Getgroups()
		regain := syscall.Setuid(0) == nil
		fmt.Printf("uid=%d euid=%d gid=%d egid=%d groups=%v regain=%v\n",
			syscall.Getuid(), syscall.Geteuid(), syscall.Getgid(), syscall.Getegid(), groups, regain)
		return 0
	case "daemonize":
		return daemonizeHelper()
	}
	fmt.Fprintln(os.Stderr, "unknown helper role", role)
	return 2
}

// daemonizeHelper plays ulogd's start-up with -p and -d: create the pid
// file, daemonize; in the daemon adopt the pid file, rewrite it, report the
// pid through a FIFO, wait for the test's go-ahead, remove the pid file.
func daemonizeHelper() int {
	dir := os.Getenv("ULOGD_TEST_DIR")
	log := slog.New(slog.DiscardHandler)
	var report *os.File
	if _, inDaemon := os.LookupEnv(DaemonizedEnv); inDaemon {
		// Anything CreatePidFile logs (a stale notice would mean the
		// hand-over failed) goes first into the report.
		var err error
		if report, err = os.OpenFile(dir+"/report", os.O_WRONLY, 0); err != nil {
			return 3
		}
		defer report.Close()
		log = slog.New(slog.NewTextHandler(report, nil))
	}
	pf, err := CreatePidFile(dir+"/ulogd.pid", log)
	child, derr := Daemonize(os.Args, os.Environ())
	if !child {
		if err != nil || derr != nil {
			fmt.Println("error:", err, derr)
			return 1
		}
		pf.Remove() // handed over: must only close
		return 0
	}
	if err != nil {
		fmt.Fprintln(report, "error:", err)
		return 1
	}
	if err := pf.Rewrite(); err != nil {
		fmt.Fprintln(report, "error:", err)
		return 1
	}
	fmt.Fprintln(report, os.Getpid())
	release, err := os.Open(dir + "/release")
	if err != nil {
		fmt.Fprintln(report, "error:", err)
		return 1
	}
	line, _ := bufio.NewReader(release).ReadString('\n')
	release.Close()
	fmt.Fprintf(report, "removed %q %v\n", strings.TrimSpace(line), pf.Remove())
	return 0
}
