package sqldb

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// A spooled row is decoded with the layout it was encoded with, also by
// the next run of the daemon. Under overflow=spool a sink therefore
// queues every upstream key (FullLayout, not the bound columns, which the
// database may change) and keeps the layout's fingerprint in the spool
// directory, in LayoutFile. A start that finds rows in the spool and a
// fingerprint other than its own (the stack changed: keys added, removed,
// reordered or retyped), or none, refuses to start: those rows cannot be
// decoded, and dropping them would lose what the spool was asked to keep
// (docs/compat.md S13).

// LayoutFile is the name of the fingerprint file in a spool directory.
const LayoutFile = "sql-layout"

// layoutMagic is the fingerprint's first line.
const layoutMagic = "ulogd sql spool layout 1\n"

// Fingerprint returns the layout as text: a header line, then one line per
// key, its name and type, in order.
func (l *Layout) Fingerprint() []byte {
	var b bytes.Buffer
	b.WriteString(layoutMagic)
	for _, k := range l.Keys {
		fmt.Fprintf(&b, "%s\t%s\n", k.Name, k.Type)
	}
	return b.Bytes()
}

// ErrSpoolLayout is a spool holding rows of another layout than the one
// the sink queues.
type ErrSpoolLayout struct {
	Dir    string
	Rows   uint64
	Reason string // "no layout file", "other keys: ..."
}

func (e *ErrSpoolLayout) Error() string {
	return fmt.Sprintf("spool_dir %s holds %d rows queued with other keys than this configuration's (%s): "+
		"they cannot be written with it; start with the previous configuration until the spool is empty, "+
		"or move the directory away (its rows are then lost)", e.Dir, e.Rows, e.Reason)
}

// checkSpoolLayout compares the fingerprint in dir with l's. Equal, or a
// spool without rows (queued = 0), is fine: then the fingerprint is
// (re)written, synced, before any row is spooled. Rows of another or an
// unknown layout are an *ErrSpoolLayout.
func checkSpoolLayout(dir string, l *Layout, queued uint64) error {
	want := l.Fingerprint()
	path := filepath.Join(dir, LayoutFile)
	have, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(have, want):
		return nil
	case queued == 0:
		return writeFileSynced(path, want)
	case err != nil:
		return &ErrSpoolLayout{Dir: dir, Rows: queued, Reason: "no " + LayoutFile + " file: " + err.Error()}
	}
	return &ErrSpoolLayout{Dir: dir, Rows: queued, Reason: layoutDiff(have, want)}
}

// layoutDiff names the first difference of two fingerprints.
func layoutDiff(have, want []byte) string {
	h := strings.Split(strings.TrimSuffix(string(have), "\n"), "\n")
	w := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
	if len(h) == 0 || h[0]+"\n" != layoutMagic {
		return "unknown " + LayoutFile + " format"
	}
	for i := 1; i < len(h) && i < len(w); i++ {
		if h[i] != w[i] {
			return fmt.Sprintf("key %d was %q, is %q", i, strings.ReplaceAll(h[i], "\t", " "), strings.ReplaceAll(w[i], "\t", " "))
		}
	}
	return fmt.Sprintf("%d keys then, %d now", len(h)-1, len(w)-1)
}

// writeFileSynced writes b to path through a synced temporary file and a
// rename, then syncs the directory.
func writeFileSynced(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
