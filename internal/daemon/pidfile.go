package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/logging"
)

// pidFileFdEnv names the environment variable through which Daemonize hands
// the open (and locked) pid file to the re-executed daemon.
const pidFileFdEnv = "ULOGD_PIDFILE_FD"

// PidFile is a created, write-locked pid file. Its descriptor stays open (and
// close-on-exec) for the life of the process so that the lock is held.
//
// The lock is an open-file-description lock (F_OFD_SETLK) where the kernel
// has them (Linux 3.15+) and a classic process lock (F_SETLK) otherwise. The
// two kinds conflict with each other, so ulogd and ulogd-go see each other's
// locks. The OFD lock is preferred because it survives the hand-over to the
// daemon re-executed by Daemonize (the descriptor is inherited, the lock goes
// with it) and is not dropped when some other descriptor of the same file is
// closed in this process.
type PidFile struct {
	mu         sync.Mutex
	path       string // absolute
	f          *os.File
	handedOver bool // Daemonize passed it to the daemon; Remove only closes
}

// CreatePidFile creates path exclusively (mode 0644), write-locks it and
// writes "<pid>\n". If the file exists and its pid is unreadable, is our own,
// or nobody holds the lock, it logs the notice "removing stale pidfile for
// pid N", removes it and tries again; if another process holds the lock it
// returns the error "another ulogd already running with pid N".
//
// In a daemon started by Daemonize, CreatePidFile adopts the pid file
// inherited from the parent (same file, lock already held) instead; the
// caller then calls Rewrite to store the daemon's pid.
func CreatePidFile(path string, log *slog.Logger) (*PidFile, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open pidfile %s: %w", path, err)
	}
	if p := adoptPidFile(abs); p != nil {
		return p, nil
	}
	for attempt := 0; attempt < 3; attempt++ {
		f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			if err := lockFile(f, false); err != nil {
				// Someone else opened and locked our brand-new file; treat
				// as a race and look again.
				f.Close()
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
					continue
				}
				return nil, fmt.Errorf("cannot lock pidfile %s: %w", path, err)
			}
			p := &PidFile{path: abs, f: f}
			if err := p.Rewrite(); err != nil {
				f.Close()
				os.Remove(abs)
				return nil, err
			}
			return p, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("cannot open pidfile %s: %w", path, unwrapPath(err))
		}
		stale, pid, err := checkPidFile(abs, log)
		if err != nil {
			return nil, err
		}
		if !stale {
			return nil, fmt.Errorf("another ulogd already running with pid %d", pid)
		}
	}
	return nil, fmt.Errorf("cannot create pidfile %s: it keeps reappearing", path)
}

// checkPidFile examines an existing pid file. A stale one is announced,
// removed and reported with stale=true so that the caller creates it again;
// otherwise pid is the process holding it.
func checkPidFile(abs string, log *slog.Logger) (stale bool, pid int, err error) {
	f, err := os.OpenFile(abs, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return true, 0, nil // vanished meanwhile: just retry
		}
		return false, 0, fmt.Errorf("cannot open pidfile %s: %w", abs, unwrapPath(err))
	}
	defer f.Close()
	buf := make([]byte, 32)
	n, _ := io.ReadFull(f, buf)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if perr != nil || pid <= 0 {
		pid, perr = 0, errors.New("unreadable")
	}
	stale = perr != nil || pid == os.Getpid()
	if !stale {
		lerr := lockFile(f, false)
		switch {
		case lerr == nil:
			stale = true // nobody holds it; our lock goes away with f
		case errors.Is(lerr, unix.EAGAIN) || errors.Is(lerr, unix.EACCES):
			return false, pid, nil
		default:
			return false, pid, fmt.Errorf("cannot lock pidfile %s: %w", abs, lerr)
		}
	}
	log.Log(context.Background(), logging.LevelNotice, fmt.Sprintf("removing stale pidfile for pid %d", pid))
	if err := os.Remove(abs); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, pid, fmt.Errorf("cannot remove stale pidfile %s: %w", abs, unwrapPath(err))
	}
	return true, pid, nil
}

// lockFile write-locks the whole of f, with an OFD lock if the kernel has
// them, else a process lock. wait blocks until the lock is free.
func lockFile(f *os.File, wait bool) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	cmd, classic := unix.F_OFD_SETLK, unix.F_SETLK
	if wait {
		cmd, classic = unix.F_OFD_SETLKW, unix.F_SETLKW
	}
	for {
		err := unix.FcntlFlock(f.Fd(), cmd, &lk)
		if errors.Is(err, unix.EINVAL) && cmd != classic {
			cmd = classic // kernel without OFD locks
			continue
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err
	}
}

// adoptPidFile takes over the pid file a Daemonize parent passed down, if
// there is one and it is the file at abs. It returns nil otherwise.
func adoptPidFile(abs string) *PidFile {
	v, ok := os.LookupEnv(pidFileFdEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(pidFileFdEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return nil
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), abs)
	var pst unix.Stat_t
	if unix.Stat(abs, &pst) != nil || pst.Dev != st.Dev || pst.Ino != st.Ino {
		f.Close()
		return nil
	}
	// The inherited descriptor shares the parent's open file description,
	// so an OFD lock is already ours and this returns at once; with classic
	// locks it waits for the parent to exit.
	if lockFile(f, true) != nil {
		f.Close()
		return nil
	}
	return &PidFile{path: abs, f: f}
}

// Path returns the absolute path of the pid file.
func (p *PidFile) Path() string { return p.path }

// Rewrite stores the current process's pid ("<pid>\n", file truncated to
// that length). Call it in the daemon after Daemonize.
func (p *PidFile) Rewrite() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f == nil {
		return errors.New("pidfile: already removed")
	}
	b := strconv.AppendInt(nil, int64(os.Getpid()), 10)
	b = append(b, '\n')
	if _, err := p.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("cannot write pidfile %s: %w", p.path, unwrapPath(err))
	}
	if err := p.f.Truncate(int64(len(b))); err != nil {
		return fmt.Errorf("cannot write pidfile %s: %w", p.path, unwrapPath(err))
	}
	return nil
}

// Remove unlinks the pid file, if the path still names the file we created,
// and closes it (releasing the lock). It is safe to call more than once. In
// the parent of Daemonize it only closes: the daemon owns the file now.
func (p *PidFile) Remove() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.f == nil {
		return nil
	}
	var err error
	if !p.handedOver {
		var st, pst unix.Stat_t
		if unix.Fstat(int(p.f.Fd()), &st) == nil && unix.Stat(p.path, &pst) == nil &&
			st.Dev == pst.Dev && st.Ino == pst.Ino {
			if rerr := os.Remove(p.path); rerr != nil {
				err = fmt.Errorf("cannot remove pidfile %s: %w", p.path, unwrapPath(rerr))
			}
		}
	}
	p.f.Close()
	p.f = nil
	return err
}

// unwrapPath strips the *fs.PathError wrapper, whose text repeats the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
