package plugintest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
	"github.com/ulogd-go/ulogd/internal/plugin"
)

// This file has the checks every file sink (LOGEMU, OPRINT, GPRINT,
// NACCT, PCAP, JSON, XML) runs on its file: sync=0 buffering, logrotate's
// rename-then-SIGHUP, a failed reopen, a failed open, and no allocation
// per event.

// FileSink is a started file sink instance as its tests drive it directly,
// without the stack engine.
type FileSink interface {
	plugin.Interpreter
	plugin.Flusher
	plugin.Reopener
}

// MissingDir is a directory that does not exist, for open failures.
const MissingDir = "/nonexistent-dir-ulogd-test"

// ReadFile returns the content of the file at path; a read error fails the
// test.
func ReadFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Upstream returns the upstream keys of a wildcard sink fed by a source
// that provides specs (slot i is specs[i], of instance "src"), and a record
// laid out for them.
func Upstream(specs []keys.Spec) ([]keys.Bound, *keys.Record) {
	up := make([]keys.Bound, len(specs))
	for i, s := range specs {
		up[i] = keys.Bound{Spec: s, Slot: keys.Slot(i), Instance: "src"}
	}
	return up, keys.NewRecord(typesOf(specs))
}

// Filter returns the input and output slots of a filter whose keys are in
// and out, laid out on a bare record as the engine lays them out for it
// after a source that provides exactly its inputs (slot i is in[i], then
// the outputs), and that record.
func Filter(in, out []keys.Spec) (inSlots, outSlots []keys.Slot, r *keys.Record) {
	inSlots, _ = Inputs(in)
	for i := range out {
		outSlots = append(outSlots, keys.Slot(len(in)+i))
	}
	return inSlots, outSlots, keys.NewRecord(append(typesOf(in), typesOf(out)...))
}

// Inputs returns the input slots of a sink whose input keys are specs,
// bound to a source that provides exactly those (slot i is specs[i]), and
// a record laid out for them.
func Inputs(specs []keys.Spec) ([]keys.Slot, *keys.Record) {
	in := make([]keys.Slot, len(specs))
	for i := range in {
		in[i] = keys.Slot(i)
	}
	return in, keys.NewRecord(typesOf(specs))
}

// FileHarness is a Harness whose last instance, a file sink, writes File.
type FileHarness struct {
	*Harness
	// File is the path of the sink's file, in a temporary directory.
	File string
}

// NewFile builds a stack as New does, chain ending with a file sink
// instance ("gp1:GPRINT") whose section sets file to a new file named name
// in a temporary directory, followed by opts (other options, one a line:
// "sync=1\n").
func NewFile(t testing.TB, chain, name, opts string, provides []keys.Spec) *FileHarness {
	t.Helper()
	id, _, _ := strings.Cut(chain[strings.LastIndexByte(chain, ',')+1:], ":")
	path := filepath.Join(t.TempDir(), name)
	return &FileHarness{Harness: New(t, chain, "["+id+"]\nfile=\""+path+"\"\n"+opts, provides), File: path}
}

// Read returns the content of the file.
func (h *FileHarness) Read() string {
	h.t.Helper()
	return ReadFile(h.t, h.File)
}

// Log walks the stack once for each of evs, ends the batch and returns the
// content of the file.
func (h *FileHarness) Log(evs ...map[string]any) string {
	h.t.Helper()
	for _, ev := range evs {
		h.Event(ev)
	}
	h.Flush()
	return h.Read()
}

// Rotate does what logrotate does: it renames the file to File+".1",
// then delivers SIGHUP's reopen to the stack. A failure fails the test. It
// returns the rotated file's name.
func (h *FileHarness) Rotate() string {
	h.t.Helper()
	rotated := h.File + ".1"
	if err := os.Rename(h.File, rotated); err != nil {
		h.t.Fatal(err)
	}
	if err := h.Reopen(); err != nil {
		h.t.Fatal(err)
	}
	return rotated
}

