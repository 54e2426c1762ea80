package fileout

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stallChild is the child of TestStalledWrite: with GOMAXPROCS=1 it
// writes to fd 3, a pipe nobody reads (a stand-in for a disk that does
// not answer), while a ticker, a signal handler and the GC try to run.
func stallChild(raw bool) {
	runtime.GOMAXPROCS(1)
	var ticks, gcs, sigAt atomic.Int64
	var start time.Time
	go func() {
		for range time.Tick(10 * time.Millisecond) {
			ticks.Add(1)
		}
	}()
	go func() {
		for {
			runtime.GC()
			gcs.Add(1)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		for range sig {
			sigAt.Store(int64(time.Since(start)))
		}
	}()
	time.Sleep(100 * time.Millisecond)
	p := make([]byte, 1<<20) // more than the pipe holds
	t0, g0 := ticks.Load(), gcs.Load()
	fmt.Println("writing")
	start = time.Now()
	if raw {
		rawWrite(3, p)
	} else {
		f := os.NewFile(3, "pipe")
		_, _ = f.Write(p)
	}
	stalled := time.Since(start)
	runtime.Gosched() // let a pending signal be handled
	fmt.Printf("stalled=%v ticks=%d gcs=%d signal_handled_at=%v\n", stalled.Round(10*time.Millisecond),
		ticks.Load()-t0, gcs.Load()-g0, time.Duration(sigAt.Load()).Round(10*time.Millisecond))
}

// TestStalledWrite measures what a write that blocks in the kernel does to
// the rest of the runtime when GOMAXPROCS is 1 (the daemon sets it to the
// number of sources): through the runtime's ordinary system call, the
// ticker, the GC and a signal handler go on; through a raw write(2), which
// keeps the P, nothing runs until the write returns (docs/performance.md).
func TestStalledWrite(t *testing.T) {
	if m := os.Getenv("FILEOUT_STALL_CHILD"); m != "" {
		stallChild(m == "raw")
		os.Exit(0)
	}
	measureOnly(t)
	for _, mode := range []string{"syscall", "raw"} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestStalledWrite$")
		cmd.Env = append(os.Environ(), "FILEOUT_STALL_CHILD="+mode)
		cmd.ExtraFiles = []*os.File{w} // blocking in the child
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		lines := bufio.NewScanner(out)
		if !lines.Scan() || lines.Text() != "writing" {
			t.Fatalf("%s: child said %q", mode, lines.Text())
		}
		time.Sleep(time.Second) // the stall (a measurement, not a wait for a result)
		_ = cmd.Process.Signal(syscall.SIGUSR1)
		time.Sleep(500 * time.Millisecond)
		go func() { // the disk answers again
			buf := make([]byte, 1<<16)
			for {
				if _, err := r.Read(buf); err != nil {
					return
				}
			}
		}()
		lines.Scan()
		res := lines.Text()
		_ = cmd.Wait()
		r.Close()
		t.Logf("%-7s %s", mode, res)
		if mode == "syscall" && (strings.Contains(res, "ticks=0 ") || strings.Contains(res, "handled_at=0s")) {
			t.Errorf("a write stalled through the ordinary path froze the runtime: %s", res)
		}
	}
}

// measureOnly skips a measurement unless ULOGD_MEASURE=1.
func measureOnly(t *testing.T) {
	if os.Getenv("ULOGD_MEASURE") != "1" {
		t.Skip("a measurement: run with ULOGD_MEASURE=1 -v")
	}
}

// rawWrite writes all of p to fd with a raw write(2), which keeps the P
// (what fileout did for local files before this measurement).
func rawWrite(fd int, p []byte) {
	for done := 0; done < len(p); {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return
		}
		done += int(n)
	}
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestMeasureWriteCost measures the CPU a 4 KiB write costs the process
// after an idle gap, through os.File and as a raw write(2)
// (docs/performance.md, "File writes").
func TestMeasureWriteCost(t *testing.T) {
	measureOnly(t)
	old := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(old)
	dir := t.TempDir()
	var fs syscall.Statfs_t
	syscall.Statfs(dir, &fs)
	t.Logf("fs 0x%x", fs.Type)
	line := make([]byte, 4096)
	for _, gap := range []time.Duration{0, 100 * time.Microsecond, time.Millisecond, 4 * time.Millisecond} {
		for round := 0; round < 2; round++ {
			for _, raw := range []bool{false, true} {
				f, _ := os.OpenFile(filepath.Join(dir, "x"), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
				fd := int(f.Fd())
				n := 3000
				if gap >= time.Millisecond {
					n = 600
				}
				c0 := cpuNow()
				var wall time.Duration
				for range n {
					if gap > 0 {
						time.Sleep(gap)
					}
					s := time.Now()
					if raw {
						rawWrite(fd, line)
					} else {
						f.Write(line)
					}
					wall += time.Since(s)
					if n%512 == 0 {
						f.Truncate(0)
					}
				}
				c := cpuNow() - c0
				t.Logf("gap %-6v raw=%-5v CPU/iter %6.2f µs, write wall %5.2f µs", gap, raw, float64(c.Nanoseconds())/float64(n)/1e3, float64(wall.Nanoseconds())/float64(n)/1e3)
				f.Close()
			}
		}
	}
}
