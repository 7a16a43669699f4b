"""The fast decoders agree with ``stream_app.contract`` on every record: the same value, or the same
``InvalidEvent`` (reason and detail, word for word).

Values are written as JSON text by hand (``dump``) so that the odd corners of JSON are reachable:
duplicate keys, ``1.0`` and ``-0``, numbers that overflow, lone surrogates, invalid UTF-8.
"""

from __future__ import annotations

import json
import math
import random
import string
import uuid
from collections import Counter
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app import contract
from stream_app.contract import DEFAULT_MAX_BYTES, EVENT_TIME_MAX_MS, MAX_SECONDS, parse_timestamp_ms
from stream_app.engine import decode
from stream_app.engine.decode import decode_batch, decode_interaction, decode_survey
from stream_app.errors import InvalidEvent
from stream_app.events import Answer, Interaction, Survey
from stream_app.simulate import format_time

FAST = {"interaction": decode_interaction, "survey": decode_survey}
SLOW = {"interaction": contract.decode_interaction, "survey": contract.decode_survey}
PROPERTY = settings(max_examples=2000, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- writing JSON by hand ------------------------------------------------------------------------


class Raw(str):
    """JSON text written exactly as it is (``1.0``, ``-0``, ``1e400``, ``NaN``, ``"\\ud800"``)."""


class Pairs(list):
    """A JSON object as (key, value) pairs, in order: a key may come twice."""


ABSENT = object()  # a field left out


def dump(value: Any, ascii_only: bool = False) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Pairs | dict):
        items = value if isinstance(value, Pairs) else list(value.items())
        return "{" + ",".join(f"{dump(k, ascii_only)}:{dump(v, ascii_only)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)  # floats: repr, inf and nan as Infinity and NaN


def encode(value: Any, ascii_only: bool = False) -> bytes:
    # surrogatepass: a lone surrogate in a str becomes the (invalid) UTF-8 bytes ED A0 80 and the like
    return dump(value, ascii_only).encode("utf-8", "surrogatepass")


# --- comparing ------------------------------------------------------------------------------------


def outcome(decoder: Any, value: Any, max_bytes: int) -> tuple:
    try:
        result = decoder(value, max_bytes=max_bytes)
    except InvalidEvent as error:
        return ("rejected", error.reason, error.detail)
    # repr as well as the value: it tells 1 from 1.0, True from 1 and -0.0 from 0.0
    return ("accepted", result, repr(result))


def assert_agrees(kind: str, value: Any, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple:
    expected = outcome(SLOW[kind], value, max_bytes)
    assert outcome(FAST[kind], value, max_bytes) == expected
    (item,) = decode_batch([value], kind, max_bytes)  # type: ignore[arg-type]
    if expected[0] == "accepted":
        assert (item, repr(item)) == expected[1:]
    else:
        assert isinstance(item, InvalidEvent) and (item.reason, item.detail) == expected[1:]
    return expected


# --- strategies -----------------------------------------------------------------------------------
#
# A record is drawn as a seed for a cheap pseudo-random builder of a *valid* value (most fields, many
# shapes: what producers send and the corners the contract accepts), then 0-3 hypothesis-drawn
# corruptions (a field dropped, nulled, mistyped, out of range, written twice; an unknown field; a
# mutation of the bytes). So most values are accepted, and each rejection has a single cause.

ODD_NUMBERS = [Raw(t) for t in (
    "1.0", "2.0", "-0", "-0.0", "0.0", "1e3", "1E2", "1e400", "-1e400", "1e-400", "1.5", "-1", "NaN",
    "Infinity", "-Infinity", "9223372036854775807", "9223372036854775808", "18446744073709551615",
    "18446744073709551616", "18446744073709551617", "1" + "0" * 30, "1" + "0" * 400, "7.0000000000000001",
    "0.1000000000000000055511151231257827", "9007199254740993", "1.7976931348623157e308", "5e-324",
    "01", "1.", ".5", "+1", "0x10", "true", "false", "null", '"5"', "[]", "{}", "[1]", '{"a": 1}',
)]
ODD_TEXTS = [
    "", " ", "   ", "\t", "\n", "\u00a0", "\u3000", "x" * 256, "x" * 257, "\u00e9" * 256, "\U0001f600" * 256,
    "\U0001f600" * 257, "A\u0130", "\u01c5", "Chat\x00", " CHAT ", "Voice-Billing", "\ud800", "a\udfffb",
]
ODD_RAW_TEXTS = [Raw(t) for t in (
    '"\\ud800"', '"\\udc00"', '"a\\ud800\\u0041"', '"\\ud83d\\ude00"', '"\\u0063hat"', '"\\/x"', '"\\x"',
    '"\x01"', '"\x7f"', '"\\u0000"', '"\\u0020"',
)]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
    | st.sampled_from(ODD_NUMBERS + ODD_RAW_TEXTS),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
ODD: list[Any] = ODD_NUMBERS + ODD_RAW_TEXTS + ODD_TEXTS + [None, True, False, 0, 5, -1, 2.5, [], {}]
odd_values = st.sampled_from(ODD) | st.sampled_from(ODD) | json_values


YEARS = (st.sampled_from(["0000", "0001", "1969", "1970", "2016", "2024", "8999", "9000", "9999"])
         | st.integers(0, 9999).map("{:04d}".format))
MONTHS, DAYS, HOURS, MINUTES = (st.integers(low, high) | st.integers(0, bad) for low, high, bad in
                                ((1, 12, 13), (1, 28, 32), (0, 23, 25), (0, 59, 61)))
SECONDS = st.integers(0, 59) | st.sampled_from([60, 61, 99])
FRACTIONS_DRAWN = (st.sampled_from(["", ".1", ".12", ".123", ".1234", ".999999999", ".", ".000"])
                   | st.text("0123456789", min_size=1, max_size=12).map(lambda s: "." + s))
SEPARATORS = st.sampled_from("TTTTt _")
ZONES_DRAWN = st.sampled_from(["Z"] * 6 + ["z", "+00:00", "-00:00", "+01:00", "-05:30", "+0100", "+23:59",
                                           "+24:00", "-12:60", "", " Z", "Z ", "Z\n", "+1:00", "ZZ"])
NEAR_MISSES = st.sampled_from(["\uff11", "\u0661", "\u00b2", " ", "+", "_", "-", ":", "a", "0", ""])
ALL_YEARS_MS = st.integers(-62_135_596_800_000, 253_402_300_799_999)


@st.composite
def stamps(draw: st.DrawFn) -> str:
    """RFC 3339 times and near misses, around the producers' 'YYYY-MM-DDTHH:MM:SS.fffZ'."""
    if draw(st.integers(0, 3)) == 0:  # the producers' own shape, anywhere in the years 1-9999
        return format_time(draw(ALL_YEARS_MS))
    text = (f"{draw(YEARS)}-{draw(MONTHS):02d}-{draw(DAYS):02d}{draw(SEPARATORS)}{draw(HOURS):02d}:"
            f"{draw(MINUTES):02d}:{draw(SECONDS):02d}{draw(FRACTIONS_DRAWN)}{draw(ZONES_DRAWN)}")
    if draw(st.integers(0, 7)) == 0:  # one character swapped for a near miss
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + draw(NEAR_MISSES) + text[at + 1:]
    return text


times = (stamps() | st.sampled_from(["", "2024-05-01", "yesterday", "2024-05-01T10:00Z"])
         | st.text(max_size=30))


# What the builders below choose from: valid values, including the unusual ones the contract accepts.
CHANNELS = ["chat", "voice", "email", "messaging", "social", "sms", " Chat", "VOICE ", "\tEmail\n",
            "\u00c9t\u00e9", "x" * 256, "\U0001f600" * 256, " A\u0130 "]
QUEUES = ["voice-billing", "Chat-Support", " email-support ", "q" * 256]
AGENTS = ["agent-001", "Agent-017 ", "AGENT-042"]
TOUCHPOINTS = ["purchase", "Support", " returns ", "billing"]
TENANTS = ["acme", " Acme ", "t" * 256, "\u00e9", "\x00"]
ZONES = ["Z"] * 8 + ["z", "+00:00", "-00:00", "+02:00", "-04:30", "+23:59", "-23:59"]
FRACTIONS = [".{:03d}"] * 6 + ["", "", ".{:01d}", ".{:02d}", ".{:04d}", ".{:09d}"]


def good_time(rng: random.Random) -> str:
    """A valid RFC 3339 time, most often in the producers' shape; now and then at an edge."""
    if rng.random() < 0.03:
        return rng.choice(["1970-01-01T00:00:00Z", "8999-12-31T23:59:59.999Z", "1970-01-01T00:00:00+00:00",
                           "2016-12-31T23:59:60Z", "2016-12-31T23:59:60.999Z", "1970-01-01t00:00:00.000z"])
    if rng.random() < 0.6:
        return format_time(rng.randrange(0, EVENT_TIME_MAX_MS - 86_400_000 * 400))
    year, month, day = rng.randrange(1971, 8999), rng.randrange(1, 13), rng.randrange(1, 29)
    hour, minute, second = rng.randrange(24), rng.randrange(60), rng.choice([rng.randrange(60), 0, 59, 60])
    fraction = rng.choice(FRACTIONS).format(rng.randrange(10**9) % 10 ** (rng.randrange(1, 10)))
    fraction = "" if fraction == "." else fraction
    separator = rng.choice("TTTTTTt ")
    return f"{year:04d}-{month:02d}-{day:02d}{separator}{hour:02d}:{minute:02d}:{second:02d}{fraction}" \
        + rng.choice(ZONES)


def good_seconds(rng: random.Random) -> Any:
    if rng.random() < 0.8:
        return rng.choice([round(rng.uniform(0, 2000), 1), rng.randrange(0, 100_000)])
    return rng.choice([
        0, 0.0, -0.0, MAX_SECONDS, 1e-300, Raw("12.0"), Raw("1e2"), Raw("-0"), Raw("-0.0"),
        Raw("9007199254740.992"), Raw("3.0000000000000001"), Raw("0.1000000000000000055511151231257827"),
        2**53 + 1, 2**63 - 1,
    ])


def optional(rng: random.Random, values: list[Any], absent: float = 0.3) -> Any:
    roll = rng.random()
    return ABSENT if roll < absent else None if roll < absent + 0.05 else rng.choice(values)


EXTRA_VALUES = ["crm", 1, 10**30, -1.5e300, None, True, [], {"a": [1, 2.5, None, "\u00e9"]}, "\U0001f600",
                [[[[{"deep": "er"}]]]], Raw("1e-400"), Raw("-0"), Raw('"\\ud83d\\ude00"')]


def extra_fields(rng: random.Random, names: list[str]) -> list[tuple[str, Any]]:
    """Now and then fields the schema does not name (it allows them): the fast path's lenient branch."""
    if rng.random() < 0.85:
        return []
    return [(rng.choice(names), rng.choice(EXTRA_VALUES)) for _ in range(rng.randrange(1, 3))]


def good_interaction(rng: random.Random) -> list[tuple[str, Any]]:
    return extra_fields(rng, ["x_source", "comment", "nested", "\u00e9"]) + [
        ("event_id", str(uuid.UUID(int=rng.getrandbits(128)))),
        ("interaction_id", rng.choice([str(uuid.UUID(int=rng.getrandbits(128))), "i", "\u00e9" * 256])),
        ("tenant", optional(rng, TENANTS, 0.6)),
        ("channel", rng.choice(CHANNELS)),
        ("queue", optional(rng, QUEUES)),
        ("agent_id", optional(rng, AGENTS)),
        ("touchpoint", optional(rng, TOUCHPOINTS)),
        ("started_at", ABSENT if rng.random() < 0.2 else good_time(rng)),
        ("closed_at", good_time(rng)),
        ("wait_seconds", ABSENT if rng.random() < 0.2 else good_seconds(rng)),
        ("handle_seconds", ABSENT if rng.random() < 0.3 else good_seconds(rng)),
        ("transfers", optional(rng, [0, 0, 1, 2, 4] * 4 + [Raw("2.0"), Raw("-0"), 2**63 - 1, 2**64 - 1,
                                                           2**64 + 1])),
        ("abandoned", optional(rng, [True, False])),
        ("resolved", optional(rng, [True, False])),
        ("customer_id", optional(rng, ["cust-000123", "c" * 256, "\U0001f600"])),
    ]


def good_answer(rng: random.Random) -> Pairs:
    metric = rng.choice(["ces", "ces", "csat", "nps"])
    low, high = {"ces": (1, 7), "csat": (1, 5), "nps": (0, 10)}[metric]
    scale: list[tuple[str, Any]] = []
    if metric == "nps":
        scale = rng.choice([[], [("scale_min", 0), ("scale_max", 10)], [("scale_min", None)],
                            [("scale_max", 10)]])
    elif rng.random() < 0.5:
        low, high = rng.choice([(low, high), (1, 5), (1, 10), (0, 1), (-3, 3), (1, 2**63 - 1)])
        scale = [("scale_min", low), ("scale_max", high)] if rng.random() < 0.8 else [("scale_max", high)]
        low = low if scale[0][0] == "scale_min" else {"ces": 1, "csat": 1}[metric]
    value = rng.choice([rng.randint(low, min(high, low + 10)), rng.randint(low, min(high, low + 10)),
                        round(rng.uniform(low, min(high, low + 10)), 2), float(low), Raw(f"{low}.0"),
                        Raw("-0.0") if low <= 0 else low, Raw(f"{high}e0")])
    answer = [("metric", metric), ("value", value), *scale]
    if rng.random() < 0.3:
        answer.append(("higher_is_easier", rng.choice([True, False, None])))
    if rng.random() < 0.05:
        answer.append(("question_id", "q7"))
    rng.shuffle(answer)
    return Pairs(answer)


def good_survey(rng: random.Random) -> list[tuple[str, Any]]:
    has_dims = rng.random() < 0.3
    return extra_fields(rng, ["x_source", "customer_id", "nested", "started_at"]) + [
        ("event_id", str(uuid.UUID(int=rng.getrandbits(128)))),
        ("interaction_id", str(uuid.UUID(int=rng.getrandbits(128))) if rng.random() < 0.9 else
         rng.choice([ABSENT, None]) if has_dims else "i-1"),
        ("tenant", optional(rng, TENANTS, 0.6)),
        ("channel", rng.choice(CHANNELS) if has_dims else optional(rng, CHANNELS, 0.9)),
        ("queue", optional(rng, QUEUES, 0.7)),
        ("agent_id", optional(rng, AGENTS, 0.7)),
        ("touchpoint", optional(rng, TOUCHPOINTS, 0.7)),
        ("answered_at", good_time(rng)),
        ("answers", [good_answer(rng) for _ in range(rng.choice([1, 1, 2, 2, 3, 10]))]),
        ("comment", optional(rng, ["Quick and easy, thanks.", "", "\U0001f600\u00e9"], 0.8)),
    ]


INTERACTION_FIELDS = ["event_id", "interaction_id", "tenant", "channel", "queue", "agent_id", "touchpoint",
                      "started_at", "closed_at", "wait_seconds", "handle_seconds", "transfers", "abandoned",
                      "resolved", "customer_id"]
SURVEY_FIELDS = ["event_id", "interaction_id", "tenant", "channel", "queue", "agent_id", "touchpoint",
                 "answered_at", "answers", "comment"]
UNKNOWN_FIELDS = ["x_source", "nested", "comment", "customer_id", "\u00e9", ""]
ANSWER_FIELDS = ["metric", "value", "scale_min", "scale_max", "higher_is_easier", "question_id"]
ANSWER_ODD = [Raw("NaN"), Raw("1e400"), Raw("1.0"), Raw("10.0"), Raw("-0"), -1, 0, 1, 5, 7, 8, 10, 11, 2**63,
              -(2**63) - 1, 1e308, True, False, None, "5", "ces", "nps", "CES", "", [], {}]


CORRUPTIONS = st.sampled_from([0, 0, 0, 0, 1, 1, 1, 2, 3])
UNKNOWN_OR_KNOWN = {kind: st.sampled_from(names + UNKNOWN_FIELDS) for kind, names in (
    ("interaction", INTERACTION_FIELDS), ("survey", SURVEY_FIELDS))}
KNOWN = {"interaction": st.sampled_from(INTERACTION_FIELDS), "survey": st.sampled_from(SURVEY_FIELDS)}
TIME_FIELDS = {"started_at", "closed_at", "answered_at"}


def corrupt(draw: st.DrawFn, kind: str, fields: list[tuple[str, Any]]) -> Pairs:
    """The fields, with 0-3 drawn corruptions, in their order or shuffled."""
    pairs = Pairs((k, v) for k, v in fields if v is not ABSENT)
    for _ in range(draw(CORRUPTIONS)):
        how = draw(st.integers(0, 9))
        if how == 0 and pairs:  # a field dropped
            del pairs[draw(st.integers(0, len(pairs) - 1))]
            continue
        name = draw(UNKNOWN_OR_KNOWN[kind] if how == 1 else KNOWN[kind])
        if how in (2, 3, 5) and kind == "survey":  # a survey's answers have the most rules
            name = "answers"
        elif how == 4 and kind == "survey":  # and it has but one time
            name = "answered_at"
        if name in TIME_FIELDS and draw(st.integers(0, 3)):
            value: Any = draw(times)
        elif name == "answers" and (how in (2, 3, 5) or draw(st.integers(0, 3))):
            value = change_answers(draw, dict(pairs).get("answers"))
        else:
            value = draw(odd_values)
        where = [i for i, (k, _) in enumerate(pairs) if k == name]
        if where and how < 8:
            pairs[where[-1]] = (name, value)
        else:  # a new field, or a key written twice
            pairs.insert(draw(st.integers(0, len(pairs))), (name, value))
    return Pairs(draw(st.permutations(pairs))) if draw(st.integers(0, 4)) == 0 else pairs


ANSWER_FIELD = st.sampled_from(ANSWER_FIELDS)
ANSWER_VALUE = st.sampled_from(ANSWER_ODD) | odd_values
SCALE_END = st.sampled_from(["scale_min", "scale_max"])
NPS_END = st.sampled_from([1, 9, 11, -1, 2**63 - 1])  # 0, 10 and null come from good_answer


def change_answers(draw: st.DrawFn, answers: Any) -> Any:
    """The answers with one changed, added or removed (or too many of them)."""
    answers = [Pairs(a) if isinstance(a, Pairs) else a for a in answers] if isinstance(answers, list) else []
    how = draw(st.integers(0, 11))
    if how == 0:
        return answers * 11 or []
    if how == 1:
        return answers[1:]
    if how == 2 or not answers:
        return answers + [draw(odd_values)]
    if how in (3, 4, 5):  # nps on a scale of its own
        return answers + [Pairs([("metric", "nps"), ("value", 5), (draw(SCALE_END), draw(NPS_END))])]
    answer = answers[draw(st.integers(0, len(answers) - 1))]
    if not isinstance(answer, Pairs):
        return answers
    field, value = draw(ANSWER_FIELD), draw(ANSWER_VALUE)
    where = [i for i, (k, _) in enumerate(answer) if k == field]
    if where and how < 10:
        answer[where[0]] = (field, value)
    elif where and how == 10:
        del answer[where[0]]
    else:
        answer.append((field, value))
    return answers


seeds = st.integers(0, 2**64 - 1)


@st.composite
def interactions(draw: st.DrawFn) -> Pairs:
    return corrupt(draw, "interaction", good_interaction(random.Random(draw(seeds))))


@st.composite
def surveys(draw: st.DrawFn) -> Pairs:
    return corrupt(draw, "survey", good_survey(random.Random(draw(seeds))))


BAD_BYTES = st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b" ", b",",
                             b"\xef\xbb\xbf", b"\xc3\xa9"])


