#!/usr/bin/env bash
# Install what a fresh machine lacks: Debian packages (Java 17 and Maven for the Kafka jars,
# redis-server, kcat, prometheus with promtool for the PromQL tests, headless chromium and its
# driver for the wallboard test) and the Python virtual environment with the project, its test tools and
# the benchmark's peer (Quix Streams).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v redis-server >/dev/null || need+=(redis-server)
command -v kcat >/dev/null || need+=(kcat)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "install: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
  # Debian starts its own redis service on install; ours is started by deploy/local/redis.sh.
  if command -v systemctl >/dev/null; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
  service redis-server stop >/dev/null 2>&1 || true
  # Likewise prometheus (and the node exporter it recommends): the tests start their own on a free port.
  for unit in prometheus prometheus-node-exporter; do
    if command -v systemctl >/dev/null; then systemctl disable --now "$unit" >/dev/null 2>&1 || true; fi
    service "$unit" stop >/dev/null 2>&1 || true
  done
fi
if [ ! -x "$root/.venv/bin/python" ]; then
  python3 -m venv "$root/.venv"
fi
stamp="$root/.venv/.installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  "$root/.venv/bin/pip" install -q --upgrade pip
  "$root/.venv/bin/pip" install -q -e "$root[dev,bench]"
  touch "$stamp"
fi
echo "install: ready ($("$root/.venv/bin/python" --version))"
