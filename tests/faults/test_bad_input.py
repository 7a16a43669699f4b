"""Bad input at volume: hypothesis-made malformed records interleaved with good events, one live worker.

Every bad record is made from a good event with exactly one fault, so the test knows its reason
without asking the product; each must be in the dead letter once, unchanged, with that reason. The
good events (simulator traffic, plus unusual but valid ones: unknown channels, huge values, deep
nesting in an extra field, a record of exactly the size limit) must all be counted.
"""

from __future__ import annotations

import random
import re
from collections import Counter

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from stream_app.simulate import format_time
from tests.faults.ledger import Bad, dead_expected, metric, records_of, settle_dead_letters, tally
from tests.harness import produce
from tests.integration.traffic import Traffic, settle, simulated
from tests.reference import to_ms

pytestmark = [pytest.mark.faults, pytest.mark.integration]

MAX_BYTES = 65_536  # CX_MAX_RECORD_BYTES, default
MAX_SECONDS = 2**53 / 1000  # wait and handle times: whole milliseconds summed exactly
AT = "2026-11-20T08:03:00Z"
# RFC 3339 date-time with a zone, written here from the RFC, not taken from the product.
RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", re.ASCII)

INTERACTION = {"event_id": "bad-i", "interaction_id": "bad-int", "channel": "chat", "queue": "chat-support",
               "agent_id": "agent-001", "touchpoint": "support", "started_at": AT, "closed_at": AT,
               "wait_seconds": 12.5, "handle_seconds": 300, "transfers": 0, "abandoned": False,
               "resolved": True,
               "customer_id": "cust-000001", "tenant": "default"}
SURVEY = {"event_id": "bad-s", "interaction_id": "bad-int", "answered_at": AT, "comment": "fine",
          "answers": [{"metric": "ces", "value": 5, "scale_min": 1, "scale_max": 7},
                      {"metric": "csat", "value": 4}, {"metric": "nps", "value": 9}]}

json_scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
not_string = json_values.filter(lambda v: v is not None and not isinstance(v, str))
not_number = json_values.filter(lambda v: v is not None
                                and (isinstance(v, bool) or not isinstance(v, (int, float))))
not_bool = json_values.filter(lambda v: v is not None and not isinstance(v, bool))
not_integer = (st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
               | not_number)
bad_strings = st.just("") | st.text(min_size=257, max_size=400)  # empty, or longer than 256
blank = st.text(alphabet=" \t", min_size=1, max_size=4)

WRONG_INTERACTION = {
    **{f: not_string | st.none() | bad_strings for f in ("event_id", "interaction_id")},
    "channel": not_string | st.none() | bad_strings | blank,
    **{f: not_string | bad_strings | blank for f in ("queue", "agent_id", "touchpoint")},
    **{f: not_string | bad_strings for f in ("tenant", "customer_id")},
    "closed_at": not_string | st.none() | st.just("") | st.text(min_size=65, max_size=80),
    **{f: not_number | st.floats(max_value=-1e-9, allow_infinity=False)
       for f in ("wait_seconds", "handle_seconds")},
    "transfers": not_integer | st.integers(max_value=-1),
    **{f: not_bool for f in ("abandoned", "resolved")},
}
WRONG_SURVEY = {
    **{f: not_string | st.none() | bad_strings for f in ("event_id", "answered_at")},
    "interaction_id": not_string | bad_strings,
    "comment": not_string,
    "answers": (json_values.filter(lambda v: not isinstance(v, list)) | st.just([])
                | st.lists(st.just({"metric": "csat", "value": 3}), min_size=11, max_size=14)
                | st.lists(not_string.filter(lambda v: not isinstance(v, dict)), min_size=1, max_size=3)),
}
WRONG_ANSWER = {  # on the ces answer (index 0), which carries an explicit 1-7 scale
    "metric": st.text(max_size=8).filter(lambda m: m not in ("ces", "csat", "nps")) | not_string,
    "value": not_number | st.none(),
    "scale_min": not_integer,
    "higher_is_easier": not_bool,
}


def encode(event: dict) -> bytes:
    return orjson.dumps(event)


def with_raw(event: dict, name: str, raw: bytes) -> bytes:
    """The event with one more field written as raw JSON (orjson will not write 500 levels of nesting)."""
    return encode(event)[:-1] + b',"' + name.encode() + b'":' + raw + b"}"


@st.composite
def wrong_field(draw):
    kind = draw(st.sampled_from("is"))
    event = dict(INTERACTION if kind == "i" else SURVEY)
    wrong = WRONG_INTERACTION if kind == "i" else WRONG_SURVEY
    name = draw(st.sampled_from(sorted(wrong)))
    event[name] = draw(wrong[name])
    return kind, encode(event), "schema_violation"


@st.composite
def wrong_answer(draw):
    name = draw(st.sampled_from(sorted(WRONG_ANSWER)))
    answer = {"metric": "ces", "value": 5, "scale_min": 1, "scale_max": 7, name: draw(WRONG_ANSWER[name])}
    if name == "metric":  # not ces any more: a scale would break the nps rule as well
        del answer["scale_min"], answer["scale_max"]
    return "s", encode({**SURVEY, "answers": [answer, *SURVEY["answers"][1:]]}), "schema_violation"