@st.composite
def written(draw: st.DrawFn, events: st.SearchStrategy[Pairs]) -> bytes:
    """A value written with or without ASCII escapes; now and then cut, or given a bad byte."""
    value = encode(draw(events), ascii_only=draw(st.integers(0, 3)) == 0)
    roll = draw(st.integers(0, 29))
    if roll == 0:
        return value[: draw(st.integers(0, len(value) - 1))]
    if roll == 1:
        at = draw(st.integers(0, len(value)))
        return value[:at] + draw(BAD_BYTES) + value[at:]
    return value


# --- the properties -------------------------------------------------------------------------------


@PROPERTY
@given(value=written(interactions()), limit=st.sampled_from([None] * 18 + [0, 1]))
def test_interactions_decode_exactly_as_the_contract_does(value: bytes, limit: int | None) -> None:
    assert_agrees("interaction", value, DEFAULT_MAX_BYTES if limit is None else len(value) - limit)


@PROPERTY
@given(value=written(surveys()), limit=st.sampled_from([None] * 18 + [0, 1]))
def test_surveys_decode_exactly_as_the_contract_does(value: bytes, limit: int | None) -> None:
    assert_agrees("survey", value, DEFAULT_MAX_BYTES if limit is None else len(value) - limit)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=80) | json_values.map(encode) | st.sampled_from([None, b"", b"{}", b"[]", b"null"]))
