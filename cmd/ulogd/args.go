package main

import (
	"fmt"
	"strconv"
	"strings"
)

// options are the command-line options, ulogd2's (getopt "c:p:dvl:h::Vu:i:")
// plus --check and --explain.
type options struct {
	config   string
	pidfile  string
	daemon   bool
	verbose  bool
	loglevel int
	help     bool
	version  bool
	user     string
	info     string
	check    bool
	explain  bool
}

// usageError is a command-line mistake: reported, usage printed, exit 1.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

type optSpec struct {
	short rune
	long  string
	arg   bool
}

var optSpecs = []optSpec{
	{'c', "configfile", true},
	{'p', "pidfile", true},
	{'d', "daemon", false},
	{'v', "verbose", false},
	{'l', "loglevel", true},
	{'h', "help", false},
	{'V', "version", false},
	{'u', "uid", true},
	{'i', "info", true},
	{0, "check", false},
	{0, "explain", false},
}

// parseArgs reads the command line the way getopt_long does: clustered
// short options (-dv), attached or separate arguments (-cFILE, -c FILE),
// --long=value and --long value.
func parseArgs(args []string) (*options, error) {
	o := &options{config: defaultConfig}
	set := func(s optSpec, val string) error {
		switch s.long {
		case "configfile":
			o.config = val
		case "pidfile":
			o.pidfile = val
		case "daemon":
			o.daemon = true
		case "verbose":
			o.verbose = true
		case "loglevel":
			// ulogd2 uses atoi: be stricter, a typo should not mean 0.
			n, err := strconv.Atoi(val)
			if err != nil {
				return &usageError{fmt.Sprintf("invalid loglevel %q: expected 1, 3, 5, 7 or 8", val)}
			}
			o.loglevel = n
		case "help":
			o.help = true
		case "version":
			o.version = true
		case "uid":
			o.user = val
		case "info":
			o.info = val
		case "check":
			o.check = true
		case "explain":
			o.explain = true
		}
		return nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i+1 < len(args) {
				return nil, &usageError{fmt.Sprintf("unexpected argument %q", args[i+1])}
			}
			return o, nil
		case strings.HasPrefix(a, "--"):
			name, val, hasVal := strings.Cut(a[2:], "=")
			var spec *optSpec
			for k := range optSpecs {
				if optSpecs[k].long == name {
					spec = &optSpecs[k]
				}
			}
			if spec == nil {
				return nil, &usageError{fmt.Sprintf("Unknown option `%s'.", a)}
			}
			if spec.arg && !hasVal {
				if i+1 >= len(args) {
					return nil, &usageError{fmt.Sprintf("option `--%s' requires an argument", name)}
				}
				i++
				val = args[i]
			} else if !spec.arg && hasVal {
				return nil, &usageError{fmt.Sprintf("option `--%s' doesn't allow an argument", name)}
			}
			if err := set(*spec, val); err != nil {
				return nil, err
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				c := rune(a[j])
				var spec *optSpec
				for k := range optSpecs {
					if optSpecs[k].short == c {
						spec = &optSpecs[k]
					}
				}
				if spec == nil {
					return nil, &usageError{fmt.Sprintf("Unknown option `-%c'.", c)}
				}
				if !spec.arg {
					if err := set(*spec, ""); err != nil {
						return nil, err
					}
					continue
				}
				val := a[j+1:]
				if val == "" {
					if i+1 >= len(args) {
						return nil, &usageError{fmt.Sprintf("option requires an argument -- '%c'", c)}
					}
					i++
					val = args[i]
				}
				if err := set(*spec, val); err != nil {
					return nil, err
				}
				break
			}
		default:
			return nil, &usageError{fmt.Sprintf("unexpected argument %q", a)}
		}
	}
	return o, nil
}