@st.composite
def missing_field(draw):
    kind = draw(st.sampled_from("is"))
    # without channel, a survey's interaction_id is required
    required = ("event_id", "interaction_id", "channel", "closed_at") if kind == "i" else \
        ("event_id", "answered_at", "answers", "interaction_id")
    event = dict(INTERACTION if kind == "i" else SURVEY)
    del event[draw(st.sampled_from(required))]
    return kind, encode(event), "schema_violation"


@st.composite
def off_scale(draw):
    metric, lo, hi = draw(st.sampled_from([("ces", 1, 7), ("csat", 1, 5), ("nps", 0, 10)]))
    explicit = metric != "nps" and draw(st.booleans())
    if explicit:
        lo = draw(st.integers(-100, 100))
        hi = draw(st.integers(lo + 1, lo + 200))
    value = draw(st.floats(max_value=lo, exclude_max=True, allow_infinity=False)
                 | st.floats(min_value=hi, exclude_min=True, allow_infinity=False))
    answer = {"metric": metric, "value": value, **({"scale_min": lo, "scale_max": hi} if explicit else {})}
    return "s", encode({**SURVEY, "answers": [answer]}), "value_out_of_scale"


@st.composite
def empty_scale(draw):
    lo = draw(st.integers(-50, 50))
    hi = draw(st.integers(lo - 50, lo))
    answer = {"metric": draw(st.sampled_from(["ces", "csat"])), "value": lo, "scale_min": lo, "scale_max": hi}
    return "s", encode({**SURVEY, "answers": [answer]}), "value_out_of_scale"


@st.composite
def endless_wait(draw):
    field = draw(st.sampled_from(["wait_seconds", "handle_seconds"]))
    value = draw(st.floats(min_value=MAX_SECONDS, exclude_min=True, allow_infinity=False))
    return "i", encode({**INTERACTION, field: value}), "value_out_of_scale"


@st.composite
def nps_on_another_scale(draw):
    lo, hi = draw(st.tuples(st.integers(0, 5), st.integers(6, 20)).filter(lambda s: s != (0, 10)))
    value = draw(st.integers(lo, min(hi, 10)))
    given_ = draw(st.sampled_from(["both", "min", "max"]))
    scale = {"both": {"scale_min": lo, "scale_max": hi}, "min": {"scale_min": lo or 1},
             "max": {"scale_max": hi if hi != 10 else 11}}[given_]
    answer = {"metric": "nps", "value": value, **scale}
    return "s", encode({**SURVEY, "answers": [SURVEY["answers"][0], answer]}), "nps_scale"


@st.composite
def bad_time(draw):
    kind = draw(st.sampled_from("is"))
    field = draw(st.sampled_from(["closed_at", "started_at"] if kind == "i" else ["answered_at"]))
    stamp = draw(st.sampled_from(["2026-11-20T10:00:00", "2026-11-20", "2026-02-30T10:00:00Z",
                                  "2026-11-20T24:00:00Z", "2026-11-20T10:00:00+24:00", "yesterday",
                                  "2026-11-20T10:00Z", "20261120T100000Z"])
                 | st.text(min_size=1, max_size=40).filter(lambda t: not RFC3339.fullmatch(t)))
    if field != "started_at":  # an event time its windows could not be written for (years 1-9999)
        stamp = draw(st.just(stamp) | st.sampled_from(["9999-12-31T23:30:00Z", "9000-01-01T00:00:00Z",
                                                       "1969-12-31T23:59:59Z"]))
    event = dict(INTERACTION if kind == "i" else SURVEY)
    event[field] = stamp
    return kind, encode(event), "bad_timestamp"


@st.composite
def oversize(draw):
    kind = draw(st.sampled_from("is"))
    event = dict(INTERACTION if kind == "i" else SURVEY, padding="")
    size = MAX_BYTES + draw(st.integers(1, 200_000))
    event["padding"] = "x" * (size - len(encode(event)))
    return kind, encode(event), "oversize"


@st.composite
def not_json(draw):
    kind = draw(st.sampled_from("is"))
    whole = encode(INTERACTION if kind == "i" else SURVEY)
    value = draw(st.builds(lambda cut: whole[:cut], st.integers(0, len(whole) - 1))  # cut off
                 | st.binary(max_size=30).map(lambda b: b'{"event_id": "' + b + b'\xff"}')  # not UTF-8
                 | st.text(max_size=30).map(lambda t: ("<" + t).encode())
                 | st.integers(1_100, 3_000).map(lambda d: b'{"x": ' + b"[" * d + b"]" * d + b"}")  # too deep
                 | st.just(None))  # a tombstone
    return kind, value, "invalid_json"


@st.composite
def not_an_object(draw):
    value = draw(json_values.filter(lambda v: not isinstance(v, dict)))
    return draw(st.sampled_from("is")), orjson.dumps(value), "not_an_object"


