package daemon

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// DaemonizedEnv is set in the environment of the daemon started by
// Daemonize; its presence makes Daemonize return child=true.
const DaemonizedEnv = "ULOGD_DAEMONIZED"

// Daemonize implements -d. A Go program cannot fork safely, so instead of
// daemon(3)'s fork the program re-executes itself (/proc/self/exe) with args
// (args[0] included; nil means os.Args) and env (normally os.Environ()) plus
// ULOGD_DAEMONIZED=1, in a new session (setsid), in the directory "/", with
// stdin, stdout and stderr on /dev/null. It returns child=false in the
// original process, which should then exit 0, and child=true in the daemon,
// where it does nothing else.
//
// Differences from daemon(0,0):
//   - the daemon is a new process image: it parses the command line and
//     reads the configuration again, nothing in memory is inherited;
//   - its working directory is "/" from the start, so relative paths given on
//     the command line are resolved against "/" (ulogd behaves the same for
//     -c, docs/compat.md D4); make them absolute before calling Daemonize;
//   - no double fork: like daemon(3) the daemon is a session leader without
//     a controlling terminal and does not open terminals;
//   - the parent does not wait for the daemon to start, as with daemon(3).
//
// The pid file pf, if not nil, is handed over: its descriptor
// is inherited by the daemon (the lock goes with it), CreatePidFile in the
// daemon adopts it instead of finding it "already running", and Remove in the
// parent only closes it. The daemon then calls Rewrite to store its pid.
func Daemonize(args []string, env []string, pf *PidFile) (child bool, err error) {
	if _, ok := os.LookupEnv(DaemonizedEnv); ok {
		return true, nil
	}
	if len(args) == 0 {
		args = os.Args
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Errorf("daemonize: %w", err)
	}
	defer null.Close()

	childEnv := make([]string, 0, len(env)+2)
	for _, kv := range env {
		if strings.HasPrefix(kv, DaemonizedEnv+"=") || strings.HasPrefix(kv, pidFileFdEnv+"=") {
			continue
		}
		childEnv = append(childEnv, kv)
	}
	childEnv = append(childEnv, DaemonizedEnv+"=1")

	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        args,
		Dir:         "/",
		Stdin:       null,
		Stdout:      null,
		Stderr:      null,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if pf != nil {
		pf.mu.Lock()
		if pf.f != nil {
			cmd.ExtraFiles = []*os.File{pf.f} // fd 3 in the daemon
			childEnv = append(childEnv, pidFileFdEnv+"="+strconv.Itoa(3))
		}
		pf.mu.Unlock()
	}
	cmd.Env = childEnv
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("daemonize: %w", err)
	}
	if pf != nil {
		pf.mu.Lock()
		pf.handedOver = true
		pf.mu.Unlock()
	}
	cmd.Process.Release()
	return false, nil
}
