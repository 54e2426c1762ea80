package sinkq

import (
	"errors"
	"maps"
	"path/filepath"

	"github.com/ulogd-go/ulogd/internal/config"
)

// Options are the queue options of a network or database sink, the same
// names in every such sink's ulogd.conf section. A sink embeds them in its
// config struct (the config decoder walks embedded structs):
//
//	type Config struct {
//		Host string `ulogd:"host"`
//		sinkq.Options
//	}
//
// sets their defaults in NewConfig (DefaultOptions), adds OptionDocs to
// its option descriptions, calls Check from Keys, Resources from its
// Resources, and in Start builds its queue with Open.
type Options struct {
	// QueueRecords and QueueBytes bound the records waiting in memory.
	QueueRecords int `ulogd:"queue_records"`
	QueueBytes   int `ulogd:"queue_bytes"`
	// Overflow is "block", "drop" or "spool".
	Overflow string `ulogd:"overflow"`
	// SpoolDir and SpoolSize: where overflow=spool writes, and its cap.
	SpoolDir  string `ulogd:"spool_dir"`
	SpoolSize int64  `ulogd:"spool_size"`
}

// DefaultOptions are the defaults: 1 Mi records or 16 MiB in memory, drop
// when full, a spool of at most 1 GiB when one is asked for.
func DefaultOptions() Options {
	return Options{QueueRecords: 1 << 20, QueueBytes: 16 << 20, Overflow: "drop", SpoolSize: 1 << 30}
}

// OptionDocs describes the options, for a plugin's Options map.
func OptionDocs() map[string]string {
	return map[string]string{
		"queue_records": "most records waiting in memory for the peer",
		"queue_bytes":   "most bytes waiting in memory for the peer (also the longest record)",
		"overflow":      "full queue: `drop` (count each record), `block` (hold the source: the kernel counts its losses) or `spool` (to disk, `spool_dir`)",
		"spool_dir":     "`overflow=spool`: the spool's directory (one per instance; created with mode 0700)",
		"spool_size":    "`overflow=spool`: most bytes of the spool's files; beyond, records are dropped and counted",
	}
}

// AddOptionDocs adds OptionDocs to docs and returns it.
func AddOptionDocs(docs map[string]string) map[string]string {
	maps.Copy(docs, OptionDocs())
	return docs
}

// Check validates the options (for a plugin's Keys).
func (o *Options) Check() error {
	p, err := ParsePolicy(o.Overflow)
	if err != nil {
		return config.AtOption("overflow", err)
	}
	var errs []error
	if o.QueueRecords <= 0 {
		errs = append(errs, config.OptionErrorf("queue_records", "queue_records must be positive"))
	}
	if o.QueueBytes <= 0 {
		errs = append(errs, config.OptionErrorf("queue_bytes", "queue_bytes must be positive"))
	}
	if p == SpoolPolicy {
		if o.SpoolDir == "" {
			errs = append(errs, config.OptionErrorf("overflow", "overflow=spool needs a spool_dir"))
		} else if !filepath.IsAbs(o.SpoolDir) {
			errs = append(errs, config.OptionErrorf("spool_dir", "spool_dir %q must be an absolute path", o.SpoolDir))
		}
		if o.SpoolSize < int64(o.QueueBytes) && o.SpoolSize < 1<<20 {
			errs = append(errs, config.OptionErrorf("spool_size", "spool_size must be at least 1 MiB"))
		}
	}
	return errors.Join(errs...)
}

// Policy returns the overflow policy (Drop for a bad one: Check first).
func (o *Options) Policy() Policy {
	p, _ := ParsePolicy(o.Overflow)
	return p
}

// Resources names what the options hold exclusively: the spool directory.
func (o *Options) Resources() []string {
	if o.Policy() != SpoolPolicy || o.SpoolDir == "" {
		return nil
	}
	return []string{"spool:" + filepath.Clean(o.SpoolDir)}
}

// Open builds the queue, opening the spool (and taking over what a
// previous run left in it) under overflow=spool.
func (o *Options) Open() (*Queue, error) {
	cfg := Config{MaxRecords: o.QueueRecords, MaxBytes: o.QueueBytes, Policy: o.Policy()}
	if cfg.Policy == SpoolPolicy {
		sp, err := OpenSpool(SpoolConfig{Dir: o.SpoolDir, MaxBytes: o.SpoolSize, MaxRecord: o.QueueBytes})
		if err != nil {
			return nil, err
		}
		cfg.Overflow = sp
	}
	return New(cfg), nil
}
