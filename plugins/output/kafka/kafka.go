// Package kafka is the KAFKA sink: every event as the JSON sink's object,
// produced to a Kafka topic with franz-go (kgo), keyed by nothing, a hash
// of the flow's 5-tuple or its Community ID. A ulogd-go plugin that
// ulogd2 does not have (docs/compat.md, B1).
//
// Records go through the bounded queue of internal/pubsink: Interp never
// waits on the brokers (unless overflow=block), a record counts as written
// once the brokers acknowledged it (with the acks the sink asks for), and
// one that finds the queue full is dropped and counted.
package kafka

import (
	_ "embed"

	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/ulogd-go/ulogd/internal/config"
	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
	"github.com/ulogd-go/ulogd/internal/pubsink"
	"github.com/ulogd-go/ulogd/internal/sinkq"
)

// Config holds KAFKA's options (see the README).
type Config struct {
	Brokers         string `ulogd:"brokers"`
	Topic           string `ulogd:"topic"`
	Key             string `ulogd:"key"`
	Compression     string `ulogd:"compression"`
	Acks            string `ulogd:"acks"`
	Idempotent      int    `ulogd:"idempotent"`
	ClientID        string `ulogd:"client_id"`
	LingerMs        int    `ulogd:"linger_ms"`
	BatchBytes      int    `ulogd:"batch_bytes"`
	DeliveryTimeout int    `ulogd:"delivery_timeout"`
	SASLMechanism   string `ulogd:"sasl_mechanism"`
	SASLUser        string `ulogd:"sasl_user"`
	SASLPassword    string `ulogd:"sasl_password"`
	pubsink.TLSOptions
	pubsink.Options
}

func newConfig() *Config {
	return &Config{
		Options:         pubsink.Defaults(),
		Brokers:         "127.0.0.1:9092",
		Topic:           "ulogd",
		Key:             "none",
		Compression:     "lz4",
		Acks:            "all",
		Idempotent:      1,
		ClientID:        "ulogd",
		LingerMs:        5,
		BatchBytes:      1 << 20,
		DeliveryTimeout: 30,
	}
}

// keyMode is what the Kafka record key is.
type keyMode uint8

const (
	keyNone keyMode = iota
	key5Tuple
	keyCommunityID
)

func parseKey(s string) (keyMode, error) {
	switch s {
	case "none":
		return keyNone, nil
	case "5tuple":
		return key5Tuple, nil
	case "community_id":
		return keyCommunityID, nil
	}
	return 0, config.OptionErrorf("key", "key=%q: must be none, 5tuple or community_id", s)
}

func parseCompression(s string) ([]kgo.CompressionCodec, error) {
	var out []kgo.CompressionCodec
	for _, c := range strings.Split(s, ",") {
		switch strings.TrimSpace(c) {
		case "zstd":
			out = append(out, kgo.ZstdCompression())
		case "lz4":
			out = append(out, kgo.Lz4Compression())
		case "snappy":
			out = append(out, kgo.SnappyCompression())
		case "gzip":
			out = append(out, kgo.GzipCompression())
		case "none":
			out = append(out, kgo.NoCompression())
		default:
			return nil, config.OptionErrorf("compression", "compression=%q: must be zstd, lz4, snappy, gzip or none (or a list in order of preference)", s)
		}
	}
	return out, nil
}

func parseAcks(s string) (kgo.Acks, error) {
	switch s {
	case "all":
		return kgo.AllISRAcks(), nil
	case "leader":
		return kgo.LeaderAck(), nil
	case "none":
		return kgo.NoAck(), nil
	}
	return kgo.Acks{}, config.OptionErrorf("acks", "acks=%q: must be all, leader or none", s)
}

func brokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// check validates the options (at --check, through Keys).
func check(c *Config) error {
	var errs []error
	if len(brokers(c.Brokers)) == 0 {
		errs = append(errs, config.OptionErrorf("brokers", `brokers is empty: give host:port[,host:port...]`))
	}
	if c.Topic == "" {
		errs = append(errs, config.OptionErrorf("topic", "topic is empty"))
	}
	_, errKey := parseKey(c.Key)
	_, errComp := parseCompression(c.Compression)
	_, errAcks := parseAcks(c.Acks)
	errs = append(errs, errKey, errComp, errAcks, c.TLSOptions.Check(), c.Options.Check())
	if c.Idempotent != 0 && c.Acks != "all" {
		errs = append(errs, config.OptionErrorf("idempotent", "idempotent=1 needs acks=all (acks=%q): set idempotent=0", c.Acks))
	}
	if c.LingerMs < 0 || c.LingerMs > 60000 {
		errs = append(errs, config.OptionErrorf("linger_ms", "linger_ms=%d: must be 0 to 60000", c.LingerMs))
	}
	if c.BatchBytes < 1024 || c.BatchBytes > 1<<30 {
		errs = append(errs, config.OptionErrorf("batch_bytes", "batch_bytes=%d: must be 1024 to 1073741824", c.BatchBytes))
	}
	if c.DeliveryTimeout < 1 {
		errs = append(errs, config.OptionErrorf("delivery_timeout", "delivery_timeout=%d: must be at least 1 (seconds)", c.DeliveryTimeout))
	}
	switch c.SASLMechanism {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.SASLUser == "" {
			errs = append(errs, config.OptionErrorf("sasl_mechanism", "sasl_mechanism=%s needs sasl_user", c.SASLMechanism))
		}
	default:
		errs = append(errs, config.OptionErrorf("sasl_mechanism", "sasl_mechanism=%q: must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism))
	}
	return errors.Join(errs...)
}

// inCommunityID is the optional input key used with key=community_id.
var inputs = []keys.Spec{{Name: "flow.community_id", Type: keys.String, Flags: keys.Optional}}

const inCommunityID = 0

//go:embed sample.conf
var sample string

func init() { plugin.Register(Descriptor()) }

// Descriptor returns the KAFKA plugin's descriptor.
func Descriptor() *plugin.Descriptor {
	return plugin.Define(plugin.Def[Config]{
		Name:      "KAFKA",
		Kind:      plugin.Sink,
		Summary:   "produce every event as the JSON sink's object to a Kafka topic (ulogd-go only)",
		Input:     plugin.DTPacket | plugin.DTFlow | plugin.DTSum,
		Output:    plugin.DTSink,
		Wildcard:  true,
		NewConfig: newConfig,
		Options: pubsink.OptionDocs(pubsink.TLSDocs("the brokers'"), map[string]string{
			"brokers":          "seed brokers, `host:port[,host:port...]`",
			"topic":            "the topic records are produced to",
			"key":              "record key: `none`, `5tuple` (a hash of the flow's addresses, ports and protocol, the same both ways) or `community_id` (the `flow.community_id` key)",
			"compression":      "`zstd`, `lz4`, `snappy`, `gzip` or `none`, or a list in order of preference",
			"acks":             "`all` (every in-sync replica), `leader` or `none`",
			"idempotent":       "1: idempotent producer (no duplicates from the producer's retries; needs `acks=all`)",
			"client_id":        "the client id the brokers see",
			"linger_ms":        "how long a partition's batch waits for more records",
			"batch_bytes":      "the largest batch of one partition, in bytes",
			"delivery_timeout": "seconds a record may take to be acknowledged before the connection is renewed and it is sent again",
			"sasl_mechanism":   "`PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; empty: no SASL",
			"sasl_user":        "SASL user",
			"sasl_password":    "SASL password",
		}),
		Sample: sample,
		Keys: func(c *Config) ([]keys.Spec, []keys.Spec, error) {
			return inputs, nil, check(c)
		},
		Resources: func(c *Config) []string { return c.Options.Resources() },
		New:       newSink,
	})
}

// sink is one KAFKA instance.
type sink struct {
	*pubsink.Sink
	cfg   *Config
	key   keyMode
	cid   keys.Slot
	tuple tuple
	head  []byte
	opts  []kgo.Opt
	peer  string
}

func newSink(env *plugin.Env, cfg *Config) (plugin.Instance, error) {
	ps, err := pubsink.New("KAFKA", env, cfg.Options)
	if err != nil {
		return nil, err
	}
	s := &sink{Sink: ps, cfg: cfg, cid: env.In[inCommunityID], head: make([]byte, 0, 64)}
	s.key, _ = parseKey(cfg.Key)
	if s.key == keyCommunityID && s.cid == keys.NoSlot && env.Log != nil {
		env.Log.Warn("KAFKA: key=community_id, but no plugin before it in the stack gives flow.community_id: records get no key")
	}
	if s.key == key5Tuple {
		s.tuple = findTuple(env.Upstream)
		if s.tuple.saddr == keys.NoSlot {
			return nil, errors.New("key=5tuple: no upstream plugin gives orig.ip.saddr or ip.saddr")
		}
	}
	s.peer = "kafka:" + cfg.Brokers + "/" + cfg.Topic
	return s, nil
}

// clientOpts builds the client's options; it reads the TLS files.
func (s *sink) clientOpts() ([]kgo.Opt, error) {
	c := s.cfg
	codecs, _ := parseCompression(c.Compression)
	acks, _ := parseAcks(c.Acks)
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers(c.Brokers)...),
		kgo.DefaultProduceTopic(c.Topic),
		kgo.ClientID(c.ClientID),
		kgo.ProducerBatchCompression(codecs...),
		kgo.RequiredAcks(acks),
		kgo.ProducerLinger(time.Duration(c.LingerMs) * time.Millisecond),
		kgo.ProducerBatchMaxBytes(int32(c.BatchBytes)),
		kgo.RecordDeliveryTimeout(time.Duration(c.DeliveryTimeout) * time.Second),
		kgo.MaxBufferedRecords(c.BatchRecords + 1),
		kgo.DialTimeout(5 * time.Second),
	}
	if c.Idempotent == 0 {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	tc, err := c.TLSOptions.Config()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASLMechanism != "" {
		var m sasl.Mechanism
		switch c.SASLMechanism {
		case "PLAIN":
			m = plain.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsMechanism()
		case "SCRAM-SHA-256":
			m = scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			m = scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha512Mechanism()
		}
		opts = append(opts, kgo.SASL(m))
	}
	return append(opts, s.opts...), nil
}

func (s *sink) Start(ctx context.Context) error {
	return s.Sink.Start(ctx, s.peer, s.dial)
}

// Interp computes the key and queues the record.
func (s *sink) Interp(r *keys.Record) plugin.Verdict {
	s.head = s.head[:0]
	switch s.key {
	case keyCommunityID:
		s.head = append(s.head, r.Bytes(s.cid)...)
	case key5Tuple:
		s.head = s.tuple.appendKey(s.head, r)
	}
	return s.Push(s.head, r)
}

// Reopen makes a new client on SIGHUP: the TLS files are read again.
func (s *sink) Reopen() error { return s.Reconnect() }

// dial makes a client and checks that a broker answers.
func (s *sink) dial(ctx context.Context) (sinkq.Peer, error) {
	opts, err := s.clientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		return nil, err
	}
	p := &peer{cl: cl, intr: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// peer is one kgo client.
type peer struct {
	cl       *kgo.Client
	ctx      context.Context
	cancel   context.CancelFunc
	intr     chan struct{}
	once     sync.Once
	acks     pubsink.Acks
	recs     []kgo.Record
	promises []func(*kgo.Record, error)
}

// Write produces the batch and waits for the acknowledgements.
func (p *peer) Write(b *sinkq.Batch) (int, int, error) {
	n := b.Len()
	for len(p.promises) < n {
		i := len(p.promises)
		p.promises = append(p.promises, func(_ *kgo.Record, err error) { p.acks.Done(i, err) })
	}
	if cap(p.recs) < n {
		p.recs = make([]kgo.Record, n)
	}
	p.recs = p.recs[:n]
	p.acks.Reset(n)
	for i := range n {
		key, value := pubsink.Split(b.Record(i))
		rec := &p.recs[i]
		*rec = kgo.Record{Value: value}
		if len(key) > 0 {
			rec.Key = key
		}
		p.cl.Produce(p.ctx, rec, p.promises[i])
	}
	sent, err := p.acks.Wait(p.intr)
	return sent, 0, err
}

// Close closes the client; records it still held fail, and stay queued.
func (p *peer) Close() int {
	p.cancel()
	p.cl.Close()
	return 0
}

func (p *peer) Interrupt() { p.once.Do(func() { close(p.intr); p.cancel() }) }

// Gone is nil: the client reconnects to the brokers by itself.
func (p *peer) Gone() <-chan struct{} { return nil }

// tuple are the slots of a flow's or packet's 5-tuple.
type tuple struct {
	saddr, daddr, proto, sport, dport keys.Slot
}

// findTuple finds the conntrack original tuple, else the packet's header
// fields.
func findTuple(up []keys.Bound) tuple {
	find := func(names ...string) keys.Slot {
		for _, n := range names {
			for _, u := range up {
				if u.Name == n {
					return u.Slot
				}
			}
		}
		return keys.NoSlot
	}
	t := tuple{saddr: find("orig.ip.saddr")}
	if t.saddr != keys.NoSlot {
		t.daddr = find("orig.ip.daddr")
		t.proto = find("orig.ip.protocol")
		t.sport = find("orig.l4.sport")
		t.dport = find("orig.l4.dport")
		return t
	}
	t.saddr = find("ip.saddr")
	t.daddr = find("ip.daddr")
	t.proto = find("ip.protocol")
	t.sport = find("tcp.sport", "udp.sport", "sctp.sport")
	t.dport = find("tcp.dport", "udp.dport", "sctp.dport")
	return t
}

// appendKey appends the 16 hex digits of the FNV-1a hash of the tuple,
// its two ends in a fixed order so that both directions of a flow (and
// the packets of both ways) get the same key. A record without addresses
// gets no key.
func (t *tuple) appendKey(b []byte, r *keys.Record) []byte {
	sa, da := r.Bytes(t.saddr), r.Bytes(t.daddr)
	if len(sa) == 0 || len(da) == 0 {
		return b
	}
	sp, dp := uint16(r.Uint(t.sport)), uint16(r.Uint(t.dport))
	if c := bytes.Compare(sa, da); c > 0 || c == 0 && sp > dp {
		sa, da, sp, dp = da, sa, dp, sp
	}
	h := fnvAdd(fnvOffset, byte(r.Uint(t.proto)))
	h = fnvBytes(h, sa)
	h = fnvAdd(fnvAdd(h, byte(sp>>8)), byte(sp))
	h = fnvBytes(h, da)
	h = fnvAdd(fnvAdd(h, byte(dp>>8)), byte(dp))
	var sum [8]byte
	binary.BigEndian.PutUint64(sum[:], h)
	return hex.AppendEncode(b, sum[:])
}

// FNV-1a, 64 bits.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvAdd(h uint64, c byte) uint64 { return (h ^ uint64(c)) * fnvPrime }

func fnvBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h = fnvAdd(h, c)
	}
	return h
}
