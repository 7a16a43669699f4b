"""The peer of the benchmark: the windowed CES/CSAT/NPS job written with Quix Streams.

``python -m benchmarks.peer_quix --interactions-topic T --surveys-topic T --output-topic T
--group G --state-dir D [--windows 1d,15m,1h]``; ``benchmarks.compare`` starts it as a subprocess.

It does the same job as the worker, the way Quix Streams' own facilities do it, so that worker/peer
compares the worker with a stream processor a team could pick off the shelf:

* decode: Quix's JSON deserializer; a record that is not JSON is skipped (``on_consumer_error``), a
  record that breaks the contract's field rules (required fields, RFC 3339 times, 1-10 answers of a
  known metric inside their scale, NPS on 0-10 only) is skipped by a filter; no dead-letter topic;
* event time: a timestamp extractor reads ``closed_at`` / ``answered_at``, so the join and the
  windows run on event time, as the worker's do;
* join: ``join_asof`` (left: surveys, right: the interaction's channel, both keyed by
  interaction_id, co-partitioned; Quix reads them timestamp-aligned), ``how="left"``: a survey
  takes its own channel, else its interaction's, else ``unknown``; the right side lives in a RocksDB
  store with a changelog;
* scopes: each interaction and each survey is fanned out (``expand``) to ``{tenant}/all/all`` and
  ``{tenant}/channel/{channel}`` and repartitioned by scope (``group_by``), as a per-channel
  aggregate needs;
* windows: one ``reduce`` per window over a vector of sufficient statistics (interactions; surveys;
  CES n, ease sum on 1-7, easy, difficult; CSAT n, sum on 1-5, satisfied; NPS n, promoters,
  detractors), RocksDB state with changelog topics (durable, like the worker's tables), grace =
  the contract's allowed lateness (1 h). ``1d`` is tumbling and emits every update (``current()``:
  Quix has no emit-at-most-every-N-seconds, and a live view needs the update); ``15m`` (step 1m) and
  ``1h`` (step 5m) are hopping and emit their closed windows only (``final()``), the counterpart of
  the worker's final snapshots.

Output: ``--output-topic``, key ``{scope}/1d`` (live) or ``{scope}/{window}/{start}`` (closed), value
``{"scope", "window", "start", "end", "final", "stats"}`` with the vector as named fields. Ratios
are left to the reader (the benchmark derives CES mean, CSAT %, NPS score from the sums).

What it does NOT do that the worker does (so the peer has less work): JSON Schema validation
(field checks here are hand-written), deduplication by event_id, moving a survey that arrived
before its interaction (an asof join keeps no left records: such a survey stays under its own
channel or ``unknown``; in the benchmark's data every interaction precedes its surveys in event
time and in the log, so this never happens there), dimensions queue/agent/touchpoint, interaction
KPIs other than the count, dead letters, lateness accounting per input partition, the rolling
view, confidence intervals, alerts, Redis and Prometheus.

Where its time goes: every record passes Quix's chain of Python callbacks once on input and, fanned
out to two scopes, twice more after the repartition topic, with a state transaction per window
(15 + 12 + 1 windows per scope with all three); the worker instead adds a batch into per-partition
buckets before its shuffle and sends whole bucket states. Quix runs with its defaults (commit every
5 s, at-least-once); ``--consumer-config fetch.wait.max.ms=10 --producer-config linger.ms=1`` was
tried and was slower (more polling for the same work), so the benchmark passes no client settings.

On its first processed record it prints ``PEER first_record_monotonic=<seconds>``
(CLOCK_MONOTONIC, comparable across processes on Linux) so the benchmark can time it from there.
customer_id and comment are never read.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime, timedelta

from quixstreams import Application
from quixstreams.models import TopicConfig

STATS = ("interactions", "surveys", "ces_n", "ces_ease_sum", "ces_easy", "ces_difficult",
         "csat_n", "csat_sum", "csat_satisfied", "nps_n", "nps_promoters", "nps_detractors")
WINDOWS = {  # name: (size, step), the contract's defaults
    "1d": (timedelta(days=1), timedelta(days=1)),
    "15m": (timedelta(minutes=15), timedelta(minutes=1)),
    "1h": (timedelta(hours=1), timedelta(minutes=5)),
}
SCALES = {"ces": (1, 7), "csat": (1, 5), "nps": (0, 10)}
UNKNOWN = "unknown"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def event_ms(text: object) -> int | None:
    """RFC 3339 with a zone to epoch milliseconds; None when it is not one."""
    if not isinstance(text, str) or "T" not in text.upper():
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return (moment - _EPOCH) // _MS


def time_of(field: str):
    """Timestamp extractor: the event time, or the broker's timestamp for a record the filter drops."""
    def extract(value, headers, timestamp, timestamp_type) -> int:
        ms = event_ms(value.get(field)) if isinstance(value, dict) else None
        return timestamp if ms is None else ms
    return extract


