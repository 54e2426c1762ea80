// Package nfct is the NFCT source: conntrack flows from ctnetlink, as
// ulogd2's ulogd_inpflow_NFCT.so produces them.
//
// In event mode the instance subscribes to the conntrack multicast groups
// and reads them with a batched receive loop; with hash_enable=1 it keeps a
// userspace flow table so that a single record per flow comes out when the
// flow is destroyed. In polling mode it dumps the kernel table every
// pollinterval seconds and emits the flows that disappeared. SIGUSR2 dumps
// and zeroes the kernel counters. See README.md.
package nfct

import (
	_ "embed"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/logging"
	"github.com/ulogd-go/ulogd/internal/nl"
	"github.com/ulogd-go/ulogd/internal/nl/ctnl"
	"github.com/ulogd-go/ulogd/internal/nl/eventsock"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the NFCT plugin descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "NFCT",
		Kind:      plugin.Source,
		Summary:   "conntrack flows from ctnetlink (events, polling, counter dump-and-reset)",
		Input:     plugin.DTSource,
		Output:    plugin.DTFlow,
		NewConfig: defaultConfig,
		Options: map[string]string{
			"pollinterval":                  "0: event mode; N>0: polling mode, dump every N seconds",
			"hash_enable":                   "keep the userspace flow table (needed by polling mode)",
			"hash_buckets":                  "flows the table is sized for at start (it grows as needed, up to `hash_max_entries`)",
			"hash_max_entries":              "maximum number of tracked flows",
			"event_mask":                    "conntrack events to receive: 0x1 NEW, 0x2 UPDATE, 0x4 DESTROY (other bits: see below)",
			"netlink_socket_buffer_size":    "event socket receive buffer in bytes; 0 = 64 MiB",
			"netlink_socket_buffer_maxsize": "growth limit on overruns; 0 = never grow",
			"netlink_resync_timeout":        "seconds from an overrun to the table resync (hash mode)",
			"reliable":                      "≠0: `NETLINK_BROADCAST_ERROR` + `NETLINK_NO_ENOBUFS`: the kernel keeps retrying instead of dropping destroy events",
			"accept_src_filter":             "kernel (BPF) filter on the original source: comma-separated `ADDR/LEN`, IPv4 or IPv6",
			"accept_dst_filter":             "same for the original destination",
			"accept_proto_filter":           "comma-separated protocol names (`/etc/protocols`) or numbers, e.g. `tcp,udp,icmp`",
		},
		Sample: sample,
		Keys:   keysOf,
		New:    newInstance,
	})
}

// keysOf validates the config (purely: no file, no socket) and returns the
// output keys.
func keysOf(c *Config) (in, out []keys.Spec, err error) {
	errs := []error{c.validate()}
	if _, err := parseFilters(c, nil); err != nil {
		errs = append(errs, err)
	}
	return nil, OutputKeys(), errors.Join(errs...)
}

// Tunables.
const (
	batchCount    = 64 // datagrams per recvmmsg
	batchSlot     = nl.EventDatagramSize
	procConntrack = "/proc/sys/net/netfilter/"
	protocolsFile = "/etc/protocols"
)

// instance is one running NFCT instance.
type instance struct {
	cfg       Config
	log       *slog.Logger
	sl        slots
	flt       filters    // resolved by Start
	protocols string     // the protocols file accept_proto_filter's names are looked up in
	table     *flowTable // nil with hash_enable=0
	polling   bool

	done     chan struct{} // closed by Stop
	stopOnce sync.Once
	usr2     chan struct{} // SIGUSR2 requests (one pending at most)
	resync   chan struct{} // resync requests from the receive loop

	ns      netns // where Start ran: dump sockets open there
	mu      sync.Mutex
	conn    *nl.Conn              // event socket (event mode)
	em      plugin.Emitter        // set by Run; for Sync
	aux     map[*nl.Conn]struct{} // open dump sockets, closed by Stop
	ended   bool                  // Stop ran: no new socket may open
	started bool                  // Start pinned the namespace

	rx rxState // owned by the receive goroutine
}

// rxState is the receive loop and its reused state.
type rxState struct {
	loop eventsock.Loop // the socket's buffer, loss accounting, read loop
	h    receiver       // the loop's handler
	at   time.Time      // the batch time now was converted from
	now  timeval        // when the current batch was received
	ev   ctnl.Event

	// missedNew: reliable=1 with NEW and DESTROY joined: a DESTROY whose
	// NEW never came counts that NEW as lost (lostNew). seen holds the
	// ids of the flows whose NEW came, with hash_enable=0 (the flow table
	// tells otherwise).
	missedNew bool
	seen      map[uint32]struct{}

	updates    uint64
	updateNote logging.Limiter
}

