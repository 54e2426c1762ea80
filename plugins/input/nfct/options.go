package nfct

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/ulogd-go/ulogd/internal/config"
)

// Config holds the options of an NFCT instance, in ulogd's --info order and
// with ulogd's defaults.
type Config struct {
	PollInterval      int    `ulogd:"pollinterval"`
	HashEnable        int    `ulogd:"hash_enable"`
	HashBuckets       int    `ulogd:"hash_buckets"`
	HashMaxEntries    int    `ulogd:"hash_max_entries"`
	EventMask         int    `ulogd:"event_mask"`
	BufferSize        int    `ulogd:"netlink_socket_buffer_size"`
	BufferMaxSize     int    `ulogd:"netlink_socket_buffer_maxsize"`
	ResyncTimeout     int    `ulogd:"netlink_resync_timeout"`
	Reliable          int    `ulogd:"reliable"`
	AcceptSrcFilter   string `ulogd:"accept_src_filter"`
	AcceptDstFilter   string `ulogd:"accept_dst_filter"`
	AcceptProtoFilter string `ulogd:"accept_proto_filter"`
}

// defaultConfig returns ulogd's defaults.
func defaultConfig() *Config {
	return &Config{
		PollInterval:   0,
		HashEnable:     1,
		HashBuckets:    8192,
		HashMaxEntries: 32768,
		EventMask:      5,
		ResyncTimeout:  60,
	}
}

// Event mask bits (ulogd's event_mask option). ulogd2 hands the mask to
// the kernel as a legacy netlink group mask (nl_groups: bit g-1 is
// nfnetlink group g), so every value is accepted; only the three conntrack
// event groups are joined. See extraMaskBits for the other bits.
const (
	maskNew     = 0x1 // NFNLGRP_CONNTRACK_NEW
	maskUpdate  = 0x2 // NFNLGRP_CONNTRACK_UPDATE
	maskDestroy = 0x4 // NFNLGRP_CONNTRACK_DESTROY
)

// nfnlGroups names the nfnetlink multicast groups (enum nfnetlink_groups)
// by their event_mask bit.
var nfnlGroups = [...]string{
	3: "NFNLGRP_CONNTRACK_EXP_NEW, expectation NEW events",
	4: "NFNLGRP_CONNTRACK_EXP_UPDATE, expectation UPDATE events",
	5: "NFNLGRP_CONNTRACK_EXP_DESTROY, expectation DESTROY events",
	6: "NFNLGRP_NFTABLES, nftables ruleset changes",
	7: "NFNLGRP_ACCT_QUOTA, nfacct quota notifications",
	8: "NFNLGRP_NFTRACE, nftables trace events",
}

// extraMaskBits describes the bits of event_mask beyond NEW, UPDATE and
// DESTROY, each as what it is in the kernel's nfnetlink group numbering,
// or "" when there are none. Guides describe 0x08-0x80 as "assured",
// "confirmed", "expectation", "helper" or "destroy by GC"; none of them
// is a conntrack event ulogd logs.
func extraMaskBits(mask int) string {
	var parts []string
	for bit := 3; bit < 32; bit++ {
		if uint32(mask)&(1<<bit) == 0 {
			continue
		}
		what := "no nfnetlink group (the kernel ignores it)"
		if bit < len(nfnlGroups) {
			what = "nfnetlink group " + strconv.Itoa(bit+1) + " (" + nfnlGroups[bit] + ")"
		}
		parts = append(parts, fmt.Sprintf("0x%x is %s", uint32(1)<<bit, what))
	}
	return strings.Join(parts, "; ")
}

// validate checks the numeric options. It is pure.
func (c *Config) validate() error {
	var errs []error
	if c.PollInterval < 0 {
		errs = append(errs, config.OptionErrorf("pollinterval", "pollinterval=%d: must be 0 (event mode) or a number of seconds", c.PollInterval))
	}
	if c.PollInterval > 0 && c.HashEnable == 0 {
		errs = append(errs, config.OptionErrorf("pollinterval", "NFCT polling mode requires the hashtable (pollinterval>0 needs hash_enable=1)"))
	}
	if c.HashEnable != 0 {
		if c.HashBuckets <= 0 {
			errs = append(errs, config.OptionErrorf("hash_buckets", "hash_buckets=%d: must be positive", c.HashBuckets))
		}
		if c.HashMaxEntries <= 0 {
			errs = append(errs, config.OptionErrorf("hash_max_entries", "hash_max_entries=%d: must be positive", c.HashMaxEntries))
		}
	}
	if c.BufferSize < 0 {
		errs = append(errs, config.OptionErrorf("netlink_socket_buffer_size", "netlink_socket_buffer_size=%d: must not be negative", c.BufferSize))
	}
	if c.BufferMaxSize < 0 {
		errs = append(errs, config.OptionErrorf("netlink_socket_buffer_maxsize", "netlink_socket_buffer_maxsize=%d: must not be negative", c.BufferMaxSize))
	}
	if c.ResyncTimeout < 0 {
		errs = append(errs, config.OptionErrorf("netlink_resync_timeout", "netlink_resync_timeout=%d: must not be negative", c.ResyncTimeout))
	}
	return errors.Join(errs...)
}

