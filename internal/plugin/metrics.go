package plugin

// Metric is one value an instance reports about itself, read when the
// metrics are scraped (never per event). Name follows Prometheus' naming
// conventions without the "ulogd_" prefix the daemon adds: a counter's
// name ends in "_total", a unit is spelled out ("_bytes", "_seconds").
// The daemon adds the labels plugin_instance and plugin.
type Metric struct {
	Name  string
	Help  string // one line; the well-known names below have theirs
	Gauge bool   // a value that goes down as well as up; else a counter
	Value float64
}

// Well-known metric names. An instance that reports one of these replaces
// the value the daemon would derive itself (records written of a sink, for
// instance, which is otherwise what it received less what it stopped,
// failed or dropped).
const (
	MetricDecodeErrors = "decode_errors_total"         // source: messages it could not decode
	MetricWritten      = "records_written_total"       // sink: records that reached the file or peer
	MetricDropped      = "records_dropped_total"       // sink: records accepted, then discarded
	MetricWriteErrors  = "write_errors_total"          // sink: failed writes
	MetricReconnects   = "reconnects_total"            // sink: connections made again to the peer
	MetricQueueDepth   = "queue_depth_records"         // sink: records waiting in its queue
	MetricQueueBytes   = "queue_bytes"                 // sink: bytes waiting in its queue
	MetricSpoolBytes   = "spool_bytes"                 // sink: bytes in its disk spool
	MetricSpoolRecords = "spool_records"               // sink: records in its disk spool
	MetricSocketBuffer = "socket_receive_buffer_bytes" // source: the netlink socket's SO_RCVBUF
)

// Metricer is implemented by instances with counters of their own (a
// sink's queue, a source's socket). Metrics is called from the scraping
// goroutine, concurrently with the events: read atomics, take no lock the
// event path holds for long. Counters must never go backwards while the
// instance lives; the daemon keeps them monotonic across reloads.
type Metricer interface {
	Metrics() []Metric
}

// Checker is implemented by instances that can be up and still unable to
// do their work, such as a sink whose peer is unreachable. Check returns
// nil when the instance works, else what is wrong; the daemon's readiness
// path (/ready) fails while any instance's Check does. Called from the
// HTTP goroutine, like Metricer.
type Checker interface {
	Check() error
}
