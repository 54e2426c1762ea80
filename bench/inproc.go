package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/metrics"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
	_ "github.com/ulogd-go/ulogd/plugins/all"
)

// inprocMain runs the real ulogd-go stacks of a ulogd.conf in this process
// with a CPU profile: the daemon has no profiling flag, and this is the same
// code path (config.ParseFile, stack.Build with every built-in plugin,
// Start, Run) without the daemon's signal and pid-file handling, and the
// metrics endpoint when metrics_listen= is set. It writes the line the
// harness waits for to the configured logfile.
func inprocMain(conf, profile string) int {
	f, err := config.ParseFile(conf)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	g, err := stack.Build(f, plugin.Default, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if addr := g.Global.MetricsListen; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		srv := metrics.Serve(ln, metrics.New(g, "inproc", "2.0.9"), log)
		defer srv.Close()
	}
	logf := os.Stderr
	if g.Global.Logfile != "" && g.Global.Logfile != "stdout" && g.Global.Logfile != "syslog" {
		if logf, err = os.OpenFile(g.Global.Logfile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	prof, err := os.Create(profile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := g.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := pprof.StartCPUProfile(prof); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	runErr := make(chan error, 1)
	go func() { runErr <- g.Run(ctx) }()
	fmt.Fprintln(logf, "inproc: initialization finished, entering main loop")
	select {
	case <-sig:
	case err := <-runErr:
		fmt.Fprintln(os.Stderr, "run:", err)
	}
	g.Stop(context.Background())
	cancel()
	pprof.StopCPUProfile()
	prof.Close()
	for _, in := range g.Instances() {
		st := in.Stats()
		if in.Desc.Kind == plugin.Source {
			fmt.Fprintf(logf, "inproc: counters instance=%s events=%d lost=%d\n", in.ID, st.Received.Load(), st.Lost.Load())
		}
	}
	return 0
}
