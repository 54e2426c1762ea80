package testutil

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// Buffer collects what is written to it and is safe for concurrent use:
// a logger or a child process writes while the test reads. With Echo set,
// every write is also passed to Echo.Log, so that a failing test shows it.
type Buffer struct {
	Echo testing.TB
	mu   sync.Mutex
	b    bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Echo != nil {
		b.Echo.Log(strings.TrimRight(string(p), "\n"))
	}
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
