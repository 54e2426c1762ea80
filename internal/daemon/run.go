package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/metrics"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
)

// Options are what the command line tells Run.
type Options struct {
	// ConfigFile is the configuration file (-c). Make it absolute: with
	// Daemon the daemon runs in "/".
	ConfigFile string
	// PidFile, when set, is created and locked for the daemon's life (-p).
	PidFile string
	// Daemon runs the daemon in the background (-d): the program is
	// started again in a new session and Run returns nil in the caller.
	Daemon bool
	// Verbose copies the daemon log to Stderr when it goes to a file or
	// to stdout (-v; not with Daemon).
	Verbose bool
	// LogLevel is the threshold as a ulogd level number (-l); 0 means
	// loglevel= from the configuration, or notice.
	LogLevel int
	// User is the user to switch to once everything is open (-u).
	User string

	// Program is argv[0] of the daemon started by Daemon; "" means
	// os.Args[0].
	Program string
	// Registry holds the plugins; nil means plugin.Default.
	Registry *plugin.Registry
	// Stdout and Stderr are the standard streams; nil means the process's.
	Stdout, Stderr io.Writer
	// Signals, when not nil, replaces the process's signals (SIGHUP,
	// SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGINT, ReloadSignal); tests
	// send on it.
	Signals <-chan os.Signal
	// Ready, when not nil, is called once the daemon runs (when systemd is
	// told READY=1).
	Ready func()
	// LimitProcs caps GOMAXPROCS at the number of sources (see LimitProcs):
	// a process-wide setting, for the daemon's own process.
	LimitProcs bool
}

// daemon is one Run.
type daemon struct {
	o    Options
	dlog *Log
	log  *slog.Logger
	// col and msrv are the metrics endpoint's, when metrics_listen= is
	// set.
	col  *metrics.Collector
	msrv *metrics.Server
}

// Run is the daemon: it loads the configuration and builds the stacks,
// opens the daemon log, starts the stacks (and the metrics endpoint when
// metrics_listen= is set), drops privileges, reports readiness, then
// handles signals (SIGHUP reopens the files, ReloadSignal applies the
// configuration file again and reopens the files, SIGUSR1 logs the
// counters, SIGTERM and SIGINT stop) until a terminal
// signal, a source's failure or the cancellation of ctx, and stops
// everything, logging the counters.
//
// Every error Run returns has already been reported, in the daemon log and
// on Stderr as ulogd does; the caller only turns it into exit status 1.
// With Daemon, Run returns nil at once in the calling process; the daemon
// is that program started again, in which Run (called with the same
// options) goes on.
func Run(ctx context.Context, o Options) error {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Registry == nil {
		o.Registry = plugin.Default
	}
	if o.Program == "" && len(os.Args) > 0 {
		o.Program = os.Args[0]
	}
	d := &daemon{o: o, dlog: NewLog()}
	d.dlog.stderr, d.dlog.stdout = o.Stderr, o.Stdout
	d.log = d.dlog.Logger()
	d.dlog.SetVerbose(o.Verbose && !o.Daemon)
	if o.LogLevel != 0 {
		d.dlog.SetLevel(o.LogLevel)
	}
	return d.run(ctx)
}

// fatal logs err at FATAL and tells the operator where to look, as ulogd
// does; it returns err.
func (d *daemon) fatal(err error, args ...any) error {
	d.log.Log(context.Background(), logging.LevelFatal, err.Error(), args...)
	if dest := d.dlog.Dest(); dest != "" && dest != "stdout" && !d.o.Verbose {
		fmt.Fprintf(d.o.Stderr, "Fatal error, check logfile \"%s\" or use '-v' flag.\n", dest)
	} else {
		fmt.Fprintln(d.o.Stderr, "Fatal error.")
	}
	return err
}

// printErrors writes a joined error to Stderr, one line each.
func (d *daemon) printErrors(err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(d.o.Stderr, line)
	}
}

