// Package pubsink is what the message-bus sinks (KAFKA, NATS) share: the
// JSON sink's encoding of a record, the bounded queue (internal/sinkq)
// between the walk and the writer goroutine, the options of both, and the
// bookkeeping of asynchronous acknowledgements.
//
// Interp encodes a record as a frame, the sink's header (a Kafka record
// key, a NATS subject) and the JSON object, and pushes the frame into the
// queue: the walk never waits on the peer (unless overflow=block). The
// writer hands batches of frames to the sink's Peer, which publishes them
// and waits for the peer's acknowledgements: a record counts as written
// only once acknowledged, and one not acknowledged stays queued and is
// sent again (at least once).
package pubsink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"time"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/sinkq"
	"github.com/ulogd-go/ulogd/plugins/output/json"
)

// Options are the options every message-bus sink has: the JSON
// encoding's, the queue's (the same as the JSON sink's socket modes:
// sinkq.Options, overflow=spool included) and the batch size.
type Options struct {
	Timestamp    int    `ulogd:"timestamp"`
	EventV1      int    `ulogd:"eventv1"`
	Device       string `ulogd:"device"`
	BooleanLabel int    `ulogd:"boolean_label"`
	Layout       string `ulogd:"layout"`
	BatchRecords int    `ulogd:"batch_records"`
	sinkq.Options
}

// Defaults returns the default Options: the queue holds 131072 records
// (fewer than sinkq's default) or 16 MiB.
func Defaults() Options {
	q := sinkq.DefaultOptions()
	q.QueueRecords = 131072
	return Options{
		Timestamp:    1,
		Device:       "Netfilter",
		Layout:       "ulogd2",
		BatchRecords: 1024,
		Options:      q,
	}
}

// OptionDocs returns the one-line descriptions of Options, with the
// sink's own ones added.
func OptionDocs(own ...map[string]string) map[string]string {
	m := sinkq.AddOptionDocs(map[string]string{})
	maps.Copy(m, map[string]string{
		"timestamp":     "0 leaves the time stamp out (as JSON's)",
		"eventv1":       "1: Logstash event v1, `\"@version\": 1` first and the time stamp named `@timestamp` (as JSON's)",
		"device":        "value of `dvc` (as JSON's)",
		"boolean_label": "1: `raw.label` becomes `\"action\": \"allowed\"`/`\"blocked\"` (as JSON's)",
		"queue_records": "records the queue holds in memory while the peer is slow or away (64 to 16777216)",
		"queue_bytes":   "bytes the queue holds in memory (65536 to 1073741824; allocated at start)",
		"layout":        "field names: `ulogd2` (ulogd2's keys) or `ecs` (Elastic Common Schema; as JSON's)",
		"batch_records": "records published at once before waiting for their acknowledgements (1 to 65536)",
	})
	for _, o := range own {
		maps.Copy(m, o)
	}
	return m
}

// Check validates o.
func (o *Options) Check() error {
	if _, err := sinkq.ParsePolicy(o.Overflow); err != nil {
		return config.OptionErrorf("overflow", "overflow=%q: must be \"drop\", \"block\" or \"spool\"", o.Overflow)
	}
	if err := o.Options.Check(); err != nil {
		return err
	}
	if err := json.CheckLayout(o.Layout); err != nil {
		return err
	}
	if o.QueueRecords < 64 || o.QueueRecords > 1<<24 {
		return config.OptionErrorf("queue_records", "queue_records=%d: must be 64 to 16777216", o.QueueRecords)
	}
	if o.QueueBytes < 1<<16 || o.QueueBytes > 1<<30 {
		return config.OptionErrorf("queue_bytes", "queue_bytes=%d: must be 65536 to 1073741824", o.QueueBytes)
	}
	if o.BatchRecords < 1 || o.BatchRecords > 1<<16 {
		return config.OptionErrorf("batch_records", "batch_records=%d: must be 1 to 65536", o.BatchRecords)
	}
	return nil
}

