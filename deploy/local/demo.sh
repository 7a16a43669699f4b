#!/usr/bin/env bash
# make demo: a worker and the simulator (with 30 minutes of backfilled history, then live traffic),
# and a live table of scores per channel. Ctrl-C stops the worker and the simulator.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
mkdir -p .run/demo
export CX_DATA_DIR=${CX_DATA_DIR:-.run/demo/worker}
"$PY" -m stream_app worker > .run/demo/worker.log 2>&1 &
worker=$!
"$PY" -m stream_app simulate --rate "${DEMO_RATE:-30}" --backfill 30m > .run/demo/simulate.log 2>&1 &
simulator=$!
trap 'kill $simulator $worker 2>/dev/null; wait $worker 2>/dev/null; echo "demo: stopped (logs in .run/demo/)"' EXIT INT TERM
echo "demo: worker pid $worker (log .run/demo/worker.log, metrics http://127.0.0.1:${CX_WEB_PORT:-6066}/metrics)"
echo "demo: simulator pid $simulator, ${DEMO_RATE:-30} records/s after 30 min of history"
"$PY" -m stream_app watch --window "${DEMO_WINDOW:-15m}"
