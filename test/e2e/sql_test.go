package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ulogd-go/ulogd/internal/testpg"
)

const (
	pgFlatSchema = "/usr/share/doc/ulogd2/pgsql-ulogd2-flat.sql.gz"
	pgFullSchema = "/usr/share/doc/ulogd2/pgsql-ulogd2.sql.gz"
)

// pgRows returns the rows of query q in database db, each row's columns
// joined by '|' (NULL as the empty string), sorted.
func pgRows(t *testing.T, s *testpg.Server, db, q string) []string {
	t.Helper()
	rows, err := s.Connect(db).Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		vals, err := r.Values()
		if err != nil {
			return "", err
		}
		f := make([]string, len(vals))
		for i, v := range vals {
			if v != nil {
				f[i] = fmt.Sprint(v)
			}
		}
		return strings.Join(f, "|"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// waitRows waits until query q (a count) gives at least n in every db.
func waitRows(t *testing.T, s *testpg.Server, q string, n int, dbs ...string) {
	t.Helper()
	WaitFor(t, 20*time.Second, fmt.Sprintf("%d rows of %q in %v", n, q, dbs), func() bool {
		for _, db := range dbs {
			var got int
			if err := s.Connect(db).QueryRow(context.Background(), q).Scan(&got); err != nil || got < n {
				return false
			}
		}
		return true
	})
}

// ctColumns are the columns of ulog2_ct compared (all but the id).
const ctColumns = `oob_family, host(orig_ip_saddr_str), host(orig_ip_daddr_str), orig_ip_protocol,
	orig_l4_sport, orig_l4_dport, orig_raw_pktlen, orig_raw_pktcount,
	host(reply_ip_saddr_str), host(reply_ip_daddr_str), reply_ip_protocol, reply_l4_sport, reply_l4_dport,
	reply_raw_pktlen, reply_raw_pktcount, icmp_code, icmp_type, ct_mark,
	flow_end_sec, flow_end_usec, ct_event,
	flow_start_sec is not null, ` + startSec + `, ` + startUsec

// ctColumns leaves out the start time of the rows whose start each daemon
// takes from its clock when it reads the NEW event (docs/compat.md T7):
// NEW rows in event mode, every row in hash mode (%[1]s is the condition),
// and checks instead that it is there.
const (
	startSec  = "case when %[1]s then null else flow_start_sec end"
	startUsec = "case when %[1]s then null else flow_start_usec end"
)

// TestSQLDiffFlows runs the reference and ours on the same conntrack
// events, each writing into its own databases of one PostgreSQL server:
// the flat table ulog2_ct (procedure INSERT) and the stored function
// INSERT_CT of the full schema. The rows must be the same.
func TestSQLDiffFlows(t *testing.T) {
	RequireRoot(t)
	RequireTools(t, baseTools...)
	for _, tc := range []struct {
		name    string
		opts    NFCTOptions
		barrier string
		events  int // rows per flow
	}{
		{"events", NFCTOptions{EventMask: 5, HashEnable: Int(0)}, "DESTROY", 2},
		{"hash", NFCTOptions{}, "DESTROY", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testpg.Start(t)
			for _, who := range []string{"ref", "ours"} {
				s.CreateDB(who+"flat", pgFlatSchema)
				s.CreateDB(who+"full", pgFullSchema)
			}
			p := NewNSPair(t, NSOptions{Conntrack: true, Accounting: true, Timestamps: true})
			both := StartBoth(t, p, func(logfile, out string) string {
				who := "ours"
				if strings.Contains(logfile, "ref.log") {
					who = "ref"
				}
				c := CanonicalConfig(logfile, out, tc.opts)
				c = strings.Replace(c, "stack=ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU\n",
					"stack=ct1:NFCT,ip2str1:IP2STR,print1:PRINTFLOW,emu1:LOGEMU\n"+
						"stack=ct1:NFCT,ip2str2:IP2STR,pg1:PGSQL\n"+
						"stack=ct1:NFCT,ip2str3:IP2STR,pg2:PGSQL\n", 1)
				c += fmt.Sprintf("\n[pg1]\nhost=%q\nuser=\"postgres\"\ndb=%q\ntable=\"ulog2_ct\"\nprocedure=\"INSERT\"\n", s.Dir, who+"flat")
				c += fmt.Sprintf("\n[pg2]\nhost=%q\nuser=\"postgres\"\ndb=%q\ntable=\"ulog2_ct\"\nprocedure=\"INSERT_CT\"\n", s.Dir, who+"full")
				return c
			})
			flows := standardTraffic(t, p)
			p.Barrier(t, tc.barrier, both.RefOut, both.OursOut)
			// The barrier flow's rows come after every other row of each daemon.
			marker := fmt.Sprintf("select count(*) from ulog2_ct where orig_l4_dport = %d", BarrierPort)
			waitRows(t, s, marker, tc.events, "refflat", "oursflat", "reffull", "oursfull")
			clock := "ct_event = 1"
			if tc.name == "hash" {
				clock = "true"
			}
			q := "select " + fmt.Sprintf(ctColumns, clock) + fmt.Sprintf(" from ulog2_ct where orig_l4_dport is distinct from %d", BarrierPort)
			for _, db := range []string{"flat", "full"} {
				ref, ours := pgRows(t, s, "ref"+db, q), pgRows(t, s, "ours"+db, q)
				if diff := DiffMultiset(ref, ours); diff != "" {
					t.Errorf("%s: rows differ (-ref +ours):\n%s", db, diff)
				}
				if len(ours) != tc.events*len(flows) {
					t.Errorf("%s: %d rows, want %d:\n%s", db, len(ours), tc.events*len(flows), strings.Join(ours, "\n"))
				}
				v6 := 0
				for _, r := range ours {
					v6 += btoi(strings.HasPrefix(r, "10|"))
				}
				if v6 != tc.events*3 {
					t.Errorf("%s: %d IPv6 rows, want %d", db, v6, tc.events*3)
				}
			}
		})
	}
}

// ulogColumns are the columns of the view ulog compared: all but the id.
// Normalised (docs/compat.md): the time of sent packets, which each daemon
// stamps when it reads them, and the microseconds of every stamp (each
// group's copy of a packet is stamped on its own) are only checked to be
// there (T7); icmpv6_csum is %[1]s, the reference's value byte-swapped (P2).
const ulogColumns = `oob_time_sec is not null, oob_time_usec is not null,
	case when oob_out <> '' then null else oob_time_sec end,
	oob_hook, oob_prefix, oob_mark, oob_in, oob_out, oob_family,
	host(ip_saddr_str), host(ip_daddr_str), ip_protocol, ip_tos, ip_ttl, ip_totlen, ip_ihl, ip_csum, ip_id, ip_fragoff,
	ip6_payloadlen, ip6_priority, ip6_hoplimit, ip6_flowlabel, ip6_fragoff, ip6_fragid,
	tcp_sport, tcp_dport, tcp_seq, tcp_ackseq, tcp_window, tcp_urg, tcp_urgp, tcp_ack, tcp_psh, tcp_rst, tcp_syn, tcp_fin,
	udp_sport, udp_dport, udp_len, icmp_type, icmp_code, icmp_echoid, icmp_echoseq, icmp_gateway, icmp_fragmtu,
	icmpv6_type, icmpv6_code, icmpv6_echoid, icmpv6_echoseq, %[1]s,
	raw_type, mac_str, mac_saddr_str, mac_daddr_str, oob_protocol, raw_label, sctp_sport, sctp_dport, sctp_csum`

// TestSQLDiffPackets runs the reference and ours on the same packets (one
// nft rule logs each to the reference's group and to ours), both writing
// through INSERT_PACKET_FULL of the full schema, each into its own
// database, with the canonical packet stack and HWHDR. The rows of the
// view ulog must be the same, IPv4 and IPv6.
func TestSQLDiffPackets(t *testing.T) {
	RequireRoot(t)
	RequireTools(t, baseTools...)
	const refGroup, oursGroup = 2, 1
	s := testpg.Start(t)
	s.CreateDB("refpkt", pgFullSchema)
	s.CreateDB("ourspkt", pgFullSchema)
	p := NewPacketNS(t, PacketRules{Groups: []int{refGroup, oursGroup}})
	both := StartBothPacket(t, p, refGroup, oursGroup, func(group int, logfile, out string) string {
		db := "ourspkt"
		if group == refGroup {
			db = "refpkt"
		}
		return PacketConfig{
			Logfile: logfile, Group: group, Outputs: map[string]string{"emu1": out},
			Stacks: []string{CanonicalPacketStack, "log1:NFLOG,base2:BASE,ifi2:IFINDEX,ip2str2:IP2STR,mac2:HWHDR,pg1:PGSQL"},
			Sections: []string{fmt.Sprintf("[pg1]\nhost=%q\nuser=\"postgres\"\ndb=%q\ntable=\"ulog\"\nprocedure=\"INSERT_PACKET_FULL\"\n", s.Dir, db)},
		}.String()
	})
	p.Ping(t, false, 2)
	p.Ping(t, true, 2)
	p.UDP(t, false, 40003, 5002, "udp over IPv4\n")
	p.UDP(t, true, 40004, 5002, "udp over IPv6\n")
	p.TCP(t, false, 40001, 5001, "hello over IPv4\n")
	p.TCP(t, true, 40002, 5001, "hello over IPv6\n")
	got := p.PacketBarrier(t, both.RefOut, both.OursOut)
	waitRows(t, s, fmt.Sprintf("select count(*) from ulog where udp_dport = %d", BarrierPort), 1, "refpkt", "ourspkt")
	where := fmt.Sprintf(" from ulog where udp_dport is distinct from %d", BarrierPort)
	ref := pgRows(t, s, "refpkt", "select "+fmt.Sprintf(ulogColumns, "((icmpv6_csum & 255) << 8) | (icmpv6_csum >> 8)")+where)
	ours := pgRows(t, s, "ourspkt", "select "+fmt.Sprintf(ulogColumns, "icmpv6_csum")+where)
	if diff := DiffMultiset(ref, ours); diff != "" {
		t.Errorf("rows differ (-ref +ours):\n%s", diff)
	}
	if len(ours) != len(got[1]) || len(ours) == 0 {
		t.Errorf("%d rows, but %d packets logged by LOGEMU", len(ours), len(got[1]))
	}
	v6 := 0
	for _, r := range ours {
		v6 += btoi(strings.Contains(r, "|10|fd99::"))
	}
	if v6 == 0 || v6 == len(ours) {
		t.Errorf("%d IPv6 rows of %d", v6, len(ours))
	}
}
