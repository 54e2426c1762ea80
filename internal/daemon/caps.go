package daemon

import (
	"errors"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// netAdminBit is CAP_NET_ADMIN in the first 32-bit word of a capability set.
const netAdminBit = 1 << unix.CAP_NET_ADMIN

// errCgo says why capabilities cannot be kept in a cgo build: the runtime
// can run a system call on every thread only without cgo.
var errCgo = errors.New("this ulogd was built with cgo (build it with CGO_ENABLED=0)")

// hasNetAdmin reports whether the calling thread has CAP_NET_ADMIN in its
// permitted set (so that it can be kept across a uid change).
func hasNetAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return false
	}
	return data[0].Permitted&netAdminBit != 0
}

// setKeepCaps sets PR_SET_KEEPCAPS on every thread: the permitted set then
// survives the change from uid 0 to another uid.
func setKeepCaps(on bool) error {
	v := uintptr(0)
	if on {
		v = 1
	}
	return allThreads(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, v, 0)
}

// keepOnlyNetAdmin makes CAP_NET_ADMIN the only capability of every
// thread, effective and permitted; nothing is inheritable. It is called
// after the uid change, which emptied the effective set and (thanks to
// PR_SET_KEEPCAPS) kept the permitted one.
func keepOnlyNetAdmin() error {
	return setCaps(unix.CapUserData{Effective: netAdminBit, Permitted: netAdminBit})
}

// setCaps sets the first word of every thread's capability sets to c (the
// second word, capabilities 32 and up, to nothing).
func setCaps(c unix.CapUserData) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{c}
	return allThreads(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
}

// clearCaps empties every capability set of every thread.
func clearCaps() error { return setCaps(unix.CapUserData{}) }

// allThreads runs one system call on every thread of the process, as the
// runtime does for setuid: capabilities are a property of each thread.
func allThreads(trap, a1, a2, a3 uintptr) error {
	_, _, e := syscall.AllThreadsSyscall(trap, a1, a2, a3)
	switch {
	case e == syscall.ENOTSUP:
		return errCgo
	case e != 0:
		return e
	}
	return nil
}