def _text(value: object) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def interaction_row(value: object) -> dict | None:
    """A valid interaction as {tenant, channel}; None to skip."""
    if not isinstance(value, dict):
        return None
    channel = _text(value.get("channel"))
    if (channel is None or not isinstance(value.get("event_id"), str)
            or not isinstance(value.get("interaction_id"), str) or event_ms(value.get("closed_at")) is None):
        return None
    return {"tenant": value.get("tenant") or "default", "channel": channel}


def survey_row(value: object) -> dict | None:
    """A valid survey as {tenant, channel (own, may be None), stats}; None to skip."""
    if not isinstance(value, dict) or not isinstance(value.get("event_id"), str):
        return None
    channel = _text(value.get("channel"))
    if (not isinstance(value.get("interaction_id"), str) and channel is None) \
            or event_ms(value.get("answered_at")) is None:
        return None
    answers = value.get("answers")
    if not isinstance(answers, list) or not 1 <= len(answers) <= 10:
        return None
    stats = [0.0] * len(STATS)
    stats[1] = 1.0
    for answer in answers:
        if (not isinstance(answer, dict) or answer.get("metric") not in SCALES
                or not _number(answer.get("value"))):
            return None
        metric, v = answer["metric"], answer["value"]
        lo, hi = answer.get("scale_min", SCALES[metric][0]), answer.get("scale_max", SCALES[metric][1])
        if not (_number(lo) and _number(hi) and lo < hi and lo <= v <= hi):
            return None
        if metric == "ces":
            easier = answer.get("higher_is_easier", True)
            if not isinstance(easier, bool):
                return None
            ease = v if easier else lo + hi - v
            half = (hi - lo) // 2
            stats[2] += 1
            stats[3] += 1 + 6 * (ease - lo) / (hi - lo)
            stats[4] += ease >= hi - half + 1
            stats[5] += ease <= lo + half - 1
        elif metric == "csat":
            stats[6] += 1
            stats[7] += 1 + 4 * (v - lo) / (hi - lo)
            stats[8] += v >= hi - 1
        else:
            if (lo, hi) != (0, 10):
                return None
            stats[9] += 1
            stats[10] += v >= 9
            stats[11] += v <= 6
    return {"tenant": value.get("tenant") or "default", "channel": channel, "stats": stats}


INTERACTION_STATS = [1.0] + [0.0] * (len(STATS) - 1)


def joined(survey: dict, interaction_channel: str | None) -> dict:
    """on_merge of the asof join: the survey's own channel wins, then its interaction's."""
    return {"tenant": survey["tenant"], "channel": survey["channel"] or interaction_channel or UNKNOWN,
            "stats": survey["stats"]}


def scopes(row: dict) -> list[list]:
    stats = row.get("stats", INTERACTION_STATS)
    tenant = row["tenant"]
    return [[f"{tenant}/all/all", stats], [f"{tenant}/channel/{row['channel']}", stats]]


def add(total: list, item: list) -> list:
    return [a + b for a, b in zip(total, item[1], strict=False)]


def first(item: list) -> list:
    return list(item[1])


def shaped(name: str, final: bool):
    """A window result as the output value; ``key`` is the scope (the window's message key)."""
    def shape(window: dict, key: str, timestamp: int, headers: object) -> dict:
        return {"scope": key, "window": name, "start": window["start"], "end": window["end"], "final": final,
                "stats": dict(zip(STATS, window["value"], strict=False))}
    return shape