def test_random_bytes_and_random_json_decode_exactly_as_the_contract_does(value: bytes | None) -> None:
    assert_agrees("interaction", value)
    assert_agrees("survey", value)


def as_outcome(item: Any) -> tuple:
    if isinstance(item, InvalidEvent):
        return ("rejected", item.reason, item.detail)
    return ("accepted", item, repr(item))


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_batches_decode_exactly_as_the_contract_does_record_by_record(data: st.DataObject) -> None:
    """A batch switches to the lenient parse after a value with unknown fields: still exact after that."""
    for kind, events in (("interaction", interactions()), ("survey", surveys())):
        values = data.draw(st.lists(written(events), max_size=8))
        expected = [outcome(SLOW[kind], value, DEFAULT_MAX_BYTES) for value in values]
        got = decode_batch(values, kind, DEFAULT_MAX_BYTES)  # type: ignore[arg-type]
        assert [as_outcome(item) for item in got] == expected


def strict_struct(kind: str, value: bytes) -> bool:
    """Whether msgspec's strict decoder takes the value (else the lenient branch had it, if any)."""
    try:
        (decode._decode_interaction if kind == "interaction" else decode._decode_survey)(value)
    except msgspec.DecodeError:
        return False
    return True


def test_the_generated_values_are_mostly_accepted_and_every_reason_is_seen() -> None:
    """The properties above are worth something only if many values pass (most of them on the fast
    path itself, some through its lenient branch for unknown fields) and every check is hit."""
    seen: dict[str, Counter[str]] = {"interaction": Counter(), "survey": Counter()}
    paths: dict[str, Counter[str]] = {"interaction": Counter(), "survey": Counter()}
    fast = {"interaction": decode._fast_interaction, "survey": decode._fast_survey}

    @settings(max_examples=300, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def collect(data: st.DataObject) -> None:
        for kind, events in (("interaction", interactions()), ("survey", surveys())):
            value = data.draw(written(events))
            expected = outcome(SLOW[kind], value, DEFAULT_MAX_BYTES)
            seen[kind][expected[0] if expected[0] == "accepted" else expected[1]] += 1
            if fast[kind](value, DEFAULT_MAX_BYTES) is not None:
                paths[kind]["strict" if strict_struct(kind, value) else "lenient"] += 1

    collect()
    for kind, counts in seen.items():
        assert counts.keys() >= {"accepted", "invalid_json", "schema_violation", "bad_timestamp"}, \
            (kind, counts)
        assert counts["accepted"] >= 0.3 * counts.total(), (kind, counts)
        assert paths[kind]["lenient"] > 0 and paths[kind].total() >= 0.7 * counts["accepted"], (kind, paths)
    assert seen["survey"].keys() >= {"value_out_of_scale", "nps_scale"}, seen["survey"]


def assert_time_agrees(text: str) -> None:
    try:
        expected: int | None = parse_timestamp_ms(text)
    except InvalidEvent:
        expected = None
    assert decode._time_ms(text) == expected  # the first time: its minute may be new
    assert decode._time_ms(text) == expected  # the second: from the cache


@settings(max_examples=800, deadline=None, database=None)
@given(times)
def test_the_quick_time_parse_equals_parse_timestamp_ms(text: str) -> None:
    assert_time_agrees(text)


@settings(max_examples=500, deadline=None, database=None)
@given(ALL_YEARS_MS, st.sampled_from(["", ".1", ".12", ".1234567"]),
       st.text(string.digits + "Zz:+-. T\uff10\u0660", max_size=3))
def test_the_quick_time_parse_equals_parse_timestamp_ms_near_the_common_shape(
    ms: int, fraction: str, noise: str
) -> None:
    text = format_time(ms)
    assert_time_agrees(text)
    assert_time_agrees(text[:19] + fraction + "Z")
    assert_time_agrees(text[:-1] + noise)
    assert_time_agrees(text[:19] + noise + text[19:])


# --- the differences between msgspec and the schema path, one by one ------------------------------

INTERACTION = {"event_id": "ev-1", "interaction_id": "int-1", "channel": "chat",
               "closed_at": "2024-05-01T10:00:00.123Z"}
SURVEY = {"event_id": "ev-2", "interaction_id": "int-1", "answered_at": "2024-05-01T10:05:00Z",
          "answers": [{"metric": "ces", "value": 6}]}


def interaction_text(**fields: Any) -> bytes:
    return encode(Pairs({**INTERACTION, **fields}.items()))


def survey_text(**fields: Any) -> bytes:
    return encode(Pairs({**SURVEY, **fields}.items()))


@settings(max_examples=500, deadline=None, database=None)
@given(st.sampled_from(["", "-"]), st.integers(0, 10**26) | st.integers(0, 10),
       st.text(string.digits, max_size=30), st.sampled_from(["", "", "e", "E-", "e+", "e0"]),
       st.integers(0, 400))
def test_numbers_are_read_to_the_same_float_as_orjson_reads_them(
    sign: str, integer: int, fraction: str, exponent: str, power: int
) -> None:
    """Long mantissas, big exponents, integers beyond 2**53: msgspec's float parse must equal orjson's."""
    text = f"{sign}{integer}{'.' if fraction else ''}{fraction}{exponent and exponent + str(power)}"
    wide = {"metric": "csat", "value": Raw(text), "scale_min": -(2**62), "scale_max": 2**62}
    assert_agrees("interaction", interaction_text()[:-1] + f',"wait_seconds":{text}}}'.encode())
    assert_agrees("interaction", interaction_text()[:-1] + f',"transfers":{text}}}'.encode())
    assert_agrees("survey", encode(Pairs({**SURVEY, "answers": [wide]}.items())))


def test_common_values_are_decoded_on_the_fast_path() -> None:
    """Not only equal: the fast path itself accepts them (else it would be no faster)."""
    assert decode._fast_interaction(interaction_text(wait_seconds=12, tenant=None), DEFAULT_MAX_BYTES) == \
        contract.decode_interaction(interaction_text(wait_seconds=12, tenant=None))
    value = survey_text(answers=[{"metric": "nps", "value": 9, "scale_min": 0, "scale_max": 10}])
    assert decode._fast_survey(value, DEFAULT_MAX_BYTES) == contract.decode_survey(value)


def test_offset_without_colon_is_rejected_like_the_schema_path() -> None:
    """msgspec's datetime would take '+0100'; RFC 3339 does not."""
    expected = assert_agrees("interaction", interaction_text(closed_at="2024-05-01T10:00:00+0100"))
    assert expected[1] == "bad_timestamp"
    value = interaction_text(closed_at="2024-05-01T10:00:00+01:00")
    assert assert_agrees("interaction", value)[0] == "accepted"


def test_sub_millisecond_digits_are_truncated_not_rounded() -> None:
    for stamp, ms in [("2024-05-01T10:00:00.9999Z", 1714557600999),
                      ("2024-05-01T10:00:00.1239999999Z", 1714557600123)]:
        assert decode_interaction(interaction_text(closed_at=stamp)).closed_at_ms == ms
        assert_agrees("interaction", interaction_text(closed_at=stamp))


def test_leap_second_lowercase_and_space_separator_are_read_like_the_contract() -> None:
    for stamp in ["2016-12-31T23:59:60Z", "2016-12-31T23:59:60.500Z", "2024-05-01t10:00:00z",
                  "2024-05-01 10:00:00Z", "2024-05-01T10:00:00.5Z", "2024-05-01T10:00:00.25Z"]:
        assert assert_agrees("interaction", interaction_text(closed_at=stamp))[0] == "accepted"


@pytest.mark.parametrize("stamp", [
    "2024-02-30T10:00:00Z", "2024-05-01T24:00:00Z", "2024-05-01T10:60:00Z", "2024-05-01T10:00:61Z",
    "0000-01-01T00:00:00Z", "2024-05-01T10:00: 1Z", "2024-05-01T10:00:+1Z", "2024-05-01T10:00:00.1_0Z",
    "2024-05-01T10:00:0\u0661Z", "2024-05-01T10:00:00.\uff11Z", "2024-05-01T10:00:00.Z",
    "2024-05-01T1\uff10:00:00Z", "2024-05-01T10:00:00+0100", "2024-05-01T10:00:00+01",
    "2024-05-01T10:00:00 Z",
])
def test_impossible_or_malformed_times_are_rejected_like_the_contract(stamp: str) -> None:
    """Among them what int() would take: ' 1', '+1', '1_0' and digits that are not ASCII."""
    assert assert_agrees("interaction", interaction_text(closed_at=stamp))[1] == "bad_timestamp"
    assert assert_agrees("interaction", interaction_text(started_at=stamp))[1] == "bad_timestamp"
    assert decode._time_ms(stamp) is None


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59Z", "9000-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z",
                                   "0001-01-01T00:00:00Z"])
