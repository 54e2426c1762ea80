package keys

import "net/netip"

// AppendIP appends the text form of an address held as 4 (IPv4, network
// order) or 16 (IPv6) bytes: "10.0.0.1", "fd00::1". Other lengths append
// nothing. It does not allocate.
func AppendIP(dst, b []byte) []byte {
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b)).AppendTo(dst)
	case 16:
		// A v4-mapped address keeps its mapped form ("::ffff:10.0.0.1"),
		// as inet_ntop prints it.
		return netip.AddrFrom16([16]byte(b)).AppendTo(dst)
	}
	return dst
}