// run is Run once the options have their defaults.
func (d *daemon) run(ctx context.Context) error {
	o := d.o
	if o.User != "" {
		if _, err := user.Lookup(o.User); err != nil {
			fmt.Fprintf(o.Stdout, "Unknown user %s.\n", o.User)
			return fmt.Errorf("unknown user %s", o.User)
		}
	}

	var pid *PidFile
	if o.PidFile != "" {
		p, err := CreatePidFile(o.PidFile, d.log)
		if err != nil {
			return d.fatal(err)
		}
		pid = p
		defer pid.Remove()
	}
	if o.Daemon {
		child, err := Daemonize(d.childArgs(), os.Environ(), pid)
		if err != nil {
			return d.fatal(fmt.Errorf("can't daemonize: %w", err))
		}
		if !child {
			if o.Verbose {
				fmt.Fprintln(o.Stderr, "suppressing verbose output (not compatible with daemon mode).")
			}
			return nil
		}
		if pid != nil {
			if err := pid.Rewrite(); err != nil {
				return d.fatal(fmt.Errorf("can't write pid file: %w", err))
			}
		}
	}

	g, err := d.load()
	if err != nil {
		return err
	}
	defer d.dlog.Close()
	d.log.Info(VersionLine + " (re-)starting")
	for _, w := range g.Warnings {
		d.log.Warn(w.Error())
	}
	if o.LimitProcs {
		if n, changed := LimitProcs(len(g.Sources)); changed {
			d.log.Debug("GOMAXPROCS set to the number of sources (set GOMAXPROCS in the environment to override)", "GOMAXPROCS", n)
		}
	}

	sigs := o.Signals
	if sigs == nil {
		s, stop := NotifySignals()
		defer stop()
		sigs = s.C
	}

	if err := g.Start(ctx); err != nil {
		return d.fatal(permissionHint(err))
	}
	if err := d.listenMetrics(g); err != nil {
		g.Stop(context.Background())
		return d.fatal(err)
	}
	if o.User != "" {
		// Checked while still root: the process's own access is not
		// the question, the user's is.
		problems, _ := CheckOutputs(g, o.User)
		keepErr, err := DropPrivileges(o.User)
		if err != nil {
			g.Stop(context.Background())
			return d.fatal(err)
		}
		d.warnAfterDrop(g, keepErr, problems)
	}
	return d.serve(ctx, g, sigs)
}

// errParse and errBuild are the two ways a configuration file fails.
var (
	errParse = errors.New("unable to parse config file")
	errBuild = errors.New("not even a single working plugin stack")
)

// configError is a configuration file that failed: Kind is errParse or
// errBuild, Problems what was found (joined, one per line).
type configError struct {
	Kind     error
	Problems error
}

func (e *configError) Error() string { return e.Kind.Error() }

// build parses the configuration file and builds the stacks.
func (d *daemon) build() (*stack.Graph, *configError) {
	f, err := config.ParseFile(d.o.ConfigFile)
	if err != nil {
		return nil, &configError{errParse, err}
	}
	g, err := stack.Build(f, d.o.Registry, d.log)
	if err != nil {
		return nil, &configError{errBuild, err}
	}
	return g, nil
}

// load parses the configuration, builds the stacks and opens the daemon
// log that the configuration names.
func (d *daemon) load() (*stack.Graph, error) {
	g, cerr := d.build()
	if cerr != nil {
		d.printErrors(cerr.Problems)
		if cerr.Kind == errParse {
			return nil, d.fatal(cerr.Kind, "file", d.o.ConfigFile)
		}
		return nil, d.fatal(cerr.Kind)
	}
	if g.Global.Logfile != "" {
		if err := d.dlog.Open(g.Global.Logfile); err != nil {
			// One line, like every other configuration error: the
			// log that would carry a FATAL line is what failed.
			err = &config.Error{Pos: g.Global.LogfilePos, Msg: err.Error()}
			fmt.Fprintln(d.o.Stderr, err)
			return nil, err
		}
	}
	if d.o.LogLevel == 0 && g.Global.LoglevelSet {
		d.dlog.SetLevel(g.Global.Loglevel)
	}
	return g, nil
}

// permissionHint adds what a start failing with EPERM needs: netlink
// sockets (binding NFLOG groups, joining conntrack events, forcing buffer
// sizes) want CAP_NET_ADMIN.
func permissionHint(err error) error {
	if errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("%w (ulogd needs to run as root or with the CAP_NET_ADMIN capability)", err)
	}
	return err
}

