// Package nats is the NATS sink: every event as the JSON sink's object,
// published to a subject made from a template of the event's keys, on core
// NATS or JetStream (with publish acknowledgements), with nats.go. A
// ulogd-go plugin that ulogd2 does not have (docs/compat.md, B2).
//
// Records go through the bounded queue of internal/pubsink: Interp never
// waits on the server (unless overflow=block), and a record counts as
// written once the server confirmed it: a JetStream publish ack, or, on
// core NATS, the server's answer to a PING sent after the batch.
package nats

import (
	_ "embed"

	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/pubsink"
	"github.com/ulogd-go/ulogd/internal/sinkq"
)

// Config holds NATS's options (see the README).
type Config struct {
	URL       string `ulogd:"url"`
	Subject   string `ulogd:"subject"`
	JetStream int    `ulogd:"jetstream"`
	Timeout   int    `ulogd:"timeout"`
	Name      string `ulogd:"name"`
	User      string `ulogd:"user"`
	Password  string `ulogd:"password"`
	Token     string `ulogd:"token"`
	Creds     string `ulogd:"creds"`
	NKey      string `ulogd:"nkey_seed"`
	pubsink.TLSOptions
	pubsink.Options
}

func newConfig() *Config {
	return &Config{
		Options: pubsink.Defaults(),
		URL:     "nats://127.0.0.1:4222",
		Subject: "ulogd.events",
		Timeout: 10,
		Name:    "ulogd",
	}
}

// part is a piece of a subject template: literal text, or a key.
type part struct {
	text string
	key  string // the key's name when not empty
	slot keys.Slot
}

// parseSubject splits a template: text with {key} references.
func parseSubject(s string) ([]part, error) {
	if s == "" {
		return nil, errors.New("subject is empty")
	}
	var parts []part
	for s != "" {
		i := strings.IndexAny(s, "{}")
		if i < 0 {
			parts = append(parts, part{text: s})
			break
		}
		if s[i] == '}' {
			return nil, errors.New("subject: '}' without '{'")
		}
		if i > 0 {
			parts = append(parts, part{text: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, errors.New("subject: '{' without '}'")
		}
		name := s[i+1 : i+j]
		if name == "" || strings.ContainsAny(name, "{ ") {
			return nil, fmt.Errorf("subject: bad key reference {%s}", name)
		}
		parts = append(parts, part{key: name})
		s = s[i+j+1:]
	}
	for _, p := range parts {
		if strings.ContainsAny(p.text, " \t\r\n*>") {
			return nil, fmt.Errorf("subject: %q has a space or a wildcard (* >)", p.text)
		}
	}
	whole := ""
	for _, p := range parts {
		if p.key != "" {
			whole += "x"
		} else {
			whole += p.text
		}
	}
	if strings.HasPrefix(whole, ".") || strings.HasSuffix(whole, ".") || strings.Contains(whole, "..") {
		return nil, errors.New("subject: empty token (a leading, trailing or double '.')")
	}
	return parts, nil
}

// check validates the options (at --check, through Keys).
func check(c *Config) error {
	var errs []error
	if strings.TrimSpace(c.URL) == "" {
		errs = append(errs, config.OptionErrorf("url", "url is empty: give nats://host:port[,nats://host:port...]"))
	}
	_, errSubject := parseSubject(c.Subject)
	errs = append(errs, config.AtOption("subject", errSubject), c.TLSOptions.Check(), c.Options.Check())
	if c.Timeout < 1 {
		errs = append(errs, config.OptionErrorf("timeout", "timeout=%d: must be at least 1 (seconds)", c.Timeout))
	}
	n := 0
	for _, v := range []string{c.User, c.Token, c.Creds, c.NKey} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		errs = append(errs, errors.New("give one of user (with password), token, creds and nkey_seed"))
	}
	return errors.Join(errs...)
}

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the NATS plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "NATS",
		Kind:      plugin.Sink,
		Summary:   "publish every event as the JSON sink's object to NATS or JetStream (ulogd-go only)",
		Input:     plugin.DTPacket | plugin.DTFlow | plugin.DTSum,
		Output:    plugin.DTSink,
		Wildcard:  true,
		NewConfig: newConfig,
		Options: pubsink.OptionDocs(pubsink.TLSDocs("the server's"), map[string]string{
			"url":       "server URLs, `nats://host:port[,nats://host:port...]` (`tls://` for TLS)",
			"subject":   "subject template: text and `{key}` references, replaced by the event's value of the key (see the README)",
			"jetstream": "1: publish to JetStream and wait for its acks (a stream must cover the subjects)",
			"timeout":   "seconds to wait for the server's confirmation of a batch before reconnecting and sending it again",
			"name":      "the connection name the server sees",
			"user":      "user name (with `password`)",
			"password":  "password",
			"token":     "authentication token",
			"creds":     "credentials file (JWT and NKey seed)",
			"nkey_seed": "NKey seed file",
		}),
		Sample: sample,
		Keys: func(c *Config) ([]keys.Spec, []keys.Spec, error) {
			return nil, nil, check(c)
		},
		Resources: func(c *Config) []string { return c.Options.Resources() },
		New:       newSink,
	})
}

// sink is one NATS instance.
type sink struct {
	*pubsink.Sink
	cfg     *Config
	parts   []part
	head    []byte
	seq     uint64
	idStart string // unique to this start: the JetStream message ids' prefix
	peer    string
}

