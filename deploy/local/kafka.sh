#!/usr/bin/env bash
# Fetch (once), format (once) and start a single-node KRaft Apache Kafka on 127.0.0.1.
# Usage: deploy/local/kafka.sh start|stop|status|fetch|classpath (the jar cache, slf4j-api 2 first;
# deploy/local/cluster.sh and the secured-broker tests use it too)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
PORT=${CX_KAFKA_PORT:-9092}
CONTROLLER_PORT=${CX_KAFKA_CONTROLLER_PORT:-9093}
cache="$root/.cache/kafka-$KAFKA_VERSION"
state="$root/.run/kafka"
pidfile="$state/kafka.pid"

# The jar set: the broker, log4j2 with its slf4j 2 binding, slf4j-api 2.x itself (Kafka's own pom
# brings slf4j-api 1.7, which cannot see an slf4j 2 binding: the broker then logs to a no-op logger
# and one that fails to start exits 1 without a word), and kafka-tools for AclCommand (alone: its
# own dependencies, Kafka Connect among them, are not needed for that). A cache made
# before slf4j-api 2 was in the set is fetched again.
fetch_jars() {
  if [ -f "$cache/.complete" ] && compgen -G "$cache/libs/slf4j-api-2.*.jar" >/dev/null \
      && compgen -G "$cache/libs/kafka-tools-$KAFKA_VERSION.jar" >/dev/null; then
    return 0
  fi
  rm -rf "$cache/libs" "$cache/.complete"
  mkdir -p "$cache/libs"
  command -v mvn >/dev/null || { apt-get install -y -qq maven >/dev/null; }
  cat > "$cache/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cx</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.16</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version>
      <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions></dependency>
  </dependencies>
</project>
POM
  echo "kafka: fetching Apache Kafka $KAFKA_VERSION jars from Maven Central (once)..." >&2
  (cd "$cache" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=libs) >&2
  touch "$cache/.complete"
}

# slf4j-api 2.x first, whatever else a jar directory holds: the binding log4j2 offers is slf4j 2's.
classpath() {
  local api; api=$(compgen -G "$cache/libs/slf4j-api-2.*.jar" | head -1)
  echo "$api:$cache/libs/*"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

# A broker that kept thousands of partitions loads their logs before it opens its port: wait
# while it is alive, up to CX_KAFKA_START_TIMEOUT_SECONDS.
wait_port() {
  local limit=${CX_KAFKA_START_TIMEOUT_SECONDS:-180}
  for _ in $(seq 1 $((limit * 2))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    running || { echo "kafka: process exited; see $state/kafka.log" >&2; tail -30 "$state/kafka.log" >&2; return 1; }
    sleep 0.5
  done
  local dirs; dirs=$(find "$state/data" -mindepth 1 -maxdepth 1 -type d | wc -l)
  echo "kafka: port $PORT not open after $limit s; the broker (pid $(cat "$pidfile")) is still" \
    "starting with $dirs partition directories. Wait, or 'make clean' to start from an empty broker." >&2
  return 1
}

start() {
  if running; then wait_port && echo "kafka: already running (pid $(cat "$pidfile"))"; return; fi
  fetch_jars
  mkdir -p "$state/data"
  cat > "$state/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$state/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
log.segment.bytes=104857600
PROPS
  cat > "$state/log4j2.yaml" <<'LOG'
Configuration:
  Appenders:
    Console: {name: STDOUT, PatternLayout: {pattern: "[%d] %p %m (%c)%n"}}
  Loggers:
    Root: {level: WARN, AppenderRef: [{ref: STDOUT}]}
    Logger: [{name: kafka.server.KafkaRaftServer, level: INFO}]
LOG
  if [ ! -f "$state/data/meta.properties" ]; then
    java -cp "$(classpath)" kafka.tools.StorageTool format --standalone \
      -t "$(java -cp "$(classpath)" kafka.tools.StorageTool random-uuid)" \
      -c "$state/server.properties" >"$state/format.log" 2>&1
  fi
  setsid nohup java -Xms256m -Xmx1g -Dlog4j2.configurationFile="$state/log4j2.yaml" \
    -cp "$(classpath)" kafka.Kafka "$state/server.properties" >"$state/kafka.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  wait_port
  echo "kafka: Apache Kafka $KAFKA_VERSION ready on 127.0.0.1:$PORT (pid $(cat "$pidfile"))"
}

stop() {
  if running; then
    pid=$(cat "$pidfile"); kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
    echo "kafka: stopped"
  fi
  rm -f "$pidfile"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) running && echo "kafka: running" || { echo "kafka: stopped"; exit 1; } ;;
  fetch) fetch_jars ;;
  classpath) fetch_jars; classpath ;;
  *) echo "usage: $0 start|stop|status|fetch|classpath" >&2; exit 2 ;;
esac