// ReopenAfterRotate walks the events of before, rotates the file (see
// Rotate) while what they wrote may still be buffered, walks the events of
// after and ends the batch. It returns the content of the rotated file and
// of the new one.
func (h *FileHarness) ReopenAfterRotate(before, after []map[string]any) (rotated, current string) {
	h.t.Helper()
	for _, ev := range before {
		h.Event(ev)
	}
	old := h.Rotate()
	current = h.Log(after...)
	return ReadFile(h.t, old), current
}

// BuffersUntilStop checks sync=0: after ev and the end of its batch the
// file must still be empty (else the test fails). It then stops the stack
// and returns the file's content, which must hold what was buffered.
func (h *FileHarness) BuffersUntilStop(ev map[string]any) string {
	h.t.Helper()
	if got := h.Log(ev); got != "" {
		h.t.Fatalf("sync=0 wrote at once: %q", got)
	}
	h.Graph.Stop(h.t.Context())
	return h.Read()
}

// ReopenFailureKeepsOldFile checks that a sink keeps its old file when the
// reopen on SIGHUP fails. open starts a sink writing the file name in a
// new directory, and returns it with a record it logs; the directory is
// then moved away. The reopen must fail with an error that contains
// wantErr, and the record must still be logged. It returns the content of
// the old file, in its new place.
func ReopenFailureKeepsOldFile(t testing.TB, name string, open func(path string) (FileSink, *keys.Record), wantErr string) string {
	t.Helper()
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	s, r := open(filepath.Join(sub, name))
	os.Rename(sub, filepath.Join(dir, "moved"))
	if err := s.Reopen(); err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("Reopen = %v", err)
	}
	if v := s.Interp(r); v != plugin.Continue {
		t.Fatalf("Interp after failed reopen = %v", v)
	}
	s.Flush()
	return ReadFile(t, filepath.Join(dir, "moved", name))
}

// StartFails checks that Start of inst, whose file is in MissingDir,
// fails with an error that contains want.
func StartFails(t testing.TB, inst plugin.Instance, want string) {
	t.Helper()
	if err := inst.Start(t.Context()); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Start = %v", err)
	}
}

// ZeroAllocsPerEvent checks that logging r and ending the batch does not
// allocate (once the buffer has grown to its working size).
func ZeroAllocsPerEvent(t *testing.T, s FileSink, r *keys.Record) {
	t.Helper()
	n := testing.AllocsPerRun(10000, func() {
		s.Interp(r)
		s.Flush()
	})
	if n != 0 {
		t.Errorf("%v allocations per event, want 0", n)
	}
}

// BenchInterp measures logging r, with the allocations.
func BenchInterp(b *testing.B, s FileSink, r *keys.Record) {
	b.ReportAllocs()
	for b.Loop() {
		s.Interp(r)
	}
	s.Flush()
}

// BenchFlushEvery is the receive batch of BenchBatches: the engine flushes
// the sinks at the end of each batch.
const BenchFlushEvery = 64

// BenchBatches measures event (one record through a sink), flushing every
// BenchFlushEvery events and once at the end, with the allocations. It
// returns how many events ran, counting one the caller ran before to check
// its output.
func BenchBatches(b *testing.B, event func() plugin.Verdict, flush func() error) int {
	n := 1
	b.ReportAllocs()
	for b.Loop() {
		event()
		if n++; n%BenchFlushEvery == 0 {
			flush()
		}
	}
	flush()
	b.StopTimer()
	return n
}

// BenchFirst runs event once and flushes, failing the benchmark when the
// record does not pass or the flush fails, so that the caller can check
// the output before BenchBatches.
func BenchFirst(b *testing.B, event func() plugin.Verdict, flush func() error) {
	b.Helper()
	if v := event(); v != plugin.Continue {
		b.Fatalf("Interp = %v", v)
	}
	if err := flush(); err != nil {
		b.Fatal(err)
	}
}

// Started starts inst and stops it when the test ends.
func Started(tb testing.TB, inst plugin.Instance) plugin.Instance {
	tb.Helper()
	if err := inst.Start(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { inst.Stop(context.Background()) })
	return inst
}
