package eventsock

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestErrors(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var x Errors
	for range 3 {
		x.DecodeError(log, "cannot decode", errors.New("bad"))
	}
	if x.Decode != 3 || strings.Count(buf.String(), "cannot decode") != 1 || !strings.Contains(buf.String(), "count=1") {
		t.Fatalf("decode: count %d, log %q: want 3 counted, logged once", x.Decode, buf.String())
	}
	done := make(chan struct{})
	close(done)
	x.OtherError(log, "receive error", errors.New("eio"), done)
	x.OtherError(log, "receive error", errors.New("eio"), done)
	if x.Other != 2 || strings.Count(buf.String(), "receive error") != 1 {
		t.Fatalf("other: count %d, log %q: want 2 counted, logged once", x.Other, buf.String())
	}
}
