package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Subjects: the programs the harness measures on the same load.
const (
	subjRef   = "ulogd2"   // the reference C daemon
	subjGo    = "ulogd-go" // this project's daemon (binary, or in-process driver with -profile)
	subjFloor = "floor"    // bare listener: receive and count only
	// subjBase is a second ulogd-go binary (-ulogd-go-base), e.g. the
	// main branch's, measured in the same rounds as the one under test.
	subjBase = "ulogd-go-base"
)

// subject is one running program under test.
type subject struct {
	kind    string
	cmd     *exec.Cmd
	pid     int
	dir     string
	outPath string                           // LOGEMU or JSON file (daemons)
	count   func(dir string) (uint64, error) // database sinks: rows written
	peer    func() lineCounter               // a consumer's counts (spec.lines)
	logPath string                           // daemon log
	waitErr chan error

	mu      sync.Mutex
	lines   lineCounter // daemons: counted from outPath
	off     int64
	floor   [3]uint64 // floor: new, destroy, enobufs
	floorOK chan struct{}
}

// subjectSpec says how to start a subject.
type subjectSpec struct {
	kind    string
	refBin  string // /usr/sbin/ulogd
	goBin   string // built ulogd-go binary
	baseBin string // the other ulogd-go binary (subjBase)
	self    string // this harness binary (floor, in-process driver)
	profile string // non-empty: run ulogd-go in-process with this CPU profile path
	conf    stackConf
	// floorSleep makes the floor coalesce its reads (-floor-coalesce).
	floorSleep time.Duration
	// lines, when set, counts what the subject logged instead of its
	// output file: a consumer's counts (json-queue).
	lines func() lineCounter
}

func startSubject(spec subjectSpec, ns, dir string) (*subject, error) {
	s := &subject{kind: spec.kind, dir: dir, waitErr: make(chan error, 1),
		outPath: filepath.Join(dir, spec.conf.out), logPath: filepath.Join(dir, "daemon.log"), count: spec.conf.count, peer: spec.lines}
	var argv []string
	switch spec.kind {
	case subjFloor:
		argv = []string{spec.self, "floor", "-groups", "5", "-rcvbuf", strconv.Itoa(256 << 20),
			"-coalesce", spec.floorSleep.String()}
	default:
		conf := filepath.Join(dir, "ulogd.conf")
		if err := os.WriteFile(conf, []byte(strings.ReplaceAll(spec.conf.text, "@DIR@", dir)), 0o644); err != nil {
			return nil, err
		}
		switch {
		case spec.kind == subjRef:
			argv = []string{spec.refBin, "-c", conf}
		case spec.profile != "":
			argv = []string{spec.self, "inproc", "-c", conf, "-cpuprofile", spec.profile}
		case spec.kind == subjBase:
			argv = []string{spec.baseBin, "-c", conf}
		default:
			argv = []string{spec.goBin, "-c", conf}
		}
	}
	s.cmd = exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	s.cmd.Dir = dir
	// Own process group: ulogd2 signals its whole group on SIGTERM.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	stderr, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	s.cmd.Stderr = stderr
	var stdout io.ReadCloser
	if spec.kind == subjFloor {
		s.floorOK = make(chan struct{})
		if stdout, err = s.cmd.StdoutPipe(); err != nil {
			return nil, err
		}
	} else {
		s.cmd.Stdout = stderr
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.pid = s.cmd.Process.Pid // ip netns exec execs the program: same pid
	if stdout != nil {
		go s.readFloor(stdout)
	}
	go func() { s.waitErr <- s.cmd.Wait() }()
	if err := s.waitReady(15 * time.Second); err != nil {
		s.Stop()
		return nil, fmt.Errorf("%s did not start: %w; stderr: %s", spec.kind, err, tail(filepath.Join(dir, "stderr.log")))
	}
	return s, nil
}

func (s *subject) readFloor(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "floor ready" {
			close(s.floorOK)
			continue
		}
		if n, d, e, ok := parseFloorLine(line); ok {
			s.mu.Lock()
			s.floor = [3]uint64{n, d, e}
			s.mu.Unlock()
		}
	}
}

