#!/usr/bin/env bash
# Builds ulogd-go and runs it in the foreground on the canonical conntrack
# stack (contrib/examples/ulogd.conf): every new connection becomes a line
# in /var/log/ulog/syslogemu.log. Run as root from the repository root:
#
#   sudo bash scripts/run-canonical.sh
#
# Stop it with Ctrl-C. Set ULOGD_CONF to run another configuration.
#
# The kernel tracks connections only where a firewall rule uses conntrack.
# If no rule does (a fresh machine), this script adds a small nft table,
# "ulogd_go_demo", that only counts new connections, and deletes it again
# when the daemon stops.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:/usr/sbin:/sbin:$PATH
conf=${ULOGD_CONF:-contrib/examples/ulogd.conf}

if ! command -v nft >/dev/null || ! command -v conntrack >/dev/null; then
	echo "+ installing nftables and conntrack"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nftables conntrack >/dev/null
fi

echo "+ building bin/ulogd"
CGO_ENABLED=0 go build -trimpath -o bin/ulogd ./cmd/ulogd

echo "+ enabling conntrack accounting and timestamps (contrib/sysctl/99-ulogd-conntrack.conf)"
sysctl -q -p contrib/sysctl/99-ulogd-conntrack.conf || echo "  (could not set them: counters will read 0)"

if ! nft list ruleset 2>/dev/null | grep -qE '\bct (state|status|mark|direction)\b|\b(s|d)nat\b|masquerade'; then
	echo "+ no firewall rule uses conntrack: adding the demo table ulogd_go_demo (removed on exit)"
	nft -f - <<'EOF'
table inet ulogd_go_demo {
	chain output {
		type filter hook output priority 0;
		ct state new counter
	}
	chain input {
		type filter hook input priority 0;
		ct state new counter
	}
}
EOF
	trap 'nft delete table inet ulogd_go_demo 2>/dev/null || true' EXIT
fi

mkdir -p /var/log/ulog
bin/ulogd --check -c "$conf"
echo "+ bin/ulogd -v -c $conf   (lines go to /var/log/ulog/syslogemu.log; Ctrl-C stops)"
bin/ulogd -v -c "$conf"
