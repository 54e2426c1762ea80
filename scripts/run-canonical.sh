#!/usr/bin/env bash
# Builds ulogd-go and runs it in the foreground on the canonical conntrack
# stack (contrib/examples/ulogd.conf): every new connection becomes a line
# in /var/log/ulog/syslogemu.log. Run from the repository root, as root:
#
#   bash scripts/run-canonical.sh
#
# or, as a user with sudo rights, `sudo bash scripts/run-canonical.sh`.
# Stop it with Ctrl-C or `kill <pid of the script>` (SIGTERM, SIGINT and
# SIGHUP stop the daemon too). Set ULOGD_CONF to run another configuration.
#
# What it changes, and undoes when the daemon stops:
#   - The kernel tracks connections only where a firewall rule uses
#     conntrack. If no rule does (a fresh machine), it adds a small nft
#     table, "ulogd_go_demo", that only counts new connections, and deletes
#     it again.
#   - It sets net.netfilter.nf_conntrack_acct and nf_conntrack_timestamp
#     to 1 (contrib/sysctl/99-ulogd-conntrack.conf) and sets them back to
#     their previous values.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:/usr/sbin:/sbin:$PATH
conf=${ULOGD_CONF:-contrib/examples/ulogd.conf}

# What to undo at exit, filled in as the script changes things.
demo_table=0
declare -A sysctl_old=()
cleanup() {
	if [ "$demo_table" = 1 ]; then
		echo "+ deleting the demo table ulogd_go_demo"
		nft delete table inet ulogd_go_demo 2>/dev/null || true
	fi
	local k
	for k in "${!sysctl_old[@]}"; do
		echo "+ restoring $k=${sysctl_old[$k]}"
		sysctl -q -w "$k=${sysctl_old[$k]}" || true
	done
}
trap cleanup EXIT
# Until the daemon runs, a signal ends the script (and runs cleanup). Once
# it runs ($! is its pid: the script starts no other background job), the
# signals that stop the script are passed on to it as SIGTERM (SIGHUP would
# only make it reopen its files), and the script waits for its exit.
on_signal() {
	if [ -n "${!:-}" ]; then
		kill -TERM "$!" 2>/dev/null || true
	else
		exit "$1"
	fi
}
trap 'on_signal 129' HUP
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

if ! command -v nft >/dev/null || ! command -v conntrack >/dev/null; then
	echo "+ installing nftables and conntrack"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nftables conntrack >/dev/null
fi

echo "+ building bin/ulogd"
CGO_ENABLED=0 go build -trimpath -o bin/ulogd ./cmd/ulogd

if ! nft list ruleset 2>/dev/null | grep -qE '\bct (state|status|mark|direction)\b|\b(s|d)nat\b|masquerade'; then
	echo "+ no firewall rule uses conntrack: adding the demo table ulogd_go_demo (deleted on exit)"
	demo_table=1
	nft -f - <<'NFT'
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
NFT
fi

# After the table: a conntrack rule loads nf_conntrack, which creates the keys.
echo "+ enabling conntrack accounting and timestamps (contrib/sysctl/99-ulogd-conntrack.conf; restored on exit)"
for k in net.netfilter.nf_conntrack_acct net.netfilter.nf_conntrack_timestamp; do
	if old=$(sysctl -n "$k" 2>/dev/null) && [ "$old" != 1 ]; then
		sysctl_old[$k]=$old
		sysctl -q -w "$k=1" || echo "  (could not set $k: counters will read 0)"
	elif [ -z "${old:-}" ]; then
		echo "  ($k does not exist: is nf_conntrack loaded? counters will read 0)"
	fi
done

mkdir -p /var/log/ulog
bin/ulogd --check -c "$conf"
echo "+ bin/ulogd -v -c $conf   (lines go to /var/log/ulog/syslogemu.log; Ctrl-C stops)"
if [ "$demo_table" = 1 ]; then
	echo "  The demo table tracks only connections made from now on (so NFCT notes"
	echo "  that no connection is tracked yet). Make one with ping -c 1 127.0.0.1"
	echo "  and it appears in the file."
fi

# The daemon runs as a child so that cleanup can run after it.
bin/ulogd -v -c "$conf" &
daemon=$!
while kill -0 "$daemon" 2>/dev/null; do
	wait "$daemon" || true
done
status=0
wait "$daemon" || status=$?
exit "$status"