def test_event_times_out_of_range_are_rejected_but_started_at_is_only_parsed(stamp: str) -> None:
    assert assert_agrees("interaction", interaction_text(closed_at=stamp))[1] == "bad_timestamp"
    assert assert_agrees("survey", survey_text(answered_at=stamp))[1] == "bad_timestamp"
    assert assert_agrees("interaction", interaction_text(started_at=stamp))[0] == "accepted"


def test_started_at_is_only_checked_and_may_be_before_1970() -> None:
    got = assert_agrees("interaction", interaction_text(started_at="1969-12-31T23:00:00.5Z"))
    assert got[0] == "accepted"


def test_duplicate_keys_keep_the_last_like_orjson() -> None:
    value = encode(Pairs([*INTERACTION.items(), ("channel", " VOICE "), ("transfers", 3), ("transfers", 1)]))
    got = assert_agrees("interaction", value)[1]
    assert (got.channel, got.transfers, got.closed_at_ms) == ("voice", 1, 1714557600123)
    value = encode(Pairs([("channel", 5), *INTERACTION.items()]))  # a first value of the wrong type
    assert assert_agrees("interaction", value)[0] == "accepted"


@pytest.mark.parametrize("text", [b'"\xff"', b'"\xed\xa0\x80"', b'"\xc0\xaf"', b'{"\xff": 1}', b"1e400",
                                  b"1" + b"0" * 400, b'"\\ud800"', b"[" * 1100 + b"]" * 1100])
