package stack_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/netnstest"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
)

// TestFailedStartLeavesNoOutputFile starts a real NFLOG → LOGEMU stack
// whose source cannot start (its log group is bound by another stack in
// the same network namespace): the start fails and LOGEMU's file is not
// created, because sources start before sinks.
func TestFailedStartLeavesNoOutputFile(t *testing.T) {
	ns := netnstest.NewNS(t)
	dir := t.TempDir()
	ctx := context.Background()
	build := func(file string) *stack.Graph {
		t.Helper()
		text := "[global]\nstack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU\n" +
			"[log1]\ngroup=7\n[emu1]\nfile=\"" + file + "\"\n"
		f, err := config.Parse("t.conf", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		g, err := stack.Build(f, plugin.Default, nil)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}

	first, firstLog := build(filepath.Join(dir, "first.log")), filepath.Join(dir, "first.log")
	var err error
	ns.Do(t, func() { err = first.Start(ctx) })
	if err != nil {
		t.Fatalf("first start: %v", err)
	}
	defer first.Stop(ctx)
	if _, err := os.Stat(firstLog); err != nil {
		t.Fatalf("the started LOGEMU did not create its file: %v", err)
	}

	secondLog := filepath.Join(dir, "second.log")
	second := build(secondLog)
	ns.Do(t, func() { err = second.Start(ctx) })
	if err == nil {
		second.Stop(ctx)
		t.Fatal("second start succeeded, but NFLOG group 7 is already bound")
	}
	if !strings.Contains(err.Error(), "error starting `log1' (NFLOG): unable to bind to log group 7") {
		t.Errorf("second start: %v", err)
	}
	if _, err := os.Stat(secondLog); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the failed start left %s behind (stat: %v)", secondLog, err)
	}
}
