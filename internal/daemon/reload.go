package daemon

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/metrics"
	"github.com/ulogd-go/ulogd/internal/stack"
)

// listenMetrics opens the metrics endpoint when metrics_listen= is set.
// It is opened once, at start (before -u drops privileges): a reload that
// changes the address is told to wait for the next start.
func (d *daemon) listenMetrics(g *stack.Graph) error {
	addr := g.Global.MetricsListen
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return &config.Error{Pos: g.Global.MetricsListenPos, Msg: fmt.Sprintf("metrics_listen: %v", err)}
	}
	d.col = metrics.New(g, Version, "2.0.9")
	d.msrv = metrics.Serve(ln, d.col, d.log)
	d.log.Info("metrics endpoint listening", "address", ln.Addr().String())
	return nil
}

// reload applies the configuration file again (ReloadSignal). A file
// that does not parse or build is refused with its errors, logged, and
// the running stacks go on. Otherwise the stacks are switched with
// Graph.Reload: the sources whose options did not change keep their
// sockets, so no event is lost; a new instance that cannot start refuses
// the reload. The error returned is fatal: a source that had to wait for
// a running one to stop and then could not start.
func (d *daemon) reload(ctx context.Context, g *stack.Graph) error {
	log := d.log
	log.Log(ctx, logging.LevelNotice, "reload requested, reading the configuration", "file", d.o.ConfigFile)
	SdNotify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
	defer SdNotify("READY=1")
	var fatal error
	apply := func() ([]*stack.Node, bool) {
		ng, cerr := d.build()
		if cerr != nil {
			for _, line := range strings.Split(cerr.Problems.Error(), "\n") {
				log.Error(line)
			}
			log.Error("reload refused: " + cerr.Error() + "; the running configuration stays")
			return nil, false
		}
		for _, w := range ng.Warnings {
			log.Warn(w.Error())
		}
		if ng.Global.MetricsListen != g.Global.MetricsListen {
			log.Warn("metrics_listen= changed: the endpoint moves at the next start", "listening", g.Global.MetricsListen)
			ng.Global.MetricsListen, ng.Global.MetricsListenPos = g.Global.MetricsListen, g.Global.MetricsListenPos
		}
		if ng.Global.Logfile != g.Global.Logfile {
			log.Warn("logfile= changed: the daemon log moves at the next start", "logfile", g.Global.Logfile)
			ng.Global.Logfile, ng.Global.LogfilePos = g.Global.Logfile, g.Global.LogfilePos
		}
		res, err := g.Reload(ctx, ng)
		if err != nil && !res.Switched {
			log.Error("reload refused: "+err.Error()+"; the running configuration stays", "err", err)
			return nil, false
		}
		if err != nil {
			fatal = permissionHint(err)
		}
		if d.o.LogLevel == 0 {
			lvl := 5 // notice, the default
			if g.Global.LoglevelSet {
				lvl = g.Global.Loglevel
			}
			d.dlog.SetLevel(lvl)
		}
		log.Log(ctx, logging.LevelNotice, "configuration reloaded", "stacks", len(g.Stacks),
			"kept_sources", strings.Join(res.KeptSources, ","), "kept_stacks", fmt.Sprint(res.KeptStacks),
			"stopped", len(res.Retired))
		return res.Retired, true
	}
	if d.col != nil {
		d.col.Reload(apply)
	} else {
		apply()
	}
	return fatal
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as systemd wants it
// beside RELOADING=1.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / int64(time.Microsecond)
}
