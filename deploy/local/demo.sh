#!/usr/bin/env bash
# make demo: a worker with the example alert rules, the simulator (30 minutes of backfilled history,
# then live traffic), the wallboard in the browser and a live table of scores in the terminal.
# Ctrl-C stops the worker and the simulator. DEMO_INCIDENT=chat degrades one channel.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
mkdir -p .run/demo
export CX_DATA_DIR=${CX_DATA_DIR:-.run/demo/worker}
export CX_RULES_FILE=${CX_RULES_FILE:-deploy/rules.example.yaml}
port=${CX_WEB_PORT:-6066}
"$PY" -m stream_app worker > .run/demo/worker.log 2>&1 &
worker=$!
incident=()
[ -n "${DEMO_INCIDENT:-}" ] && incident=(--incident "$DEMO_INCIDENT")
"$PY" -m stream_app simulate --rate "${DEMO_RATE:-30}" --backfill 30m "${incident[@]}" > .run/demo/simulate.log 2>&1 &
simulator=$!
trap 'kill $simulator $worker 2>/dev/null; wait $worker 2>/dev/null; echo "demo: stopped (logs in .run/demo/)"' EXIT INT TERM
echo "demo: wallboard  http://127.0.0.1:$port/   (JSON: /api/scores, /api/alerts; metrics: /metrics)"
echo "demo: worker pid $worker (log .run/demo/worker.log, rules $CX_RULES_FILE)"
echo "demo: simulator pid $simulator, ${DEMO_RATE:-30} records/s after 30 min of history${DEMO_INCIDENT:+, incident on $DEMO_INCIDENT}"
"$PY" -m stream_app watch --window "${DEMO_WINDOW:-15m}"
