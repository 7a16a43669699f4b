"""One run on the real local broker: floor, worker and a Quix Streams peer; latency; one vs two workers.

``python -m benchmarks.compare [--events N] [--latency-seconds S] [--rate R] ...`` (``make bench-compare``).

Why each figure is measured the way it is:

* Backlog: N simulator records (seed 1, one UTC day) are generated once and loaded with no
  consumer running (``benchmarks.bench``: load, floor, worker and memory sampling are reused from
  there, so ``make bench`` and this command measure the same way). Throughput matters on a backlog
  (catch-up, replay), and a backlog gives every consumer the same input.
* Floor: a plain aiokafka loop that decodes JSON and counts per channel: the least any Python
  consumer does with these records (``bench.floor``).
* Worker: one ``python -m stream_app worker`` (all default windows and dimensions, RocksDB tables
  with changelogs), timed from ``/readyz`` 200 to the first rolling ``default/all/all/1d`` snapshot
  that counts every loaded interaction and answer (snapshots every 0.5 s bound the error). Its RSS
  is sampled every 0.5 s; start, quarter points and end of the run are printed so "memory flat" can
  be judged, and the peak is the larger of the samples and the kernel's VmHWM.
* Peer: ``benchmarks.peer_quix``, the same job in Quix Streams (its docstring says what it does and
  does not do), run after the worker on the same topics with its own consumer group, so the two
  never share the CPU. Timed from its first processed record (it prints the moment; its startup,
  mostly creating its internal topics, is printed apart, as the worker's is) to the moment its
  ``default/all/all/1d`` output counts everything; that key's output partition is polled by reading
  its last records every 0.25 s, because reading all of the peer's output (one record per update)
  would take CPU from the peer.
* Agreement: the worker's rolling 1d snapshots per channel (read after their sum over channels
  reaches the loaded totals, while the worker still runs) against the peer's last 1d output per
  channel: interactions, CES n and mean, CSAT n and %, NPS n and score. Counts must be equal, the
  rest within 0.00015 (both round to 4 decimals). Disagreement is exit code 1.
* Latency: a fresh deployment with the product's emit interval (1 s), a worker caught up on a steady
  stream of simulator records at R records/s, stamped with the current time as they are sent. A
  probe is one interaction of a tenant of its own, sent every 0.5 s; its latency is from just before
  it is sent to the moment a reader of the score topic receives the first snapshot under that
  tenant. Caught up means the worker's own ``cx_consumer_lag_records`` on the inputs is at most
  half a second of traffic.
* Scale-out: one worker, then two workers in one group (8 partitions), each on fresh topics and
  app id loaded with the same records, timed like the worker above from the first ``/readyz``
  (the rebalance when the second joins is part of the two-worker figure).

It prints figures, a table and ``RESULT group=... key=value ...`` lines for scripts. Exit 1 when the
worker or the peer never reaches the exact counts, or when they disagree. customer_id and comment
are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from benchmarks.bench import (
    METRICS,
    backlog_parser,
    build_records,
    complete,
    create_topics,
    describe,
    discard,
    floor,
    new_deployment,
    peak_kib,
    preload,
    print_table,
    report_failure,
    run_worker,
    sample_rss,
    wait_for_leaders,
)
from stream_app.simulate import format_time, generate
from tests.harness import BOOTSTRAP, ROOT, Deployment, Worker, iter_all, latest_snapshots

FLOAT_TOLERANCE = 1.5e-4
FIGURES = ("interactions", "ces_n", "ces_mean", "csat_n", "csat_pct", "nps_n", "nps_score")
PEER_ALL_KEY = "default/all/all/1d"
MIB = 1024


# --------------------------------------------------------------------------------------------------
# figures per scope, from the worker's snapshots and from the peer's sums


def worker_figures(snapshot: dict) -> dict:
    return {"interactions": snapshot["interactions"]["n"], "ces_n": snapshot["ces"]["n"],
            "ces_mean": snapshot["ces"]["mean"], "csat_n": snapshot["csat"]["n"],
            "csat_pct": snapshot["csat"]["pct"],
            "nps_n": snapshot["nps"]["n"], "nps_score": snapshot["nps"]["score"]}


def _ratio(part: float, whole: float, scale: float = 1.0) -> float | None:
    return None if not whole else round(scale * part / whole, 4)


def peer_figures(stats: dict) -> dict:
    return {"interactions": int(stats["interactions"]), "ces_n": int(stats["ces_n"]),
            "ces_mean": _ratio(stats["ces_ease_sum"], stats["ces_n"]), "csat_n": int(stats["csat_n"]),
            "csat_pct": _ratio(stats["csat_satisfied"], stats["csat_n"], 100.0), "nps_n": int(stats["nps_n"]),
            "nps_score": _ratio(stats["nps_promoters"] - stats["nps_detractors"], stats["nps_n"], 100.0)}


def per_channel(figures: dict[str, dict]) -> dict[str, dict]:
    """Drop scopes that count nothing (a survey's passing ``unknown`` channel leaves such a snapshot)."""
    return {k: f for k, f in figures.items() if f["interactions"] or f["ces_n"] or f["csat_n"] or f["nps_n"]}


def differences(worker: dict[str, dict], peer: dict[str, dict]) -> list[str]:
    out = []
    for scope in sorted(set(worker) | set(peer)):
        if scope not in worker or scope not in peer:
            out.append(f"{scope}: only in the {'worker' if scope in worker else 'peer'}")
            continue
        for name in FIGURES:
            w, p = worker[scope][name], peer[scope][name]
            same = w == p if name.endswith("_n") or name == "interactions" or None in (w, p) \
                else abs(w - p) <= FLOAT_TOLERANCE
            if not same:
                out.append(f"{scope} {name}: worker {w} peer {p}")
    return out


def totals_match(figures: dict[str, dict], expected: dict) -> bool:
    channels = [f for scope, f in figures.items() if scope != "all"]
    return all(sum(f[n] for f in channels) == expected[e]
               for n, e in (("interactions", "interactions"), ("ces_n", "ces"), ("csat_n", "csat"),
                            ("nps_n", "nps")))


async def worker_channels(topic: str) -> dict[str, dict]:
    """The latest rolling 1d snapshot of ``all`` and of each channel, as figures."""
    out = {}
    for key, snapshot in (await latest_snapshots(topic)).items():
        tenant, dimension, name, *rest = key.split("/")
        if tenant == "default" and rest == ["1d"] and dimension in ("all", "channel"):
            out["all" if dimension == "all" else name] = worker_figures(snapshot)
    return out


# --------------------------------------------------------------------------------------------------
# the peer


async def create_topic(name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    await wait_for_leaders([name], partitions)


async def watch_peer(topic: str, partitions: int, expected: dict, proc: asyncio.subprocess.Process,
                     state: dict, timeout_s: float) -> None:
    """Poll the tail of the partition that holds the peer's all/1d key until it counts everything."""
    key = PEER_ALL_KEY.encode()
    tp = TopicPartition(topic, DefaultPartitioner()(key, list(range(partitions)), list(range(partitions))))
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    deadline = time.monotonic() + timeout_s
    try:
        consumer.assign([tp])
        read_to = 0
        while time.monotonic() < deadline and proc.returncode is None:
            end = (await consumer.end_offsets([tp]))[tp]
            if end > read_to:
                consumer.seek(tp, max(read_to, end - 2000))
                while await consumer.position(tp) < end:
                    for messages in (await consumer.getmany(tp, timeout_ms=1000)).values():
                        for message in messages:
                            if message.key == key:
                                state["last"] = orjson.loads(message.value)
                read_to = end
                last = state.get("last")
                if last and complete(to_snapshot(last["stats"]), expected):
                    state["t1"] = time.monotonic()
                    return
            await asyncio.sleep(0.25)
    finally:
        await consumer.stop()


def to_snapshot(stats: dict) -> dict:
    """The peer's sums in the shape ``bench.complete`` checks."""
    return {"interactions": {"n": stats["interactions"]}, **{m: {"n": stats[f"{m}_n"]} for m in METRICS}}


async def peer_channels(topic: str) -> dict[str, dict]:
    """The peer's last 1d output of ``all`` and of each channel (reads its whole output once)."""
    latest: dict[bytes, bytes] = {}
    async for messages in iter_all(topic):
        for message in messages:
            if message.key.endswith(b"/1d"):
                latest[message.key] = message.value
    out = {}
    for key, value in latest.items():
        tenant, dimension, name, _ = key.decode().split("/")
        if tenant == "default":
            out["all" if dimension == "all" else name] = peer_figures(orjson.loads(value)["stats"])
    return out


async def run_peer(deployment: Deployment, tmp: Path, expected: dict, windows: str, timeout_s: float) -> dict:
    """Start the Quix peer on the loaded topics; time it from its first record to complete output."""
    output = f"t{deployment.tag}.peer-scores"
    await create_topic(output, deployment.partitions)
    log_path = tmp / "peer.log"
    state: dict = {"log": log_path, "output": output}
    launched = time.monotonic()
    with open(log_path, "ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.peer_quix", "--bootstrap", BOOTSTRAP,
            "--interactions-topic", deployment.topics["interactions"],
            "--surveys-topic", deployment.topics["surveys"], "--output-topic", output,
            "--group", f"cx-peer-{deployment.tag}", "--state-dir", str(tmp / "peer-state"),
            "--partitions", str(deployment.partitions), "--windows", windows,
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=log, start_new_session=True)
    done = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(proc.pid, done, state))
    try:
        line = b"-"
        while line and not line.startswith(b"PEER first_record_monotonic="):
            line = await asyncio.wait_for(proc.stdout.readline(), 300.0)
        if not line:
            state["error"] = f"the peer exited ({await proc.wait()}) before processing a record"
            return state
        state["t0"] = float(line.split(b"=", 1)[1])
        state["startup_s"] = state["t0"] - launched
        await watch_peer(output, deployment.partitions, expected, proc, state, timeout_s)
        if "t1" not in state:
            state["error"] = (f"the peer exited with {proc.returncode}" if proc.returncode is not None
                              else f"no complete output within {timeout_s:.0f} s")
        state["peak_rss_kib"] = peak_kib(proc.pid, state)
    except TimeoutError:
        state["error"] = "the peer processed no record within 300 s of its start"
    finally:
        done.set()
        await sampler
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        state["exit_code"] = proc.returncode
    return state


# --------------------------------------------------------------------------------------------------
# latency


def restamped(value: dict, kind: str, now_ms: int) -> dict:
    """The record with its event time (and an interaction's start) moved to now."""
    value = dict(value)
    if kind == "interaction":
        value["closed_at"] = format_time(now_ms)
        spent = value.get("wait_seconds", 0.0) + value.get("handle_seconds", 0.0)
        value["started_at"] = format_time(now_ms - round(spent * 1000))
    else:
        value["answered_at"] = format_time(now_ms)
    return value


async def steady_traffic(topics: dict[str, str], rate: float, stop: asyncio.Event, sent: list[int]) -> None:
    """Simulator records at ``rate`` records/s, each stamped with the current time when it is sent.

    The generator runs at 50 interactions/s of event time, so that its surveys (1-10 minutes
    after their interaction) are mixed in from the first minute of wall-clock traffic on.
    """
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5, acks=1)
    await producer.start()
    try:
        records = generate(seed=2, count=None, start_ms=int(time.time() * 1000), rate_per_s=50.0)
        started, pending = time.monotonic(), []
        for record in records:
            if stop.is_set():
                break
            delay = started + sent[0] / rate - time.monotonic()
            if delay > 0.002:
                await asyncio.sleep(delay)
            topic = topics["interactions"] if record.kind == "interaction" else topics["surveys"]
            value = restamped(record.value, record.kind, int(time.time() * 1000))
            pending.append(await producer.send(topic, orjson.dumps(value), key=record.key))
            sent[0] += 1
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def input_lag(metrics: str, topics: tuple[str, ...]) -> int:
    """Sum of the worker's cx_consumer_lag_records over its input topics."""
    total = 0
    for line in metrics.splitlines():
        if line.startswith("cx_consumer_lag_records{") and any(f'topic="{t}"' in line for t in topics):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