def test_unknown_fields_are_checked_as_orjson_does_though_msgspec_skips_them(text: bytes) -> None:
    """msgspec skips an unknown field without checking its UTF-8, numbers or depth; orjson does not."""
    value = interaction_text()[:-1] + b',"x_extra":' + text + b"}"
    assert assert_agrees("interaction", value)[1] == "invalid_json"
    value = survey_text()[:-1] + b',"x_extra":' + text + b"}"
    assert assert_agrees("survey", value)[1] == "invalid_json"


def test_unknown_fields_are_allowed_in_events_and_answers() -> None:
    value = interaction_text(x_source="crm", nested={"a": [1, 2.5, None]}, big=10**30)
    assert assert_agrees("interaction", value)[0] == "accepted"
    value = survey_text(answers=[{"metric": "ces", "value": 5, "question_id": "q7"}], customer_id="c-1")
    assert assert_agrees("survey", value)[0] == "accepted"


def test_integral_float_is_an_integer_as_in_json_schema() -> None:
    """msgspec refuses 1.0 for an int; the contract takes it (and makes it 2): the fast path defers."""
    assert assert_agrees("interaction", interaction_text(transfers=Raw("2.0")))[1].transfers == 2
    answer = {"metric": "ces", "value": 5, "scale_min": Raw("1.0"), "scale_max": Raw("7e0")}
    assert assert_agrees("survey", survey_text(answers=[answer]))[0] == "accepted"