// Tunables are the writer's delays: fields of the Sink, so that tests can
// shrink them.
type Tunables struct {
	BackoffMin, BackoffMax time.Duration // between connection attempts
	Drain                  time.Duration // how long Stop waits for the queue
}

// Sink is the part of a message-bus sink between the walk and its Peer.
type Sink struct {
	Tun Tunables

	name    string
	log     *slog.Logger
	opts    Options
	enc     *json.Encoder
	scratch []byte
	q       *sinkq.Queue
	w       *sinkq.Writer
}

// New returns the Sink of the instance env (name is the plugin's name, for
// the log). o must have passed Check.
func New(name string, env *plugin.Env, o Options) (*Sink, error) {
	enc, err := json.NewEncoder(env, json.Config{
		Timestamp: o.Timestamp, EventV1: o.EventV1, Device: o.Device, BooleanLabel: o.BooleanLabel,
		Layout: o.Layout,
	})
	if err != nil {
		return nil, err
	}
	log := env.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{
		Tun:     Tunables{BackoffMin: time.Second, BackoffMax: 30 * time.Second, Drain: 5 * time.Second},
		name:    name,
		log:     log,
		opts:    o,
		enc:     enc,
		scratch: make([]byte, 0, 4096),
	}, nil
}

// Start makes the queue and the writer, which dials the first peer (its
// failure is Start's error); peer names it in the log.
func (s *Sink) Start(ctx context.Context, peer string, dial func(context.Context) (sinkq.Peer, error)) error {
	q, err := s.opts.Options.Open()
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	s.q = q
	s.w = sinkq.NewWriter(s.q, sinkq.WriterConfig{
		// With a spool, a peer down at start-up is waited for.
		StartAnyway: s.q.Spool() != nil,
		Dial:        dial,
		BackoffMin:  s.Tun.BackoffMin,
		BackoffMax:  s.Tun.BackoffMax,
		Drain:       s.Tun.Drain,
		MaxBatch:    s.opts.BatchRecords,
		Log:         s.log,
		Peer:        peer,
		Texts: sinkq.Texts{
			Full:      s.name + ": queue full, dropping records",
			SendError: s.name + ": publish failed",
			Redial:    s.name + ": can't reconnect",
			Connected: s.name + ": connected",
			DropStop:  s.name + ": records dropped (queue full, or left at stop)",
		},
	})
	if err := s.w.Start(ctx); err != nil {
		return fmt.Errorf("can't connect to %s: %w", peer, err)
	}
	return nil
}

// Push encodes r behind head (the key or subject) and queues it; a record
// that finds the queue full is counted and logged there.
func (s *Sink) Push(head []byte, r *keys.Record) plugin.Verdict {
	if s.w == nil {
		return plugin.Fail
	}
	b := binary.AppendUvarint(s.scratch[:0], uint64(len(head)))
	b = append(b, head...)
	s.scratch = s.enc.Append(b, r)
	s.w.Push(s.scratch)
	return plugin.Continue
}

// Split returns the head and the JSON object of a queued frame.
func Split(frame []byte) (head, value []byte) {
	n, k := binary.Uvarint(frame)
	frame = frame[k:]
	return frame[:n], frame[n:]
}

// Stop drains the queue for up to Tun.Drain (or ctx's end); what is left
// is counted as dropped and returned as an error.
func (s *Sink) Stop(ctx context.Context) error {
	if s.w == nil {
		return nil
	}
	if err := s.w.Stop(ctx); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	return nil
}

// Flush ends a receive batch: records without a time of their own get the
// next batch's, and the writer is woken for the batch's records.
func (s *Sink) Flush() error {
	s.enc.Flush()
	if s.w != nil {
		s.w.Flush()
	}
	return nil
}

// Reconnect closes the connection and opens a new one (SIGHUP): the TLS
// files and credentials are read again.
func (s *Sink) Reconnect() error {
	if s.w != nil {
		s.w.Reconnect()
	}
	return nil
}