bad_record = st.one_of(wrong_field(), wrong_answer(), missing_field(), off_scale(), empty_scale(),
                       endless_wait(), nps_on_another_scale(), bad_time(), oversize(), not_json(),
                       not_an_object())


def draw_examples(strategy: st.SearchStrategy, count: int) -> list:
    """``count`` examples of a strategy, every one kept: one batch for one live worker, rather than a
    worker per example. Derandomized, so the same code gives the same batch; hypothesis also draws on
    literals of the project modules loaded at the time, so the batch of ``pytest tests`` differs from that
    of this file alone. Each example carries its own expected reason, and a failure quotes the record."""
    drawn: list = []

    @settings(max_examples=count, derandomize=True, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example):
        drawn.append(example)

    collect()
    return drawn


def unusual_but_valid(traffic: Traffic, topics: dict[str, str]) -> list[tuple[tuple, dict]]:
    """Good events the simulator never makes, at a time inside its traffic: interactions and their surveys."""
    at = to_ms(traffic.interactions[len(traffic.interactions) // 2]["closed_at"])
    variants = [{"channel": name} for name in ("video", "IVR", "  Web ", "kiosk-7", "WhatsApp", "Bürgerbüro")]
    variants += [{"channel": "chat", "wait_seconds": MAX_SECONDS, "handle_seconds": 1e9, "transfers": 10**18},
                 {"channel": "email", "unknown_field": {"a": 1}},  # and 500 levels of nesting, below
                 {"channel": "voice", "customer_id": None, "queue": None, "resolved": None}]
    events = []
    for number, fields in enumerate(variants):
        interaction = {**INTERACTION, "event_id": f"odd-i-{number}", "interaction_id": f"odd-{number}",
                       "closed_at": format_time(at + number), "started_at": format_time(at - 60_000),
                       **fields}
        survey = {**SURVEY, "event_id": f"odd-s-{number}", "interaction_id": f"odd-{number}",
                  "answered_at": format_time(at + 60_000 + number),
                  "answers": [{"metric": "ces", "value": 10**17, "scale_min": 1, "scale_max": 10**18}]}
        events += [(topics["interactions"], interaction, encode(interaction)),
                   (topics["surveys"], survey, encode(survey))]
    deep = events[-4]  # the email interaction
    events[-4] = (*deep[:2], with_raw(deep[1], "deep", b"[" * 500 + b"]" * 500))
    at_limit = {**INTERACTION, "event_id": "odd-limit", "interaction_id": "odd-limit",
                "closed_at": format_time(at), "padding": ""}
    at_limit["padding"] = "x" * (MAX_BYTES - len(encode(at_limit)))
    events.append((topics["interactions"], at_limit, encode(at_limit)))
    return [((topic, event["interaction_id"].encode(), value), event) for topic, event, value in events]


async def test_bad_records_at_volume_each_dead_lettered_with_its_reason_and_every_good_one_counted(
        deployment, start_worker, figures):
    topics = deployment.topics
    traffic = simulated(deployment, 3_000, seed=21)
    odd = unusual_but_valid(traffic, topics)
    good = Traffic(traffic.records + [record for record, _ in odd],
                   traffic.interactions + [e for (t, _, _), e in odd if t == topics["interactions"]],
                   traffic.surveys + [e for (t, _, _), e in odd if t == topics["surveys"]])
    bad = draw_examples(bad_record, 600)
    reasons = Counter(reason for _, _, reason in bad)
    assert set(reasons) == {"schema_violation", "value_out_of_scale", "nps_scale", "bad_timestamp",
                            "oversize", "invalid_json", "not_an_object"}

    keys = [key for _, key, _ in traffic.records]
    rng = random.Random(21)
    entries = [(record, None) for record in traffic.records]
    for (topic, key, value), _ in odd:
        entries.insert(len(entries) // 2, ((topic, key, value), None))
    for kind, value, reason in bad:
        key = rng.choice(keys) if rng.random() < 0.9 else rng.choice([None, b"\x00\xff"])
        topic = topics["interactions" if kind == "i" else "surveys"]
        entries.insert(rng.randrange(len(entries) + 1), ((topic, key, value), Bad(key, value, reason)))

    worker = start_worker()
    expected = dead_expected(entries, await produce(records_of(entries)))
    settled = await settle(deployment, good, dimensions=("all", "channel", "queue"))
    found, problems = await settle_dead_letters(deployment, expected)
    lost, duplicated = tally(settled.latest, good)
    text = worker.metrics()
    figures(fed=len(entries), lost=lost, duplicated=duplicated, dead_lettered=len(found),
            **{f"dead_{reason}": n for reason, n in sorted(reasons.items())})
    assert settled.exact, settled.diffs
    assert not problems, problems
    assert metric(text, "cx_events_total", outcome="invalid") == len(bad)
    assert metric(text, "cx_events_total", outcome="ok") == len(good.records)
    assert worker.proc.poll() is None
