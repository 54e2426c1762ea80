package sqldb

import (
	"strings"
	"testing"

	"github.com/ulogd-go/ulogd/internal/sinkq"
)

// TestQueueOptions: the queue options of the network sinks, and their
// precedence over ulogd2's backlog_memcap and ring_buffer_size.
func TestQueueOptions(t *testing.T) {
	for _, tc := range []struct {
		name           string
		set            func(o *Options)
		records, bytes int
		policy         sinkq.Policy
		err            string // a part of Check's error
		resource       string
	}{
		{name: "defaults", set: func(*Options) {}, records: 1 << 18, bytes: 16 << 20},
		{name: "memcap", set: func(o *Options) { o.BacklogMemcap = 1 << 20 }, records: 1 << 14, bytes: 1 << 20},
		{name: "small memcap", set: func(o *Options) { o.BacklogMemcap = 1000 }, records: 1024, bytes: 1000},
		{name: "queue_bytes", set: func(o *Options) { o.QueueBytes = 1 << 20 }, records: 1 << 14, bytes: 1 << 20},
		{name: "ring", set: func(o *Options) { o.RingBufferSize = 10 }, records: 10, bytes: 16 << 20},
		{name: "queue_records", set: func(o *Options) { o.QueueRecords = 10 }, records: 10, bytes: 16 << 20},
		{name: "mixed", set: func(o *Options) { o.QueueRecords, o.BacklogMemcap = 10, 5000 }, records: 10, bytes: 5000},
		{name: "both bytes", set: func(o *Options) { o.QueueBytes, o.BacklogMemcap = 1, 1 },
			err: "`backlog_memcap' and `queue_bytes' are both given"},
		{name: "both records", set: func(o *Options) { o.QueueRecords, o.RingBufferSize = 1, 1 },
			err: "`ring_buffer_size' and `queue_records' are both given"},
		{name: "negative records", set: func(o *Options) { o.QueueRecords = -1 }, err: "queue_records"},
		{name: "negative bytes", set: func(o *Options) { o.QueueBytes = -1 }, err: "queue_bytes"},
		{name: "bad overflow", set: func(o *Options) { o.Overflow = "later" }, err: `overflow must be`},
		{name: "block", set: func(o *Options) { o.Overflow = "block" }, records: 1 << 18, bytes: 16 << 20, policy: sinkq.Block},
		{name: "spool without dir", set: func(o *Options) { o.Overflow = "spool" }, err: "needs a spool_dir"},
		{name: "relative spool", set: func(o *Options) { o.Overflow, o.SpoolDir = "spool", "rel" }, err: "absolute"},
		{name: "small spool", set: func(o *Options) { o.Overflow, o.SpoolDir, o.SpoolSize = "spool", "/s", 1000 },
			err: "spool_size"},
		{name: "spool", set: func(o *Options) { o.Overflow, o.SpoolDir = "spool", "/var/spool/x/" },
			records: 1 << 18, bytes: 16 << 20, policy: sinkq.SpoolPolicy, resource: "spool:/var/spool/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			o.Table, o.Procedure = "t", "INSERT"
			tc.set(&o)
			_, err := o.Check()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Check: %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			q := o.Queue()
			if q.QueueRecords != tc.records || q.QueueBytes != tc.bytes || q.Policy() != tc.policy {
				t.Errorf("queue %+v, want %d records, %d bytes, %v", q, tc.records, tc.bytes, tc.policy)
			}
			res := o.Resources()
			if tc.resource == "" && len(res) != 0 || tc.resource != "" && (len(res) != 1 || res[0] != tc.resource) {
				t.Errorf("resources %q, want %q", res, tc.resource)
			}
		})
	}
}

// TestOptionDocs: every option has a description, the queue options
// those of the network sinks but for the SQL bounds' defaults.
func TestOptionDocs(t *testing.T) {
	docs := OptionDocs()
	for k, v := range sinkq.OptionDocs() {
		d, ok := docs[k]
		switch {
		case !ok:
			t.Errorf("no doc for %s", k)
		case k == "spool_dir" || k == "spool_size":
			if d != v {
				t.Errorf("%s: %q, want the network sinks' %q", k, d, v)
			}
		}
	}
	for _, k := range []string{"queue_records", "queue_bytes"} {
		if !strings.Contains(docs[k], "`0`:") {
			t.Errorf("%s does not name its default: %q", k, docs[k])
		}
	}
}