// Dropped returns the records dropped: the queue was full, or they were
// left at Stop (plugin.Dropper).
func (s *Sink) Dropped() uint64 {
	if s.q == nil {
		return 0
	}
	return s.q.Dropped()
}

// Written returns the records the peer acknowledged (plugin.WriteCounter).
func (s *Sink) Written() uint64 {
	if s.q == nil {
		return 0
	}
	return s.q.Written()
}

// Connects returns how many connections were made (the first included).
func (s *Sink) Connects() uint64 {
	if s.w == nil {
		return 0
	}
	return s.w.Connects()
}

// Stats returns the queue's counters.
func (s *Sink) Stats() sinkq.Stats {
	if s.q == nil {
		return sinkq.Stats{}
	}
	return s.q.Stats()
}

// Acks collects the acknowledgements of one batch of records published
// asynchronously; the callbacks may come from any goroutine.
type Acks struct {
	mu      sync.Mutex
	ok      []bool
	err     error // the error of the first failed record
	errAt   int
	pending int
	done    chan struct{}
}

// Reset prepares for n records.
func (a *Acks) Reset(n int) {
	a.mu.Lock()
	a.ok = append(a.ok[:0], make([]bool, n)...)
	a.err, a.errAt, a.pending = nil, n, n
	a.done = make(chan struct{})
	if n == 0 {
		close(a.done)
	}
	a.mu.Unlock()
}

// Done records the outcome of record i.
func (a *Acks) Done(i int, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i >= len(a.ok) || a.pending == 0 {
		return
	}
	if err == nil {
		a.ok[i] = true
	} else if i < a.errAt {
		a.err, a.errAt = err, i
	}
	a.pending--
	if a.pending == 0 {
		close(a.done)
	}
}

// Wait waits for every outcome, or for stop. It returns how many records,
// from the first, were acknowledged, and the error of the first that was
// not (or errStopped).
func (a *Acks) Wait(stop <-chan struct{}) (int, error) {
	a.mu.Lock()
	done := a.done
	a.mu.Unlock()
	select {
	case <-done:
	case <-stop:
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for n < len(a.ok) && a.ok[n] {
		n++
	}
	switch {
	case n == len(a.ok):
		return n, nil
	case a.err != nil && a.errAt == n:
		return n, a.err
	}
	return n, ErrInterrupted
}

// ErrInterrupted is Wait's error when it was stopped before an
// acknowledgement came.
var ErrInterrupted = errors.New("interrupted while waiting for acknowledgements")

// TLSOptions are the TLS options of a sink's connection.
type TLSOptions struct {
	TLS     int    `ulogd:"tls"`
	TLSCA   string `ulogd:"tls_ca"`
	TLSCert string `ulogd:"tls_cert"`
	TLSKey  string `ulogd:"tls_key"`
}

// TLSDocs returns the descriptions of TLSOptions; peer names the server
// ("the brokers'").
func TLSDocs(peer string) map[string]string {
	return map[string]string{
		"tls":      "1: connect with TLS (implied by `tls_ca` or `tls_cert`)",
		"tls_ca":   "PEM file of the CAs that sign " + peer + " certificates (system CAs when empty)",
		"tls_cert": "PEM file of the client certificate",
		"tls_key":  "PEM file of the client certificate's key",
	}
}

// Check validates t.
func (t *TLSOptions) Check() error {
	if (t.TLSCert == "") != (t.TLSKey == "") {
		return config.OptionErrorf("tls_cert", "tls_cert and tls_key go together")
	}
	return nil
}

// Config reads the files and returns the TLS configuration, nil without
// TLS.
func (t *TLSOptions) Config() (*tls.Config, error) {
	if t.TLS == 0 && t.TLSCA == "" && t.TLSCert == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.TLSCA != "" {
		pem, err := os.ReadFile(t.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("tls_ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca: no PEM certificate in %s", t.TLSCA)
		}
	}
	if t.TLSCert != "" {
		kp, err := tls.LoadX509KeyPair(t.TLSCert, t.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("tls_cert/tls_key: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	return tc, nil
}
