package daemon

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"syscall"
)

// DropPrivileges switches the whole process (every thread) to user:
// supplementary groups from the group database, then the primary group,
// then the user id (real, effective and saved, as setuid does for root).
// An unknown user gives the error "Unknown user X.".
//
// CAP_NET_ADMIN, and only it, is kept across the change (as the systemd
// unit does with AmbientCapabilities), so that what talks to netfilter
// after the start (NFCT polling, the hash-mode resync, SIGUSR2) keeps
// working. When it cannot be kept (the process does not have it, or this
// is a cgo build) the drop still happens and keepErr says why; the caller
// warns. Every other capability is gone: anything reopened later, such as
// log files on SIGHUP, is opened as the new user, as in ulogd.
//
// Call it after every source, sink and file has been opened. Removing the
// pid file at exit may then fail when its directory is root-only, as in
// ulogd.
func DropPrivileges(name string) (keepErr, err error) {
	c, err := lookupCredentials(name)
	if err != nil {
		return nil, err
	}
	uid, gid := int(c.uid), int(c.gids[0])
	gids := make([]int, len(c.gids))
	for i, g := range c.gids {
		gids[i] = int(g)
	}

	keep := hasNetAdmin() && uid != 0
	if !keep && uid != 0 {
		keepErr = errors.New("the process does not have CAP_NET_ADMIN")
	}
	if keep {
		if err := setKeepCaps(true); err != nil {
			keep, keepErr = false, err
		}
	}
	if err := syscall.Setgroups(gids); err != nil {
		return keepErr, fmt.Errorf("can't set supplementary groups of user %s: %w", name, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return keepErr, fmt.Errorf("can't set GID %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return keepErr, fmt.Errorf("can't set UID %d: %w", uid, err)
	}
	if syscall.Getuid() != uid || syscall.Geteuid() != uid || syscall.Getgid() != gid || syscall.Getegid() != gid {
		return keepErr, fmt.Errorf("privilege drop to %s did not take effect", name)
	}
	if keep {
		if err := keepOnlyNetAdmin(); err != nil {
			// The permitted set still holds every capability root had:
			// it must not stay.
			if cerr := clearCaps(); cerr != nil {
				return err, fmt.Errorf("can't drop the capabilities kept for user %s: %w", name, cerr)
			}
			keepErr = err
		}
		if err := setKeepCaps(false); err != nil && keepErr == nil {
			keepErr = err
		}
	}
	return keepErr, nil
}

// credentials are a user's ids.
type credentials struct {
	name string
	uid  uint32
	gids []uint32 // the primary group first, then the supplementary ones
}

// lookupCredentials finds a user's ids in the user and group databases.
// An unknown user gives the error "Unknown user X.".
func lookupCredentials(name string) (*credentials, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, fmt.Errorf("Unknown user %s.", name)
		}
		return nil, fmt.Errorf("cannot look up user %s: %w", name, err)
	}
	c := &credentials{name: name}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: non-numeric uid %q", name, u.Uid)
	}
	c.uid = uint32(uid)
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: non-numeric gid %q", name, u.Gid)
	}
	c.gids = []uint32{uint32(gid)}
	list, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("can't get groups of user %s: %w", name, err)
	}
	for _, s := range list {
		g, err := strconv.ParseUint(s, 10, 32)
		if err == nil && uint32(g) != c.gids[0] {
			c.gids = append(c.gids, uint32(g))
		}
	}
	return c, nil
}
