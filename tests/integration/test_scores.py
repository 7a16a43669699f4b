"""Scores end to end on the real broker: exact counts, finals, the join, duplicates, lateness, bad input."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.harness import ROOT, dumps, latest_snapshots, produce, read_all, wait_for
from tests.integration.traffic import assert_exact, simulated

pytestmark = pytest.mark.integration

T0 = "2026-11-20T10:00:00Z"


def interaction(event_id: str, interaction_id: str, closed_at: str = T0, **fields) -> dict:
    event = {"event_id": event_id, "interaction_id": interaction_id, "channel": "chat",
             "queue": "chat-support", "agent_id": "agent-001", "touchpoint": "support",
             "closed_at": closed_at, "wait_seconds": 10, "handle_seconds": 300, "customer_id": "cust-secret"}
    event.update(fields)
    return event


def survey(event_id: str, interaction_id: str | None, answered_at: str = T0, ces: int = 6, **fields) -> dict:
    event = {"event_id": event_id, "interaction_id": interaction_id, "answered_at": answered_at,
             "answers": [{"metric": "ces", "value": ces}], "comment": "my phone is 555-0100"}
    event.update(fields)
    return event


def key(event: dict) -> bytes:
    return (event.get("interaction_id") or event["event_id"]).encode()


async def send(deployment, *events: tuple[str, dict]) -> None:
    topics = deployment.topics
    await produce([(topics[kind], key(e), dumps(e)) for kind, e in events])


async def snapshot(deployment, key_: str, predicate, message: str) -> dict:
    async def check():
        doc = (await latest_snapshots(deployment.topics["scores"])).get(key_)
        return doc if doc is not None and predicate(doc) else None
    return await wait_for(check, timeout=60, message=f"{key_}: {message}")


async def test_simulated_traffic_gives_exact_counts_per_channel_queue_and_overall(deployment, start_worker):
    traffic = simulated(deployment, 6_000, seed=3)
    start_worker()
    await produce(traffic.records)
    latest = await assert_exact(deployment, traffic, dimensions=("all", "channel", "queue", "touchpoint"))
    unknown = latest.get("default/channel/unknown/1d")
    assert unknown is None or unknown["ces"]["n"] == 0, "every simulated survey has its interaction"
    for doc in latest.values():
        assert "customer_id" not in orjson.dumps(doc).decode()


async def test_closed_window_gets_one_final_snapshot_under_its_own_key(deployment, start_worker):
    start_worker()
    await send(deployment, ("interactions", interaction("e1", "i1", "2026-11-20T10:03:20Z")),
               ("interactions", interaction("e2", "i2", "2026-11-20T10:07:00Z", abandoned=True)))
    # A record far later moves the watermark past the window end + allowed lateness (1 h);
    # the other, idle partitions stop holding windows open after CX_IDLE_TIMEOUT (3 s here).
    await send(deployment, ("interactions", interaction("e3", "i3", "2026-11-20T13:00:00Z")))
    final_key = "default/channel/chat/15m/2026-11-20T10:00:00Z"
    doc = await snapshot(deployment, final_key, lambda d: d["final"], "final 15m window")
    assert doc["window_start"] == "2026-11-20T10:00:00Z" and doc["window_end"] == "2026-11-20T10:15:00Z"
    assert doc["interactions"]["n"] == 2 and doc["interactions"]["abandoned_pct"] == 50.0
    hourly = await snapshot(deployment, "default/all/all/1h/2026-11-20T10:00:00Z", lambda d: d["final"],
                            "final 1h")
    assert hourly["interactions"]["n"] == 2
    records = [r for r in await read_all(deployment.topics["scores"]) if r.key.decode() == final_key]
    assert len(records) == 1, "one final snapshot per closed window"


async def test_survey_joins_its_interaction_whichever_arrives_first(deployment, start_worker):
    start_worker()
    # Survey first: counted under `unknown` until the interaction arrives, then moved.
    await send(deployment, ("surveys", survey("s1", "i-late", ces=7)))
    await snapshot(deployment, "default/channel/unknown/1d", lambda d: d["ces"]["n"] == 1,
                   "survey waits as unknown")
    await send(deployment, ("interactions", interaction("e1", "i-late", channel="voice")))
    # Interaction first, survey after.
    await send(deployment, ("interactions", interaction("e2", "i-early", channel="email")))
    await send(deployment, ("surveys", survey("s2", "i-early", ces=2)))
    voice = await snapshot(deployment, "default/channel/voice/1d", lambda d: d["ces"]["n"] == 1,
                           "voice survey")
    email = await snapshot(deployment, "default/channel/email/1d", lambda d: d["ces"]["n"] == 1,
                           "email survey")
    assert voice["ces"]["easy_pct"] == 100.0 and email["ces"]["difficult_pct"] == 100.0
    await snapshot(deployment, "default/channel/unknown/1d", lambda d: d["ces"]["n"] == 0, "unknown emptied")
    everything = await snapshot(deployment, "default/all/all/1d", lambda d: d["ces"]["n"] == 2, "all")
    assert everything["interactions"]["response_pct"] == 100.0


async def test_duplicate_event_ids_are_counted_once_and_reported(deployment, start_worker):
    worker = start_worker()
    first = interaction("dup-1", "i1")
    await send(deployment, ("interactions", first), ("interactions", first), ("interactions", first),
               ("surveys", survey("dup-s", "i1")), ("surveys", survey("dup-s", "i1")))
    await send(deployment, ("interactions", interaction("other", "i2")))
    doc = await snapshot(deployment, "default/all/all/1d", lambda d: d["interactions"]["n"] == 2,
                         "two interactions")
    assert doc["ces"]["n"] == 1

    async def duplicates_counted():
        text = worker.metrics()
        return ('outcome="duplicate"' in text
                and _metric(text, deployment.topics["interactions"], "duplicate") == 2)
    await wait_for(duplicates_counted, message="cx_events_total duplicate=2")


def _metric(text: str, topic: str, outcome: str) -> float:
    for line in text.splitlines():
        if (line.startswith("cx_events_total{") and f'topic="{topic}"' in line
                and f'outcome="{outcome}"' in line):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_late_event_counts_and_too_late_event_goes_to_dead_letter(deployment, start_worker):
    start_worker()
    await send(deployment, ("interactions", interaction("e1", "i1", "2026-11-20T12:00:00Z")))
    await send(deployment, ("interactions", interaction("late", "i1", "2026-11-20T11:30:00Z")),
               ("interactions", interaction("too-late", "i1", "2026-11-20T10:30:00Z")))
    await snapshot(deployment, "default/all/all/1d", lambda d: d["interactions"]["n"] == 2,
                   "late one counted")

    async def dead():
        return [r for r in await read_all(deployment.topics["dead_letter"])]
    records = await wait_for(dead, message="dead letter")
    assert len(records) == 1
    headers = dict(records[0].headers)
    assert headers["reason"] == b"too_late"
    assert orjson.loads(records[0].value)["event_id"] == "too-late"


BAD_RECORDS = {
    "invalid_json": ("interactions", b"{not json"),
    "not_an_object": ("interactions", b"[1, 2, 3]"),
    "schema_violation": ("interactions", dumps({"event_id": "x", "interaction_id": "i9", "channel": "chat"})),
    "value_out_of_scale": ("surveys", dumps(survey("bad-ces", "i9", ces=9))),
    "nps_scale": ("surveys", dumps({**survey("bad-nps", "i9"),
                                    "answers": [{"metric": "nps", "value": 5,
                                                 "scale_min": 1, "scale_max": 10}]})),
    "bad_timestamp": ("interactions", dumps(interaction("bad-time", "i9", closed_at="yesterday"))),
}


async def test_bad_records_go_to_dead_letter_unchanged_with_reason_and_source(deployment, start_worker):
    worker = start_worker()
    topics = deployment.topics
    await produce([(topics[kind], b"i9", value) for kind, value in BAD_RECORDS.values()])
    await send(deployment, ("interactions", interaction("good", "i9")))
    await snapshot(deployment, "default/all/all/1d", lambda d: d["interactions"]["n"] == 1,
                   "good record counted")

    async def dead():
        records = await read_all(topics["dead_letter"])
        return records if len(records) >= len(BAD_RECORDS) else None
    records = await wait_for(dead, message="all bad records dead-lettered")
    assert len(records) == len(BAD_RECORDS)
    by_reason = {dict(r.headers)["reason"].decode(): r for r in records}
    assert set(by_reason) == set(BAD_RECORDS)
    for reason, (kind, value) in BAD_RECORDS.items():
        record = by_reason[reason]
        headers = dict(record.headers)
        assert record.value == value, "dead letter keeps the original bytes"
        assert record.key == b"i9"
        assert headers["source_topic"].decode() == topics[kind]
        assert int(headers["source_partition"]) >= 0 and int(headers["source_offset"]) >= 0
    assert _metric(worker.metrics(), topics["surveys"], "invalid") == 2
    assert "555-0100" not in worker.log() and "cust-secret" not in worker.log()


async def test_topic_with_wrong_partition_count_stops_worker_with_clear_error(deployment):
    from stream_app.settings import Settings
    from stream_app.topics import ensure_topics

    env = deployment.env("w1")
    settings = Settings(**{k[3:].lower(): v for k, v in env.items()
                           if k.startswith("CX_") and k[3:].lower() in Settings.model_fields}
                        | {"partitions": 3})
    await ensure_topics(settings)  # the input topics now exist with 3 partitions
    done = subprocess.run([sys.executable, "-m", "stream_app", "worker"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "3 partitions, expected 8" in done.stderr and deployment.topics["interactions"] in done.stderr


async def test_keys_beyond_the_bound_fold_into_other_and_every_event_still_counts(deployment, start_worker):
    deployment.partitions = 1  # the bound is per input partition: one partition makes the order known
    start_worker(CX_MAX_KEYS_PER_DIMENSION="3")
    channels = ["voice", "chat", "email", "fax", "pigeon", "fax"]
    await send(deployment, *[("interactions", interaction(f"k{i}", f"ik{i}", channel=c, queue=None,
                                                          agent_id=None, touchpoint=None))
                             for i, c in enumerate(channels)])
    everything = await snapshot(deployment, "default/all/all/1d", lambda d: d["interactions"]["n"] == 6,
                                "all six")
    other = await snapshot(deployment, "default/channel/other/1d", lambda d: d["interactions"]["n"] == 3,
                           "folded")
    assert everything["interactions"]["n"] == 6 and other["key"] == "other"
    latest = await latest_snapshots(deployment.topics["scores"])
    for kept in ("voice", "chat", "email"):
        assert latest[f"default/channel/{kept}/1d"]["interactions"]["n"] == 1
    assert "default/channel/fax/1d" not in latest and "default/channel/pigeon/1d" not in latest
