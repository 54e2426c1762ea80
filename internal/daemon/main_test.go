package daemon

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
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
		keepErr, err := DropPrivileges(os.Getenv("ULOGD_TEST_USER"))
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		groups, _ := syscall.Getgroups()
		regain := syscall.Setuid(0) == nil
		fmt.Printf("uid=%d euid=%d gid=%d egid=%d groups=%v regain=%v\n",
			syscall.Getuid(), syscall.Geteuid(), syscall.Getgid(), syscall.Getegid(), groups, regain)
		fmt.Printf("keep: %v\n", keepErr)
		fmt.Print(capsOfThreads())
		return 0
	case "daemonize":
		return daemonizeHelper()
	case "run-as":
		// Start the daemon with -u, stop it once it is ready.
		ctx, cancel := context.WithCancel(context.Background())
		var out strings.Builder
		err := Run(ctx, Options{ConfigFile: os.Getenv("ULOGD_TEST_CONF"), User: os.Getenv("ULOGD_TEST_USER"),
			Stdout: &out, Stderr: &out, Signals: make(chan os.Signal), Ready: cancel})
		fmt.Printf("%s---\n%v\n", out.String(), err)
		return 0
	case "run-unprivileged":
		// Lose root and every capability, then start the daemon.
		if err := syscall.Setuid(65534); err != nil {
			fmt.Println("setuid:", err)
			return 1
		}
		var out strings.Builder
		err := Run(context.Background(), Options{ConfigFile: os.Getenv("ULOGD_TEST_CONF"), Stdout: &out, Stderr: &out})
		fmt.Printf("%s---\n%v\n", out.String(), err)
		return 0
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
	child, derr := Daemonize(os.Args, os.Environ(), pf)
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

// capsOfThreads describes the capability sets of the process's threads,
// one line per distinct combination: "CapInh=... CapPrm=... CapEff=...".
func capsOfThreads() string {
	tasks, _ := os.ReadDir("/proc/self/task")
	seen := map[string]bool{}
	var lines []string
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/status")
		if err != nil {
			continue
		}
		var sets []string
		for _, ln := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(ln, ":\t"); ok && (k == "CapInh" || k == "CapPrm" || k == "CapEff") {
				sets = append(sets, k+"="+v)
			}
		}
		if l := strings.Join(sets, " "); !seen[l] {
			seen[l] = true
			lines = append(lines, l+"\n")
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "")
}