@pytest.mark.parametrize("number", [2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 1, 10**30])
def test_integers_beyond_64_bits_get_the_contracts_float_rounding(number: int) -> None:
    """orjson makes a float of an integer beyond 64 bits; msgspec keeps it exact. The contract's wins."""
    got = assert_agrees("interaction", interaction_text(transfers=number))
    assert got[0] == "accepted"
    assert got[1].transfers == (int(float(number)) if number >= 2**64 else number)


def test_huge_and_minus_zero_numbers_agree() -> None:
    for raw in ["-0", "-0.0", "0", "1e400", "9007199254740993", "1" + "0" * 400, "7.0000000000000001"]:
        assert_agrees("interaction", interaction_text(wait_seconds=Raw(raw)))
        assert_agrees("interaction", interaction_text(transfers=Raw(raw)))
        assert_agrees("survey", survey_text(answers=[{"metric": "ces", "value": Raw(raw)}]))
    assert repr(decode_interaction(interaction_text(wait_seconds=Raw("-0.0"))).wait_seconds) == "-0.0"
    nps = survey_text(answers=[{"metric": "nps", "value": Raw("-0.0")}, {"metric": "nps", "value": 0}])
    assert [repr(a.value) for a in decode_survey(nps).answers] == ["-0.0", "0.0"]
    assert [repr(a.value) for a in decode_survey(nps).answers] == ["-0.0", "0.0"]  # and again, cached


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_invalid_json(literal: str) -> None:
    assert assert_agrees("interaction", interaction_text(wait_seconds=Raw(literal)))[1] == "invalid_json"