// waitReady waits for the start-up to finish: "floor ready", or the daemon
// log line both ulogd2 and ulogd-go write when they enter the main loop.
func (s *subject) waitReady(limit time.Duration) error {
	deadline := time.After(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-s.waitErr:
			s.waitErr <- err
			return fmt.Errorf("exited: %v", err)
		case <-deadline:
			return errors.New("timeout")
		case <-s.floorOK:
			return nil
		case <-tick.C:
			if s.kind == subjFloor {
				continue
			}
			if b, _ := os.ReadFile(s.logPath); bytes.Contains(b, []byte("entering main loop")) {
				// Let the event socket be joined (it is in ulogd2
				// before the line; give the kernel a moment anyway).
				time.Sleep(100 * time.Millisecond)
				return nil
			}
		}
	}
}

// alive reports whether the process is still running.
func (s *subject) alive() bool {
	select {
	case err := <-s.waitErr:
		s.waitErr <- err
		return false
	default:
		return true
	}
}

// logged returns the records the subject has output so far: lines in the
// LOGEMU or JSON file (with the NEW/DESTROY split), or the floor's counts.
func (s *subject) logged() lineCounter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kind == subjFloor {
		return lineCounter{Lines: s.floor[0] + s.floor[1], New: s.floor[0], Destroy: s.floor[1]}
	}
	if s.peer != nil {
		return s.peer()
	}
	if s.count != nil {
		if n, err := s.count(s.dir); err == nil {
			s.lines.Lines = n
		}
		return s.lines
	}
	f, err := os.Open(s.outPath)
	if err != nil {
		return s.lines
	}
	defer f.Close()
	if _, err := f.Seek(s.off, io.SeekStart); err != nil {
		return s.lines
	}
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		s.lines.feed(buf[:n])
		s.off += int64(n)
		if err != nil || n == 0 {
			break
		}
	}
	return s.lines
}

// Stop sends SIGTERM and waits (SIGKILL after 15 s). It may be called
// more than once.
func (s *subject) Stop() {
	if s.cmd.Process == nil || !s.alive() {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-s.waitErr:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		err = <-s.waitErr
	}
	s.waitErr <- err
}

var countersRE = regexp.MustCompile(`counters.*instance=(\S+).*events=(\d+) lost=(\d+)`)

// selfReportedLost returns the "lost" its source counters show at exit
// (ulogd-go only), or -1.
func (s *subject) selfReportedLost() int64 {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return -1
	}
	m := countersRE.FindAllSubmatch(b, -1)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseInt(string(m[len(m)-1][3]), 10, 64)
	return v
}

// The event types of a flow record: LOGEMU's PRINTFLOW prefix, or JSON's
// ct.event key (NFCT_T_NEW 1, NFCT_T_DESTROY 4).
var (
	newMarks     = [][]byte{[]byte("[NEW]"), []byte(`"ct.event": 1`)}
	destroyMarks = [][]byte{[]byte("[DESTROY]"), []byte(`"ct.event": 4`)}
)

func containsAny(b []byte, marks [][]byte) bool {
	for _, m := range marks {
		if bytes.Contains(b, m) {
			return true
		}
	}
	return false
}

// lineCounter counts the complete lines of a growing file.
type lineCounter struct {
	Lines, New, Destroy uint64
	partial             []byte
}

func (c *lineCounter) feed(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.partial = append(c.partial, b...)
			return
		}
		line := b[:i]
		if len(c.partial) > 0 {
			line = append(c.partial, line...)
			c.partial = c.partial[:0]
		}
		c.Lines++
		switch {
		case containsAny(line, newMarks):
			c.New++
		case containsAny(line, destroyMarks):
			c.Destroy++
		}
		b = b[i+1:]
	}
	if len(c.partial) == 0 {
		c.partial = nil
	}
}

// tail returns the end of a file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}
