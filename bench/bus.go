package main

// The message-bus scenarios: the canonical flows (NFCT, IP2STR) to KAFKA
// (a kfake cluster) or NATS (a real nats-server with JetStream), both in
// the server namespace on its loopback. A helper process of this binary
// ("buspeer") runs the peer and a consumer that writes every record it
// reads back as one line of out.json, which the harness counts as it
// counts the JSON sink's file: "logged" is what reached the peer.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// busScenarios are the sink of each message-bus scenario.
var busScenarios = map[string]string{"kafka": "KAFKA", "nats": "NATS"}

// busPorts are the peers' loopback ports in the server namespace.
const (
	kafkaPort = 19092
	natsPort  = 14222
)

// rulesetBusFlows is rulesetFlows counting only UDP flows: the generator's,
// not the TCP connections to the peer on the server's loopback.
var rulesetBusFlows = strings.Replace(rulesetFlows, "ct state new counter", "meta l4proto udp ct state new counter", 1)

// busConf is the canonical flow stack (event_mask=5, hash_enable=0) with
// the message-bus sink, logging UDP flows only (the generator's, not the
// connections to the peer), its queue large enough for a burst of max-rate
// flows (1 M records, 512 MiB).
func busConf(sc string) stackConf {
	sink := busScenarios[sc]
	var opts string
	switch sink {
	case "KAFKA":
		opts = fmt.Sprintf("brokers=\"127.0.0.1:%d\"\ntopic=\"ulogd\"\nkey=\"5tuple\"\n", kafkaPort)
	case "NATS":
		opts = fmt.Sprintf("url=\"nats://127.0.0.1:%d\"\nsubject=\"ulogd.ct.{ct.event}\"\njetstream=1\n", natsPort)
	}
	text := fmt.Sprintf("[global]\nlogfile=\"@DIR@/daemon.log\"\nloglevel=3\nstack=ct1:NFCT,ip2str1:IP2STR,bus1:%s\n\n"+
		"[ct1]\nevent_mask=5\nhash_enable=0\naccept_proto_filter=udp\n\n[bus1]\n%squeue_records=1048576\nqueue_bytes=536870912\n", sink, opts)
	return stackConf{text: text, out: "out.json"}
}

func runBusScenario(o *options, sc string, rate int) []result {
	l, _ := flowLoad(o, sc, rate)
	l.peer = sc
	l.ruleset = rulesetBusFlows
	return runRounds(o, l, []string{subjGo}, busConf(sc))
}

// startBusPeer starts the buspeer helper in namespace ns and waits until
// its peer is ready; stop ends it.
func startBusPeer(self, ns, kind, dir string) (stop func(), err error) {
	cmd := exec.Command("ip", "netns", "exec", ns, self, "buspeer", "-kind", kind, "-dir", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	logf, err := os.Create(filepath.Join(dir, "peer.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "peer ready" {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if ok {
			return stop, nil
		}
	case <-time.After(30 * time.Second):
	}
	stop()
	return nil, fmt.Errorf("%s peer did not start: %s", kind, tail(filepath.Join(dir, "peer.log")))
}

// busPeerMain runs the peer of kind (kafka, nats) on the loopback and
// writes every record it consumes back as a line of dir/out.json, until
// SIGTERM.
func busPeerMain(kind, dir string) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, err := os.Create(filepath.Join(dir, "out.json"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer out.Close()
	w := bufio.NewWriterSize(out, 1<<20)
	defer w.Flush()
	line := func(v []byte) {
		w.Write(v)
		w.WriteByte('\n')
	}
	var run func() error
	switch kind {
	case "kafka":
		run, err = kafkaPeer(ctx, line)
	case "nats":
		run, err = natsPeer(ctx, dir, line)
	default:
		err = fmt.Errorf("unknown peer %q", kind)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
		cancel()
	}()
	fmt.Println("peer ready")
	// The consumer writes from this goroutine only; flush every 50 ms so
	// that the harness sees the count grow.
	errc := make(chan error, 1)
	go func() { errc <- run() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			if err != nil && !errors.Is(err, context.Canceled) {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			return 0
		case <-tick.C:
			flushMu.Lock()
			w.Flush()
			flushMu.Unlock()
		}
	}
}

// kafkaPeer starts a kfake cluster and returns its consumer loop.
func kafkaPeer(ctx context.Context, line func([]byte)) (func() error, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(kafkaPort), kfake.SeedTopics(3, "ulogd"))
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("ulogd"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	return func() error {
		defer c.Close()
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			flushMu.Lock()
			fs.EachRecord(func(r *kgo.Record) { line(r.Value) })
			flushMu.Unlock()
		}
		return nil
	}, nil
}

// natsPeer starts nats-server with JetStream, a stream for ulogd.>, and
// returns its consumer loop.
func natsPeer(ctx context.Context, dir string, line func([]byte)) (func() error, error) {
	srv := exec.Command("nats-server", "-a", "127.0.0.1", "-p", fmt.Sprint(natsPort), "-js", "-sd", filepath.Join(dir, "js"))
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return nil, err
	}
	var nc *nats.Conn
	var err error
	for range 100 {
		if nc, err = nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", natsPort)); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		srv.Process.Kill()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "ULOGD", Subjects: []string{"ulogd.>"}, Storage: jetstream.FileStorage})
	}
	var cons jetstream.Consumer
	if err == nil {
		cons, err = js.OrderedConsumer(ctx, "ULOGD", jetstream.OrderedConsumerConfig{})
	}
	if err != nil {
		srv.Process.Kill()
		return nil, err
	}
	return func() error {
		defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
		defer nc.Close()
		for ctx.Err() == nil {
			b, err := cons.FetchNoWait(4096)
			if err != nil {
				return err
			}
			n := 0
			flushMu.Lock()
			for m := range b.Messages() {
				line(m.Data())
				n++
			}
			flushMu.Unlock()
			if n == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
		return nil
	}, nil
}

// checkBusTools says what a message-bus scenario needs that is missing.
func checkBusTools(sc string) error {
	if busScenarios[sc] == "NATS" {
		if _, err := exec.LookPath("nats-server"); err != nil {
			return errors.New("nats-server is not installed")
		}
	}
	return nil
}

// flushMu serialises the consumer's writes and the periodic flush.
var flushMu sync.Mutex
