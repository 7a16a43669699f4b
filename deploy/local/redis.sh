#!/usr/bin/env bash
# Start or stop Debian's redis-server on 127.0.0.1 for local runs and tests.
# Usage: deploy/local/redis.sh start|stop|status
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PORT=${CX_REDIS_PORT:-6379}
state="$root/.run/redis"
pidfile="$state/redis.pid"

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
  if running; then echo "redis: already running (pid $(cat "$pidfile"))"; return 0; fi
  command -v redis-server >/dev/null || { echo "redis: redis-server missing; run deploy/local/install.sh" >&2; exit 1; }
  mkdir -p "$state"
  redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes --pidfile "$pidfile" \
    --dir "$state" --logfile "$state/redis.log" --save "" --appendonly no >/dev/null
  for _ in $(seq 1 50); do
    redis-cli -p "$PORT" ping >/dev/null 2>&1 && { echo "redis: ready on 127.0.0.1:$PORT (pid $(cat "$pidfile"))"; return 0; }
    sleep 0.1
  done
  echo "redis: not answering on $PORT; see $state/redis.log" >&2; exit 1
}

stop() {
  if running; then kill "$(cat "$pidfile")"; echo "redis: stopped"; fi
  rm -f "$pidfile"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) running && echo "redis: running" || { echo "redis: stopped"; exit 1; } ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
