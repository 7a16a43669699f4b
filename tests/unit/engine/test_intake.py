"""The intake stage alone, in memory: what one batch writes, sends and counts."""

from __future__ import annotations

import orjson

from stream_app.engine import codec
from stream_app.engine.intake import Intake
from stream_app.engine.memory import Record
from stream_app.snapshot import rfc3339
from tests.unit.engine.memory import INTAKE

HOUR_MS = 3_600_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % HOUR_MS


def interaction(event_id: str, interaction_id: str, closed_ms: int, channel: str = "chat") -> bytes:
    return orjson.dumps({"event_id": event_id, "interaction_id": interaction_id, "channel": channel,
                         "closed_at": rfc3339(closed_ms)})


def survey(event_id: str, interaction_id: str, answered_ms: int) -> bytes:
    return orjson.dumps({"event_id": event_id, "interaction_id": interaction_id,
                         "answered_at": rfc3339(answered_ms), "answers": [{"metric": "csat", "value": 5}]})


def fresh_intake() -> Intake:
    intake = Intake(INTAKE)
    intake.load(0, [])
    return intake


def test_each_changed_key_is_written_once_per_batch_with_the_watermark_last() -> None:
    intake = fresh_intake()
    records = [Record(i, b"k", interaction(f"e{i}", f"i{i}", T0 + i * 1000)) for i in range(50)]
    result = intake.process(0, records, [], now_ms=T0)
    keys = [key for key, _ in result.changelog]
    assert len(keys) == len(set(keys))
    assert sum(key.startswith(codec.JOIN) for key in keys) == 50
    assert keys[-1] == codec.META
    # Every bucket of the batch: 5 dimensions x 3 widths, all in one minute.
    assert sum(key.startswith(codec.BUCKET) for key in keys) == 15


def test_a_duplicate_event_id_is_counted_once_and_reported_as_duplicate() -> None:
    intake = fresh_intake()
    value = interaction("e1", "i1", T0)
    first = intake.process(0, [Record(0, b"i1", value)], [], now_ms=T0)
    again = intake.process(0, [Record(1, b"i1", value)], [], now_ms=T0)
    assert first.outcomes == {(0, "ok"): 1}
    assert again.outcomes == {(0, "duplicate"): 1}
    assert not [key for key, _ in again.changelog if key.startswith(codec.BUCKET)]


def test_an_event_older_than_the_watermark_minus_lateness_is_a_too_late_dead_letter() -> None:
    intake = fresh_intake()
    now_ms = T0 + 3 * HOUR_MS
    intake.process(0, [Record(0, b"i1", interaction("e1", "i1", T0 + 3 * HOUR_MS))], [], now_ms=now_ms)
    late = intake.process(0, [Record(1, b"i2", interaction("e2", "i2", T0))], [], now_ms=now_ms)
    assert late.outcomes == {(0, "too_late"): 1}
    assert [d.reason for d in late.dead_letters] == ["too_late"]


def test_an_event_beyond_the_clock_skew_ahead_is_an_in_future_dead_letter_and_moves_no_watermark() -> None:
    intake = fresh_intake()
    skew = INTAKE.max_clock_skew_ms
    ahead = intake.process(0, [Record(0, b"i1", interaction("e1", "i1", T0 + skew + 1)),
                               Record(1, b"i2", interaction("e2", "i2", T0 + skew))], [], now_ms=T0)
    assert ahead.outcomes == {(0, "in_future"): 1, (0, "ok"): 1}
    assert [(d.offset, d.reason) for d in ahead.dead_letters] == [(0, "in_future")]
    assert intake.partitions[0].meta.watermarks == {0: T0 + skew}  # only the one at the limit counted
    # Three hours of true time later, the same event time is in the past and counts.
    later = intake.process(0, [Record(2, b"i3", interaction("e3", "i3", T0 + skew + 1))], [],
                           now_ms=T0 + 3 * HOUR_MS)
    assert later.outcomes == {(0, "ok"): 1}


def test_join_entries_past_retention_and_sealed_buckets_leave_tombstones() -> None:
    intake = fresh_intake()
    intake.process(0, [Record(0, b"i1", interaction("e1", "i1", T0))], [], now_ms=T0)
    later = T0 + INTAKE.join_retention_ms + 2 * 60_000
    result = intake.process(0, [Record(1, b"i2", interaction("e2", "i2", later))], [], now_ms=later)
    deleted = {key for key, value in result.changelog if value is None}
    assert codec.join_key("i1") in deleted
    assert "i1" not in intake.partitions[0].entries
    # Buckets go one batch after they are sealed: the rollup has had their last state by then.
    assert not any(key.startswith(codec.BUCKET) for key in deleted)
    after = intake.process(0, [Record(2, b"i3", interaction("e3", "i3", later))], [], now_ms=later)
    assert any(key.startswith(codec.BUCKET) and value is None for key, value in after.changelog)


def test_a_batch_longer_than_the_allowed_lateness_fills_its_early_buckets_too() -> None:
    intake = fresh_intake()
    records = [Record(i, b"k", interaction(f"e{i}", f"i{i}", T0 + i * 10 * 60_000)) for i in range(13)]  # 2 h
    result = intake.process(0, records, [], now_ms=T0 + 2 * HOUR_MS)
    first = codec.bucket_key(("default", "all", "all"), 60_000, T0)  # the 15m window's bucket of the first
    assert dict(result.changelog).get(first) is not None
    partial_keys = [codec.parse_scope_key(key) for _, key, _ in result.partials if key != codec.WATERMARK_KEY]
    assert ("default", "all", "all") in partial_keys


def test_a_survey_before_its_interaction_moves_from_unknown_to_the_interaction_attributes() -> None:
    intake = fresh_intake()
    first = intake.process(0, [], [Record(0, b"i1", survey("s1", "i1", T0))], now_ms=T0)
    assert any(codec.parse_scope_key(key)[2] == "unknown" for _, key, _ in first.partials
               if key != codec.WATERMARK_KEY)
    arrives = Record(0, b"i1", interaction("e1", "i1", T0, channel="Email "))
    second = intake.process(0, [arrives], [], now_ms=T0)
    scopes = {codec.parse_scope_key(key) for _, key, _ in second.partials if key != codec.WATERMARK_KEY}
    assert ("default", "channel", "email") in scopes
    assert ("default", "channel", "unknown") in scopes  # the survey leaves it
