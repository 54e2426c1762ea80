package daemon

import (
	"runtime"
	"testing"
)

func TestLimitProcs(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(orig) })
	t.Setenv("GOMAXPROCS", "")
	runtime.GOMAXPROCS(4)

	if n, changed := LimitProcs(8); n != 4 || changed {
		t.Errorf("8 sources on 4 Ps: %d, %v; want 4 unchanged", n, changed)
	}
	if n, changed := LimitProcs(2); n != 2 || !changed || runtime.GOMAXPROCS(0) != 2 {
		t.Errorf("2 sources on 4 Ps: %d, %v (GOMAXPROCS %d); want 2, changed", n, changed, runtime.GOMAXPROCS(0))
	}
	if n, changed := LimitProcs(0); n != 1 || !changed || runtime.GOMAXPROCS(0) != 1 {
		t.Errorf("no source: %d, %v (GOMAXPROCS %d); want 1, changed", n, changed, runtime.GOMAXPROCS(0))
	}

	// The operator's GOMAXPROCS wins.
	runtime.GOMAXPROCS(3)
	t.Setenv("GOMAXPROCS", "3")
	if n, changed := LimitProcs(1); n != 3 || changed || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("GOMAXPROCS=3 set: %d, %v (GOMAXPROCS %d); want 3 unchanged", n, changed, runtime.GOMAXPROCS(0))
	}
}
