package pubsink

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/config"
)

func TestSplit(t *testing.T) {
	for _, head := range []string{"", "k", strings.Repeat("h", 300)} {
		frame := binary.AppendUvarint(nil, uint64(len(head)))
		frame = append(frame, head...)
		frame = append(frame, `{"a": 1}`...)
		h, v := Split(frame)
		if string(h) != head || string(v) != `{"a": 1}` {
			t.Errorf("Split(%q) = %q, %q", frame, h, v)
		}
	}
}

func TestAcks(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		n       int
		outcome map[int]error // records that get an outcome; the others none
		stop    bool
		sent    int
		err     error
	}{
		{"all acked", 3, map[int]error{2: nil, 0: nil, 1: nil}, false, 3, nil},
		{"none", 0, nil, false, 0, nil},
		{"second fails", 4, map[int]error{0: nil, 1: boom, 2: nil, 3: nil}, false, 1, boom},
		{"first error counts", 3, map[int]error{0: boom, 1: errors.New("later"), 2: nil}, false, 0, boom},
		{"interrupted", 3, map[int]error{0: nil, 2: nil}, true, 1, ErrInterrupted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a Acks
			a.Reset(tc.n)
			for i, err := range tc.outcome {
				a.Done(i, err)
			}
			stop := make(chan struct{})
			if tc.stop {
				close(stop)
			}
			sent, err := a.Wait(stop)
			if sent != tc.sent || !errors.Is(err, tc.err) {
				t.Errorf("Wait = %d, %v; want %d, %v", sent, err, tc.sent, tc.err)
			}
		})
	}
}

func TestOptionsCheck(t *testing.T) {
	o := Defaults()
	if err := o.Check(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, bad := range []func(*Options){
		func(o *Options) { o.Overflow = "spill" },
		func(o *Options) { o.Overflow = "spool" }, // without a spool_dir
		func(o *Options) { o.Overflow, o.SpoolDir = "spool", "relative" },
		func(o *Options) { o.QueueRecords = 10 },
		func(o *Options) { o.QueueBytes = 1 << 31 },
		func(o *Options) { o.BatchRecords = 0 },
		func(o *Options) { o.Layout = "elastic" },
	} {
		o := Defaults()
		bad(&o)
		if o.Check() == nil {
			t.Errorf("%+v passes the check", o)
		}
	}
	o.Overflow, o.SpoolDir = "spool", "/var/spool/ulogd/k"
	if err := o.Check(); err != nil {
		t.Errorf("overflow=spool with a spool_dir: %v", err)
	}
	if r := o.Resources(); len(r) != 1 || r[0] != "spool:/var/spool/ulogd/k" {
		t.Errorf("Resources = %q", r)
	}
	o.QueueRecords = 1
	var oe *config.OptionError
	if err := o.Check(); !errors.As(err, &oe) || oe.Option != "queue_records" {
		t.Errorf("queue_records=1: %v does not name the option", err)
	}
}
