package fileout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ulogd-go/ulogd/internal/logging"
)

// Texts are the messages of one file sink plugin, kept as ulogd2 words
// them.
type Texts struct {
	// Open prefixes the error of a failed open in Start: "Open: error".
	Open string
	// Reopen prefixes the error of a failed reopen on SIGHUP; empty means
	// the same as Open.
	Reopen string
	// Notice is logged at NOTICE level on every SIGHUP, before the reopen.
	Notice string
}

// Sink is the file side of a file sink plugin (LOGEMU, OPRINT, GPRINT,
// NACCT, PCAP, JSON in file mode): it opens the Writer in Start, closes
// it in Stop, flushes it at the end of each receive batch and reopens it
// on SIGHUP (logrotate). A plugin embeds it (or holds it, when it has
// other outputs) and formats its records into W.
type Sink struct {
	// W is the open file: nil before Start and after Stop.
	W *Writer

	path   string
	sync   bool
	log    *slog.Logger
	texts  Texts
	counts *Counts // records the Writers wrote and dropped
	// stopRetry bounds how long Stop keeps trying to write what is
	// buffered (a full disk may get room) before it drops it.
	stopRetry time.Duration
}

// stopRetryEvery is the pause between two of Stop's attempts.
const stopRetryEvery = 100 * time.Millisecond

// NewSink returns a Sink, not yet open, for the file at path, written
// with the sync=1 policy when sync is set; log receives the reopen notice.
func NewSink(path string, sync bool, log *slog.Logger, texts Texts) Sink {
	if texts.Reopen == "" {
		texts.Reopen = texts.Open
	}
	return Sink{path: path, sync: sync, log: log, texts: texts, counts: new(Counts), stopRetry: 2 * time.Second}
}

// Start opens the file for appending.
func (s *Sink) Start(context.Context) error {
	w, err := Open(s.path, s.sync)
	if err != nil {
		return fmt.Errorf("%s: %w", s.texts.Open, err)
	}
	w.counts = s.counts
	w.log = s.log
	s.W = w
	return nil
}

// Dropped returns how many whole records were dropped because the file
// could not be written: the buffer was full, a reopen could not finish a
// record, or Stop could not write them (plugin.Dropper).
func (s *Sink) Dropped() uint64 {
	if s.counts == nil {
		return 0
	}
	return s.counts.Dropped.Load()
}

// Written returns how many records reached the file.
func (s *Sink) Written() uint64 {
	if s.counts == nil {
		return 0
	}
	return s.counts.Written.Load()
}

// Stop writes what is buffered and closes the file. While the file cannot
// be written (a full disk) it tries again for up to 2 s (or until ctx is
// done), then drops what is left, counted and logged. It may be called
// again, and before Start.
func (s *Sink) Stop(ctx context.Context) error {
	if s.W == nil {
		return nil
	}
	if s.W.write() != nil {
		t := time.NewTimer(s.stopRetry)
		tick := time.NewTicker(stopRetryEvery)
	retry:
		for len(s.W.buf) > 0 {
			select {
			case <-tick.C:
				_ = s.W.write()
			case <-t.C:
				break retry
			case <-ctx.Done():
				break retry
			}
		}
		t.Stop()
		tick.Stop()
	}
	err := s.W.Close()
	s.W = nil
	return err
}

// Flush is called at the end of each receive batch (and every second);
// it does nothing when the file is not open.
func (s *Sink) Flush() error {
	if s.W == nil {
		return nil
	}
	return s.W.Flush()
}

// Reopen logs the plugin's notice and reopens the file on SIGHUP
// (logrotate): what is buffered goes to the old file, and a failed reopen
// keeps the old file. It does nothing more when the file is not open.
func (s *Sink) Reopen() error {
	if s.log != nil {
		s.log.Log(context.Background(), logging.LevelNotice, s.texts.Notice)
	}
	if s.W == nil {
		return nil
	}
	if err := s.W.Reopen(); err != nil {
		return fmt.Errorf("%s: %w", s.texts.Reopen, err)
	}
	return nil
}

// Resources is what a file sink instance claims: no two instances may
// write one file.
func Resources(path string) []string { return []string{"file:" + path} }

// CheckPath is a file sink's check of its file option: it must not be
// empty.
func CheckPath(path string) error {
	if path == "" {
		return errors.New(`option "file" is empty`)
	}
	return nil
}
