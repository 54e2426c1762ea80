// Command ulogd is ulogd-go: netfilter's userspace logging daemon, a
// drop-in replacement for ulogd2 reading the same ulogd.conf.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/daemon"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
	_ "github.com/ulogd-go/ulogd/plugins/all"
)

const (
	defaultConfig = "/etc/ulogd.conf"
	// Version is ulogd-go's own version; the ulogd2 version it follows is
	// printed beside it for scripts that look for "ulogd Version".
	Version = "0.1.0"
)

// versionLine names the ulogd2 version followed and ulogd-go's own.
const versionLine = "ulogd Version 2.0.9 (ulogd-go " + Version + ")"

func versionText() string {
	return versionLine + "\n"
}

const usageText = `Parameters:
	-h --help	This help page
	-V --version	Print version information
	-d --daemon	Daemonize (fork into background)
	-v --verbose	Output info on standard output
	-l --loglevel	Set log level
	-c --configfile	Use alternative Configfile
	-p --pidfile	Record ulogd PID in file
	-u --uid	Change UID/GID
	-i --info	Display infos about plugin
	   --check	Check the configuration and exit (0: valid, 1: not)
	   --explain	Print every stack with the binding of every input key
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s\n", err)
		fmt.Fprint(stdout, versionText(), usageText)
		return 1
	}
	switch {
	case o.help:
		fmt.Fprint(stdout, versionText(), usageText)
		return 0
	case o.version:
		fmt.Fprint(stdout, versionText())
		return 0
	case o.info != "":
		return printInfo(stdout, stderr, o.info)
	}
	if o.loglevel != 0 {
		switch o.loglevel {
		case 1, 3, 5, 7, 8:
		default:
			fmt.Fprintf(stderr, "invalid loglevel %d: expected 1, 3, 5, 7 or 8\n", o.loglevel)
			return 1
		}
	}
	// Resolve the config path before anything changes the directory (-d
	// runs in /): ulogd2 resolved it after, which broke relative paths.
	if abs, err := filepath.Abs(o.config); err == nil {
		o.config = abs
	}
	if o.pidfile != "" {
		if abs, err := filepath.Abs(o.pidfile); err == nil {
			o.pidfile = abs
		}
	}

	if o.check || o.explain {
		return checkConfig(o, stdout, stderr)
	}

	return serve(o, args, stdout, stderr)
}

// load parses the config file and builds the stacks.
func load(o *options, log *slog.Logger) (*stack.Graph, error) {
	f, err := config.ParseFile(o.config)
	if err != nil {
		return nil, err
	}
	return stack.Build(f, plugin.Default, log)
}

func printErrors(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(w, line)
	}
}

func checkConfig(o *options, stdout, stderr io.Writer) int {
	g, err := load(o, nil)
	if err != nil {
		printErrors(stderr, err)
		fmt.Fprintf(stderr, "%s: configuration is not valid\n", o.config)
		return 1
	}
	for _, w := range g.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if o.explain {
		g.Explain(stdout)
		return 0
	}
	fmt.Fprintf(stdout, "%s: configuration OK (%d stacks, %d sources)\n", o.config, len(g.Stacks), len(g.Sources))
	return 0
}

// serve runs the daemon in the foreground until SIGTERM/SIGINT.
func serve(o *options, args []string, stdout, stderr io.Writer) int {
	dlog := daemon.NewLog()
	log := dlog.Logger()
	dlog.SetVerbose(o.verbose && !o.daemon)
	if o.loglevel != 0 {
		dlog.SetLevel(o.loglevel)
	}
	fatal := func(msg string, args ...any) int {
		log.Log(context.Background(), daemon.LevelFatal, msg, args...)
		if dest := dlog.Dest(); dest != "" && dest != "stdout" && !o.verbose {
			fmt.Fprintf(stderr, "Fatal error, check logfile \"%s\" or use '-v' flag.\n", dest)
		} else {
			fmt.Fprintln(stderr, "Fatal error.")
		}
		return 1
	}
	if o.user != "" {
		if _, err := user.Lookup(o.user); err != nil {
			fmt.Fprintf(stdout, "Unknown user %s.\n", o.user)
			return 1
		}
	}

	var pid *daemon.PidFile
	if o.pidfile != "" {
		p, err := daemon.CreatePidFile(o.pidfile, log)
		if err != nil {
			return fatal(err.Error())
		}
		pid = p
		defer pid.Remove()
	}
	if o.daemon {
		// The daemon is this program re-executed in a new session; it
		// takes over the locked pid file. The parent exits 0 at once.
		// The daemon gets the same arguments, the paths made absolute;
		// a "--" ending the options would hide the ones added here.
		argv := append([]string{os.Args[0]}, args...)
		if argv[len(argv)-1] == "--" {
			argv = argv[:len(argv)-1]
		}
		argv = append(argv, "--configfile="+o.config)
		if o.pidfile != "" {
			argv = append(argv, "--pidfile="+o.pidfile)
		}
		child, err := daemon.Daemonize(argv, os.Environ())
		if err != nil {
			return fatal("can't daemonize: " + err.Error())
		}
		if !child {
			if o.verbose {
				fmt.Fprintln(stderr, "suppressing verbose output (not compatible with daemon mode).")
			}
			return 0
		}
		if pid != nil {
			if err := pid.Rewrite(); err != nil {
				return fatal("can't write pid file: " + err.Error())
			}
		}
	}

	f, err := config.ParseFile(o.config)
	if err != nil {
		printErrors(stderr, err)
		return fatal("unable to parse config file", "file", o.config)
	}
	g, err := stack.Build(f, plugin.Default, log)
	if err != nil {
		printErrors(stderr, err)
		return fatal("not even a single working plugin stack")
	}
	if g.Global.Logfile != "" {
		if err := dlog.Open(g.Global.Logfile); err != nil {
			fmt.Fprintf(stderr, "ERROR: can't open logfile '%s': %v\n", g.Global.Logfile, err)
			return 2
		}
	}
	defer dlog.Close()
	if o.loglevel == 0 && g.Global.LoglevelSet {
		dlog.SetLevel(g.Global.Loglevel)
	}
	log.Info(versionLine + " (re-)starting")
	for _, w := range g.Warnings {
		log.Warn(w.Error())
	}
	if n, changed := daemon.LimitProcs(len(g.Sources)); changed {
		log.Debug("GOMAXPROCS set to the number of sources (set GOMAXPROCS in the environment to override)", "GOMAXPROCS", n)
	}

	sigs, stopSignals := daemon.NotifySignals()
	defer stopSignals()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := g.Start(ctx); err != nil {
		return fatal(err.Error())
	}
	if o.user != "" {
		if err := daemon.DropPrivileges(o.user); err != nil {
			g.Stop(context.Background())
			return fatal(err.Error())
		}
	}

	runErr := make(chan error, 1)
	go func() { runErr <- g.Run(ctx) }()
	log.Info("initialization finished, entering main loop")
	daemon.SdNotify("READY=1")

	exit := 0
	for done := false; !done; {
		select {
		case sig := <-sigs.C:
			if daemon.IsTerminal(sig) {
				log.Log(ctx, daemon.LevelNotice, "Terminal signal received, exiting")
				done = true
				break
			}
			log.Log(ctx, daemon.LevelNotice, "signal received, calling pluginstances", "signal", sig.String())
			if sig == syscall.SIGHUP {
				if err := dlog.Reopen(); err != nil {
					fmt.Fprintf(stderr, "ERROR: can't reopen logfile: %v\n", err)
				}
				if err := g.Reopen(); err != nil {
					log.Error("reopen failed", "err", err)
				}
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
				log.Log(ctx, daemon.LevelFatal, err.Error())
				exit = 1
			}
			runErr = nil
			done = true
		}
	}
	daemon.SdNotify("STOPPING=1")
	g.Stop(context.Background())
	cancel()
	if runErr != nil {
		if err := <-runErr; err != nil {
			log.Error("source stopped with an error", "err", err)
		}
	}
	logCounters(log, g)
	return exit
}

// logCounters writes every instance's counters to the daemon log (on
// SIGUSR1 and at exit).
func logCounters(log *slog.Logger, g *stack.Graph) {
	for _, in := range g.Instances() {
		log.Log(context.Background(), daemon.LevelNotice, "counters", counterAttrs(in)...)
	}
}

// counterAttrs are the counters of one instance: events and lost for a
// source; received, stopped and failed for the others, and dropped for a
// sink that can drop records it accepted.
func counterAttrs(in *stack.Instance) []any {
	st := in.Stats()
	attrs := []any{"instance", in.ID, "plugin", in.Desc.Name}
	if in.Desc.Kind == plugin.Source {
		return append(attrs, "events", st.Received.Load(), "lost", st.Lost.Load())
	}
	attrs = append(attrs, "received", st.Received.Load(), "stopped", st.Stopped.Load(), "failed", st.Failed.Load())
	if w, ok := in.Inst.(plugin.WriteCounter); ok {
		attrs = append(attrs, "written", w.Written())
	}
	if d, ok := in.Inst.(plugin.Dropper); ok {
		attrs = append(attrs, "dropped", d.Dropped())
	}
	return attrs
}

// printInfo prints a plugin's description (-i): its options and keys.
// It takes a plugin name or a ulogd2 .so path.
func printInfo(stdout, stderr io.Writer, what string) int {
	name := what
	if strings.HasSuffix(what, ".so") {
		n, err := plugin.NameFromSO(what)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		name = n
	}
	d, ok := plugin.Default.Lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "no plugin named %q; built in: %s\n", name, strings.Join(plugin.Default.Names(), ", "))
		return 1
	}
	var cfg any
	if d.NewConfig != nil {
		cfg = d.NewConfig()
	}
	fmt.Fprintf(stdout, "Name: %s\n", d.Name)
	if d.Summary != "" {
		fmt.Fprintf(stdout, "Description: %s\n", d.Summary)
	}
	if opts := config.Options(cfg); len(opts) > 0 {
		fmt.Fprintln(stdout, "Config options:")
		for _, op := range opts {
			kind := "String"
			if op.Integer {
				kind = "Integer"
			}
			m := ""
			if op.Mandatory {
				m = ", Mandatory"
			}
			fmt.Fprintf(stdout, "\tVar: %s (%s, Default: %s%s)\n", op.Name, kind, op.Default, m)
		}
	}
	var in, out []keys.Spec
	if d.Keys != nil {
		var err error
		if in, out, err = d.Keys(cfg); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", d.Name, err)
			return 1
		}
	}
	fmt.Fprintln(stdout, "Input keys:")
	switch {
	case d.Kind == plugin.Source:
		fmt.Fprintln(stdout, "\tInput plugin, No keys")
	case d.Wildcard:
		fmt.Fprintln(stdout, "\tNo statically defined keys (takes every upstream key)")
	}
	for _, k := range in {
		opt := ""
		if k.Flags&keys.Optional != 0 {
			opt = ", optional"
		}
		fmt.Fprintf(stdout, "\tKey: %s (%s)%s\n", k.Name, k.Type, opt)
	}
	fmt.Fprintln(stdout, "Output keys:")
	if d.Kind == plugin.Sink {
		fmt.Fprintln(stdout, "\tOutput plugin, No keys")
	}
	for _, k := range out {
		fmt.Fprintf(stdout, "\tKey: %s (%s)\n", k.Name, k.Type)
	}
	return 0
}
