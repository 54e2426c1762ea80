package base

import "github.com/ulogd-go/ulogd/internal/keys"

// BASE's key tables: what it reads, what it decodes, in ulogd2's --info
// order. The decoding is in base.go.

// Input key positions.
const (
	inPkt = iota
	inPktLen
	inFamily
	inProtocol
	numInputs
)

var inputs = []keys.Spec{
	inPkt:      {Name: "raw.pkt", Type: keys.Raw},
	inPktLen:   {Name: "raw.pktlen", Type: keys.Uint32},
	inFamily:   {Name: "oob.family", Type: keys.Uint8},
	inProtocol: {Name: "oob.protocol", Type: keys.Uint16},
}

// Output key positions, in ulogd2's declaration order (spec Appendix A.2).
const (
	ipSaddr = iota
	ipDaddr
	ipProtocol
	ipTOS
	ipTTL
	ipTotLen
	ipIHL
	ipCsum
	ipID
	ipFragOff
	ip6PayloadLen
	ip6Priority
	ip6FlowLabel
	ip6HopLimit
	ip6NextHdr
	ip6FragOff
	ip6FragID
	tcpSport
	tcpDport
	tcpSeq
	tcpAckSeq
	tcpWindow
	tcpOffset
	tcpReserved
	tcpURG
	tcpURGP
	tcpACK
	tcpPSH
	tcpRST
	tcpSYN
	tcpFIN
	tcpRes1
	tcpRes2
	tcpCsum
	udpSport
	udpDport
	udpLen
	udpCsum
	icmpType
	icmpCode
	icmpEchoID
	icmpEchoSeq
	icmpGateway
	icmpFragMTU
	icmpCsum
	icmp6Type
	icmp6Code
	icmp6EchoID
	icmp6EchoSeq
	icmp6Csum
	aheSPI
	oobProtocol
	arpHWType
	arpProtoType
	arpOperation
	arpSHWAddr
	arpSaddr
	arpDHWAddr
	arpDaddr
	sctpSport
	sctpDport
	sctpCsum
	numOutputs
)

var outputs = []keys.Spec{
	ipSaddr:       {Name: "ip.saddr", Type: keys.IPAddr},
	ipDaddr:       {Name: "ip.daddr", Type: keys.IPAddr},
	ipProtocol:    {Name: "ip.protocol", Type: keys.Uint8},
	ipTOS:         {Name: "ip.tos", Type: keys.Uint8},
	ipTTL:         {Name: "ip.ttl", Type: keys.Uint8},
	ipTotLen:      {Name: "ip.totlen", Type: keys.Uint16},
	ipIHL:         {Name: "ip.ihl", Type: keys.Uint8},
	ipCsum:        {Name: "ip.csum", Type: keys.Uint16},
	ipID:          {Name: "ip.id", Type: keys.Uint16},
	ipFragOff:     {Name: "ip.fragoff", Type: keys.Uint16},
	ip6PayloadLen: {Name: "ip6.payloadlen", Type: keys.Uint16},
	ip6Priority:   {Name: "ip6.priority", Type: keys.Uint8},
	ip6FlowLabel:  {Name: "ip6.flowlabel", Type: keys.Uint32},
	ip6HopLimit:   {Name: "ip6.hoplimit", Type: keys.Uint8},
	ip6NextHdr:    {Name: "ip6.nexthdr", Type: keys.Uint8},
	ip6FragOff:    {Name: "ip6.fragoff", Type: keys.Uint16},
	ip6FragID:     {Name: "ip6.fragid", Type: keys.Uint32},
	tcpSport:      {Name: "tcp.sport", Type: keys.Uint16},
	tcpDport:      {Name: "tcp.dport", Type: keys.Uint16},
	tcpSeq:        {Name: "tcp.seq", Type: keys.Uint32},
	tcpAckSeq:     {Name: "tcp.ackseq", Type: keys.Uint32},
	tcpWindow:     {Name: "tcp.window", Type: keys.Uint16},
	tcpOffset:     {Name: "tcp.offset", Type: keys.Uint8},
	tcpReserved:   {Name: "tcp.reserved", Type: keys.Uint8},
	tcpURG:        {Name: "tcp.urg", Type: keys.Bool},
	tcpURGP:       {Name: "tcp.urgp", Type: keys.Uint16},
	tcpACK:        {Name: "tcp.ack", Type: keys.Bool},
	tcpPSH:        {Name: "tcp.psh", Type: keys.Bool},
	tcpRST:        {Name: "tcp.rst", Type: keys.Bool},
	tcpSYN:        {Name: "tcp.syn", Type: keys.Bool},
	tcpFIN:        {Name: "tcp.fin", Type: keys.Bool},
	tcpRes1:       {Name: "tcp.res1", Type: keys.Bool},
	tcpRes2:       {Name: "tcp.res2", Type: keys.Bool},
	tcpCsum:       {Name: "tcp.csum", Type: keys.Uint16},
	udpSport:      {Name: "udp.sport", Type: keys.Uint16},
	udpDport:      {Name: "udp.dport", Type: keys.Uint16},
	udpLen:        {Name: "udp.len", Type: keys.Uint16},
	udpCsum:       {Name: "udp.csum", Type: keys.Uint16},
	icmpType:      {Name: "icmp.type", Type: keys.Uint8},
	icmpCode:      {Name: "icmp.code", Type: keys.Uint8},
	icmpEchoID:    {Name: "icmp.echoid", Type: keys.Uint16},
	icmpEchoSeq:   {Name: "icmp.echoseq", Type: keys.Uint16},
	icmpGateway:   {Name: "icmp.gateway", Type: keys.IPAddr},
	icmpFragMTU:   {Name: "icmp.fragmtu", Type: keys.Uint16},
	icmpCsum:      {Name: "icmp.csum", Type: keys.Uint16},
	icmp6Type:     {Name: "icmpv6.type", Type: keys.Uint8},
	icmp6Code:     {Name: "icmpv6.code", Type: keys.Uint8},
	icmp6EchoID:   {Name: "icmpv6.echoid", Type: keys.Uint16},
	icmp6EchoSeq:  {Name: "icmpv6.echoseq", Type: keys.Uint16},
	icmp6Csum:     {Name: "icmpv6.csum", Type: keys.Uint16},
	aheSPI:        {Name: "ahesp.spi", Type: keys.Uint32},
	oobProtocol:   {Name: "oob.protocol", Type: keys.Uint16},
	arpHWType:     {Name: "arp.hwtype", Type: keys.Uint16},
	arpProtoType:  {Name: "arp.protocoltype", Type: keys.Uint16},
	arpOperation:  {Name: "arp.operation", Type: keys.Uint16},
	arpSHWAddr:    {Name: "arp.shwaddr", Type: keys.Raw},
	arpSaddr:      {Name: "arp.saddr", Type: keys.IPAddr},
	arpDHWAddr:    {Name: "arp.dhwaddr", Type: keys.Raw},
	arpDaddr:      {Name: "arp.daddr", Type: keys.IPAddr},
	sctpSport:     {Name: "sctp.sport", Type: keys.Uint16},
	sctpDport:     {Name: "sctp.dport", Type: keys.Uint16},
	sctpCsum:      {Name: "sctp.csum", Type: keys.Uint32},
}