@pytest.mark.parametrize(("text", "verdict"), [
    ("\U0001f600" * 256, "accepted"), ("\U0001f600" * 257, "schema_violation"), ("\u00e9" * 256, "accepted"),
    ("x" * 257, "schema_violation"), ("", "schema_violation"), ("   ", "schema_violation"),
])
def test_lengths_are_counted_in_code_points_and_blank_dimensions_rejected(text: str, verdict: str) -> None:
    for ascii_only in (False, True):
        got = assert_agrees("interaction", encode(Pairs({**INTERACTION, "queue": text}.items()), ascii_only))
        assert (got[0] if verdict == "accepted" else got[1]) == verdict


def test_time_lengths_are_bounded_at_64() -> None:
    for stamp in ["2024-05-01T10:00:00." + "1" * 43 + "Z", "2024-05-01T10:00:00." + "1" * 44 + "Z"]:
        assert_agrees("interaction", interaction_text(closed_at=stamp))


def test_null_tenant_is_the_default_tenant_and_nulls_are_absent() -> None:
    value = interaction_text(tenant=None, queue=None, transfers=None, abandoned=None)
    got = assert_agrees("interaction", value)
    assert (got[1].tenant, got[1].queue, got[1].transfers, got[1].abandoned) == ("default", None, 0, False)
    got = assert_agrees("survey", survey_text(tenant=None, interaction_id=None, channel=" Chat "))
    assert (got[1].tenant, got[1].interaction_id, got[1].channel) == ("default", None, "chat")
    assert assert_agrees("survey", survey_text(interaction_id=None))[1] == "schema_violation"


@pytest.mark.parametrize("value", [True, False])
def test_bools_are_not_numbers(value: bool) -> None:
    assert assert_agrees("interaction", interaction_text(transfers=value))[1] == "schema_violation"
    assert assert_agrees("interaction", interaction_text(wait_seconds=value))[1] == "schema_violation"
    answer = {"metric": "csat", "value": value, "scale_min": 0, "scale_max": 1}
    assert assert_agrees("survey", survey_text(answers=[answer]))[1] == "schema_violation"


def test_scales_and_the_nps_rule_agree() -> None:
    for answer in [
        {"metric": "nps", "value": 5, "scale_min": 1}, {"metric": "nps", "value": 5, "scale_max": None},
        {"metric": "ces", "value": 6, "scale_min": 1, "scale_max": 5},
        {"metric": "ces", "value": 5, "scale_min": 5, "scale_max": 5},
        {"metric": "csat", "value": 0.5, "scale_min": 0, "scale_max": 1},
        {"metric": "ces", "value": 2, "scale_max": 5, "higher_is_easier": False},
        {"metric": "csat", "value": 2, "higher_is_easier": False},
    ]:
        assert_agrees("survey", survey_text(answers=[answer]))
        assert_agrees("survey", survey_text(answers=[{"metric": "ces", "value": 1}, answer]))
    assert assert_agrees("survey", survey_text(answers=[SURVEY["answers"][0]] * 11))[1] == "schema_violation"


def test_wait_seconds_up_to_max_seconds() -> None:
    assert assert_agrees("interaction", interaction_text(wait_seconds=MAX_SECONDS))[0] == "accepted"
    value = interaction_text(handle_seconds=math.nextafter(MAX_SECONDS, math.inf))
    assert assert_agrees("interaction", value)[1] == "value_out_of_scale"


