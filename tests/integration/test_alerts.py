"""Supervisor alerts end to end on the real broker: rules file in, one event per episode out."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest

from stream_app.alerts import alert_key
from stream_app.engine.codec import ALERT, unsent_key
from stream_app.simulate import generate
from stream_app.snapshot import rfc3339
from tests.harness import ROOT, dumps, latest_snapshots, produce, read_all, wait_for
from tests.reference import to_ms

pytestmark = pytest.mark.integration

T0 = "2026-11-20T10:00:00Z"
MINUTE_MS = 60_000
EXAMPLE_RULES = ROOT / "deploy/rules.example.yaml"
_ids = itertools.count()


def write_rules(tmp: Path, text: str) -> str:
    path = tmp / "rules.yaml"
    path.write_text(text)
    return str(path)


def rule(name: str, **fields: object) -> str:
    """One rule on chat's CES net ease (below -20 unless told otherwise) over 15 minutes as YAML."""
    spec = {"metric": "ces.net_ease", "dimension": "channel", "key": "chat", "window": "15m",
            "comparison": "below", "threshold": -20, "clear": 0, "min_samples": 0, "for": "0s",
            "cooldown": "0s", "severity": "warning"} | fields
    body = "".join(f"    {k}: {v}\n" for k, v in spec.items())
    return f"  - name: {name}\n{body}"


def ces_surveys(minute: int, easy: int, difficult: int, neutral: int = 0) -> list[tuple[str, bytes, bytes]]:
    """Chat surveys answered in minute ``minute`` after T0: 7 is easy, 1 difficult, 4 neither."""
    at_ms = to_ms(T0) + minute * MINUTE_MS
    values = [7] * easy + [1] * difficult + [4] * neutral
    events = []
    for i, value in enumerate(values):
        events.append({"event_id": f"sv-{next(_ids)}", "channel": "chat",
                       "answered_at": rfc3339(at_ms + i * 1000),
                       "answers": [{"metric": "ces", "value": value}]})
    return [("surveys", e["event_id"].encode(), dumps(e)) for e in events]


def clock(minute: int) -> list[tuple[str, bytes, bytes]]:
    """One neutral email survey at minute ``minute`` after T0: the data reach that step boundary, so
    rules are judged on the windows that end there (the other partitions fall idle after 3 s)."""
    event = {"event_id": f"clock-{next(_ids)}", "channel": "email",
             "answered_at": rfc3339(to_ms(T0) + minute * MINUTE_MS),
             "answers": [{"metric": "ces", "value": 4}]}
    return [("surveys", event["event_id"].encode(), dumps(event))]


async def send(deployment, records) -> None:
    await produce([(deployment.topics[kind], key, value) for kind, key, value in records])


async def alerts(deployment) -> list[dict]:
    return [orjson.loads(r.value) for r in await read_all(deployment.topics["alerts"], idle_s=1.0)]


async def wait_snapshot(deployment, key: str, predicate, message: str) -> dict:
    async def check():
        doc = (await latest_snapshots(deployment.topics["scores"])).get(key)
        return doc if doc is not None and predicate(doc) else None
    return await wait_for(check, timeout=60, message=f"{key}: {message}")


async def wait_alerts(deployment, predicate, message: str) -> list[dict]:
    async def check():
        events = await alerts(deployment)
        return events if predicate(events) else None
    return await wait_for(check, timeout=60, message=message)


def statuses(events: list[dict], name: str) -> list[str]:
    return [e["status"] for e in events if e["rule"] == name]


