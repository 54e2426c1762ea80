// Package netnstest runs real-kernel netlink tests inside private, uniquely
// named network namespaces.
//
//	ns := netnstest.NewNS(t)           // skips unless root; deleted at cleanup
//	ns.Sysctl(t, "net.netfilter.nf_conntrack_acct", "1")
//	var c *nl.Conn
//	ns.Do(t, func() { c, err = nl.Open(unix.NETLINK_NETFILTER) })
//	ns.Run(t, "conntrack", "-I", ...)
//
// Sockets opened inside Do stay in the namespace for their whole life, and
// may be used from any goroutine afterwards.
package netnstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/testutil"
)

var (
	counter   atomic.Uint32
	sweepOnce sync.Once
)

// sweepStale deletes namespaces left behind by test processes that no
// longer exist (a test binary killed by -timeout runs no cleanup). Only
// names of the form ulogdtest-<pid>-<n> whose pid is gone are touched.
func sweepStale() {
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		var pid, n int
		if _, err := fmt.Sscanf(e.Name(), "ulogdtest-%d-%d", &pid, &n); err != nil || pid <= 0 {
			continue
		}
		if e.Name() != fmt.Sprintf("ulogdtest-%d-%d", pid, n) {
			continue
		}
		if err := unix.Kill(pid, 0); err == unix.ESRCH {
			exec.Command("ip", "netns", "del", e.Name()).Run()
		}
	}
}

// NS is a private network namespace created by NewNS.
type NS struct {
	Name string // e.g. ulogdtest-1234-1
	Path string // /var/run/netns/<Name>
}

// RequireRoot skips t unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
}

// NewNS creates the namespace ulogdtest-<pid>-<n> with its loopback up, and
// deletes it when t finishes. It skips t when not root and fails it when the
// namespace cannot be created. The first call in a process also deletes
// namespaces of that form whose process no longer exists.
func NewNS(t testing.TB) *NS {
	t.Helper()
	RequireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: the ip command (iproute2) is not installed")
	}
	sweepOnce.Do(sweepStale)
	name := fmt.Sprintf("ulogdtest-%d-%d", os.Getpid(), counter.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name, Path: "/var/run/netns/" + name}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns.Run(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Run runs cmd inside the namespace (ip netns exec) and returns its combined
// output; a non-zero exit fails t.
func (ns *NS) Run(t testing.TB, cmd ...string) string {
	t.Helper()
	out, err := ns.Exec(cmd...)
	if err != nil {
		t.Fatalf("ip netns exec %s %s: %v\n%s", ns.Name, strings.Join(cmd, " "), err, out)
	}
	return out
}

// Exec is Run without the test: it returns the output and the error.
func (ns *NS) Exec(cmd ...string) (string, error) {
	args := append([]string{"netns", "exec", ns.Name}, cmd...)
	out, err := exec.Command("ip", args...).CombinedOutput()
	return string(out), err
}

// Sysctl sets key=value inside the namespace (e.g.
// "net.netfilter.nf_conntrack_acct", "1").
func (ns *NS) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	ns.Run(t, "sysctl", "-q", "-w", key+"="+value)
}

// EnableConntrack installs an nftables table that makes conntrack track the
// namespace's own traffic (conntrack hooks are registered only when a rule
// needs them), and turns on per-flow counters and timestamps.
func (ns *NS) EnableConntrack(t testing.TB) {
	t.Helper()
	ns.Sysctl(t, "net.netfilter.nf_conntrack_acct", "1")
	ns.Sysctl(t, "net.netfilter.nf_conntrack_timestamp", "1")
	ns.Run(t, "nft", "add table inet ulogdtest; "+
		"add chain inet ulogdtest out { type filter hook output priority 0; }; "+
		"add chain inet ulogdtest in { type filter hook input priority 0; }; "+
		"add rule inet ulogdtest out ct state new,established,related accept; "+
		"add rule inet ulogdtest in ct state new,established,related accept")
}

// UDPBurst sends one datagram from 127.0.0.1 to each of the n loopback
// ports from first on, as fast as it can: with EnableConntrack, n new
// conntrack entries and n NEW events.
func (ns *NS) UDPBurst(t testing.TB, first, n int) {
	t.Helper()
	var c *net.UDPConn
	var err error
	ns.Do(t, func() { c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for p := first; p < first+n; p++ {
		c.WriteToUDP([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
	}
}

// OpenNetfilter opens a NETLINK_NETFILTER socket in the namespace, closed
// when t finishes.
func (ns *NS) OpenNetfilter(t testing.TB) *nl.Conn {
	t.Helper()
	var c *nl.Conn
	var err error
	ns.Do(t, func() { c, err = nl.Open(unix.NETLINK_NETFILTER) })
	if err != nil {
		t.Fatalf("open a netfilter socket in %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Do runs fn on an OS thread switched into the namespace, and waits for it.
// Sockets created by fn belong to the namespace. If the thread cannot be
// switched back, it is left locked so that the runtime discards it.
func (ns *NS) Do(t testing.TB, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// A Goexit in fn (t.FailNow from this goroutine) must not leave the
		// caller waiting; the thread stays locked and is discarded.
		done := false
		defer func() {
			if !done {
				errc <- fmt.Errorf("fn exited its goroutine (t.FailNow must not be called inside Do)")
			}
		}()
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done = true
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done = true
			errc <- fmt.Errorf("open %s: %w", ns.Path, err)
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done = true
			errc <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		var ferr error
		func() {
			defer func() {
				if r := recover(); r != nil {
					ferr = fmt.Errorf("panic in NS.Do: %v", r)
				}
			}()
			fn()
		}()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Stay locked: the goroutine exits and the thread dies with it.
			done = true
			errc <- fmt.Errorf("setns back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		done = true
		errc <- ferr
	}()
	if err := <-errc; err != nil {
		t.Fatalf("netns %s: %v", ns.Name, err)
	}
}

// SendFromUser sends each datagram from a netlink socket of protocol proto
// opened in the namespace (a process, not the kernel) to port id port: what
// a local process with CAP_NET_ADMIN can do to a daemon's socket.
func (ns *NS) SendFromUser(t testing.TB, proto int, port uint32, datagrams ...[]byte) {
	t.Helper()
	var err error
	ns.Do(t, func() {
		var fd int
		if fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return
		}
		defer unix.Close(fd)
		to := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: port}
		for _, d := range datagrams {
			if err = unix.Sendto(fd, d, 0, to); err != nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatalf("send to netlink port %d: %v", port, err)
	}
}