def test_oversize_is_checked_first_and_values_that_are_not_bytes_go_to_the_contract() -> None:
    value = interaction_text()
    assert assert_agrees("interaction", value, max_bytes=len(value) - 1)[1] == "oversize"
    assert assert_agrees("interaction", value, max_bytes=len(value))[0] == "accepted"
    assert assert_agrees("interaction", b"\xff" * 100, max_bytes=10)[1] == "oversize"
    for other in (None, bytearray(value), memoryview(value), value.decode(), 12345):
        assert_agrees("interaction", other)
        assert_agrees("survey", other)


def test_customer_id_and_comment_are_checked_but_never_kept() -> None:
    got = decode_interaction(interaction_text(customer_id="cust-SECRET"))
    assert "SECRET" not in repr(got)
    got_survey = decode_survey(survey_text(comment="SECRET comment"))
    assert "SECRET" not in repr(got_survey)
    assert assert_agrees("interaction", interaction_text(customer_id="c" * 257))[1] == "schema_violation"
    assert assert_agrees("survey", survey_text(comment=5))[1] == "schema_violation"


def test_the_time_cache_is_bounded_and_stays_exact() -> None:
    for minute in range(decode._MINUTES_MAX + 10):
        ms = 1_790_000_000_000 + minute * 60_000
        assert decode._time_ms(format_time(ms)) == ms
        assert len(decode._MINUTES) <= decode._MINUTES_MAX


# --- the batch form -------------------------------------------------------------------------------


def test_decode_batch_keeps_order_and_turns_rejections_into_invalid_events() -> None:
    values = [interaction_text(event_id="a"), None, b"[]", interaction_text(event_id="b", channel="  "),
              interaction_text(event_id="c", x=1), b"x" * 200, interaction_text(event_id="d")]
    got = decode_batch(values, "interaction", 150)
    assert [type(item) for item in got] == [
        Interaction, InvalidEvent, InvalidEvent, InvalidEvent, Interaction, InvalidEvent, Interaction,
    ]
    assert [item.event_id for item in got if isinstance(item, Interaction)] == ["a", "c", "d"]
    assert [(item.reason, item.detail) for item in got if isinstance(item, InvalidEvent)] == [
        ("invalid_json", "no value (tombstone)"),
        ("not_an_object", "the value is a JSON array, not an object"),
        ("schema_violation", "channel is blank"),
        ("oversize", "value is 200 bytes, more than the limit of 150"),
    ]
    assert all(item.__traceback__ is None and item.__context__ is None for item in got
               if isinstance(item, InvalidEvent))  # holding no frame (nor the parsed personal data)
    surveys_got = decode_batch([survey_text(), b"{}"], "survey", DEFAULT_MAX_BYTES)
    assert isinstance(surveys_got[0], Survey) and surveys_got[0].answers == (Answer("ces", 6.0, 1, 7, True),)
    assert isinstance(surveys_got[1], InvalidEvent) and surveys_got[1].reason == "schema_violation"
    assert decode_batch([], "survey", DEFAULT_MAX_BYTES) == []


def test_a_batch_read_leniently_after_an_unknown_field_stays_exact() -> None:
    values = [
        interaction_text(event_id="a", x_source="crm"), interaction_text(event_id="b"),
        interaction_text()[:-1] + b',"x":"\xff"}', interaction_text()[:-1] + b',"x":1e400}',
        interaction_text(event_id="c", transfers=Raw("2.0")), interaction_text(transfers="2"),
        interaction_text(event_id="d", customer_id="c" * 257),
        interaction_text(closed_at="2024-05-01T10:00:00+0100"),
        interaction_text(event_id="e", nested={"a": [1, 10**30]}), interaction_text(channel=" "), b"[]", None,
    ]
    expected = [outcome(SLOW["interaction"], value, DEFAULT_MAX_BYTES) for value in values]
    assert [as_outcome(item) for item in decode_batch(values, "interaction", DEFAULT_MAX_BYTES)] == expected
    assert [e[1].event_id for e in expected if e[0] == "accepted"] == ["a", "b", "c", "e"]
    answers = [{"metric": "ces", "value": 5, "question_id": "q1"}]
    values = [survey_text(answers=answers), survey_text(), survey_text()[:-1] + b',"x":"\xed\xa0\x80"}',
              survey_text(answers=[{"metric": "nps", "value": 5, "scale_min": 1, "note": "x"}]),
              survey_text(answers=[{"metric": "ces", "value": 9, "note": "x"}])]
    expected = [outcome(SLOW["survey"], value, DEFAULT_MAX_BYTES) for value in values]
    assert [as_outcome(item) for item in decode_batch(values, "survey", DEFAULT_MAX_BYTES)] == expected
    assert [e[0] if e[0] == "accepted" else e[1] for e in expected] == [
        "accepted", "accepted", "invalid_json", "nps_scale", "value_out_of_scale"]


def test_simulated_traffic_is_decoded_exactly_and_on_the_fast_path() -> None:
    from stream_app.simulate import generate

    values: dict[str, list[bytes]] = {"interaction": [], "survey": []}
    for record in generate(seed=3, count=12_000, start_ms=1_790_000_000_000, rate_per_s=50):
        values[record.kind].append(orjson.dumps(record.value))
    assert len(values["survey"]) > 300
    for kind, batch in values.items():
        expected = [SLOW[kind](value) for value in batch]
        assert decode_batch(batch, kind, DEFAULT_MAX_BYTES) == expected  # type: ignore[arg-type]
        fast = decode._fast_interaction if kind == "interaction" else decode._fast_survey
        assert all(fast(value, DEFAULT_MAX_BYTES) is not None for value in batch)
