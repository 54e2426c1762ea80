package fileout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

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

	path    string
	sync    bool
	log     *slog.Logger
	texts   Texts
	dropped *atomic.Uint64 // records the Writers dropped (plugin.Dropper)
}

// NewSink returns a Sink, not yet open, for the file at path, written
// with the sync=1 policy when sync is set; log receives the reopen notice.
func NewSink(path string, sync bool, log *slog.Logger, texts Texts) Sink {
	if texts.Reopen == "" {
		texts.Reopen = texts.Open
	}
	return Sink{path: path, sync: sync, log: log, texts: texts, dropped: new(atomic.Uint64)}
}

// Start opens the file for appending.
func (s *Sink) Start(context.Context) error {
	w, err := Open(s.path, s.sync)
	if err != nil {
		return fmt.Errorf("%s: %w", s.texts.Open, err)
	}
	w.sinkDrops = s.dropped
	s.W = w
	return nil
}

// Dropped returns how many whole records were dropped because the file
// could not be written and the buffer was full (plugin.Dropper).
func (s *Sink) Dropped() uint64 {
	if s.dropped == nil {
		return 0
	}
	return s.dropped.Load()
}

// Stop writes what is buffered and closes the file. It may be called
// again, and before Start.
func (s *Sink) Stop(context.Context) error {
	if s.W == nil {
		return nil
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
