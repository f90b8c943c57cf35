#!/usr/bin/env bash
# tests/test_deploy.py validates deploy/compose.yml with `docker-compose config` (no Docker
# daemon needed). Installs Debian's docker-compose when missing and we are root (CI);
# otherwise says how.
set -euo pipefail
compose="${DOCKER_COMPOSE:-/usr/bin/docker-compose}"
[ -x "$compose" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "==> Installing Debian's docker-compose for the deployment tests"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null
  [ -x "$compose" ] && exit 0
fi
echo "The deployment tests need docker-compose at $compose: install Debian's package" >&2
echo "(sudo apt-get install docker-compose) or set DOCKER_COMPOSE to a docker-compose binary." >&2
exit 1
