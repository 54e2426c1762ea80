package nfct

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/nl"
)

// netns remembers the network namespace the instance was started in, so
// that sockets opened later (dumps from the timer and SIGUSR2 goroutine)
// talk to the same conntrack table even when Start ran on a thread that
// was switched into another namespace (as the real-kernel tests do). In
// the daemon every thread is in the same namespace and opening is direct.
type netns struct {
	f   *os.File // nil: the namespace could not be pinned; open directly
	ino uint64
}

const threadNetns = "/proc/thread-self/ns/net"

// pinNetns records the calling thread's namespace. The caller should be
// on the thread whose namespace counts (Start's).
func pinNetns() netns {
	f, err := os.Open(threadNetns)
	if err != nil {
		return netns{}
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return netns{}
	}
	return netns{f: f, ino: st.Ino}
}

// close releases the namespace; later opens fail.
func (n *netns) close() {
	if n.f != nil {
		n.f.Close()
	}
}

// open opens a ctnetlink socket in the pinned namespace.
func (n *netns) open() (*nl.Conn, error) {
	var c *nl.Conn
	err := n.do(func() (err error) {
		c, err = nl.Open(unix.NETLINK_NETFILTER)
		return err
	})
	if err != nil && errors.Is(err, syscall.EPERM) {
		return nil, fmt.Errorf("open ctnetlink socket in the instance's network namespace: %w", err)
	}
	return c, err
}

// readFile reads a file in the pinned namespace: /proc/sys/net shows the
// settings of the namespace of the thread that opens it.
func (n *netns) readFile(path string) ([]byte, error) {
	var b []byte
	err := n.do(func() (err error) {
		b, err = os.ReadFile(path)
		return err
	})
	return b, err
}

// do runs fn on a thread in the pinned namespace: the calling one when it
// is there already (or nothing was pinned), else a thread switched into it
// for the call. If that thread cannot be switched back, it stays locked and
// the runtime discards it.
func (n *netns) do(fn func() error) error {
	if n.f == nil {
		return fn()
	}
	var st unix.Stat_t
	if err := unix.Stat(threadNetns, &st); err == nil && st.Ino == n.ino {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(threadNetns)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(n.f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("setns: %w", err)
			return
		}
		err = fn()
		if berr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); berr != nil {
			done <- err
			return // thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}