async def test_incident_on_chat_fires_one_alert_for_chat_only_and_recovery_resolves_it(
        deployment, start_worker):
    """Example rules, simulator traffic: 30 minutes of a chat incident, then 45 healthy minutes."""
    start_worker(CX_RULES_FILE=str(EXAMPLE_RULES))
    start = to_ms(T0)
    incident_end, end = start + 30 * MINUTE_MS, start + 75 * MINUTE_MS
    records = [*itertools.takewhile(lambda r: r.event_ms < incident_end,
                                    generate(5, None, start, 6.0, incident="chat")),
               *itertools.takewhile(lambda r: r.event_ms < end, generate(6, None, incident_end, 6.0))]
    records.sort(key=lambda r: r.event_ms)
    topics = deployment.topics
    # Live-like: two minutes of event time at a time, each awaited, as on a live shift.
    for chunk_start in range(start, end, 2 * MINUTE_MS):
        chunk = [r for r in records if chunk_start <= r.event_ms < chunk_start + 2 * MINUTE_MS]
        await produce([(topics["interactions" if r.kind == "interaction" else "surveys"], r.key,
                        dumps(r.value))
                       for r in chunk])
        last = max(r.event_ms for r in chunk)
        await wait_snapshot(deployment, "default/all/all/15m",
                            lambda d, last=last: to_ms(d["window_end"]) > last, "rolling view caught up")

    events = await wait_alerts(deployment, lambda es: "resolved" in statuses(es, "channel-effort"),
                               "channel-effort resolved after recovery")
    firing = [e for e in events if e["status"] == "firing"]
    assert firing, "the incident fired nothing"
    assert {e["key"] for e in firing} == {"chat"}, f"healthy channels fired: {firing}"
    per_scope = Counter((e["rule"], e["key"]) for e in firing)
    assert all(n == 1 for n in per_scope.values()), f"more than one episode per rule and scope: {per_scope}"
    effort = [e for e in events if e["rule"] == "channel-effort"]
    assert [e["status"] for e in effort] == ["firing", "resolved"]
    assert effort[0]["alert_id"] == effort[1]["alert_id"]
    assert effort[0]["value"] < -25 and effort[0]["n"] >= 30 and effort[0]["ci95"][1] < -25
    for event in events:
        assert "customer_id" not in orjson.dumps(event).decode()

    # The backtest over the same input topics reports the same events, `at` apart (it is the step).
    done = subprocess.run([sys.executable, "-m", "stream_app", "backtest", "--rules", str(EXAMPLE_RULES),
                           "--format", "json"], cwd=ROOT, env=deployment.env("backtest"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    backtested = [orjson.loads(line) for line in done.stdout.splitlines()]
    for event in backtested:
        assert to_ms(event["at"]) % MINUTE_MS == 0, "at: the step boundary judged"
    assert without_at(backtested) == without_at(await alerts(deployment))


def without_at(events: list[dict]) -> list[dict]:
    """Alert events as the records decide them, in a fixed order (partitions interleave as they fall)."""
    kept = [{k: v for k, v in e.items() if k != "at"} for e in events]
    return sorted(kept, key=lambda e: (e["since"], e["rule"], e["key"], e["status"]))


async def test_metric_hovering_between_threshold_and_clear_does_not_flap(deployment, start_worker, tmp_path):
    """One-minute tumbling windows, ten answers a minute (min_samples 10 ignores partial minutes)."""
    deployment.partitions = 1
    rules = write_rules(tmp_path,
                        "rules:\n" + rule("hover", window="1m", threshold=0, clear=30, min_samples=10))
    start_worker(CX_RULES_FILE=rules, CX_WINDOWS="1m:1m:1m")
    # net ease per minute: -60 fires; +20, -20, +20 hover (no event); +80 resolves. Each minute is
    # judged once the next one's answers arrive; the last one once the clock passes it.
    minutes = [(2, 8), (6, 4), (4, 6), (6, 4), (9, 1)]
    for minute, (easy, difficult) in enumerate(minutes):
        await send(deployment, ces_surveys(minute, easy, difficult))
        start = rfc3339(to_ms(T0) + minute * MINUTE_MS)
        await wait_snapshot(deployment, "default/channel/chat/1m",
                            lambda d, s=start: d["window_start"] == s and d["ces"]["n"] == 10,
                            f"minute {minute}")
    await send(deployment, clock(5))
    events = await wait_alerts(deployment, lambda es: "resolved" in statuses(es, "hover"), "hover resolved")
    assert statuses(events, "hover") == ["firing", "resolved"]
    assert events[0]["alert_id"] == events[1]["alert_id"]
    assert events[0]["value"] == -60.0 and events[1]["value"] == 80.0


async def test_min_samples_and_significance_hold_back_an_alert_on_a_handful_of_answers(
        deployment, start_worker, tmp_path):
    rules = write_rules(tmp_path, "rules:\n" + rule("control") + rule("needs-20", min_samples=20)
                        + rule("needs-significance", significant="true"))
    start_worker(CX_RULES_FILE=rules)
    await send(deployment, ces_surveys(0, easy=0, difficult=3) + clock(1))
    events = await wait_alerts(deployment, lambda es: "firing" in statuses(es, "control"),
                               "control fires on 3")
    await wait_snapshot(deployment, "default/channel/chat/1d", lambda d: d["ces"]["n"] == 3, "3 answers")
    assert events[0]["n"] == 3 and events[0]["value"] == -100.0
    assert statuses(await alerts(deployment), "needs-20") == []
    assert statuses(await alerts(deployment), "needs-significance") == [], \
        "3 answers: interval reaches above -20"
    await send(deployment, ces_surveys(1, easy=0, difficult=40) + clock(2))
    events = await wait_alerts(deployment, lambda es: statuses(es, "needs-20") == ["firing"]
                               and statuses(es, "needs-significance") == ["firing"],
                               "both fire on 43 answers")
    assert statuses(events, "control") == ["firing"], "still one episode"


@pytest.mark.slow
async def test_worker_restarts_in_mid_episode_emit_no_duplicate(deployment, start_worker, tmp_path):
    rules = write_rules(tmp_path, "rules:\n" + rule("episode"))
    worker = start_worker(CX_RULES_FILE=rules)
    await send(deployment, ces_surveys(0, easy=0, difficult=5) + clock(1))
    await wait_alerts(deployment, lambda es: statuses(es, "episode") == ["firing"], "firing")
    worker.kill9()
    worker = start_worker("w2", CX_RULES_FILE=rules)
    await send(deployment, ces_surveys(1, easy=0, difficult=5) + clock(2))
    await wait_snapshot(deployment, "default/channel/chat/1d", lambda d: d["ces"]["n"] == 10, "after kill -9")
    worker.stop()
    start_worker("w3", CX_RULES_FILE=rules)
    await send(deployment, ces_surveys(2, easy=3, difficult=0) + clock(3))
    await wait_snapshot(deployment, "default/channel/chat/1d", lambda d: d["ces"]["n"] == 13, "after restart")
    assert statuses(await alerts(deployment), "episode") == ["firing"], "no new firing after the restarts"
    await send(deployment, ces_surveys(3, easy=20, difficult=0) + clock(4))
    events = await wait_alerts(deployment, lambda es: "resolved" in statuses(es, "episode"), "resolved")
    episode = [e for e in events if e["rule"] == "episode"]
    assert [e["status"] for e in episode] == ["firing", "resolved"]
    assert episode[0]["alert_id"] == episode[1]["alert_id"]


async def record_as_unsent(deployment, event: dict) -> str:
    """What a worker killed between recording an alert and confirming it leaves in its table."""
    changelog = f"cx-test-{deployment.tag}-rollup-changelog"
    state_key = ALERT + alert_key(event).encode()
    partition = next(r.partition for r in await read_all(changelog) if r.key == state_key)
    await produce([(changelog, unsent_key(event), orjson.dumps(event))], partition_of=lambda *_: partition)
    return changelog


async def wait_confirmed(changelog: str, held: bytes) -> None:
    async def check():
        values = [r.value for r in await read_all(changelog) if r.key == held]
        return values and values[-1] is None
    await wait_for(check, timeout=60, message=f"{held!r} confirmed (a tombstone in {changelog})")


@pytest.mark.slow
async def test_alert_left_unconfirmed_by_a_dead_worker_is_sent_by_its_successor_only_if_missing(
        deployment, start_worker, tmp_path):
    rules = write_rules(tmp_path, "rules:\n" + rule("episode"))
    worker = start_worker(CX_RULES_FILE=rules)
    await send(deployment, ces_surveys(0, easy=0, difficult=5) + clock(1))
    firing = (await wait_alerts(deployment, lambda es: statuses(es, "episode") == ["firing"], "firing"))[0]
    worker.stop()
    held = unsent_key(firing)

    changelog = await record_as_unsent(deployment, firing)
    worker = start_worker("w2", CX_RULES_FILE=rules)
    await wait_confirmed(changelog, held)
    assert await alerts(deployment) == [firing], "already on the topic: not sent again"
    worker.stop()

    await record_as_unsent(deployment, firing)
    empty_topic = f"t{deployment.tag}.alerts-2"
    start_worker("w3", CX_RULES_FILE=rules, CX_TOPIC_ALERTS=empty_topic)
    await wait_confirmed(changelog, held)
    sent = [orjson.loads(r.value) for r in await read_all(empty_topic)]
    assert sent == [firing], "missing from the topic: sent once, as it was decided"


def test_bad_rules_file_stops_the_worker_naming_rule_and_field(deployment, tmp_path):
    rules = write_rules(tmp_path, "rules:\n" + rule("broken", threshold="'low'"))
    env = deployment.env("w1") | {"CX_RULES_FILE": rules}
    done = subprocess.run([sys.executable, "-m", "stream_app", "worker"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert 'rule "broken"' in done.stderr and '"threshold"' in done.stderr
