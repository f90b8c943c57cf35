#!/usr/bin/env bash
# Make sure PostgreSQL answers on 127.0.0.1:5432 (the reports tests need it): start the
# local cluster only when nothing answers there, then wait for it, at most 30 seconds.
set -euo pipefail
HOST=127.0.0.1
PORT=5432
if ! command -v pg_isready >/dev/null; then
  echo "PostgreSQL client tools not found: install PostgreSQL (apt-get install postgresql)." >&2
  exit 1
fi
if ! pg_isready -q -h "$HOST" -p "$PORT"; then
  version=$(ls /etc/postgresql 2>/dev/null | head -1)
  if [ -z "$version" ]; then
    echo "No PostgreSQL answers on $HOST:$PORT and no local cluster is installed in /etc/postgresql." >&2
    exit 1
  fi
  echo "==> Starting the local PostgreSQL $version cluster"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 1 30); do
  pg_isready -q -h "$HOST" -p "$PORT" && exit 0
  sleep 1
done
echo "PostgreSQL did not answer on $HOST:$PORT within 30 seconds." >&2
exit 1
