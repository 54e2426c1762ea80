package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/stack"
)

// outputFile is a file the daemon will open for writing: the daemon log
// (logfile=) or a file sink's output, and where the configuration names it.
type outputFile struct {
	pos  config.Pos
	what string // "logfile", or "stack 1, emu1:LOGEMU"
	path string
	dir  bool // path is a directory the sink creates its files in (XML)
}

// outputFiles lists the files g will write: the daemon log, and every
// "file:" resource a sink claims (LOGEMU, OPRINT, GPRINT, NACCT, PCAP, JSON
// in file mode), and every "dir:" resource (XML's directory).
func outputFiles(g *stack.Graph) []outputFile {
	var out []outputFile
	seen := map[string]bool{}
	if lf := g.Global.Logfile; lf != "" && lf != "stdout" && lf != "syslog" {
		out = append(out, outputFile{g.Global.LogfilePos, "logfile", lf, false})
	}
	for _, st := range g.Stacks {
		for i, in := range st.Instances {
			if in.Desc.Resources == nil || i == 0 {
				continue
			}
			for _, r := range in.Desc.Resources(in.Config) {
				what := fmt.Sprintf("stack %d, %s:%s", st.Index, in.ID, in.Desc.Name)
				if p, ok := strings.CutPrefix(r, "file:"); ok && !seen[p] {
					seen[p] = true
					out = append(out, outputFile{st.Pos, what, p, false})
				}
				if p, ok := strings.CutPrefix(r, "dir:"); ok && !seen[r] {
					seen[r] = true
					out = append(out, outputFile{st.Pos, what, p, true})
				}
			}
		}
	}
	return out
}

// CheckOutputs reports the output files of g that certainly cannot be
// opened, without creating or opening anything: a directory that does not
// exist, is not a directory, or is not writable (for the process, and for
// user when not empty: after -u, a reopen on SIGHUP runs as that user and
// must be able to open the file, or to create it again after a rotation).
// Each problem is an error "file:line: stack N, id:PLUGIN: ...". Access
// control lists are not consulted for user; mode bits are.
func CheckOutputs(g *stack.Graph, user string) ([]error, error) {
	var cred *credentials
	if user != "" {
		c, err := lookupCredentials(user)
		if err != nil {
			return nil, err
		}
		if c.uid != 0 {
			cred = c
		}
	}
	var errs []error
	for _, f := range outputFiles(g) {
		check := checkOutput
		if f.dir {
			check = checkOutputDir
		}
		if msg := check(f.path, cred); msg != "" {
			errs = append(errs, &config.Error{Pos: f.pos, Msg: f.what + ": " + msg})
		}
	}
	return errs, nil
}

// checkOutputDir returns what prevents creating files in the directory
// dir, or "".
func checkOutputDir(dir string, cred *credentials) string {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("the directory %s does not exist", dir)
	case err != nil:
		return fmt.Sprintf("the directory %s: %v", dir, unwrapPath(err))
	case !st.IsDir():
		return fmt.Sprintf("%s is not a directory", dir)
	}
	if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
		return fmt.Sprintf("cannot write %s: %v", dir, err)
	}
	if cred == nil {
		return ""
	}
	if msg := cred.canReach(dir); msg != "" {
		return msg
	}
	if !cred.may(dir, unix.W_OK|unix.X_OK) {
		return fmt.Sprintf("user %s cannot write the directory %s (the daemon creates its files there as that user after a SIGHUP)", cred.name, dir)
	}
	return ""
}

// checkOutput returns what prevents opening path for appending, or "".
func checkOutput(path string, cred *credentials) string {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("the directory %s of %s does not exist", dir, path)
	case err != nil:
		return fmt.Sprintf("the directory of %s: %v", path, unwrapPath(err))
	case !st.IsDir():
		return fmt.Sprintf("%s (the directory of %s) is not a directory", dir, path)
	}
	target, mode := dir, uint32(unix.W_OK|unix.X_OK)
	if fi, err := os.Stat(path); err == nil {
		if fi.IsDir() {
			return fmt.Sprintf("%s is a directory", path)
		}
		target, mode = path, unix.W_OK
	}
	if err := unix.Faccessat(unix.AT_FDCWD, target, mode, unix.AT_EACCESS); err != nil {
		return fmt.Sprintf("cannot write %s: %v", target, err)
	}
	if cred == nil {
		return ""
	}
	if msg := cred.canReach(dir); msg != "" {
		return msg
	}
	if cred.may(dir, unix.W_OK|unix.X_OK) {
		return ""
	}
	if target == path && cred.may(path, unix.W_OK) {
		return ""
	}
	return fmt.Sprintf("user %s cannot write the directory %s (the daemon reopens %s as that user on SIGHUP)", cred.name, dir, path)
}

// canReach checks that the user may search every directory from / down to
// dir.
func (c *credentials) canReach(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	for p := abs; ; p = filepath.Dir(p) {
		if !c.may(p, unix.X_OK) {
			return fmt.Sprintf("user %s cannot enter the directory %s", c.name, p)
		}
		if p == "/" {
			return ""
		}
	}
}

// may reports whether the mode bits of path grant want (unix.W_OK,
// unix.X_OK...) to c. A path that cannot be examined grants nothing.
func (c *credentials) may(path string, want uint32) bool {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return false
	}
	var bits uint32
	switch {
	case st.Uid == c.uid:
		bits = st.Mode >> 6
	case slices.Contains(c.gids, st.Gid):
		bits = st.Mode >> 3
	default:
		bits = st.Mode
	}
	return bits&want == want
}
