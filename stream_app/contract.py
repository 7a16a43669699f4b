"""The one validation path: raw Kafka bytes in, typed contract values out (or ``InvalidEvent``).

The JSON Schemas in ``schemas/`` are the single source of truth for the shape of an event: they are
compiled once, at import (jsonschema-rs gives the verdict, fastjsonschema names the failing field).
What a schema cannot say (a value within the scale the answer itself declares, RFC 3339 with a
zone, finite numbers) is checked here right after, in the same pass that builds the values. Per
record the hot path is: a size check, one ``orjson.loads``, one compiled validator call and a direct
construction of frozen dataclasses.

Reason codes (the dead-letter ``reason`` header):

``oversize``            the value is longer than ``max_bytes`` (checked before decoding)
``invalid_json``        no value, not UTF-8, or not JSON
``not_an_object``       JSON, but not an object
``schema_violation``    a field missing, mistyped, empty or too long; the detail names the field path
``value_out_of_scale``  an answer outside its scale, ``scale_min >= scale_max``, a non-finite number, or a
                        wait or handle time above ``MAX_SECONDS``
``nps_scale``           an nps answer whose scale is not 0-10
``bad_timestamp``       a time that is not RFC 3339 or has no zone, or an event time outside
                        [``EVENT_TIME_MIN_MS``, ``EVENT_TIME_MAX_MS``)

``customer_id`` and ``comment`` are never copied into the values, nor into any error detail.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, overload

import fastjsonschema
import jsonschema_rs
import orjson

from stream_app.errors import ConfigError, InvalidEvent
from stream_app.events import Answer, Interaction, Survey

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_SCALES",
    "EVENT_TIME_MAX_MS",
    "EVENT_TIME_MIN_MS",
    "MAX_SECONDS",
    "REASONS",
    "SCHEMA_DIR",
    "decode_interaction",
    "decode_survey",
    "load_schema",
    "parse_timestamp_ms",
    "validator",
]

DEFAULT_MAX_BYTES = 65536
#: Times are summed in whole milliseconds in doubles, exact up to 2**53 ms (about 285,000 years); a
#: larger wait or handle time could not be summed exactly, and one above about 1.8e305 s overflows.
MAX_SECONDS = 2**53 / 1000
#: Window edges are written in RFC 3339, whose years have four digits: an event time must leave its
#: windows room to end before the year 10000. From the epoch the windows are aligned to, to 9000-01-01.
EVENT_TIME_MIN_MS = 0
EVENT_TIME_MAX_MS = 221_845_392_000_000
DEFAULT_TENANT = "default"
#: Default (scale_min, scale_max) per metric; nps accepts no other scale.
DEFAULT_SCALES: dict[str, tuple[int, int]] = {"ces": (1, 7), "csat": (1, 5), "nps": (0, 10)}
REASONS = (
    "oversize",
    "invalid_json",
    "not_an_object",
    "schema_violation",
    "value_out_of_scale",
    "nps_scale",
    "bad_timestamp",
)

INTERACTION_SCHEMA = "interaction-closed.v1.json"
SURVEY_SCHEMA = "survey-answered.v1.json"


def _find_schema_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "schemas", here / "schemas"):  # source tree, then package data
        if (candidate / INTERACTION_SCHEMA).is_file():
            return candidate
    raise ConfigError(f"JSON Schemas not found: expected {here.parent / 'schemas' / INTERACTION_SCHEMA}")


SCHEMA_DIR = _find_schema_dir()


def load_schema(name: str) -> dict[str, Any]:
    """The parsed JSON Schema ``schemas/<name>`` (e.g. ``"score-snapshot.v1.json"``)."""
    path = SCHEMA_DIR / name
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read JSON Schema {path}: {exc}") from exc


@cache
def validator(name: str, *, use_formats: bool = True) -> Callable[[Any], Any]:
    """A compiled fastjsonschema validator for ``schemas/<name>``, built once per process.

    Useful to check outputs (snapshots, alerts) in tests; raises ``fastjsonschema.JsonSchemaException``.
    The input decoders below use their own instances with formats off (times are parsed here).
    """
    return fastjsonschema.compile(load_schema(name), use_default=False, use_formats=use_formats)


def _checker(name: str) -> Callable[[Any], None]:
    """The schema's verdict from jsonschema-rs (compiled, in Rust: about a microsecond a record);
    when it says no, fastjsonschema's exception names the failing field and rule.

    Formats are off: every time is parsed below anyway (and must be, to get its milliseconds),
    with a check that is exactly RFC 3339's date-time. Should the two validators ever disagree,
    the verdict stands and jsonschema-rs words the detail.
    """
    verdict = jsonschema_rs.validator_for(load_schema(name), validate_formats=False)
    explain = validator(name, use_formats=False)

    def check(data: Any) -> None:
        if not verdict.is_valid(data):
            explain(data)
            first = next(iter(verdict.iter_errors(data)), None)
            raise InvalidEvent("schema_violation",
                               (first.message if first else "rejected by the schema")[:300])

    return check


_validate_interaction = _checker(INTERACTION_SCHEMA)
_validate_survey = _checker(SURVEY_SCHEMA)

_JsonSchemaValueException = fastjsonschema.JsonSchemaValueException
_JSONDecodeError = orjson.JSONDecodeError
_loads = orjson.loads
_INF = float("inf")

# RFC 3339 section 5.6 date-time; 'T' may be 't' or a space (section 5.6, NOTE). ASCII digits only.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))",
    re.ASCII,
)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_fromisoformat = datetime.fromisoformat
_NAME_INDEX = re.compile(r"^data(?=[.\[]|$)\.?")
_SCALE_FIELD = re.compile(r"answers\[\d+\]\.scale_(?:min|max)$")


def parse_timestamp_ms(text: str, field: str = "time") -> int:
    """Milliseconds since the epoch (UTC) of an RFC 3339 date-time with a zone (``Z`` or an offset).

    Digits beyond milliseconds are truncated (floor); a leap second ``:60`` counts as the next
    second. Raises ``InvalidEvent("bad_timestamp", ...)``.
    """
    match = _RFC3339.fullmatch(text) if type(text) is str else None
    if match is None:
        raise InvalidEvent("bad_timestamp",
                           f"{field}: not an RFC 3339 date-time with a time zone: {_quote(text)}")
    try:  # fast path, in C; the regex above already made sure it is RFC 3339 with a zone
        return (_fromisoformat(text) - _EPOCH) // _ONE_MS
    except ValueError:  # 't'/'z' in lower case, a leap second, or out of range: the careful way
        pass
    year, month, day, hour, minute, second, frac, sign, off_h, off_m = match.groups()
    hour_i, minute_i, second_i = int(hour), int(minute), int(second)
    if hour_i > 23 or minute_i > 59 or second_i > 60:
        raise InvalidEvent("bad_timestamp", f"{field}: time of day out of range: {_quote(text)}")
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise InvalidEvent("bad_timestamp", f"{field}: no such date: {_quote(text)}") from None
    ms = ((days * 24 + hour_i) * 60 + minute_i) * 60_000 + second_i * 1000
    if frac:
        ms += int((frac + "00")[:3])
    if sign:
        off_h_i, off_m_i = int(off_h), int(off_m)
        if off_h_i > 23 or off_m_i > 59:
            raise InvalidEvent("bad_timestamp", f"{field}: time zone offset out of range: {_quote(text)}")
        offset = (off_h_i * 60 + off_m_i) * 60_000
        ms = ms - offset if sign == "+" else ms + offset
    return ms


def _event_time_ms(text: str, field: str) -> int:
    ms = parse_timestamp_ms(text, field)
    if not EVENT_TIME_MIN_MS <= ms < EVENT_TIME_MAX_MS:
        raise InvalidEvent("bad_timestamp", f"{field}: outside 1970-01-01 to 9000-01-01: {_quote(text)}")
    return ms


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _load(value: bytes | None, max_bytes: int) -> dict:
    if value is None:
        raise InvalidEvent("invalid_json", "no value (tombstone)")
    try:
        size = len(value)
        if size > max_bytes:
            raise InvalidEvent("oversize", f"value is {size} bytes, more than the limit of {max_bytes}")
        data = _loads(value)
    except _JSONDecodeError as exc:
        raise InvalidEvent("invalid_json", str(exc)[:200]) from None
    except TypeError:  # not bytes-like at all
        raise InvalidEvent("invalid_json", f"value of type {type(value).__name__} is not bytes") from None
    if type(data) is not dict:
        raise InvalidEvent("not_an_object", f"the value is a JSON {_json_type(data)}, not an object")
    return data


def _json_type(data: object) -> str:
    if isinstance(data, bool):
        return "boolean"
    if isinstance(data, (int, float)):
        return "number"
    if isinstance(data, str):
        return "string"
    if isinstance(data, list):
        return "array"
    return "null" if data is None else type(data).__name__


def _schema_error(exc: fastjsonschema.JsonSchemaValueException) -> InvalidEvent:
    """Map a validator exception to a reason code and a detail that names the field path."""
    name = exc.name or "data"
    path = _NAME_INDEX.sub("", name) or "(event)"
    rule = exc.rule
    if rule == "enum" and _SCALE_FIELD.search(name):
        # The only enum on a scale field is the nps rule (survey schema: else-branch of the answer).
        return InvalidEvent("nps_scale", f"{path.rsplit('.', 1)[0]}: an nps answer must use the 0-10 scale")
    if rule == "required":
        definition = exc.rule_definition if isinstance(exc.rule_definition, list) else []
        present = exc.value.keys() if isinstance(exc.value, dict) else ()
        missing = [field for field in definition if field not in present] or definition
        prefix = "" if path == "(event)" else path + "."
        return InvalidEvent("schema_violation",
                            "missing required field(s): " + ", ".join(prefix + m for m in missing))
    if rule == "anyOf" and path == "(event)":
        return InvalidEvent("schema_violation", "interaction_id: required (a string) unless channel is given")
    message = exc.message
    if message.startswith(name):
        message = path + message[len(name) :]
    return InvalidEvent("schema_violation", message[:300])


@overload
def _dimension(value: str, field: str) -> str: ...
@overload
def _dimension(value: str | None, field: str) -> str | None: ...
def _dimension(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not value:
        raise InvalidEvent("schema_violation", f"{field} is blank")
    return value


def _seconds(value: float | int | None, field: str) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except OverflowError:
        raise InvalidEvent("value_out_of_scale", f"{field} is not a finite number") from None
    if seconds != seconds or seconds == _INF:
        raise InvalidEvent("value_out_of_scale", f"{field} is not a finite number")
    if seconds > MAX_SECONDS:
        raise InvalidEvent("value_out_of_scale", f"{field} is more than {MAX_SECONDS:.0f} seconds")
    return seconds


def decode_interaction(value: bytes | None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Interaction:
    """Validate one interaction-closed value and return it as an ``Interaction``.

    Raises ``InvalidEvent`` (and nothing else) when the value breaks the contract.
    """
    data = _load(value, max_bytes)
    try:
        _validate_interaction(data)
        get = data.get
        started_at = get("started_at")
        if started_at is not None:
            parse_timestamp_ms(started_at, "started_at")
        tenant = get("tenant")
        transfers = get("transfers")
        abandoned = get("abandoned")
        return Interaction(
            data["event_id"],
            data["interaction_id"],
            DEFAULT_TENANT if tenant is None else tenant,
            _dimension(data["channel"], "channel"),
            _dimension(get("queue"), "queue"),
            _dimension(get("agent_id"), "agent_id"),
            _dimension(get("touchpoint"), "touchpoint"),
            _event_time_ms(data["closed_at"], "closed_at"),
            _seconds(get("wait_seconds"), "wait_seconds"),
            _seconds(get("handle_seconds"), "handle_seconds"),
            0 if transfers is None else int(transfers),
            False if abandoned is None else abandoned,
            get("resolved"),
        )
    except InvalidEvent:
        raise
    except _JsonSchemaValueException as exc:
        raise _schema_error(exc) from None
    except Exception as exc:  # noqa: BLE001 - nothing but InvalidEvent may escape
        raise InvalidEvent("schema_violation", f"unexpected {type(exc).__name__} while validating") from None


def _answers(items: list[dict]) -> tuple[Answer, ...]:
    answers = []
    for index, item in enumerate(items):
        metric = item["metric"]
        get = item.get
        default_min, default_max = DEFAULT_SCALES[metric]
        scale_min = get("scale_min")
        scale_max = get("scale_max")
        scale_min = default_min if scale_min is None else int(scale_min)
        scale_max = default_max if scale_max is None else int(scale_max)
        if metric == "nps" and (scale_min != 0 or scale_max != 10):  # the schema's if/then/else
            raise InvalidEvent("nps_scale", f"answers[{index}]: an nps answer must use the 0-10 scale")
        if scale_min >= scale_max:
            raise InvalidEvent(
                "value_out_of_scale",
                f"answers[{index}]: scale_min {scale_min} is not below scale_max {scale_max}",
            )
        try:
            number = float(item["value"])
        except OverflowError:
            number = _INF
        if not scale_min <= number <= scale_max:  # also false for NaN
            shown = "a non-finite number" if number != number or number in (_INF, -_INF) else f"{number:g}"
            raise InvalidEvent(
                "value_out_of_scale",
                f"answers[{index}].value {shown} is outside the {metric} scale {scale_min}-{scale_max}",
            )
        higher_is_easier = get("higher_is_easier") if metric == "ces" else None
        answers.append(Answer(metric, number, scale_min, scale_max, higher_is_easier is not False))
    return tuple(answers)


def decode_survey(value: bytes | None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Survey:
    """Validate one survey-answered value and return it as a ``Survey``.

    Raises ``InvalidEvent`` (and nothing else) when the value breaks the contract.
    """
    data = _load(value, max_bytes)
    try:
        _validate_survey(data)
        get = data.get
        tenant = get("tenant")
        interaction_id = get("interaction_id")
        channel = _dimension(get("channel"), "channel")
        if interaction_id is None and channel is None:  # the schema says so too; belt and braces
            raise InvalidEvent("schema_violation",
                               "interaction_id: required (a string) unless channel is given")
        return Survey(
            data["event_id"],
            interaction_id,
            DEFAULT_TENANT if tenant is None else tenant,
            channel,
            _dimension(get("queue"), "queue"),
            _dimension(get("agent_id"), "agent_id"),
            _dimension(get("touchpoint"), "touchpoint"),
            _event_time_ms(data["answered_at"], "answered_at"),
            _answers(data["answers"]),
        )
    except InvalidEvent:
        raise
    except _JsonSchemaValueException as exc:
        raise _schema_error(exc) from None
    except Exception as exc:  # noqa: BLE001 - nothing but InvalidEvent may escape
        raise InvalidEvent("schema_violation", f"unexpected {type(exc).__name__} while validating") from None
