package plugin

// Ulogd2Plugin is one plugin that ulogd2 ships.
type Ulogd2Plugin struct {
	Name string // as written in stack= lines, e.g. "NFCT"
	Kind Kind
	File string // the shared object, e.g. "ulogd_inpflow_NFCT.so"
	// Removed says in which ulogd2 version the plugin went away, or is
	// empty when 2.0.9 still ships it.
	Removed string
}

// Ulogd2Plugins returns ulogd2's plugins, sources then filters then sinks:
// the 2.0.9 set, plus ULOG, which 2.0.8 (Debian 12) still ships. Whether ulogd-go has one is a Registry
// question (Lookup); the root README's plugin table is built from both.
// The slice is new at every call.
func Ulogd2Plugins() []Ulogd2Plugin {
	return []Ulogd2Plugin{
		{"NFCT", Source, "ulogd_inpflow_NFCT.so", ""},
		{"NFACCT", Source, "ulogd_inpflow_NFACCT.so", ""},
		{"NFLOG", Source, "ulogd_inppkt_NFLOG.so", ""},
		{"UNIXSOCK", Source, "ulogd_inppkt_UNIXSOCK.so", ""},
		{"ULOG", Source, "ulogd_inppkt_ULOG.so", "2.0.9"},
		{"BASE", Filter, "ulogd_raw2packet_BASE.so", ""},
		{"IFINDEX", Filter, "ulogd_filter_IFINDEX.so", ""},
		{"IP2STR", Filter, "ulogd_filter_IP2STR.so", ""},
		{"IP2BIN", Filter, "ulogd_filter_IP2BIN.so", ""},
		{"IP2HBIN", Filter, "ulogd_filter_IP2HBIN.so", ""},
		{"PRINTPKT", Filter, "ulogd_filter_PRINTPKT.so", ""},
		{"PRINTFLOW", Filter, "ulogd_filter_PRINTFLOW.so", ""},
		{"HWHDR", Filter, "ulogd_filter_HWHDR.so", ""},
		{"MARK", Filter, "ulogd_filter_MARK.so", ""},
		{"PWSNIFF", Filter, "ulogd_filter_PWSNIFF.so", ""},
		{"LOGEMU", Sink, "ulogd_output_LOGEMU.so", ""},
		{"SYSLOG", Sink, "ulogd_output_SYSLOG.so", ""},
		{"OPRINT", Sink, "ulogd_output_OPRINT.so", ""},
		{"GPRINT", Sink, "ulogd_output_GPRINT.so", ""},
		{"NACCT", Sink, "ulogd_output_NACCT.so", ""},
		{"JSON", Sink, "ulogd_output_JSON.so", ""},
		{"XML", Sink, "ulogd_output_XML.so", ""},
		{"PCAP", Sink, "ulogd_output_PCAP.so", ""},
		{"SQLITE3", Sink, "ulogd_output_SQLITE3.so", ""},
		{"PGSQL", Sink, "ulogd_output_PGSQL.so", ""},
		{"MYSQL", Sink, "ulogd_output_MYSQL.so", ""},
		{"DBI", Sink, "ulogd_output_DBI.so", ""},
		{"GRAPHITE", Sink, "ulogd_output_GRAPHITE.so", ""},
		{"IPFIX", Sink, "ulogd_output_IPFIX.so", ""},
	}
}

// Ulogd2 returns the ulogd2 plugin called name (exact, case-sensitive, as
// in stack= lines), if ulogd2 has one.
func Ulogd2(name string) (Ulogd2Plugin, bool) {
	for _, p := range Ulogd2Plugins() {
		if p.Name == name {
			return p, true
		}
	}
	return Ulogd2Plugin{}, false
}
