#!/usr/bin/env bash
# Builds ulogd-go and runs it in the foreground on the canonical conntrack
# stack (contrib/examples/ulogd.conf): every new connection becomes a line
# in /var/log/ulog/syslogemu.log. Run as root from the repository root:
#
#   sudo bash scripts/run-canonical.sh
#
# Stop it with Ctrl-C. Set ULOGD_CONF to run another configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
conf=${ULOGD_CONF:-contrib/examples/ulogd.conf}

echo "+ building bin/ulogd"
CGO_ENABLED=0 go build -trimpath -o bin/ulogd ./cmd/ulogd

echo "+ enabling conntrack accounting and timestamps (contrib/sysctl/99-ulogd-conntrack.conf)"
sysctl -q -p contrib/sysctl/99-ulogd-conntrack.conf || echo "  (could not set them: counters will read 0)"

mkdir -p /var/log/ulog
bin/ulogd --check -c "$conf"
echo "+ bin/ulogd -v -c $conf   (lines go to /var/log/ulog/syslogemu.log; Ctrl-C stops)"
exec bin/ulogd -v -c "$conf"