// warnAfterDrop warns about what cannot work after the switch to the -u
// user: netfilter requests without CAP_NET_ADMIN (keepErr says why it
// could not be kept), reopening output files the user cannot write.
func (d *daemon) warnAfterDrop(g *stack.Graph, keepErr error, problems []error) {
	if keepErr != nil {
		// NFCT talks to netfilter after the start: polling, the
		// hash-mode resync, SIGUSR2's dump.
		for _, src := range g.Sources {
			if src.Desc.Name == "NFCT" {
				d.log.Warn(fmt.Sprintf("%s (%s): CAP_NET_ADMIN could not be kept after switching to user %s (%v): polling, the hash-mode resync and SIGUSR2 will fail",
					src.ID, src.Desc.Name, d.o.User, keepErr))
			}
		}
	}
	for _, p := range problems {
		d.log.Warn(p.Error())
	}
}

// serve runs the stacks and handles signals until the end.
func (d *daemon) serve(ctx context.Context, g *stack.Graph, sigs <-chan os.Signal) error {
	log := d.log
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- g.Run(runCtx) }()
	log.Info("initialization finished, entering main loop")
	SdNotify("READY=1")
	if d.o.Ready != nil {
		d.o.Ready()
	}

	var failed error
	for done := false; !done; {
		select {
		case <-ctx.Done():
			log.Log(ctx, logging.LevelNotice, "stop requested, exiting")
			done = true
		case sig := <-sigs:
			if IsTerminal(sig) {
				log.Log(ctx, logging.LevelNotice, "Terminal signal received, exiting")
				done = true
				break
			}
			log.Log(ctx, logging.LevelNotice, "signal received, calling pluginstances", "signal", sig.String())
			if sig == syscall.SIGHUP {
				d.reopen(g)
				continue
			}
			if sig == ReloadSignal {
				// A reload does what SIGHUP does too: systemctl
				// reload used to send SIGHUP.
				if err := d.reload(ctx, g); err != nil {
					log.Log(ctx, logging.LevelFatal, err.Error())
					failed = err
					done = true
					continue
				}
				d.reopen(g)
				continue
			}
			g.Signal(sig)
			if sig == syscall.SIGUSR1 {
				// After the sources saw the signal: they bring their
				// loss counts up to date on SIGUSR1.
				logCounters(log, g)
			}
		case err := <-runErr:
			if err != nil {
				log.Log(ctx, logging.LevelFatal, err.Error())
				failed = err
			}
			runErr = nil
			done = true
		}
	}
	SdNotify("STOPPING=1")
	// The endpoint goes first: a scrape reads the instances, which Stop
	// tears down.
	if d.msrv != nil {
		d.msrv.Close()
	}
	g.Stop(context.Background())
	cancel()
	if runErr != nil {
		if err := <-runErr; err != nil {
			log.Error("source stopped with an error", "err", err)
		}
	}
	logCounters(log, g)
	return failed
}

// reopen reopens the daemon log and every output file (SIGHUP).
func (d *daemon) reopen(g *stack.Graph) {
	if err := d.dlog.Reopen(); err != nil {
		fmt.Fprintf(d.o.Stderr, "ERROR: %v\n", err)
	}
	if err := g.Reopen(); err != nil {
		d.log.Error("reopen failed", "err", err)
	}
}

// Version is ulogd-go's own version; the ulogd2 version it follows is
// printed beside it for scripts that look for "ulogd Version".
const Version = "0.1.0"

// VersionLine names the ulogd2 version followed and ulogd-go's own (-V,
// and the daemon log at start).
const VersionLine = "ulogd Version 2.0.9 (ulogd-go " + Version + ")"

// childArgs is the command line of the daemon started by -d: the options
// as given, with the paths made absolute, each once.
func (d *daemon) childArgs() []string {
	o := d.o
	args := []string{o.Program, "-d", "--configfile=" + o.ConfigFile}
	if o.PidFile != "" {
		args = append(args, "--pidfile="+o.PidFile)
	}
	if o.Verbose {
		args = append(args, "-v")
	}
	if o.LogLevel != 0 {
		args = append(args, "--loglevel="+strconv.Itoa(o.LogLevel))
	}
	if o.User != "" {
		args = append(args, "--uid="+o.User)
	}
	return args
}
