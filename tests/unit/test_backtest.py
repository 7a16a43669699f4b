"""``python -m stream_app backtest`` over a JSON Lines history: the worker's engine in memory."""

from __future__ import annotations

import orjson
import pytest

from stream_app import backtest
from stream_app.snapshot import rfc3339
from tests.harness import ROOT
from tests.reference import to_ms
from tests.unit.engine.test_alerts_event_time import EXPECTED, MINUTE_MS, TRAFFIC

EXAMPLE_RULES = ROOT / "deploy/rules.example.yaml"


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory):
    """The chat incident of the engine's event-time test, as one event a line in stream order."""
    path = tmp_path_factory.mktemp("backtest") / "events.jsonl"
    path.write_bytes(b"".join(value + b"\n" for _, _, value in TRAFFIC))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = backtest.main(["--rules", str(EXAMPLE_RULES), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_gives_the_events_of_the_engine_on_other_partitions_with_at_the_step_judged(history, capsys):
    code, out, _ = run(capsys, "--events", str(history), "--format", "json")
    assert code == 0
    events = [orjson.loads(line) for line in out.splitlines()]
    for event in events:
        assert to_ms(event["at"]) % MINUTE_MS == 0 and event["at"] >= event["since"]
    # 8 partitions by murmur2 here, 2 by crc32 in the engine's test: the same decisions.
    got = sorted(({k: v for k, v in e.items() if k != "at"} for e in events),
                 key=lambda e: (e["since"], e["rule"], e["key"], e["status"]))
    assert got == EXPECTED


def test_text_lists_each_rules_episodes_and_a_summary(history, capsys):
    code, out, _ = run(capsys, "--events", str(history))
    assert code == 0
    effort = next(e for e in EXPECTED if e["rule"] == "channel-effort" and e["status"] == "firing")
    assert f"default/channel/chat: since {effort['since']}, resolved " in out
    firing = sum(e["status"] == "firing" for e in EXPECTED)
    assert out.splitlines()[-1].startswith(f"summary: {firing} episodes, {firing} rule-scopes, ")


def test_from_and_to_bound_the_event_times_read(history, capsys):
    first_since = min(to_ms(e["since"]) for e in EXPECTED)
    code, out, _ = run(capsys, "--events", str(history), "--format", "json",
                       "--to", rfc3339(first_since - 10 * MINUTE_MS))
    assert code == 0 and out == "", "history that ends before the incident shows raises nothing"


def test_a_bad_rules_file_exits_2_with_the_workers_message(tmp_path, capsys):
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - name: x\n    metric: ces.nope\n")
    assert backtest.main(["--rules", str(bad), "--events", str(tmp_path / "none.jsonl")]) == 2
    assert 'rule "x"' in capsys.readouterr().err
