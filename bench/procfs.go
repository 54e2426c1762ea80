package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ: the unit of utime/stime in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTicks returns utime+stime (all threads) from the text of /proc/PID/stat.
// The command name (field 2) may contain spaces and parentheses, so fields
// are counted after the last ')'.
func cpuTicks(stat []byte) (user, sys uint64, err error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("stat: no ')' in %q", stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ')': field 3 (state) is f[0], so field N is f[N-3].
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("stat: %d fields after comm", len(f))
	}
	if user, err = strconv.ParseUint(f[14-3], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("stat utime: %w", err)
	}
	if sys, err = strconv.ParseUint(f[15-3], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("stat stime: %w", err)
	}
	return user, sys, nil
}

// statusKB returns a "Name:   N kB" value of /proc/PID/status, in KiB.
func statusKB(status []byte, name string) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			break
		}
		return strconv.ParseUint(f[0], 10, 64)
	}
	return 0, fmt.Errorf("status: no %s", name)
}

// nlSock is one row of /proc/PID/net/netlink.
type nlSock struct {
	Proto  int    // Eth column: netlink family (12 = NETLINK_NETFILTER)
	PortID uint32 // Pid column
	Groups uint32 // first 32 multicast groups (hex)
	Rmem   uint64 // bytes queued
	Drops  uint64 // datagrams the kernel could not queue
	Inode  uint64
}

// parseNetlink parses /proc/net/netlink: columns are located by the header
// line, so kernels that add columns still parse.
func parseNetlink(text []byte) ([]nlSock, error) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	if !sc.Scan() {
		return nil, fmt.Errorf("netlink: empty")
	}
	col := map[string]int{}
	for i, h := range strings.Fields(sc.Text()) {
		col[h] = i
	}
	for _, h := range []string{"Eth", "Pid", "Groups", "Rmem", "Drops", "Inode"} {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("netlink: no %s column", h)
		}
	}
	var out []nlSock
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < len(col) {
			continue
		}
		var s nlSock
		var err error
		num := func(name string, base int) uint64 {
			if err != nil {
				return 0
			}
			var v uint64
			v, err = strconv.ParseUint(f[col[name]], base, 64)
			return v
		}
		s.Proto = int(num("Eth", 10))
		s.PortID = uint32(num("Pid", 10))
		s.Groups = uint32(num("Groups", 16))
		s.Rmem = num("Rmem", 10)
		s.Drops = num("Drops", 10)
		s.Inode = num("Inode", 10)
		if err != nil {
			return nil, fmt.Errorf("netlink: %q: %w", sc.Text(), err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// socketInodes returns the inodes of the sockets process pid holds open.
func socketInodes(pid int) (map[uint64]bool, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[uint64]bool{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if ino, ok := socketInode(l); ok {
			out[ino] = true
		}
	}
	return out, nil
}

// socketInode parses a "socket:[12345]" fd link.
func socketInode(link string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// procSample is what the harness reads about a daemon at one moment.
type procSample struct {
	CPUTicks uint64 // utime+stime
	SysTicks uint64 // stime
	HWMKB    uint64 // VmHWM: peak resident set
	RSSKB    uint64 // VmRSS: resident set now
	Drops    uint64 // sum over the process's NETLINK_NETFILTER sockets
	Sockets  int    // how many NETLINK_NETFILTER sockets it holds
	Groups   uint32 // OR of their multicast groups
}

// sampleProc reads /proc for pid.
func sampleProc(pid int) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	user, sys, err := cpuTicks(stat)
	if err != nil {
		return s, err
	}
	s.CPUTicks, s.SysTicks = user+sys, sys
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	if s.HWMKB, err = statusKB(status, "VmHWM"); err != nil {
		return s, err
	}
	if s.RSSKB, err = statusKB(status, "VmRSS"); err != nil {
		return s, err
	}
	inodes, err := socketInodes(pid)
	if err != nil {
		return s, err
	}
	nlText, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/netlink", pid))
	if err != nil {
		return s, err
	}
	socks, err := parseNetlink(nlText)
	if err != nil {
		return s, err
	}
	for _, k := range socks {
		if k.Proto == 12 && inodes[k.Inode] {
			s.Sockets++
			s.Drops += k.Drops
			s.Groups |= k.Groups
		}
	}
	return s, nil
}

// readUintFile reads a file holding one decimal number (a sysctl).
func readUintFile(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}