func newInstance(env *plugin.Env, c *Config) (plugin.Instance, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	// The names of accept_proto_filter are resolved by Start: a
	// constructor reads no file (--check has no side effects).
	if _, err := parseFilters(c, nil); err != nil {
		return nil, err
	}
	if err := env.CheckOut("NFCT", int(numKeys)); err != nil {
		return nil, err
	}
	log := env.Logger()
	in := &instance{
		cfg:       *c,
		log:       log,
		protocols: protocolsFile,
		polling:   c.PollInterval > 0,
		done:      make(chan struct{}),
		usr2:      make(chan struct{}, 1),
		resync:    make(chan struct{}, 1),
		aux:       make(map[*nl.Conn]struct{}),
	}
	// The buffer size line is at Info here (NFLOG logs it as a NOTICE).
	in.rx.loop = eventsock.Loop{
		Buffer:       eventsock.Buffer{Name: "NFCT", Log: log, MaxSize: c.BufferMaxSize, Reliable: c.Reliable != 0},
		DecodeMsg:    "NFCT cannot decode a conntrack message (skipped)",
		TruncatedMsg: fmt.Sprintf("NFCT datagram larger than the %d-byte receive slot was truncated: events lost", batchSlot),
	}
	copy(in.sl[:], env.Out)
	if c.HashEnable != 0 {
		in.table = newFlowTable(c.HashBuckets, c.HashMaxEntries)
	}
	if c.Reliable != 0 && c.EventMask&maskNew != 0 && c.EventMask&maskDestroy != 0 {
		in.rx.missedNew = true
		if in.table == nil {
			in.rx.seen = make(map[uint32]struct{})
		}
	}
	return in, nil
}

// Start opens the event socket (event mode), fills the flow table from a
// first dump (hash event mode) and reports the kernel settings that make
// counters and timestamps zero.
func (in *instance) Start(ctx context.Context) error {
	if err := in.resolveFilters(); err != nil {
		return err
	}
	in.mu.Lock()
	in.ns = pinNetns()
	in.started = true
	in.mu.Unlock()
	if in.polling {
		in.log.Log(ctx, logging.LevelNotice, "NFCT working in polling mode")
		if !in.flt.empty() {
			in.log.Log(ctx, logging.LevelNotice, "NFCT accept_* filters are not applied in polling mode")
		}
	} else {
		in.log.Log(ctx, logging.LevelNotice, "NFCT plugin working in event mode")
		if err := in.openEvents(ctx); err != nil {
			in.closeAll()
			return err
		}
	}
	in.checkSysctls(ctx)
	if in.table != nil && !in.polling {
		switch err := in.initialDump(); {
		case errors.Is(err, ctnl.ErrDumpInterrupted), errors.Is(err, nl.ErrNoBuffers):
			// The table changed during the dump: fix it up with a resync.
			in.log.Warn("NFCT initial conntrack table dump was inconsistent, resync scheduled", "err", err)
			in.resync <- struct{}{}
		case err != nil:
			in.closeAll()
			return fmt.Errorf("NFCT: initial conntrack table dump: %w", err)
		}
		in.log.Debug("NFCT initial dump done", "flows", in.table.Len())
	}
	return nil
}

// resolveFilters parses the accept_* options, looking the protocol names
// up in the protocols file.
func (in *instance) resolveFilters() error {
	flt, err := parseFilters(&in.cfg, systemProtocols(in.protocols))
	if err != nil {
		return fmt.Errorf("NFCT: %w", err)
	}
	in.flt = flt
	return nil
}

// groupsOf maps event_mask to ctnetlink multicast groups.
func groupsOf(mask int) []uint32 {
	var g []uint32
	if mask&maskNew != 0 {
		g = append(g, ctnl.GroupNew)
	}
	if mask&maskUpdate != 0 {
		g = append(g, ctnl.GroupUpdate)
	}
	if mask&maskDestroy != 0 {
		g = append(g, ctnl.GroupDestroy)
	}
	return g
}

func (in *instance) openEvents(ctx context.Context) error {
	c, err := in.ns.open()
	if err != nil {
		return fmt.Errorf("NFCT: open ctnetlink event socket: %w", err)
	}
	fail := func(err error) error {
		c.Close()
		return err
	}
	in.rx.loop.SetBuffer(ctx, c, in.cfg.BufferSize)
	if in.cfg.Reliable != 0 {
		if err := c.SetReliable(true); err != nil {
			return fail(fmt.Errorf("NFCT: reliable=1: %w", err))
		}
		in.log.Log(ctx, logging.LevelNotice, "NFCT reliable logging has been enabled.")
	}
	if !in.flt.empty() {
		for i, p := range in.flt.protos {
			in.log.Log(ctx, logging.LevelNotice, fmt.Sprintf("adding proto to filter: %q (%d)", in.flt.protoNames[i], p))
		}
		prog, err := ctnl.Filter{Src: in.flt.src, Dst: in.flt.dst, Protos: in.flt.protos}.Program()
		if err != nil {
			return fail(fmt.Errorf("NFCT: build accept_* filter: %w", err))
		}
		if err := c.AttachFilter(prog); err != nil {
			return fail(fmt.Errorf("NFCT: attach accept_* filter: %w", err))
		}
	}
	if extra := extraMaskBits(in.cfg.EventMask); extra != "" {
		in.log.Warn(fmt.Sprintf("NFCT event_mask=0x%x: only 0x1 (NEW), 0x2 (UPDATE) and 0x4 (DESTROY) are conntrack events, and only their groups are joined; %s. DESTROY already includes the entries the garbage collector removes.",
			uint32(in.cfg.EventMask), extra))
	}
	if g := groupsOf(in.cfg.EventMask); len(g) > 0 {
		if err := c.JoinGroups(g...); err != nil {
			return fail(fmt.Errorf("NFCT: join conntrack event groups (event_mask=0x%x): %w", uint32(in.cfg.EventMask), err))
		}
	} else {
		in.log.Warn("NFCT event_mask selects no conntrack event (1 NEW, 2 UPDATE, 4 DESTROY): nothing will be logged", "event_mask", in.cfg.EventMask)
	}
	in.rx.loop.Ready(c, nl.NewBatch(batchCount, batchSlot))
	in.mu.Lock()
	in.conn = c
	in.mu.Unlock()
	return nil
}

