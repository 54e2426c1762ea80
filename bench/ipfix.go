package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ulogd-go/ulogd/internal/ipfix"
	"github.com/ulogd-go/ulogd/internal/ipfix/ipfixtest"
)

// The ipfix scenario: NFCT in hash mode (DESTROY events) → IPFIX over UDP
// to a collector on the server namespace's loopback, at each of -rates.
// The collector runs in this process: it decodes every message and writes
// one "[DESTROY]" line per flow into the run's out.log, which the harness
// counts as for the text sinks. A flow is one record for ulogd2 (both
// directions summed) and one or two for ulogd-go (one per direction: the
// reply direction's record, biflowDirection 2, is not counted).

const ipfixPort = 4739

// rulesetIPFIX is rulesetFlows, and no conntrack on loopback: the export
// datagrams are no flows of the load.
const rulesetIPFIX = rulesetFlows + `table inet ubench_lo {
	chain out { type filter hook output priority raw; oif lo notrack; }
	chain pre { type filter hook prerouting priority raw; iif lo notrack; }
}
`

// ipfixConf is the same config for both daemons (ulogd2 needs the plugin=
// lines, ulogd-go accepts them).
func ipfixConf(plugDir string) stackConf {
	return stackConf{out: "out.log", text: fmt.Sprintf(`[global]
logfile="@DIR@/daemon.log"
loglevel=3
plugin="%[1]s/ulogd_inpflow_NFCT.so"
plugin="%[1]s/ulogd_output_IPFIX.so"
stack=ct1:NFCT,ipfix1:IPFIX

[ct1]

[ipfix1]
oid=1
host="127.0.0.1"
port=%[2]d
proto="udp"
`, plugDir, ipfixPort)}
}

func runIPFIXScenario(o *options, rate int) []result {
	offered, flows := "max", o.flows
	if rate > 0 {
		offered = fmt.Sprintf("%d/s", rate)
	}
	if flows == 0 {
		flows = 250000
		if rate > 0 {
			flows = int(float64(rate) * o.seconds)
		}
	}
	lagRate := rate
	if lagRate == 0 {
		lagRate = 50000
	}
	l := load{scenario: "ipfix", offered: offered, ruleset: rulesetIPFIX, hash: true, ipfix: true, end: "none",
		gen: genConfig{Flows: flows, Rate: rate, MaxTime: time.Duration(o.seconds*float64(time.Second)) + 2*time.Second,
			Delete: true, DeleteLag: max(1, int(o.deleteLag*float64(lagRate)))}}
	return runRounds(o, l, o.subjects, ipfixConf(o.plugDir))
}

// collector is the in-process IPFIX collector of a run.
type collector struct {
	pc   net.PacketConn
	done chan struct{}
	errs int
	mu   sync.Mutex
}

// startCollector listens on 127.0.0.1:ipfixPort in namespace ns and
// writes one line per flow record to path.
func startCollector(ns, path string) (*collector, error) {
	var pc net.PacketConn
	err := inNamespace(ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", ipfixPort))
		return err
	})
	if err != nil {
		return nil, err
	}
	if sc, err := pc.(*net.UDPConn).SyscallConn(); err == nil {
		sc.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 256<<20)
		})
	}
	f, err := os.Create(path)
	if err != nil {
		pc.Close()
		return nil, err
	}
	c := &collector{pc: pc, done: make(chan struct{})}
	go c.run(f)
	return c, nil
}

func (c *collector) run(f *os.File) {
	defer close(c.done)
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<16)
	defer w.Flush()
	sessions := map[string]*ipfixtest.Decoder{}
	buf := make([]byte, 1<<16)
	for {
		c.pc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, from, err := c.pc.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.Flush() // the harness polls the file
			continue
		}
		if err != nil {
			return
		}
		d := sessions[from.String()]
		if d == nil {
			d = ipfixtest.NewDecoder(0)
			sessions[from.String()] = d
		}
		m, err := d.Decode(buf[:n])
		if err != nil {
			c.mu.Lock()
			c.errs++
			c.mu.Unlock()
			continue
		}
		for i := range m.Records {
			if m.Records[i].Uint(0, ipfix.IEBiflowDirection) != ipfix.DirectionReverseInitiator {
				w.WriteString("[DESTROY] ipfix record\n")
			}
		}
	}
}

// stop closes the socket and returns how many messages could not be
// decoded.
func (c *collector) stop() int {
	c.pc.Close()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errs
}
