#!/usr/bin/env bash
# Make sure Redis answers on 127.0.0.1:6379 (the cluster's locks and shared gateway state;
# the cluster tests need it): start Debian's redis-server only when nothing answers there,
# keeping nothing on disk, then wait for it, at most 30 seconds.
set -euo pipefail
HOST=127.0.0.1
PORT=6379
if ! command -v redis-cli >/dev/null || ! command -v redis-server >/dev/null; then
  echo "Redis not found: install Debian's package (sudo apt-get install redis-server)." >&2
  exit 1
fi
if [ "$(redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null)" != "PONG" ]; then
  echo "==> Starting a local Redis on $HOST:$PORT"
  redis-server --bind "$HOST" --port "$PORT" --save '' --appendonly no --daemonize yes >/dev/null
fi
for _ in $(seq 1 30); do
  [ "$(redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null)" = "PONG" ] && exit 0
  sleep 1
done
echo "Redis did not answer on $HOST:$PORT within 30 seconds." >&2
exit 1
