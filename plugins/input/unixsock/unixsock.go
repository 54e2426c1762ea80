// Package unixsock is the UNIXSOCK source: packets logged by NuFW (nuauth's
// ulogd2 output) through a unix stream socket, as ulogd2's
// ulogd_inppkt_UNIXSOCK.so receives them.
//
// The instance listens on socket_path; every client connection is served
// by its own goroutine with its own record, which cuts the byte stream into
// frames (see frame.go for the wire format) and emits one event per frame.
// Malformed frames are skipped and counted; a stream that loses its frame
// marker is closed; nothing a client sends can stop the daemon. See
// README.md.
package unixsock

import (
	_ "embed"

	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the UNIXSOCK plugin descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "UNIXSOCK",
		Kind:      plugin.Source,
		Summary:   "packets logged by NuFW/nuauth through a unix stream socket",
		Input:     plugin.DTSource,
		Output:    plugin.DTRaw,
		NewConfig: defaultConfig,
		Options: map[string]string{
			"socket_path": "where the listening socket is created; the directory must exist",
			"bufsize":     "largest frame accepted, in bytes (marker included); 0 = 65539, the format's maximum; at least 12",
			"perms":       "mode of the socket file, in octal (`perms=0660`); the default, 384, is 0600 (`--info` shows modes in decimal)",
			"owner":       "user name to give the socket to (empty: unchanged)",
			"group":       "group name to give the socket to (empty: unchanged)",
		},
		Sample: sample,
		Keys:   keysOf,
		Resources: func(c *Config) []string {
			if c.SocketPath == "" {
				return nil
			}
			return []string{c.resource()}
		},
		New: newInstance,
	})
}

func keysOf(c *Config) (in, out []keys.Spec, err error) {
	return nil, OutputKeys(), c.validate()
}

// Tunables.
const (
	maxClients = 64          // concurrent client connections
	probeWait  = time.Second // connect timeout when probing an existing socket
)

// instance is one running UNIXSOCK instance.
type instance struct {
	cfg   Config
	log   *slog.Logger
	sl    slots
	limit int // largest frame accepted

	done     chan struct{} // closed by Stop
	stopOnce sync.Once

	mu       sync.Mutex
	ln       *net.UnixListener
	sock     os.FileInfo // the socket file created by Start, unlinked by Stop
	clients  map[*client]struct{}
	clientWG sync.WaitGroup // one per serving goroutine
	seq      uint64         // client numbers, for the log

	stats      stats
	notes      notes
	reportOnce sync.Once // counters logged once, at the first Stop
}

// stats are the instance's counters.
type stats struct {
	frames    atomic.Uint64 // frames emitted
	rejected  atomic.Uint64 // frames skipped: bad sizes, option overruns
	outOfSync atomic.Uint64 // clients closed on a bad marker
	unknown   atomic.Uint64 // unknown options ignored
	malformed atomic.Uint64 // known options too short for their type
	accepted  atomic.Uint64 // client connections served
	evicted   atomic.Uint64 // idle clients closed to make room for a new one
	readErrs  atomic.Uint64 // client connections ended by a read error
}

// notes rate-limits the repeated messages.
type notes struct {
	mu                                         sync.Mutex
	reject, sync, option, evict, ae, truncated logging.Limiter
}

func (n *notes) allow(l *logging.Limiter) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return l.Allow(time.Now())
}

func newInstance(env *plugin.Env, c *Config) (plugin.Instance, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	if err := env.CheckOut("UNIXSOCK", int(numKeys)); err != nil {
		return nil, err
	}
	log := env.Logger()
	in := &instance{
		cfg:     *c,
		log:     log,
		limit:   c.frameLimit(),
		done:    make(chan struct{}),
		clients: make(map[*client]struct{}),
	}
	copy(in.sl[:], env.Out)
	return in, nil
}

// Start creates the listening socket: it checks the directory, removes a
// stale socket left by a crashed daemon, refuses a socket somebody listens
// on, then creates the socket with its mode and owner already set (see
// listen).
func (in *instance) Start(ctx context.Context) error {
	path := in.cfg.SocketPath
	uid, gid, err := lookupOwner(in.cfg.Owner, in.cfg.Group)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("socket_path=%q: directory %s: %w (create it before starting ulogd)", path, dir, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("socket_path=%q: %s is not a directory", path, dir)
	}
	if err := in.clearStale(ctx, path); err != nil {
		return err
	}
	ln, err := in.listen(uid, gid)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		ln.Close()
		os.Remove(path)
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(fmt.Errorf("%q vanished after bind: %w", path, err))
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped() {
		return fail(errors.New("stopped during start"))
	}
	in.ln, in.sock = ln, fi
	in.log.Info("UNIXSOCK listening", "socket_path", path, "perms", fmt.Sprintf("%#o", in.cfg.Perms), "max_frame", in.limit)
	return nil
}