// checkSysctls warns when the kernel does not account bytes/packets or
// timestamp flows in this network namespace.
func (in *instance) checkSysctls(ctx context.Context) {
	for _, s := range []struct{ name, what string }{
		{"nf_conntrack_acct", "orig/reply.raw.pktlen and .pktcount will be 0"},
		{"nf_conntrack_timestamp", "flow.start/flow.end will be the time ulogd saw the event, not the kernel's"},
	} {
		b, err := os.ReadFile(procConntrack + s.name)
		if err != nil {
			in.log.Debug("NFCT cannot read conntrack setting", "sysctl", "net.netfilter."+s.name, "err", err)
			continue
		}
		if strings.TrimSpace(string(b)) == "0" {
			in.log.Warn(fmt.Sprintf("NFCT: net.netfilter.%s is 0: %s; fix: sysctl -w net.netfilter.%s=1 (or install contrib's sysctl drop-in); it applies to flows created afterwards", s.name, s.what, s.name))
		}
	}
	// The kernel tracks connections in a network namespace only once a
	// rule there uses conntrack; an empty table at start is the usual sign
	// that nothing will ever be reported.
	if b, err := os.ReadFile(procConntrack + "nf_conntrack_count"); err == nil && strings.TrimSpace(string(b)) == "0" {
		in.log.Log(ctx, logging.LevelNotice, "NFCT: no connection is tracked yet. That is expected right after a firewall rule that uses conntrack was added; but the kernel tracks connections only in a network namespace where such a rule exists (nft ct, NAT, iptables -m conntrack/state): without one no event will come")
	}
}

// Stop closes every socket; Run returns promptly.
func (in *instance) Stop(ctx context.Context) error {
	in.closeAll()
	return nil
}

func (in *instance) closeAll() {
	in.stopOnce.Do(func() { close(in.done) })
	in.mu.Lock()
	defer in.mu.Unlock()
	in.ended = true
	if in.conn != nil {
		// Count drops the receive loop has not read yet: the counters
		// are reported once the sources have stopped.
		if in.em != nil {
			in.rx.loop.Sync(in.em)
		}
		in.conn.Close()
		in.conn = nil
	}
	for c := range in.aux {
		c.Close()
		delete(in.aux, c)
	}
	if in.started {
		in.started = false
		in.ns.close()
	}
}

func (in *instance) stopped() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

// Signal handles SIGUSR2: a dump-and-zero of the kernel counters, run by
// the maintenance goroutine (requests coalesce while one is pending).
func (in *instance) Signal(sig os.Signal) {
	if sig == syscall.SIGUSR1 {
		in.syncLoss()
		return
	}
	if sig != syscall.SIGUSR2 {
		return
	}
	select {
	case in.usr2 <- struct{}{}:
	default:
	}
}

// Run reads events until ctx is cancelled or Stop is called.
func (in *instance) Run(ctx context.Context, e plugin.Emitter) error {
	in.mu.Lock()
	in.em = e
	c := in.conn
	in.mu.Unlock()
	var receive func(context.Context) // nil: no event socket (polling mode)
	if c != nil {
		receive = func(context.Context) { in.receive(e) }
	}
	plugin.RunLoop(ctx, in.done, in.closeAll, receive, func(ctx context.Context) { in.maintain(ctx, e) })
	return nil
}

// openAux opens a request socket for a dump; Stop closes it.
func (in *instance) openAux() (*nl.Conn, error) {
	c, err := in.ns.open()
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ended {
		c.Close()
		return nil, nl.ErrClosed
	}
	in.aux[c] = struct{}{}
	return c, nil
}

func (in *instance) closeAux(c *nl.Conn) {
	in.mu.Lock()
	delete(in.aux, c)
	in.mu.Unlock()
	c.Close()
}

func now() timeval { return timeToTimeval(time.Now()) }

// syncLoss counts the socket's drops that the receive loop has not read
// yet (SIGUSR1: the daemon is about to report the counters).
func (in *instance) syncLoss() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.conn != nil && in.em != nil {
		in.rx.loop.Sync(in.em)
	}
}
