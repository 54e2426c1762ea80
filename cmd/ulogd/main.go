// Command ulogd is ulogd-go: netfilter's userspace logging daemon, a
// drop-in replacement for ulogd2 reading the same ulogd.conf.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/daemon"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/stack"
	_ "github.com/ulogd-go/ulogd/plugins/all"
)

const defaultConfig = "/etc/ulogd.conf"

func versionText() string {
	return daemon.VersionLine + "\n"
}

const usageText = `Parameters:
	-h --help	This help page
	-V --version	Print version information
	-d --daemon	Daemonize (fork into background)
	-v --verbose	Copy the log to standard error
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

	err = daemon.Run(context.Background(), daemon.Options{
		ConfigFile: o.config,
		PidFile:    o.pidfile,
		Daemon:     o.daemon,
		Verbose:    o.verbose,
		LogLevel:   o.loglevel,
		User:       o.user,
		Stdout:     stdout,
		Stderr:     stderr,
		LimitProcs: true,
	})
	if err != nil {
		return 1 // reported by Run
	}
	return 0
}

// load parses the config file and builds the stacks.
func load(o *options) (*stack.Graph, error) {
	f, err := config.ParseFile(o.config)
	if err != nil {
		return nil, err
	}
	return stack.Build(f, plugin.Default, nil)
}

func printErrors(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(w, line)
	}
}

func checkConfig(o *options, stdout, stderr io.Writer) int {
	g, err := load(o)
	if err == nil && !o.explain {
		// What would certainly fail at the start: output files that
		// cannot be created or written (by the -u user too).
		var problems []error
		if problems, err = daemon.CheckOutputs(g, o.user); err == nil {
			err = errors.Join(problems...)
		}
	}
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
	d, err := stack.LookupPlugin(plugin.Default, name)
	if err != nil {
		fmt.Fprintln(stderr, err)
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