// parsePrefixes parses a comma-separated list of ADDR/LEN entries (IPv4 or
// IPv6). Every entry needs its own /LEN, as in ulogd; the error names the
// option and the offending entry.
func parsePrefixes(option, s string) ([]netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []netip.Prefix
	for _, ent := range strings.Split(s, ",") {
		ent = strings.TrimSpace(ent)
		if ent == "" {
			return nil, config.OptionErrorf(option, "%s=%q: empty entry in the list", option, s)
		}
		if !strings.Contains(ent, "/") {
			return nil, config.OptionErrorf(option, "%s: entry %q: no network specified (every entry needs its own /prefix-length, e.g. %s/32)", option, ent, ent)
		}
		p, err := netip.ParsePrefix(ent)
		if err != nil {
			return nil, config.OptionErrorf(option, "%s: entry %q is not ADDRESS/LENGTH (IPv4 or IPv6): %v", option, ent, err)
		}
		if p.Addr().Is4In6() {
			return nil, config.OptionErrorf(option, "%s: entry %q: IPv4-mapped IPv6 prefixes are not supported, write the IPv4 prefix", option, ent)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// protoResolver maps a protocol name to its number.
type protoResolver func(name string) (uint8, bool)

// builtinProtocols is used when /etc/protocols is missing.
var builtinProtocols = map[string]uint8{
	"icmp":      1,
	"tcp":       6,
	"udp":       17,
	"dccp":      33,
	"gre":       47,
	"esp":       50,
	"ah":        51,
	"ipv6-icmp": 58,
	"icmpv6":    58,
	"sctp":      132,
	"udplite":   136,
}

func builtinProto(name string) (uint8, bool) {
	n, ok := builtinProtocols[strings.ToLower(name)]
	return n, ok
}

// parseProtocolsFile reads a protocols(5) file: "name number aliases… #
// comment". Names and aliases are stored lower-case; the first entry wins.
func parseProtocolsFile(r io.Reader) (map[string]uint8, error) {
	m := make(map[string]uint8)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 8)
		if err != nil {
			continue
		}
		for _, name := range append(f[:1:1], f[2:]...) {
			name = strings.ToLower(name)
			if _, dup := m[name]; !dup {
				m[name] = uint8(n)
			}
		}
	}
	return m, sc.Err()
}

// systemProtocols returns a resolver backed by the protocols file at path,
// falling back to the built-in table when the file cannot be read or does
// not name the protocol.
func systemProtocols(path string) protoResolver {
	var m map[string]uint8
	if f, err := os.Open(path); err == nil {
		m, _ = parseProtocolsFile(f)
		f.Close()
	}
	return func(name string) (uint8, bool) {
		if n, ok := m[strings.ToLower(name)]; ok {
			return n, true
		}
		return builtinProto(name)
	}
}

// parseProtocols parses a comma-separated list of protocol names or
// numbers. A nil resolve accepts any syntactically valid name without
// resolving it (used by the pure config check, where reading
// /etc/protocols is not allowed).
func parseProtocols(s string, resolve protoResolver) (nums []uint8, names []string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil, nil
	}
	for _, ent := range strings.Split(s, ",") {
		ent = strings.TrimSpace(ent)
		if ent == "" {
			return nil, nil, config.OptionErrorf("accept_proto_filter", "accept_proto_filter=%q: empty entry in the list", s)
		}
		if ent[0] >= '0' && ent[0] <= '9' {
			n, err := strconv.ParseUint(ent, 10, 8)
			if err != nil {
				return nil, nil, config.OptionErrorf("accept_proto_filter", "accept_proto_filter: entry %q is not a protocol number (0-255)", ent)
			}
			nums = append(nums, uint8(n))
			names = append(names, ent)
			continue
		}
		if strings.ContainsAny(ent, " \t/") {
			return nil, nil, config.OptionErrorf("accept_proto_filter", "accept_proto_filter: entry %q is not a protocol name", ent)
		}
		if resolve == nil {
			continue
		}
		n, ok := resolve(ent)
		if !ok {
			return nil, nil, config.OptionErrorf("accept_proto_filter", "accept_proto_filter: unknown protocol %q (not in /etc/protocols; use a name from it or a number)", ent)
		}
		nums = append(nums, n)
		names = append(names, ent)
	}
	return nums, names, nil
}

// filters holds the parsed accept_* options.
type filters struct {
	src, dst   []netip.Prefix
	protos     []uint8
	protoNames []string // as written, for the log
}

func (f filters) empty() bool { return len(f.src) == 0 && len(f.dst) == 0 && len(f.protos) == 0 }

// parseFilters parses the three accept_* options, collecting every error.
func parseFilters(c *Config, resolve protoResolver) (filters, error) {
	var f filters
	var errs []error
	var err error
	if f.src, err = parsePrefixes("accept_src_filter", c.AcceptSrcFilter); err != nil {
		errs = append(errs, err)
	}
	if f.dst, err = parsePrefixes("accept_dst_filter", c.AcceptDstFilter); err != nil {
		errs = append(errs, err)
	}
	if f.protos, f.protoNames, err = parseProtocols(c.AcceptProtoFilter, resolve); err != nil {
		errs = append(errs, err)
	}
	return f, errors.Join(errs...)
}