async def wait_caught_up(worker: Worker, topics: tuple[str, ...], rate: float,
                         timeout_s: float) -> tuple[bool, int]:
    deadline = time.monotonic() + timeout_s
    lag, calm = -1, 0
    await asyncio.sleep(5.0)  # traffic reaches every partition and the worker has fetched each
    while time.monotonic() < deadline:
        lag = input_lag(await asyncio.to_thread(worker.metrics), topics)
        calm = calm + 1 if lag <= rate * 0.5 else 0
        if calm >= 3:
            return True, lag
        await asyncio.sleep(1.0)
    return False, lag


async def receive_probes(topic: str, partitions: int, arrivals: dict[str, float], ready: asyncio.Event,
                         stop: asyncio.Event) -> None:
    """First arrival of any snapshot per probe tenant (keys only: nothing else is decoded).

    A short fetch wait, so that the reader adds no delay of its own (see ``BatchConsumerThread``)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        ready.set()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            received = time.monotonic()
            for messages in batch.values():
                for message in messages:
                    if message.key is not None and message.key.startswith(b"probe-"):
                        arrivals.setdefault(message.key.split(b"/", 1)[0].decode(), received)
    finally:
        await consumer.stop()


async def send_probes(topic: str, tag: str, seconds: float, interval: float, sent: dict[str, float]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=0, acks=1)
    await producer.start()
    try:
        rng = random.Random(3)
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            tenant = f"probe-{tag}-{i}"
            interaction_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            now_ms = int(time.time() * 1000)
            event = {"event_id": f"{tenant}-ix", "interaction_id": interaction_id, "tenant": tenant,
                     "channel": "voice", "closed_at": format_time(now_ms), "wait_seconds": 5.0,
                     "handle_seconds": 60.0, "transfers": 0, "abandoned": False}
            sent[tenant] = time.monotonic()
            await producer.send_and_wait(topic, orjson.dumps(event), key=interaction_id.encode())
            i += 1
            await asyncio.sleep(max(0.0, sent[tenant] + interval - time.monotonic()))
    finally:
        await producer.stop()


def nearest_rank(sorted_values: list[float], q: float) -> float:
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


async def measure_latency(partitions: int, rate: float, seconds: float, interval: float,
                          emit_interval: float) -> dict:
    tmp, deployment, app_id = new_deployment(partitions)
    deployment.extra.update({"CX_EMIT_INTERVAL": f"{emit_interval:g}", "CX_IDLE_TIMEOUT": "60s"})
    topics = deployment.topics
    await create_topics(deployment, app_id)
    worker = Worker(deployment)
    worker.start(wait=False)
    stop_traffic, stop_reader, reader_ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
    records_sent = [0]
    arrivals: dict[str, float] = {}
    sent: dict[str, float] = {}
    result: dict = {"tmp": tmp, "tag": deployment.tag, "emit_interval": emit_interval}
    traffic = reader = None
    try:
        await asyncio.to_thread(worker.wait_ready, 120.0)
        reader = asyncio.create_task(
            receive_probes(topics["scores"], partitions, arrivals, reader_ready, stop_reader))
        await reader_ready.wait()
        traffic = asyncio.create_task(steady_traffic(topics, rate, stop_traffic, records_sent))
        traffic_started = time.monotonic()
        caught_up, lag = await wait_caught_up(worker, (topics["interactions"], topics["surveys"]), rate,
                                              120.0)
        result.update(caught_up=caught_up, lag_at_start=lag)
        sent_before = records_sent[0]
        probes_started = time.monotonic()
        await send_probes(topics["interactions"], deployment.tag, seconds, interval, sent)
        result["achieved_rate"] = (records_sent[0] - sent_before) / (time.monotonic() - probes_started)
        result["warmup_s"] = probes_started - traffic_started
        deadline = time.monotonic() + 30.0
        while len(arrivals) < len(sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        stop_traffic.set()
        stop_reader.set()
        await asyncio.gather(*(t for t in (traffic, reader) if t is not None), return_exceptions=True)
        result["exit_code"] = await asyncio.to_thread(worker.stop, 15.0)
    result["latencies_ms"] = sorted((arrivals[t] - s) * 1000 for t, s in sent.items() if t in arrivals)
    result["probes"], result["missing"] = len(sent), len(sent) - len(result["latencies_ms"])
    return result


# --------------------------------------------------------------------------------------------------
# one run, one report


def rss_profile(samples: list[tuple[float, int]], t0: float, t1: float) -> list[tuple[float, float]]:
    """(seconds after ready, MiB) at the start, quarter points and end of the run."""
    run = [(t, kib) for t, kib in samples if t0 <= t <= t1] or samples[-1:]
    if not run:
        return []
    picks = [run[min(len(run) - 1, round(q * (len(run) - 1)))] for q in (0, 0.25, 0.5, 0.75, 1.0)]
    return [(t - t0, kib / MIB) for t, kib in picks]


def remapped(records: list[tuple[str, bytes, bytes]], old: dict[str, str], new: dict[str, str]):
    names = {old[k]: new[k] for k in ("interactions", "surveys")}
    return [(names[topic], key, value) for topic, key, value in records]


async def scale_run(records, base_topics: dict[str, str], expected: dict, partitions: int, workers: int,
                    timeout_s: float, keep_topics: bool) -> dict:
    tmp, deployment, app_id = new_deployment(partitions)
    print(f"scale-out, {workers} worker{'s' * (workers > 1)}: run {deployment.tag}")
    await preload(deployment, app_id, remapped(records, base_topics, deployment.topics))
    state = await run_worker(deployment, expected, timeout_s, workers=workers)
    state["tmp"] = tmp
    if "t1" in state:
        state["eps"] = len(records) / (state["t1"] - state["t0"])
        peaks = ", ".join(f"{m['peak_rss_kib'] / MIB:.0f}" for m in state["memory"])
        print(f"  {state['eps']:,.0f} events/s ({state['t1'] - state['t0']:.2f} s after the first ready; "
              f"startup {state['startup_s']:.2f} s); peak RSS MiB per worker: {peaks}")
        await discard(tmp, deployment.tag, keep_topics)
    else:
        report_failure(state, expected, timeout_s, tmp)
    return state


def result_line(group: str, figures: dict) -> str:
    return f"RESULT group={group} " + " ".join(f"{k}={v}" for k, v in figures.items())


async def read_worker_view(scores_topic: str, worker_view: dict[str, dict], expected: dict) -> None:
    """Reads the worker's per-channel figures into ``worker_view`` until their totals match
    ``expected``, for 20 s at most."""
    deadline = time.monotonic() + 20.0
    while True:
        worker_view.update(await worker_channels(scores_topic))
        if totals_match(worker_view, expected) or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.5)


def print_agreement(worker_view: dict[str, dict], peer_view: dict[str, dict]) -> list[str]:
    """Prints the 1d figures per channel of the worker beside the peer's, and the verdict; returns
    the differences."""
    diffs = differences(worker_view, peer_view)
    width = max(map(len, worker_view | peer_view), default=3)
    print(f"1d window per channel, worker | peer ({' '.join(FIGURES)}):")
    for scope in sorted(worker_view | peer_view, key=lambda s: (s != "all", s)):
        w = " ".join(str(worker_view.get(scope, {}).get(f, "-")) for f in FIGURES)
        p = " ".join(str(peer_view.get(scope, {}).get(f, "-")) for f in FIGURES)
        print(f"  {scope:<{width}}  {w}  |  {p}")
    if diffs:
        print(f"DISAGREE: {len(diffs)} figure(s) differ: " + "; ".join(diffs))
    else:
        print(f"AGREE: worker and peer have the same 1d figures for all and {len(worker_view) - 1} channels")
    return diffs


async def latency_phase(args: argparse.Namespace, results: list[str], failures: list[str]) -> dict:
    """End-to-end latency at a steady rate, on fresh topics; appends to ``results`` and ``failures``."""
    print(f"latency: {args.rate:g} records/s, probes every {args.probe_interval:g} s for "
          f"{args.latency_seconds:g} s, CX_EMIT_INTERVAL {args.emit_interval:g} s")
    latency = await measure_latency(args.partitions, args.rate, args.latency_seconds, args.probe_interval,
                                    args.emit_interval)
    ms = latency["latencies_ms"]
    print(f"  worker caught up before the probes: {'yes' if latency['caught_up'] else 'NO'} (input lag "
          f"{latency['lag_at_start']} records after {latency['warmup_s']:.1f} s of traffic); "
          "traffic sent "
          f"during the probes {latency['achieved_rate']:,.0f} records/s")
    if ms:
        p50, p99 = statistics.median(ms), nearest_rank(ms, 0.99)
        print(f"  produce -> snapshot over {len(ms)} probes ({latency['missing']} missing): "
              f"median {p50:.0f} ms, "
              f"p99 {p99:.0f} ms, min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms")
        results.append(result_line("latency", {
            "rate": f"{args.rate:g}", "probes": len(ms), "missing": latency["missing"],
            "p50_ms": f"{p50:.0f}", "p99_ms": f"{p99:.0f}", "max_ms": f"{ms[-1]:.0f}"}))
        await discard(latency["tmp"], latency["tag"], args.keep_topics)
    else:
        print(f"  no probe came back; worker log in {latency['tmp']}")
        failures.append("latency probes never came back")
    return latency


async def scale_phase(args: argparse.Namespace, records: list, topics: dict[str, str], expected: dict,
                      results: list[str], failures: list[str]) -> dict[int, dict]:
    """Scale-out: one worker, then two, each on fresh topics with ``records``; appends to ``results``
    and ``failures``."""
    scale = {}
    for workers in (1, 2):
        scale[workers] = await scale_run(records, topics, expected, args.partitions, workers,
                                         args.timeout, args.keep_topics)
        if "t1" not in scale[workers]:
            failures.append(f"scale-out with {workers} worker(s) never completed")
    if all("eps" in s for s in scale.values()):
        results.append(result_line("scale", {
            "events": args.scale_events, "one_worker_eps": f"{scale[1]['eps']:.0f}",
            "two_workers_eps": f"{scale[2]['eps']:.0f}",
            "speedup": f"{scale[2]['eps'] / scale[1]['eps']:.2f}"}))
    return scale


def phase_rows(latency: dict, scale: dict[int, dict]) -> list[tuple[str, str]]:
    """The summary table's rows of the latency and scale-out phases (none for a phase that was
    skipped or has no figure)."""
    rows = []
    if latency.get("latencies_ms"):
        ms = latency["latencies_ms"]
        rows += [("latency p50 ms", f"{statistics.median(ms):.0f}"),
                 ("latency p99 ms", f"{nearest_rank(ms, 0.99):.0f}")]
    for workers, s in scale.items():
        if "eps" in s:
            rows.append((f"{workers} worker{'s' * (workers > 1)} events/s", f"{s['eps']:,.0f}"))
    return rows


async def main_async(args: argparse.Namespace) -> int:
    begun = time.monotonic()
    failures: list[str] = []
    results: list[str] = []
    tmp, deployment, app_id = new_deployment(args.partitions)
    topics = deployment.topics
    print(f"run {deployment.tag}: {args.events} records, {args.partitions} partitions, broker {BOOTSTRAP}")
    records, expected = build_records(args.events, topics)
    print(describe(expected))
    await preload(deployment, app_id, records)

    # (a) the floor
    floor_eps = await floor([topics["interactions"], topics["surveys"]], args.partitions, args.events)

    # (b) the worker; its per-channel figures are read while it still runs
    worker_view: dict[str, dict] = {}

    async def settle() -> None:
        await read_worker_view(topics["scores"], worker_view, expected)

    state = await run_worker(deployment, expected, args.timeout, settle=settle)
    print(f"worker startup (process start to /readyz 200): {state['startup_s']:.2f} s; "
          f"stopped with exit code {state['exit_code']}")
    if "t1" not in state:
        report_failure(state, expected, args.timeout, tmp)
        return 1
    worker_s = state["t1"] - state["t0"]
    worker_eps = args.events / worker_s
    profile = rss_profile(state["memory"][0].get("rss_samples", []), state["t0"], state["t1"])
    print(f"worker: {worker_eps:,.0f} events/s (complete snapshot {worker_s:.2f} s after ready)")
    print("worker RSS over its run (s after ready: MiB): "
          + ", ".join(f"{t:.0f}: {mib:.0f}" for t, mib in profile)
          + f"; peak {state['peak_rss_kib'] / MIB:.0f}")

    # (c) the peer, on the same topics with its own group
    peer = await run_peer(deployment, tmp, expected, args.peer_windows, args.timeout)
    if "error" in peer:
        print(f"FAILED: peer: {peer['error']}; last all/1d output: "
              f"{peer.get('last', {}).get('stats', 'nothing')}; log {peer['log']}")
        return 1
    peer_s = peer["t1"] - peer["t0"]
    peer_eps = args.events / peer_s
    print(f"peer (Quix Streams, windows {args.peer_windows}): {peer_eps:,.0f} events/s (complete output "
          f"{peer_s:.2f} s after its first record; startup {peer['startup_s']:.2f} s; peak RSS "
          f"{peer['peak_rss_kib'] / MIB:.0f} MiB; stopped with exit code {peer['exit_code']})")

    # agreement on the 1d windows per channel
    peer_view = per_channel(await peer_channels(peer["output"]))
    worker_view = per_channel(worker_view)
    diffs = print_agreement(worker_view, peer_view)
    if diffs:
        failures.append("worker and peer disagree")
    ratio_floor, ratio_peer = worker_eps / floor_eps, worker_eps / peer_eps
    results.append(result_line("throughput", {
        "events": args.events, "floor_eps": f"{floor_eps:.0f}", "worker_eps": f"{worker_eps:.0f}",
        "peer_eps": f"{peer_eps:.0f}", "ratio_floor": f"{ratio_floor:.3f}",
        "ratio_peer": f"{ratio_peer:.2f}"}))
    results.append(result_line("memory", {
        "worker_peak_rss_mib": f"{state['peak_rss_kib'] / MIB:.1f}",
        **{f"worker_rss_{name}_mib": f"{mib:.1f}"
           for name, (_, mib) in zip(("start", "q1", "mid", "q3", "end"), profile, strict=False)},
        "peer_peak_rss_mib": f"{peer['peak_rss_kib'] / MIB:.1f}"}))
    results.append(result_line("agreement", {"agree": int(not diffs), "scopes": len(worker_view),
                                              "differences": len(diffs)}))
    if not diffs:
        await discard(tmp, deployment.tag, args.keep_topics)

    # end-to-end latency at a steady rate
    latency = {}
    if args.latency_seconds > 0:
        latency = await latency_phase(args, results, failures)

    # scale-out: one worker, then two, each on fresh topics with the same records
    scale = {}
    if args.scale_events:
        if args.scale_events != args.events:
            del records
            records, scale_expected = build_records(args.scale_events, topics)
        else:
            scale_expected = expected
        scale = await scale_phase(args, records, topics, scale_expected, results, failures)

    rows = [
        ("records loaded", f"{args.events}"),
        ("floor events/s", f"{floor_eps:,.0f}"),
        ("worker events/s", f"{worker_eps:,.0f}"),
        ("peer (Quix) events/s", f"{peer_eps:,.0f}"),
        ("ratio worker/floor", f"{ratio_floor:.3f}"),
        ("ratio worker/peer", f"{ratio_peer:.2f}"),
        ("worker peak RSS MiB", f"{state['peak_rss_kib'] / MIB:.0f}"),
        ("peer peak RSS MiB", f"{peer['peak_rss_kib'] / MIB:.0f}"),
        ("worker and peer", "AGREE" if not diffs else "DISAGREE"),
    ]
    rows += phase_rows(latency, scale)
    rows.append(("wall time s", f"{time.monotonic() - begun:.0f}"))
    print_table(rows)
    for line in results:
        print(line)
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = backlog_parser("python -m benchmarks.compare", __doc__, 1_000_000,
                            "seconds to wait for the exact counts, per worker or peer run", 1200.0)
    parser.add_argument("--peer-windows", default="1d,15m,1h",
                        help="windows the peer computes: 1d (tumbling), 15m, 1h (hopping); default all three")
    parser.add_argument("--rate", type=float, default=2000.0,
                        help="records/s during the latency phase (default 2000)")
    parser.add_argument("--latency-seconds", type=float, default=60.0,
                        help="how long probes are sent (default 60; 0 skips the latency phase)")
    parser.add_argument("--probe-interval", type=float, default=0.5,
                        help="seconds between probes (default 0.5)")
    parser.add_argument("--emit-interval", type=float, default=1.0,
                        help="CX_EMIT_INTERVAL of the latency worker (default 1, the product's default)")
    parser.add_argument("--scale-events", type=int, default=None,
                        help="records for the one- vs two-worker runs (default: --events; 0 skips them)")
    parser.add_argument("--keep-topics", action="store_true",
                        help="leave each phase's topics on the broker "
                             "(default: deleted after a phase that succeeded)")
    args = parser.parse_args(argv)
    if args.scale_events is None:
        args.scale_events = args.events
    if (min(args.events, args.partitions) < 1 or min(args.rate, args.probe_interval) <= 0
            or args.scale_events < 0):
        parser.error("--events and --partitions must be at least 1, --rate and --probe-interval above 0")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