// listen creates the listening socket at socket_path with its mode and
// owner set before anybody can connect (a socket bound under a lax umask
// and chmodded afterwards lets other local users in meanwhile, and what
// they send is logged; docs/compat.md U9). It binds in a private directory
// (mode 0700) next to socket_path, sets the mode and owner there, and
// renames the socket into place. When that directory's path would be too
// long for a socket address, it binds in place under the umask 0177 (the
// socket is the daemon user's alone until the chmod) and restores the
// umask at once.
func (in *instance) listen(uid, gid int) (*net.UnixListener, error) {
	path := in.cfg.SocketPath
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".ulogd-")
	if err != nil {
		return nil, fmt.Errorf("could not create a private directory next to %q: %w", path, err)
	}
	defer os.Remove(tmp)
	bindAt := filepath.Join(tmp, "s")
	if len(bindAt) > maxPathLen {
		bindAt = path
	}
	var ln *net.UnixListener
	if bindAt == path {
		old := unix.Umask(0o177)
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		unix.Umask(old)
	} else {
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: bindAt, Net: "unix"})
	}
	if err != nil {
		return nil, fmt.Errorf("could not listen on unix socket %q: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // Stop unlinks, and only our own socket
	fail := func(err error) (*net.UnixListener, error) {
		ln.Close()
		os.Remove(bindAt)
		return nil, err
	}
	if err := os.Chmod(bindAt, fs.FileMode(in.cfg.Perms)&fs.ModePerm|modeBits(in.cfg.Perms)); err != nil {
		return fail(fmt.Errorf("could not set permissions %#o on %q: %w", in.cfg.Perms, path, err))
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Chown(bindAt, uid, gid); err != nil {
			return fail(fmt.Errorf("could not set owner/group of %q (owner=%q group=%q): %w", path, in.cfg.Owner, in.cfg.Group, err))
		}
	}
	if bindAt != path {
		if err := renameNoReplace(bindAt, path); err != nil {
			return fail(fmt.Errorf("could not move the socket into place at %q: %w", path, err))
		}
	}
	return ln, nil
}

// renameNoReplace renames from to to, failing if to exists (a file that
// appeared there since the stale-socket check is not replaced); on a file
// system without RENAME_NOREPLACE it renames plainly.
func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		return os.Rename(from, to)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// modeBits maps the setuid/setgid/sticky bits of a numeric mode to Go's.
func modeBits(perms int) fs.FileMode {
	var m fs.FileMode
	if perms&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if perms&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if perms&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// lookupOwner resolves the owner and group names; -1 leaves one unchanged.
func lookupOwner(owner, group string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner != "" {
		u, err := user.Lookup(owner)
		if err != nil {
			return 0, 0, fmt.Errorf("invalid owner specified for unix socket (owner=%q): %w", owner, err)
		}
		if uid, err = strconv.Atoi(u.Uid); err != nil {
			return 0, 0, fmt.Errorf("owner=%q: uid %q is not a number", owner, u.Uid)
		}
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return 0, 0, fmt.Errorf("invalid group specified for unix socket (group=%q): %w", group, err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return 0, 0, fmt.Errorf("group=%q: gid %q is not a number", group, g.Gid)
		}
	}
	return uid, gid, nil
}

// clearStale deals with an existing file at path: a socket nobody listens
// on (left by a crash) is removed; a live socket or any other file is an
// error.
func (in *instance) clearStale(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket_path=%q: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("socket_path=%q exists and is not a socket (%s); refusing to replace it", path, fi.Mode().Type())
	}
	d := net.Dialer{Timeout: probeWait}
	c, err := d.DialContext(ctx, "unix", path)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("socket_path=%q: another process is listening on this socket (another ulogd?)", path)
	case errors.Is(err, syscall.EAGAIN):
		return fmt.Errorf("socket_path=%q: another process is listening on this socket (another ulogd?); its connection queue is full", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("could not remove stale socket %q: %w", path, err)
		}
		in.log.Log(ctx, logging.LevelNotice, "UNIXSOCK removed stale socket (nobody was listening on it)", "socket_path", path)
		return nil
	}
	return fmt.Errorf("socket_path=%q exists and could not be probed: %w", path, err)
}

