package sqldb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/keys"
)

func layoutOf(specs ...keys.Spec) *Layout {
	var up []keys.Bound
	for i, s := range specs {
		up = append(up, keys.Bound{Spec: s, Slot: keys.Slot(i), Instance: "x"})
	}
	return FullLayout(up)
}

// TestSpoolLayout: the fingerprint of the spool's rows is written while
// the spool is empty; rows of another (or an unknown) layout are refused
// with an error naming the directory and the difference.
func TestSpoolLayout(t *testing.T) {
	a := layoutOf(keys.Spec{Name: "ct.mark", Type: keys.Uint32}, keys.Spec{Name: "ip.saddr.str", Type: keys.String})
	retyped := layoutOf(keys.Spec{Name: "ct.mark", Type: keys.Uint64}, keys.Spec{Name: "ip.saddr.str", Type: keys.String})
	longer := layoutOf(keys.Spec{Name: "ct.mark", Type: keys.Uint32}, keys.Spec{Name: "ip.saddr.str", Type: keys.String},
		keys.Spec{Name: "ct.id", Type: keys.Uint32})
	dir := t.TempDir()
	file := filepath.Join(dir, LayoutFile)

	// No rows, no file: written.
	if err := checkSpoolLayout(dir, a, 0); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "ulogd sql spool layout 1\nct.mark\tunsigned int 32\nip.saddr.str\tstring\n" {
		t.Fatalf("layout file %q (%v)", b, err)
	}
	// Rows of the same layout: fine.
	if err := checkSpoolLayout(dir, a, 5); err != nil {
		t.Fatal(err)
	}
	// Rows of another layout: refused, whatever differs.
	for _, tc := range []struct {
		l    *Layout
		diff string
	}{
		{retyped, `key 1 was "ct.mark unsigned int 32", is "ct.mark unsigned int 64"`},
		{longer, "2 keys then, 3 now"},
	} {
		err := checkSpoolLayout(dir, tc.l, 5)
		var le *ErrSpoolLayout
		if !errors.As(err, &le) || le.Dir != dir || le.Rows != 5 || !strings.Contains(err.Error(), tc.diff) ||
			!strings.Contains(err.Error(), dir) {
			t.Errorf("got %v, want the rows refused for %s", err, tc.diff)
		}
	}
	// The refusal left the file as it was.
	if err := checkSpoolLayout(dir, a, 5); err != nil {
		t.Fatal(err)
	}
	// An empty spool takes the new layout.
	if err := checkSpoolLayout(dir, longer, 0); err != nil {
		t.Fatal(err)
	}
	if err := checkSpoolLayout(dir, longer, 1); err != nil {
		t.Fatal(err)
	}
	// Rows without a layout file, or with a file of unknown format.
	os.Remove(file)
	if err := checkSpoolLayout(dir, a, 1); err == nil || !strings.Contains(err.Error(), "no "+LayoutFile) {
		t.Errorf("no file: %v", err)
	}
	os.WriteFile(file, []byte("something else\n"), 0o600)
	if err := checkSpoolLayout(dir, a, 1); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Errorf("unknown format: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("files left: %v", ents)
	}
}