func newSink(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
	parts, err := parseSubject(cfg.Subject)
	if err != nil {
		return nil, err
	}
	for i := range parts {
		p := &parts[i]
		if p.key == "" {
			continue
		}
		p.slot = keys.NoSlot
		for _, u := range env.Upstream {
			if u.Name == p.key {
				p.slot = u.Slot
				break
			}
		}
		if p.slot == keys.NoSlot {
			return nil, fmt.Errorf("subject: no plugin before it in the stack gives the key %q", p.key)
		}
	}
	ps, err := pubsink.New("NATS", env, cfg.Options)
	if err != nil {
		return nil, err
	}
	return &sink{Sink: ps, cfg: cfg, parts: parts, head: make([]byte, 0, 128),
		peer: cfg.URL}, nil
}

func (s *sink) Start(ctx context.Context) error {
	s.idStart = strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
	return s.Sink.Start(ctx, s.peer, s.dial)
}

// Interp makes the subject (and, for JetStream, the message id) and
// queues the record.
func (s *sink) Interp(r *keys.Record) plugin.Verdict {
	s.head = s.appendSubject(s.head[:0], r)
	if s.cfg.JetStream != 0 {
		s.seq++
		s.head = append(s.head, 0)
		s.head = append(s.head, s.idStart...)
		s.head = strconv.AppendUint(s.head, s.seq, 10)
	}
	return s.Push(s.head, r)
}

// appendSubject appends the template with each {key} replaced by the
// record's value of the key as text (as GPRINT prints it); '.', spaces,
// '*' and '>' in a value become '_', and a key without a value is '_'.
func (s *sink) appendSubject(b []byte, r *keys.Record) []byte {
	for _, p := range s.parts {
		if p.key == "" {
			b = append(b, p.text...)
			continue
		}
		n := len(b)
		b, _ = r.AppendValue(b, p.slot)
		if len(b) == n {
			b = append(b, '_')
		}
		for i := n; i < len(b); i++ {
			if c := b[i]; c <= ' ' || c == '.' || c == '*' || c == '>' || c == 0x7f {
				b[i] = '_'
			}
		}
	}
	return b
}

// Reopen reconnects on SIGHUP: the TLS and credentials files are read
// again.
func (s *sink) Reopen() error { return s.Reconnect() }

// dial connects (without nats.go's own reconnection: the queue's writer
// reconnects, and knows what the server confirmed).
func (s *sink) dial(context.Context) (sinkq.Peer, error) {
	c := s.cfg
	p := &peer{gone: make(chan struct{}), intr: make(chan struct{}), timeout: time.Duration(c.Timeout) * time.Second,
		subjects: map[string]string{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.NoReconnect(),
		nats.Timeout(5 * time.Second),
		nats.ClosedHandler(func(*nats.Conn) { p.goneOnce.Do(func() { close(p.gone) }) }),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { p.goneOnce.Do(func() { close(p.gone) }) }),
	}
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.Creds != "":
		opts = append(opts, nats.UserCredentials(c.Creds))
	case c.NKey != "":
		o, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, fmt.Errorf("nkey_seed: %w", err)
		}
		opts = append(opts, o)
	}
	tc, err := c.TLSOptions.Config()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		return nil, err
	}
	p.nc = nc
	if c.JetStream != 0 {
		p.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(c.BatchRecords+1))
		if err != nil {
			nc.Close()
			return nil, err
		}
	}
	return p, nil
}

// peer is one connection.
type peer struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	timeout  time.Duration
	ctx      context.Context
	cancel   context.CancelFunc
	gone     chan struct{}
	goneOnce sync.Once
	intr     chan struct{}
	intrOnce sync.Once
	subjects map[string]string // interned subjects
	futures  []jetstream.PubAckFuture
}

// subject returns b as a string, interned.
func (p *peer) subject(b []byte) string {
	if s, ok := p.subjects[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(p.subjects) < 4096 {
		p.subjects[s] = s
	}
	return s
}

// Write publishes the batch and waits for the server's confirmation.
func (p *peer) Write(b *sinkq.Batch) (int, int, error) {
	if p.js != nil {
		return p.writeJetStream(b)
	}
	for i := range b.Len() {
		subj, data := pubsink.Split(b.Record(i))
		if err := p.nc.Publish(p.subject(subj), data); err != nil {
			return 0, 0, err
		}
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	defer cancel()
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return 0, 0, err
	}
	return b.Len(), 0, nil
}

func (p *peer) writeJetStream(b *sinkq.Batch) (int, int, error) {
	p.futures = p.futures[:0]
	for i := range b.Len() {
		head, data := pubsink.Split(b.Record(i))
		subj, id, _ := bytes.Cut(head, []byte{0})
		f, err := p.js.PublishMsgAsync(&nats.Msg{Subject: p.subject(subj), Data: data},
			jetstream.WithMsgID(string(id)))
		if err != nil {
			return p.waitAcks(err)
		}
		p.futures = append(p.futures, f)
	}
	return p.waitAcks(nil)
}

// waitAcks waits for the acks of the futures in order, for up to the
// timeout: the records acknowledged from the first are sent.
func (p *peer) waitAcks(pubErr error) (int, int, error) {
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	for i, f := range p.futures {
		select {
		case <-timer.C:
			return i, 0, fmt.Errorf("no JetStream ack within %v", p.timeout)
		case <-f.Ok():
		case err := <-f.Err():
			return i, 0, err
		case <-p.gone:
			return i, 0, errors.New("connection closed")
		case <-p.intr:
			return i, 0, pubsink.ErrInterrupted
		}
	}
	return len(p.futures), 0, pubErr
}

// Close closes the connection; what it did not confirm stays queued.
func (p *peer) Close() int {
	p.cancel()
	p.nc.Close()
	return 0
}

func (p *peer) Interrupt() { p.intrOnce.Do(func() { close(p.intr); p.cancel() }) }

// Gone is closed when the connection is lost.
func (p *peer) Gone() <-chan struct{} { return p.gone }