// Stop closes the listener and every client, unlinks the socket and waits
// for the client goroutines (bounded by ctx).
func (in *instance) Stop(ctx context.Context) error {
	in.closeAll()
	done := make(chan struct{})
	go func() {
		in.clientWG.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		in.log.Warn("UNIXSOCK: clients still busy at stop")
	}
	in.reportOnce.Do(in.logCounters)
	return nil
}

// Signal logs the counters on SIGUSR1, as the daemon logs every
// instance's.
func (in *instance) Signal(sig os.Signal) {
	if sig == syscall.SIGUSR1 {
		in.logCounters()
	}
}

func (in *instance) logCounters() {
	st := &in.stats
	in.log.Info("UNIXSOCK counters", "frames", st.frames.Load(), "rejected", st.rejected.Load(),
		"out_of_sync", st.outOfSync.Load(), "unknown_options", st.unknown.Load(),
		"malformed_options", st.malformed.Load(), "clients", st.accepted.Load(),
		"evicted", st.evicted.Load(), "read_errors", st.readErrs.Load())
}

func (in *instance) closeAll() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped() {
		return
	}
	in.stopOnce.Do(func() { close(in.done) })
	if in.ln != nil {
		in.ln.Close()
		in.unlinkLocked()
	}
	for c := range in.clients {
		c.conn.Close()
	}
}

// unlinkLocked removes the socket file if it is still the one Start
// created (a successor may have replaced it).
func (in *instance) unlinkLocked() {
	path := in.cfg.SocketPath
	fi, err := os.Lstat(path)
	if err != nil {
		return
	}
	if in.sock != nil && !os.SameFile(fi, in.sock) {
		in.log.Log(context.Background(), logging.LevelNotice, "UNIXSOCK: socket file was replaced by another process, not removing it", "socket_path", path)
		return
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		in.log.Warn("UNIXSOCK: could not remove socket", "socket_path", path, "err", err)
	}
}

func (in *instance) stopped() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

// Run accepts clients until ctx is cancelled or Stop is called.
func (in *instance) Run(ctx context.Context, e plugin.Emitter) error {
	in.mu.Lock()
	ln := in.ln
	in.mu.Unlock()
	plugin.RunLoop(ctx, in.done, in.closeAll, func(context.Context) {
		if ln != nil {
			in.accept(ln, e)
		}
	})
	in.clientWG.Wait()
	return nil
}

