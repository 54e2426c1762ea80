package graphite

import "strconv"

// appendLines appends the two plaintext-protocol lines of one accounting
// object, as ulogd2 sends them in one write:
//
//	<prefix>.<name>.pkts <pkts> <ts>
//	<prefix>.<name>.bytes <bytes> <ts>
//
// Without a prefix the name starts the path (ulogd2 writes a leading dot:
// compat.md G2). Bytes of the name that would break a line (whitespace,
// control characters) are written as '_' (G3).
func appendLines(b []byte, prefix string, name []byte, pkts, bytes, ts uint64) []byte {
	b = appendLine(b, prefix, name, ".pkts ", pkts, ts)
	return appendLine(b, prefix, name, ".bytes ", bytes, ts)
}

func appendLine(b []byte, prefix string, name []byte, what string, v, ts uint64) []byte {
	if prefix != "" {
		b = append(b, prefix...)
		b = append(b, '.')
	}
	for _, c := range name {
		if c <= ' ' || c == 0x7f {
			c = '_'
		}
		b = append(b, c)
	}
	b = append(b, what...)
	b = strconv.AppendUint(b, v, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, ts, 10)
	return append(b, '\n')
}

// validPath reports whether s can stand in a metric path: no whitespace
// and no control characters.
func validPath(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	return true
}
