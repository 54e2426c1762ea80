package daemon

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"syscall"
)

// DropPrivileges switches the whole process (every thread, Go 1.16+) to
// user: supplementary groups from the group database, then the primary
// group, then the user id (real, effective and saved, as setuid does for
// root). An unknown user gives the error "Unknown user X.".
//
// Call it after every source, sink and file has been opened (spec §5.2 step
// 7). No capability is kept: netlink sockets already open keep working, but
// anything reopened later, such as log files on SIGHUP, is opened as the new
// user, exactly as in ulogd. Removing the pid file at exit may then fail when
// its directory is root-only, as in ulogd.
func DropPrivileges(name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return fmt.Errorf("Unknown user %s.", name)
		}
		return fmt.Errorf("cannot look up user %s: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("user %s: non-numeric uid %q", name, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("user %s: non-numeric gid %q", name, u.Gid)
	}
	gids := []int{gid}
	if list, err := u.GroupIds(); err == nil {
		for _, s := range list {
			g, err := strconv.Atoi(s)
			if err == nil && g != gid {
				gids = append(gids, g)
			}
		}
	} else {
		return fmt.Errorf("can't get groups of user %s: %w", name, err)
	}
	if err := syscall.Setgroups(gids); err != nil {
		return fmt.Errorf("can't set supplementary groups of user %s: %w", name, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("can't set GID %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("can't set UID %d: %w", uid, err)
	}
	if syscall.Getuid() != uid || syscall.Geteuid() != uid || syscall.Getgid() != gid || syscall.Getegid() != gid {
		return fmt.Errorf("privilege drop to %s did not take effect", name)
	}
	return nil
}
