"""The one validation path: every reason code, the defaults, and that nothing but InvalidEvent escapes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import fastjsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app import contract
from stream_app.contract import decode_interaction, decode_survey, parse_timestamp_ms
from stream_app.errors import InvalidEvent
from stream_app.events import Answer, Interaction, Survey

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def interaction(**fields) -> dict:
    base = {
        "event_id": "ev-1",
        "interaction_id": "int-1",
        "channel": "chat",
        "closed_at": "2024-05-01T10:00:00Z",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def survey(**fields) -> dict:
    base = {
        "event_id": "ev-2",
        "interaction_id": "int-1",
        "answered_at": "2024-05-01T10:05:00Z",
        "answers": [{"metric": "ces", "value": 6}],
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def enc(obj) -> bytes:
    return orjson.dumps(obj)


def reason_of(decode, value: bytes | None, **kwargs) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        decode(value, **kwargs)
    return info.value


# --- happy path and defaults ---------------------------------------------------------------------


def test_minimal_interaction_gets_contract_defaults():
    got = decode_interaction(enc(interaction()))
    assert got == Interaction(
        event_id="ev-1", interaction_id="int-1", tenant="default", channel="chat", queue=None, agent_id=None,
        touchpoint=None, closed_at_ms=1714557600000, wait_seconds=None, handle_seconds=None, transfers=0,
        abandoned=False, resolved=None,
    )


def test_full_interaction_is_typed_and_channel_lower_cased_and_stripped():
    got = decode_interaction(enc(interaction(
        tenant=" Acme ", channel="  Chat ", queue=" Chat-Billing", agent_id="Agent-017 ",
        touchpoint="Returns",
        started_at="2024-05-01T09:50:00Z", closed_at="2024-05-01T12:00:00.123+02:00", wait_seconds=12,
        handle_seconds=300.5, transfers=2, abandoned=True, resolved=False, customer_id="cust-9",
    )))
    assert got.channel == "chat"
    assert (got.queue, got.agent_id, got.touchpoint) == ("chat-billing", "agent-017", "returns")
    assert got.tenant == " Acme "  # the tenant is kept exactly as given
    assert got.closed_at_ms == 1714557600123
    assert got.wait_seconds == 12.0 and isinstance(got.wait_seconds, float)
    assert got.handle_seconds == 300.5
    assert got.transfers == 2 and got.abandoned is True and got.resolved is False


def test_null_optional_fields_count_as_absent():
    got = decode_interaction(enc(interaction(tenant=None, queue=None, transfers=None, abandoned=None,
                                             resolved=None)))
    assert (got.tenant, got.queue, got.transfers, got.abandoned, got.resolved) == \
        ("default", None, 0, False, None)


def test_integral_float_transfers_become_int():
    assert decode_interaction(enc(interaction(transfers=2.0))).transfers == 2


def test_survey_scale_defaults_per_metric():
    got = decode_survey(enc(survey(answers=[
        {"metric": "ces", "value": 7}, {"metric": "csat", "value": 5}, {"metric": "nps", "value": 0},
    ])))
    assert got.answers == (
        Answer("ces", 7.0, 1, 7, True), Answer("csat", 5.0, 1, 5, True), Answer("nps", 0.0, 0, 10, True),
    )
    assert got.tenant == "default" and got.answered_at_ms == 1714557900000


def test_survey_effort_wording_and_explicit_scale_are_kept():
    got = decode_survey(enc(survey(answers=[
        {"metric": "ces", "value": 2, "scale_min": 1, "scale_max": 5, "higher_is_easier": False},
        {"metric": "nps", "value": 10, "scale_min": 0, "scale_max": 10},
    ])))
    assert got.answers == (Answer("ces", 2.0, 1, 5, False), Answer("nps", 10.0, 0, 10, True))


def test_higher_is_easier_is_ignored_outside_ces():
    got = decode_survey(enc(survey(answers=[{"metric": "csat", "value": 4, "higher_is_easier": False}])))
    assert got.answers[0].higher_is_easier is True


def test_survey_dimensions_lower_cased_when_given():
    got = decode_survey(enc(survey(channel=" VOICE", queue="Voice-Billing", agent_id="AGENT-001",
                                   touchpoint="Billing")))
    assert (got.channel, got.queue, got.agent_id, got.touchpoint) == \
        ("voice", "voice-billing", "agent-001", "billing")


def test_survey_without_interaction_id_is_accepted_when_channel_is_given():
    got = decode_survey(enc(survey(interaction_id=..., channel="Email")))
    assert got.interaction_id is None and got.channel == "email"


def test_unknown_extra_fields_are_allowed():
    got = decode_interaction(enc(interaction(x_source="crm", nested={"a": [1, 2]})))
    assert got.event_id == "ev-1"
    got = decode_survey(enc(survey(answers=[{"metric": "ces", "value": 5, "question_id": "q7"}], extra=1)))
    assert got.answers[0].value == 5.0


def test_customer_id_and_comment_are_never_in_returned_values():
    got_i = decode_interaction(enc(interaction(customer_id="cust-SECRET-1")))
    got_s = decode_survey(enc(survey(comment="SECRET comment", customer_id="cust-SECRET-2")))
    for got in (got_i, got_s):
        fields = set(got._fields)
        assert "customer_id" not in fields and "comment" not in fields
        assert "SECRET" not in repr(got)
        assert "SECRET" not in json.dumps(got._asdict(), default=repr)


def test_schema_errors_do_not_quote_personal_data():
    error = reason_of(decode_interaction, enc(interaction(customer_id="x" * 300)))
    assert error.reason == "schema_violation"
    assert "customer_id" in error.detail and "xxx" not in error.detail
    error = reason_of(decode_survey, enc(survey(comment=12345678)))
    assert "comment" in error.detail and "12345678" not in error.detail


# --- every reason code ---------------------------------------------------------------------------


def test_invalid_json_for_none_value():
    assert reason_of(decode_interaction, None).reason == "invalid_json"
    assert reason_of(decode_survey, None).reason == "invalid_json"


def test_invalid_json_for_broken_json():
    assert reason_of(decode_interaction, b'{"event_id": "a",').reason == "invalid_json"


def test_invalid_json_for_non_utf8_bytes():
    assert reason_of(decode_interaction, b'{"event_id": "\xff\xfe"}').reason == "invalid_json"


def test_invalid_json_for_nan_and_overflowing_numbers():
    assert reason_of(decode_interaction, b'{"wait_seconds": NaN}').reason == "invalid_json"
    assert reason_of(decode_interaction, b'{"wait_seconds": 1e400}').reason == "invalid_json"


@pytest.mark.parametrize("value", [b"[]", b'"text"', b"42", b"null", b"true"])
def test_not_an_object(value):
    assert reason_of(decode_interaction, value).reason == "not_an_object"
    assert reason_of(decode_survey, value).reason == "not_an_object"


@pytest.mark.parametrize("field", ["event_id", "interaction_id", "channel", "closed_at"])
def test_missing_required_interaction_field_is_schema_violation_naming_it(field):
    error = reason_of(decode_interaction, enc(interaction(**{field: ...})))
    assert error.reason == "schema_violation"
    assert field in error.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", 17), ("event_id", ""), ("event_id", "x" * 257), ("channel", "   "), ("queue", ""),
        ("wait_seconds", "12"), ("wait_seconds", -1), ("handle_seconds", -0.5), ("transfers", 1.5),
        ("transfers", -1), ("abandoned", "false"), ("abandoned", 0), ("resolved", 1),
        ("closed_at", 1714557600),
        ("tenant", ""),
    ],
)
def test_mistyped_interaction_field_is_schema_violation_naming_it(field, value):
    error = reason_of(decode_interaction, enc(interaction(**{field: value})))
    assert error.reason == "schema_violation"
    assert field in error.detail


@pytest.mark.parametrize(("field", "value"),
                         [("transfers", True), ("wait_seconds", True), ("handle_seconds", False)])
def test_bool_is_not_accepted_as_a_number(field, value):
    error = reason_of(decode_interaction, enc(interaction(**{field: value})))
    assert error.reason == "schema_violation" and field in error.detail


def test_bool_answer_value_is_rejected():
    error = reason_of(decode_survey, enc(survey(answers=[{"metric": "ces", "value": True}])))
    assert error.reason == "schema_violation" and "answers[0].value" in error.detail


def test_bool_scale_is_rejected():
    error = reason_of(decode_survey, enc(survey(answers=[{"metric": "csat", "value": 1, "scale_min": True}])))
    assert error.reason == "schema_violation" and "answers[0].scale_min" in error.detail


def test_survey_without_interaction_id_and_without_channel_is_rejected():
    error = reason_of(decode_survey, enc(survey(interaction_id=...)))
    assert error.reason == "schema_violation" and "interaction_id" in error.detail
    error = reason_of(decode_survey, enc(survey(interaction_id=None, channel=None)))
    assert error.reason == "schema_violation" and "interaction_id" in error.detail


@pytest.mark.parametrize(
    ("answers", "path"),
    [
        ([], "answers"),
        ([{"metric": "ces", "value": 5}] * 11, "answers"),
        ([{"metric": "effort", "value": 5}], "answers[0].metric"),
        ([{"value": 5}], "answers[0].metric"),
        ([{"metric": "ces"}], "answers[0].value"),
        ([{"metric": "ces", "value": "5"}], "answers[0].value"),
        ([{"metric": "ces", "value": 5, "scale_max": 5.5}], "answers[0].scale_max"),
        ([{"metric": "ces", "value": 5, "higher_is_easier": "no"}], "answers[0].higher_is_easier"),
        (["ces"], "answers[0]"),
        ({"metric": "ces", "value": 5}, "answers"),
    ],
)
def test_bad_answers_are_schema_violations_naming_the_path(answers, path):
    error = reason_of(decode_survey, enc(survey(answers=answers)))
    assert error.reason == "schema_violation"
    assert path in error.detail


def test_missing_answered_at_is_schema_violation():
    error = reason_of(decode_survey, enc(survey(answered_at=...)))
    assert error.reason == "schema_violation" and "answered_at" in error.detail


@pytest.mark.parametrize(
    "answer",
    [
        {"metric": "ces", "value": 8},
        {"metric": "ces", "value": 0},
        {"metric": "ces", "value": 7.01},
        {"metric": "csat", "value": 6},
        {"metric": "nps", "value": 11},
        {"metric": "nps", "value": -1},
        {"metric": "ces", "value": 1e308},
    ],
)
def test_answer_outside_its_scale_is_value_out_of_scale(answer):
    assert reason_of(decode_survey, enc(survey(answers=[answer]))).reason == "value_out_of_scale"


def test_ces_on_one_to_five_rejects_six():
    answer = {"metric": "ces", "value": 6, "scale_min": 1, "scale_max": 5}
    error = reason_of(decode_survey, enc(survey(answers=[answer])))
    assert error.reason == "value_out_of_scale" and "answers[0].value" in error.detail


@pytest.mark.parametrize(("lo", "hi"), [(5, 5), (7, 1)])
def test_scale_min_not_below_scale_max_is_value_out_of_scale(lo, hi):
    answer = {"metric": "ces", "value": 5, "scale_min": lo, "scale_max": hi}
    assert reason_of(decode_survey, enc(survey(answers=[answer]))).reason == "value_out_of_scale"


def test_huge_wait_is_accepted_up_to_what_millisecond_sums_hold_exactly():
    limit = contract.MAX_SECONDS
    assert decode_interaction(enc(interaction(wait_seconds=limit))).wait_seconds == limit
    # 1e306 s is 1e309 ms: summed as it was, it overflowed and stopped the worker on every restart
    for field in ("wait_seconds", "handle_seconds"):
        for value in (limit * 1.0001, 1e306, 1e308):
            error = reason_of(decode_interaction, enc(interaction(**{field: value})))
            assert error.reason == "value_out_of_scale" and field in error.detail
    # JSON cannot carry inf or NaN; a float that is not finite is still refused on the typed path
    assert contract._seconds(1.5, "w") == 1.5
    for bad in (math.inf, math.nan):
        with pytest.raises(InvalidEvent) as info:
            contract._seconds(bad, "wait_seconds")
        assert info.value.reason == "value_out_of_scale"


@pytest.mark.parametrize(
    "scale",
    [{"scale_min": 1, "scale_max": 10}, {"scale_min": 1}, {"scale_max": 5}, {"scale_min": 0, "scale_max": 9}],
)
def test_nps_on_any_scale_but_zero_to_ten_is_nps_scale(scale):
    answer = {"metric": "nps", "value": 5, **scale}
    error = reason_of(decode_survey, enc(survey(answers=[{"metric": "ces", "value": 5}, answer])))
    assert error.reason == "nps_scale" and "answers[1]" in error.detail


def test_nps_on_explicit_zero_to_ten_is_accepted():
    answer = {"metric": "nps", "value": 9, "scale_min": 0, "scale_max": 10}
    assert decode_survey(enc(survey(answers=[answer]))).answers[0] == Answer("nps", 9.0, 0, 10, True)


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-05-01T10:00:00",  # no zone
        "2024-05-01 10:00:00",  # no zone
        "2024-05-01",  # a date only
        "2024-05-01T10:00Z",  # no seconds
        "01/05/2024 10:00:00Z",
        "2024-02-30T10:00:00Z",  # no such day
        "2024-05-01T25:00:00Z",
        "2024-05-01T10:00:00+2:00",
        "2024-05-01T10:00:00+24:00",
        "2024-05-01T10:00:00Z ",
        "yesterday",
        "2024-05-01T10:00:00Z\n",
        "２０２４-05-01T10:00:00Z",  # non-ASCII digits
    ],
)
def test_bad_timestamp(stamp):
    assert reason_of(decode_interaction, enc(interaction(closed_at=stamp))).reason == "bad_timestamp"
    assert reason_of(decode_survey, enc(survey(answered_at=stamp))).reason == "bad_timestamp"


@pytest.mark.parametrize("stamp", ["9000-01-01T00:00:00Z", "9999-12-31T23:30:00Z",
                                   "8999-12-31T23:00:00-01:00", "1969-12-31T23:59:59.999Z",
                                   "0001-01-01T00:05:00Z"])
def test_event_time_whose_windows_cannot_be_written_in_rfc3339_is_bad_timestamp(stamp):
    """A window ending in the year 10000 (or starting before year 1) stopped the worker on every restart."""
    assert reason_of(decode_interaction, enc(interaction(closed_at=stamp))).reason == "bad_timestamp"
    assert reason_of(decode_survey, enc(survey(answered_at=stamp))).reason == "bad_timestamp"


@pytest.mark.parametrize("stamp", ["1970-01-01T00:00:00Z", "8999-12-31T23:59:59.999Z"])
def test_event_times_at_the_edges_of_the_range_are_accepted(stamp):
    assert decode_interaction(enc(interaction(closed_at=stamp))).closed_at_ms == parse_timestamp_ms(stamp)
    assert decode_survey(enc(survey(answered_at=stamp))).answered_at_ms == parse_timestamp_ms(stamp)


def test_bad_started_at_is_bad_timestamp_too():
    error = reason_of(decode_interaction, enc(interaction(started_at="2024-05-01T10:00:00")))
    assert error.reason == "bad_timestamp" and "started_at" in error.detail


@pytest.mark.parametrize(
    ("stamp", "ms"),
    [
        ("2024-05-01T10:00:00Z", 1714557600000),
        ("2024-05-01t10:00:00z", 1714557600000),
        ("2024-05-01 10:00:00Z", 1714557600000),
        ("2024-05-01T12:00:00+02:00", 1714557600000),
        ("2024-05-01T05:30:00-04:30", 1714557600000),
        ("2024-05-01T10:00:00.1Z", 1714557600100),
        ("2024-05-01T10:00:00.123456789Z", 1714557600123),
        ("1969-12-31T23:59:59.999Z", -1),
        ("2016-12-31T23:59:60Z", 1483228800000),  # a leap second
    ],
)
def test_rfc3339_times_become_epoch_milliseconds(stamp, ms):
    assert parse_timestamp_ms(stamp) == ms


def test_oversize_is_checked_before_decoding():
    big = b"\xff" * 70_000  # not even JSON: the size is what counts
    assert reason_of(decode_interaction, big).reason == "oversize"
    value = enc(interaction(note="x" * 600))
    assert reason_of(decode_interaction, value, max_bytes=500).reason == "oversize"
    assert reason_of(decode_survey, enc(survey(comment="x" * 600)), max_bytes=500).reason == "oversize"
    assert decode_interaction(value, max_bytes=len(value)).event_id == "ev-1"


def test_unexpected_exceptions_become_schema_violation(monkeypatch):
    def boom(data):
        raise RuntimeError("validator bug")

    monkeypatch.setattr(contract, "_validate_interaction", boom)
    assert reason_of(decode_interaction, enc(interaction())).reason == "schema_violation"


def test_non_bytes_value_is_invalid_json():
    assert reason_of(decode_interaction, 12345).reason == "invalid_json"


# --- the schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in SCHEMAS.glob("*.json")))
def test_every_schema_is_draft_2020_12_and_compiles(name):
    schema = json.loads((SCHEMAS / name).read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    fastjsonschema.compile(schema)


def test_all_five_schemas_exist():
    names = {p.name for p in SCHEMAS.glob("*.json")}
    assert names >= {
        "interaction-closed.v1.json", "survey-answered.v1.json", "score-snapshot.v1.json", "alert.v1.json",
        "dead-letter.v1.json",
    }


@pytest.mark.parametrize(
    "answer",
    [
        {"metric": "nps", "value": 5, "scale_min": 1, "scale_max": 10},
        {"metric": "nps", "value": 5, "scale_max": 9},
        {"metric": "nps", "value": 5, "scale_min": 0, "scale_max": 10},
        {"metric": "nps", "value": 5, "scale_min": None},
        {"metric": "ces", "value": 5, "scale_min": 1, "scale_max": 10},
        {"metric": "csat", "value": 1, "scale_min": 0, "scale_max": 1},
    ],
)
def test_full_survey_schema_and_decoder_agree_on_the_nps_rule(answer):
    full = contract.validator("survey-answered.v1.json", use_formats=False)
    value = survey(answers=[answer])
    try:
        full(value)
        schema_ok = True
    except fastjsonschema.JsonSchemaValueException:
        schema_ok = False
    try:
        decode_survey(enc(value))
        decoder_nps_ok = True
    except InvalidEvent as error:
        decoder_nps_ok = error.reason != "nps_scale"
    assert schema_ok == decoder_nps_ok


SNAPSHOT_EXAMPLE = {
    "tenant": "acme", "dimension": "channel", "key": "chat", "window": "15m",
    "window_start": "2024-05-01T10:00:00Z", "window_end": "2024-05-01T10:15:00Z", "final": False,
    "updated_at": "2024-05-01T10:07:31.250Z",
    "ces": {"n": 40, "mean": 5.6, "effort_mean": 2.4, "easy_pct": 60.0, "difficult_pct": 17.5,
            "net_ease": 42.5, "ci95": [20.1, 61.0], "mean_ci95": [5.1, 6.1]},
    "csat": {"n": 31, "pct": 80.6, "mean": 4.2, "ci95": [63.7, 90.8], "mean_ci95": [3.9, 4.5]},
    "nps": {"n": 12, "score": 25.0, "promoters_pct": 50.0, "detractors_pct": 25.0, "ci95": [-15.2, 60.3]},
    "interactions": {"n": 310, "abandoned_pct": 3.2, "aht_seconds": 312.0, "asa_seconds": 24.5,
                     "fcr_pct": 71.0, "transfer_pct": 12.0, "service_level_pct": 80.1, "response_pct": 12.9},
}


def test_contract_snapshot_example_matches_the_snapshot_schema():
    contract.validator("score-snapshot.v1.json")(SNAPSHOT_EXAMPLE)


def test_snapshot_schema_accepts_empty_groups_and_rejects_unknown_fields():
    empty = dict(SNAPSHOT_EXAMPLE)
    empty["nps"] = {"n": 0, "score": None, "promoters_pct": None, "detractors_pct": None, "ci95": None}
    empty["ces"] = dict(SNAPSHOT_EXAMPLE["ces"], mean_ci95=None)
    validate = contract.validator("score-snapshot.v1.json")
    validate(empty)
    for bad in (
        dict(SNAPSHOT_EXAMPLE, extra=1),
        dict(SNAPSHOT_EXAMPLE, ces=dict(SNAPSHOT_EXAMPLE["ces"], ci95=[1.0])),
        dict(SNAPSHOT_EXAMPLE, csat=dict(SNAPSHOT_EXAMPLE["csat"], n=3.5)),
        {k: v for k, v in SNAPSHOT_EXAMPLE.items() if k != "final"},
    ):
        with pytest.raises(fastjsonschema.JsonSchemaValueException):
            validate(bad)


def test_contract_alert_example_matches_the_alert_schema():
    alert = {
        "alert_id": "7f1c", "rule": "chat-effort", "status": "firing", "severity": "critical",
        "tenant": "acme",
        "dimension": "channel", "key": "chat", "window": "15m", "metric": "ces.net_ease", "value": 12.0,
        "threshold": 20.0, "n": 34, "ci95": [-8.0, 31.5], "since": "2024-05-01T10:03:00Z",
        "at": "2024-05-01T10:08:00Z", "message": "CES net ease 12.0 below 20.0 on channel chat (15m)",
    }
    validate = contract.validator("alert.v1.json")
    validate(alert)
    validate(dict(alert, status="resolved", ci95=None))
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validate(dict(alert, status="flapping"))


def test_dead_letter_header_schema():
    validate = contract.validator("dead-letter.v1.json")
    validate({"reason": "too_late", "source_topic": "cx.survey-answered.v1", "source_partition": "3",
              "source_offset": "1042"})
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validate({"reason": "too_late", "source_topic": "t", "source_partition": "3"})


# --- nothing but InvalidEvent --------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
field_names = st.sampled_from([
    "event_id", "interaction_id", "tenant", "channel", "queue", "agent_id", "touchpoint", "started_at",
    "closed_at", "wait_seconds", "handle_seconds", "transfers", "abandoned", "resolved", "customer_id",
    "answered_at", "answers", "comment",
])
answer_like = st.dictionaries(
    st.sampled_from(["metric", "value", "scale_min", "scale_max", "higher_is_easier"]),
    st.sampled_from(["ces", "csat", "nps"]) | json_values,
)
event_like = st.dictionaries(
    field_names,
    json_values | st.lists(answer_like, max_size=3) | st.sampled_from(
        ["2024-05-01T10:00:00Z", "2024-05-01T10:00:00", "chat", "  ", ""]
    ),
)


def _only_invalid_event(value: bytes) -> None:
    for decode in (decode_interaction, decode_survey):
        try:
            result = decode(value)
        except InvalidEvent as error:
            assert error.reason in contract.REASONS
        else:
            assert isinstance(result, (Interaction, Survey))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_raise_nothing_but_invalid_event(value):
    _only_invalid_event(value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_random_json_values_raise_nothing_but_invalid_event(value):
    _only_invalid_event(orjson.dumps(value))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(event_like)
def test_random_event_shaped_objects_raise_nothing_but_invalid_event(value):
    _only_invalid_event(orjson.dumps(value))
