package nfacct

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const goldenFile = "testdata/golden.json"

// TestGolden decodes the captured kernel answers, every file in testdata/
// that the golden file names.
func TestGolden(t *testing.T) {
	gb, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string][]Object
	if err := json.Unmarshal(gb, &golden); err != nil {
		t.Fatal(err)
	}
	if names, _ := filepath.Glob("testdata/*.bin"); len(names) != len(golden) || len(golden) == 0 {
		t.Errorf("%d captures, %d golden entries", len(names), len(golden))
	}
	for name, want := range golden {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		var got []Object
		if err := DecodeMessages(raw, func(o Object) { got = append(got, o) }); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, got); diff != "" || len(got) == 0 {
			t.Errorf("%s: %d objects (-golden +got):\n%s", name, len(got), diff)
		}
	}
}
