#!/usr/bin/env bash
# ensure-debian-package.sh BINARY PACKAGE WHAT: the tests and tools that need a program from
# Debian (chromium for the browser tests, docker-compose for the deployment tests, haproxy
# for the cluster) find it at BINARY. Installs PACKAGE with apt when it is missing and we are
# root (CI); otherwise says how. BINARY may be overridden by the caller's variable
# (CHROMIUM_PATH, DOCKER_COMPOSE, HAPROXY_PATH: see the Makefile).
set -euo pipefail
binary="$1" package="$2" what="$3"
[ -x "$binary" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> Installing Debian's $package for $what"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null
  [ -x "$binary" ] && exit 0
fi
echo "$what needs $binary: install Debian's package (sudo apt-get install $package)" >&2
echo "or point the Makefile's variable for it at another binary." >&2
exit 1
