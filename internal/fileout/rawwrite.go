package fileout

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Writes to a file on a local disk or in memory go through rawWrite, a
// write(2) without the runtime's entersyscall/exitsyscall. Those wake the
// runtime's sysmon thread whenever the daemon was idle, and with sync=1 a
// daemon that keeps up is idle between almost every two receive batches:
// that wake-up (a futex, a 20 µs nanosleep, a futex again) cost more than
// the write itself. A write to a page-cached local file returns in
// microseconds, so holding the P for it is harmless. Anything else (pipes,
// terminals, sockets, FUSE, network file systems), where a write may block
// for long, keeps the ordinary os.File path.

// localFS lists the statfs(2) magic numbers of local disk and memory file
// systems (32-bit values: f_type is signed on some architectures).
var localFS = map[uint32]bool{
	0xEF53:     true, // ext2/3/4
	0x58465342: true, // xfs
	0x9123683E: true, // btrfs
	0x01021994: true, // tmpfs
	0xF2F52010: true, // f2fs
	0x794C7630: true, // overlayfs
	0x2FC12FC1: true, // zfs
	0x858458F6: true, // ramfs
}

// rawFD returns the descriptor to write with rawWrite, or -1 when f must be
// written through the os.File.
func rawFD(f *os.File) int {
	// Through Control, not f.Fd(), which would switch a pipe to blocking.
	fd := -1
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(d uintptr) { fd = int(d) })
	}
	if fd < 0 {
		return -1
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return -1
	}
	var fs unix.Statfs_t
	if unix.Fstatfs(fd, &fs) != nil || !localFS[uint32(fs.Type)] {
		return -1
	}
	return fd
}

// rawWrite writes all of p to fd, like os.File.Write.
func rawWrite(fd int, p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd),
			uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done))
		switch {
		case e == unix.EINTR:
			continue
		case e != 0:
			return done, e
		case n == 0:
			return done, unix.EIO
		}
		done += int(n)
	}
	return done, nil
}
