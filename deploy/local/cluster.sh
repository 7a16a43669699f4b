#!/usr/bin/env bash
# A three-node KRaft Apache Kafka cluster on loopback, beside the single broker of kafka.sh.
# Every node is broker and controller; topics default to replication factor 3 and
# min.insync.replicas=2; no topic is created implicitly. Heaps are small (384 MiB) so that three fit
# a 2-core machine next to everything else.
#
# Usage: deploy/local/cluster.sh start|stop|status|pids|wipe
#        deploy/local/cluster.sh kill N        SIGKILL node N (1-3), as a crash would
#        deploy/local/cluster.sh stop-node N   SIGTERM node N: a controlled shutdown
#        deploy/local/cluster.sh start-node N  start node N again (its data is kept)
# Ports: brokers CX_CLUSTER_PORT (19092), +1, +2; controllers CX_CLUSTER_CONTROLLER_PORT (19192), +1, +2.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
BASE_PORT=${CX_CLUSTER_PORT:-19092}
BASE_CONTROLLER_PORT=${CX_CLUSTER_CONTROLLER_PORT:-19192}
HEAP=${CX_CLUSTER_HEAP:-384m}
state="$root/.run/cluster"
NODES=(1 2 3)

port() { echo $((BASE_PORT + $1 - 1)); }
controller_port() { echo $((BASE_CONTROLLER_PORT + $1 - 1)); }
dir() { echo "$state/node$1"; }
pidfile() { echo "$(dir "$1")/kafka.pid"; }
running() { [ -f "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }
check_node() { case "${1:-}" in 1|2|3) ;; *) echo "cluster: node must be 1, 2 or 3" >&2; exit 2 ;; esac; }

voters() {
  local out=()
  for n in "${NODES[@]}"; do out+=("$n@127.0.0.1:$(controller_port "$n")"); done
  (IFS=,; echo "${out[*]}")
}

bootstrap() {
  local out=()
  for n in "${NODES[@]}"; do out+=("127.0.0.1:$(port "$n")"); done
  (IFS=,; echo "${out[*]}")
}

configure() {
  local n=$1 d; d=$(dir "$n")
  mkdir -p "$d/data"
  cat > "$d/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://127.0.0.1:$(port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")
advertised.listeners=PLAINTEXT://127.0.0.1:$(port "$n")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$d/data
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
auto.create.topics.enable=false
unclean.leader.election.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
log.segment.bytes=104857600
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
PROPS
  cat > "$d/log4j2.yaml" <<'LOG'
Configuration:
  Appenders:
    Console: {name: STDOUT, PatternLayout: {pattern: "[%d] %p %m (%c)%n"}}
  Loggers:
    Root: {level: WARN, AppenderRef: [{ref: STDOUT}]}
    Logger: [{name: kafka.server.KafkaRaftServer, level: INFO}]
LOG
}

format() {
  local n=$1 d; d=$(dir "$n")
  [ -f "$d/data/meta.properties" ] && return 0
  java -cp "$cp" kafka.tools.StorageTool format -t "$(cat "$state/cluster.id")" \
    -c "$d/server.properties" >"$d/format.log" 2>&1 \
    || { echo "cluster: formatting node $n failed:" >&2; cat "$d/format.log" >&2; return 1; }
}

launch() {
  local n=$1 d; d=$(dir "$n")
  running "$n" && return 0
  setsid nohup java -Xms128m -Xmx"$HEAP" -Dlog4j2.configurationFile="$d/log4j2.yaml" \
    -cp "$cp" kafka.Kafka "$d/server.properties" >>"$d/kafka.log" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$n")"
}

wait_port() {
  local n=$1 p; p=$(port "$n")
  for _ in $(seq 1 240); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then return 0; fi
    running "$n" || { echo "cluster: node $n exited; see $(dir "$n")/kafka.log" >&2
                      tail -30 "$(dir "$n")/kafka.log" >&2; return 1; }
    sleep 0.5
  done
  echo "cluster: node $n did not open port $p in 120 s; see $(dir "$n")/kafka.log" >&2
  return 1
}

prepare() {
  cp=$(bash "$here/kafka.sh" classpath)
  mkdir -p "$state"
  [ -f "$state/cluster.id" ] || java -cp "$cp" kafka.tools.StorageTool random-uuid > "$state/cluster.id"
  for n in "${NODES[@]}"; do configure "$n"; format "$n"; done
}

start() {
  prepare
  for n in "${NODES[@]}"; do launch "$n"; done
  for n in "${NODES[@]}"; do wait_port "$n"; done
  echo "cluster: Apache Kafka $KAFKA_VERSION, 3 nodes ready on $(bootstrap)"
}

start_node() {
  check_node "$1"
  prepare
  launch "$1"
  wait_port "$1"
  echo "cluster: node $1 up on 127.0.0.1:$(port "$1") (pid $(cat "$(pidfile "$1")"))"
}

stop_node() {
  local n=$1 pid
  running "$n" || { rm -f "$(pidfile "$n")"; return 0; }
  pid=$(cat "$(pidfile "$n")")
  kill "$pid"
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$(pidfile "$n")"
}

stop() {
  # All at once: a node stopped last, alone, has no quorum and would wait for one until killed.
  local pids=()
  for n in "${NODES[@]}"; do running "$n" && { pids+=("$(cat "$(pidfile "$n")")"); kill "${pids[-1]}"; }; done
  for _ in $(seq 1 60); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for n in "${NODES[@]}"; do rm -f "$(pidfile "$n")"; done
  echo "cluster: stopped"
}

kill_node() {
  check_node "$1"
  running "$1" || { echo "cluster: node $1 is not running" >&2; exit 1; }
  local pid; pid=$(cat "$(pidfile "$1")")
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$(pidfile "$1")"
  echo "cluster: node $1 (pid $pid) killed"
}

pids() {
  for n in "${NODES[@]}"; do running "$n" && echo "$n $(cat "$(pidfile "$n")")"; done
  return 0
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) for n in "${NODES[@]}"; do running "$n" && echo "node $n: running" || echo "node $n: stopped"; done ;;
  pids) pids ;;
  bootstrap) bootstrap ;;
  kill) kill_node "${2:-}" ;;
  stop-node) check_node "${2:-}"; stop_node "$2"; echo "cluster: node $2 stopped" ;;
  start-node) start_node "${2:-}" ;;
  wipe) stop >/dev/null; rm -rf "$state"; echo "cluster: data removed" ;;
  *) echo "usage: $0 start|stop|status|pids|bootstrap|wipe|kill N|stop-node N|start-node N" >&2; exit 2 ;;
esac
