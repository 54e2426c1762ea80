// Package plugin defines what a plugin is: a Descriptor registered by name,
// and the run-time interfaces its instances implement.
//
// A plugin's Descriptor is pure: NewConfig, Keys and Resources touch no
// socket and no file, so that --check, --info and --explain never touch the
// system. New builds the run-time instance; Start opens what it needs.
package plugin

import (
	"context"
	"log/slog"
	"os"

	"github.com/ulogd-go/ulogd/internal/keys"
)

// Kind says where a plugin may stand in a stack.
type Kind uint8

// Plugin kinds.
const (
	Source Kind = iota + 1 // first in a stack: reads the kernel (or a socket)
	Filter                 // in the middle: derives keys
	Sink                   // last: writes records somewhere
)

func (k Kind) String() string {
	switch k {
	case Source:
		return "source"
	case Filter:
		return "filter"
	case Sink:
		return "sink"
	}
	return "unknown"
}

// DataType is ulogd2's coarse data-type tag, used only for the non-fatal
// neighbour check (a mismatch is a warning, as in ulogd2).
type DataType uint8

// Data-type tags (ulogd2 ULOGD_DTYPE_*).
const (
	DTSource DataType = 0x01
	DTRaw    DataType = 0x02
	DTPacket DataType = 0x04
	DTFlow   DataType = 0x08
	DTSum    DataType = 0x10
	DTSink   DataType = 0x20
)

// Descriptor describes a plugin. One Descriptor serves any number of
// instances. Plugins build theirs with Define, which gives their functions
// the config as their own type.
type Descriptor struct {
	Name    string // as written in stack= lines, e.g. "NFCT"
	Kind    Kind
	Summary string // one line for --info and the plugin tables

	// Options describes each option of the config in one line, by option
	// name; Sample is the plugin's embedded sample.conf. Both are
	// documentation: the README option tables, docs/keys.md and the tests
	// that check the samples are made from them.
	Options map[string]string
	Sample  string

	// Input and Output are the data-type tags for the neighbour check.
	Input, Output DataType

	// NewConfig returns a pointer to a new config struct holding the
	// defaults. Fields carry `ulogd:"name"` or `ulogd:"name,mandatory"`
	// tags (see package config). nil means the plugin has no options.
	NewConfig func() any

	// Keys returns the input and output keys of an instance with the given
	// (decoded) config. It must be pure. nil means no keys.
	Keys func(cfg any) (in, out []keys.Spec, err error)

	// Wildcard plugins take every output key of every upstream instance as
	// input (OPRINT, GPRINT, JSON, ...): they get them in Env.Upstream.
	Wildcard bool

	// Resources names what an instance claims exclusively, such as
	// "file:/var/log/x" or "nflog-group:1". Two different instance ids
	// claiming the same resource are refused at build time. Pure; may be nil.
	Resources func(cfg any) []string

	// New builds the run-time instance. It must not open anything: that is
	// Start's job.
	New func(env *Env) (Instance, error)
}

// Env is what an instance gets at construction: its identity, its decoded
// config and the slots its keys were bound to.
type Env struct {
	ID     string // instance id from the stack line
	Plugin string // plugin name
	Config any    // the pointer NewConfig returned, decoded from the [id] section
	Pos    string // the stack= line that names the instance ("file:line"), for errors found at Start

	// In holds one slot per input key returned by Keys, in order; an
	// unbound optional input has keys.NoSlot.
	In []keys.Slot
	// Out holds one slot per output key returned by Keys, in order.
	Out []keys.Slot
	// Upstream lists every output key of every upstream instance in stack
	// order, duplicates included, each bound to its nearest provider (so a
	// duplicate name reads the same value twice, as in ulogd2). Only filled
	// for Wildcard plugins.
	Upstream []keys.Bound

	Log *slog.Logger // logger for this instance
}

// Verdict is what a filter or sink returns for one event.
type Verdict uint8

// Verdicts.
const (
	Continue Verdict = iota // go on to the next instance
	Stop                    // end the walk for this event, silently
	Fail                    // end the walk and count an error
)

// Instance is a running plugin instance.
type Instance interface {
	// Start opens sockets, files and connections.
	Start(ctx context.Context) error
	// Stop closes them. Sources must make Run return.
	Stop(ctx context.Context) error
}

// Interpreter is implemented by filters and sinks: called once per event
// with the stack's record; it reads its bound inputs and sets its outputs.
type Interpreter interface {
	Interp(r *keys.Record) Verdict
}

// SourceInstance is implemented by sources. Start only opens what the
// source needs (sockets, files) and emits nothing: sources start before
// the filters and sinks, so that a source that cannot start fails before
// any output file exists. Events flow from Run on.
type SourceInstance interface {
	Instance
	// Run reads events until ctx is cancelled or Stop is called, filling
	// records and handing them to the emitter. It returns nil on a clean
	// stop; an error return is fatal for the daemon.
	Run(ctx context.Context, e Emitter) error
}

// Emitter is how a source hands events to the stacks it feeds.
type Emitter interface {
	// NewRecord returns a record laid out for the source's output keys
	// (slot i is output key i). A source may own several (one per
	// goroutine that emits).
	NewRecord() *keys.Record
	// Emit walks every stack fed by this source with the values in r,
	// then resets r. Safe for concurrent use by the source's goroutines;
	// walks are serialised.
	Emit(r *keys.Record)
	// Flush tells the sinks that the source has no more input ready (end
	// of a receive batch): buffered output must reach the kernel now.
	Flush()
	// Lost counts events the source knows it has lost (socket overruns,
	// sequence gaps).
	Lost(n uint64)
}

// Reopener is implemented by instances that reopen files on SIGHUP. Called
// between events.
type Reopener interface {
	Reopen() error
}

// Flusher is implemented by sinks that buffer output; Flush is called at
// the end of each receive batch (a source's reads up to the moment its
// socket is empty and it is about to wait or sleep), every second, and
// before Stop.
type Flusher interface {
	Flush() error
}

// Dropper is implemented by sinks that can discard records they accepted
// (a file that cannot be written while the buffer is full, or at stop; a
// full socket queue; records lost with a connection). Dropped is how many
// so far; it is read from any goroutine and reported with the instance's
// counters (SIGUSR1, exit). A sink's Interp returns Continue for a record
// it keeps to write later, and for one it drops (counted here): Fail is
// for a record it neither took nor counted.
type Dropper interface {
	Dropped() uint64
}

// WriteCounter is implemented by sinks that count the records that
// reached their file or peer; reported as "written" beside "dropped".
type WriteCounter interface {
	Written() uint64
}

// Explainer is implemented by instances whose input binding is known only
// at run time (the SQL sinks read their table's columns from the
// database). --explain prints the lines Explain returns under the
// instance; Explain may connect, read only and bounded in time.
type Explainer interface {
	Explain(ctx context.Context) []string
}

// Signaler is implemented by instances that react to SIGUSR1, SIGUSR2 or
// SIGALRM. It is called from the daemon's signal goroutine, not between
// events: a source that emits in response must do it through its Emitter.
type Signaler interface {
	Signal(sig os.Signal)
}

// Stateless gives an instance with nothing to start or stop (most
// filters) its Start and Stop: embed it.
type Stateless struct{}

func (Stateless) Start(context.Context) error { return nil }
func (Stateless) Stop(context.Context) error  { return nil }