def output_key(value: dict) -> str:
    """``{scope}/{window}`` for the live 1d view, ``{scope}/{window}/{start}`` for a closed window."""
    base = f"{value['scope']}/{value['window']}"
    return f"{base}/{value['start']}" if value["final"] else base


def skip_bad_record(exc, message, logger) -> bool:
    """A record that is not JSON is skipped (the worker dead-letters it); other errors stop the app."""
    from quixstreams.models.serializers.exceptions import SerializationError
    return isinstance(exc, SerializationError)


def build(args: argparse.Namespace) -> Application:
    marked = []

    def mark_first(topic: str, partition: int, offset: int) -> None:
        if not marked:
            marked.append(True)
            print(f"PEER first_record_monotonic={time.monotonic():.6f}", flush=True)

    app = Application(
        broker_address=args.bootstrap, consumer_group=args.group, auto_offset_reset="earliest",
        state_dir=args.state_dir, loglevel=args.log_level, on_consumer_error=skip_bad_record,
        on_message_processed=mark_first, use_changelog_topics=True,
        consumer_extra_config=dict(args.consumer_config), producer_extra_config=dict(args.producer_config),
    )
    ix_topic = app.topic(args.interactions_topic, value_deserializer="json",
                         timestamp_extractor=time_of("closed_at"))
    sv_topic = app.topic(args.surveys_topic, value_deserializer="json",
                         timestamp_extractor=time_of("answered_at"))
    out = app.topic(args.output_topic, key_serializer="str", value_serializer="json",
                    config=TopicConfig(num_partitions=args.partitions, replication_factor=1))

    interactions = app.dataframe(ix_topic).apply(interaction_row).filter(lambda row: row is not None)
    surveys = app.dataframe(sv_topic).apply(survey_row).filter(lambda row: row is not None)
    # Two branches of the interactions: the join's right side (its channel), and its own count.
    channels = interactions.apply(lambda row: row["channel"])
    counted = interactions.apply(scopes, expand=True)
    surveys = surveys.join_asof(channels, how="left", on_merge=joined, grace_ms=timedelta(hours=2),
                                name="interaction-channel")  # the worker's join retention
    scoped = surveys.apply(scopes, expand=True).concat(counted).group_by(lambda item: item[0], name="scope")

    grace = timedelta(milliseconds=args.grace_ms)
    for name in args.windows:
        size, step = WINDOWS[name]
        if size == step:
            window = scoped.tumbling_window(size, grace_ms=grace, name=f"w{name}")
        else:
            window = scoped.hopping_window(size, step, grace_ms=grace, name=f"w{name}")
        window = window.reduce(add, first)
        final = name != "1d"
        results = window.final() if final else window.current()
        results.apply(shaped(name, final), metadata=True).to_topic(out, key=output_key)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer_quix",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--interactions-topic", required=True)
    parser.add_argument("--surveys-topic", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--group", required=True, help="consumer group (the app's own)")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--partitions", type=int, default=8, help="partitions of the output topic if created")
    parser.add_argument("--windows", default="1d,15m,1h",
                        help="comma-separated, from 1d (tumbling), 15m (step 1m), 1h (step 5m); default all")
    parser.add_argument("--grace-ms", type=int, default=3_600_000, help="allowed lateness (default 1 h)")
    parser.add_argument("--consumer-config", metavar="KEY=VALUE", action="append", default=[],
                        type=lambda text: tuple(text.split("=", 1)),
                        help="librdkafka consumer setting (repeatable)")
    parser.add_argument("--producer-config", metavar="KEY=VALUE", action="append", default=[],
                        type=lambda text: tuple(text.split("=", 1)),
                        help="librdkafka producer setting (repeatable)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    args.windows = [w.strip() for w in args.windows.split(",") if w.strip()]
    if not args.windows or any(w not in WINDOWS for w in args.windows):
        parser.error(f"--windows: choose from {', '.join(WINDOWS)}")
    logging.basicConfig(level=args.log_level, stream=sys.stderr)
    build(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