// accept runs the accept loop. Errors other than the listener being
// closed (EMFILE, ENFILE, ...) are transient: logged, then retried after a
// pause that grows up to a second.
func (in *instance) accept(ln *net.UnixListener, e plugin.Emitter) {
	var pause time.Duration
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if in.stopped() || errors.Is(err, net.ErrClosed) {
				return
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			if in.notes.allow(&in.notes.ae) {
				in.log.Warn("UNIXSOCK: error while accepting a new client; retrying", "err", err)
			}
			t := time.NewTimer(pause)
			select {
			case <-in.done:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		pause = 0
		if cl := in.addClient(c); cl != nil {
			go in.serve(cl, e)
		}
	}
}

// client is one connection being served.
type client struct {
	conn    *net.UnixConn
	id      uint64       // for the log
	active  atomic.Int64 // when it last sent something (or connected), unix nanoseconds
	evicted atomic.Bool  // closed to make room for a new client
}

// addClient registers a new connection, or closes it when the instance is
// stopping. When maxClients are already served, the one idle the longest
// is closed to make room: idle connections cannot lock the real client
// out (docs/compat.md U2).
func (in *instance) addClient(c *net.UnixConn) *client {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped() {
		c.Close()
		return nil
	}
	now := time.Now()
	if len(in.clients) >= maxClients {
		in.evictLocked(now)
	}
	in.seq++
	cl := &client{conn: c, id: in.seq}
	cl.active.Store(now.UnixNano())
	in.clients[cl] = struct{}{}
	in.clientWG.Add(1)
	in.stats.accepted.Add(1)
	in.log.Debug("UNIXSOCK: client connected", "client", cl.id, "clients", len(in.clients))
	return cl
}

// evictLocked closes the client idle the longest (the oldest of equals).
func (in *instance) evictLocked(now time.Time) {
	var old *client
	for cl := range in.clients {
		if old == nil || cl.active.Load() < old.active.Load() ||
			cl.active.Load() == old.active.Load() && cl.id < old.id {
			old = cl
		}
	}
	old.evicted.Store(true)
	delete(in.clients, old)
	n := in.stats.evicted.Add(1)
	old.conn.Close()
	if in.notes.allow(&in.notes.evict) {
		in.log.Log(context.Background(), logging.LevelNotice, "UNIXSOCK: too many clients, closing the one idle the longest",
			"max_clients", maxClients, "client", old.id, "idle", now.Sub(time.Unix(0, old.active.Load())).Round(time.Millisecond), "evicted", n)
	}
}

func (in *instance) removeClient(cl *client) {
	in.mu.Lock()
	delete(in.clients, cl)
	in.mu.Unlock()
	cl.conn.Close()
}

// serve reads one client until it disconnects, sends a bad marker, fails a
// read, is evicted or the instance stops.
func (in *instance) serve(cl *client, e plugin.Emitter) {
	defer in.clientWG.Done()
	defer in.removeClient(cl)
	rec := e.NewRecord()
	s := newStream(in.limit)
	for {
		n, err := cl.conn.Read(s.space())
		if n > 0 {
			now := time.Now()
			cl.active.Store(now.UnixNano())
			s.wrote(n)
			if !in.process(s, rec, e, now, cl.id) {
				return
			}
		}
		if err == nil {
			continue
		}
		switch {
		case errors.Is(err, io.EOF):
			in.log.Debug("UNIXSOCK: client disconnected", "client", cl.id)
		case in.stopped():
		case cl.evicted.Load():
			in.log.Debug("UNIXSOCK: idle client closed to make room", "client", cl.id)
		default:
			in.stats.readErrs.Add(1)
			in.log.Warn("UNIXSOCK: read error, closing this client", "client", cl.id, "err", err)
		}
		if s.end > s.start {
			n := in.stats.rejected.Add(1)
			if !in.stopped() && in.notes.allow(&in.notes.truncated) {
				in.log.Log(context.Background(), logging.LevelNotice, "UNIXSOCK: client went away in the middle of a frame",
					"client", cl.id, "bytes", s.end-s.start, "rejected", n)
			}
		}
		return
	}
}

// process emits every complete frame in s. It returns false when the
// stream is out of sync and the client must be closed.
func (in *instance) process(s *stream, r *keys.Record, e plugin.Emitter, now time.Time, client uint64) bool {
	emitted := false
	defer func() {
		if emitted {
			e.Flush()
		}
	}()
	for {
		f, p, got := s.next()
		switch p {
		case needMore:
			return true
		case badMarker:
			n := in.stats.outOfSync.Add(1)
			if in.notes.allow(&in.notes.sync) {
				in.log.Error(fmt.Sprintf("UNIXSOCK: invalid packet marker received (read %08x, expected %08x), closing the client connection", got, uint32(marker)),
					"client", client, "closed", n)
			}
			return false
		case frameOK:
			var st optStats
			if p := decode(r, &in.sl, f, now, &st); p != frameOK {
				in.reject(p, len(f), client)
				continue
			}
			if st.unknown+st.malformed > 0 {
				in.noteOptions(&st, client)
			}
			in.stats.frames.Add(1)
			e.Emit(r)
			emitted = true
		default:
			in.reject(p, int(got), client)
		}
	}
}

func (in *instance) reject(p problem, size int, client uint64) {
	n := in.stats.rejected.Add(1)
	if in.notes.allow(&in.notes.reject) {
		in.log.Warn("UNIXSOCK: frame skipped: "+p.String(), "client", client, "frame_len", size,
			"max_frame", in.limit, "rejected", n)
	}
}

func (in *instance) noteOptions(st *optStats, client uint64) {
	u := in.stats.unknown.Add(uint64(st.unknown))
	m := in.stats.malformed.Add(uint64(st.malformed))
	if !in.notes.allow(&in.notes.option) {
		return
	}
	if st.unknown > 0 {
		in.log.Log(context.Background(), logging.LevelNotice, fmt.Sprintf("UNIXSOCK: unknown option %d ignored", st.lastUnknown),
			"client", client, "unknown_options", u)
	} else {
		in.log.Log(context.Background(), logging.LevelNotice, fmt.Sprintf("UNIXSOCK: option %d ignored: value too short", st.lastMalformed),
			"client", client, "malformed_options", m)
	}
}
