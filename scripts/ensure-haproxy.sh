#!/usr/bin/env bash
# `make cluster`, the cluster tests and the load test put HAProxy (Debian's package) in front
# of the gateways. Installs it with apt when missing and we are root (CI); otherwise says how.
set -euo pipefail
haproxy="${HAPROXY_PATH:-/usr/sbin/haproxy}"
[ -x "$haproxy" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> Installing Debian's haproxy for the cluster"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy >/dev/null
  [ -x "$haproxy" ] && exit 0
fi
echo "The cluster needs HAProxy at $haproxy: install Debian's package (sudo apt-get install haproxy)." >&2
exit 1
