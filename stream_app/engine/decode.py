"""The contract's decoders, fast: msgspec Structs first, ``stream_app.contract`` whenever in doubt.

``stream_app.contract`` is the definition of a valid record (orjson, the published JSON Schemas and
the checks a schema cannot say) and words every rejection; it costs 6-10 us a record. Here a
``msgspec.json.Decoder`` decodes straight into Structs that carry the schema's constraints, the
remaining checks follow, and the common time shape is parsed from a cache. The one rule: **the fast
path only accepts.** Whatever it is not sure of (msgspec says no, a check fails, an unusual shape)
goes to the contract's decoder with the same bytes, so results, reasons and details are the
contract's own, word for word; an accepted record is ``==`` to what the contract returns.

Where msgspec and the schema path differ, and what is done about it:

- Unknown fields (the schema allows them): msgspec *skips* them without the checks orjson makes (it
  lets invalid UTF-8, numbers that overflow to infinity and any nesting depth through). So the Structs
  forbid unknown fields; a record that has some is parsed by orjson itself and converted with
  ``msgspec.convert`` into the same Structs made lenient (still faster than the schema validator;
  ``decode_batch``, once it meets one, reads the rest of its batch that way straight away).
- Integers: msgspec keeps any integer exact, orjson makes a float of one outside 64 bits (and the
  contract then truncates it); the Structs take int64 only. ``1.0`` is an integer for JSON Schema but
  not for msgspec: the contract decides.
- Duplicate keys: both keep the last; msgspec checks every occurrence, so it is only stricter.
- Sizes, tombstones and values that are not ``bytes``: the contract decides (``oversize`` first).
- Times: msgspec's ``datetime`` accepts ``+0100`` and rounds below the microsecond; times are
  decoded as ``str`` and parsed here exactly as ``contract.parse_timestamp_ms`` does.
- String lengths are counted in code points by both; bools are never numbers in either; NaN and
  Infinity are not JSON to either; ``-0`` is the integer 0 in both.

``customer_id`` and ``comment`` are decoded only to check their constraints: they are never copied
into a result, and the fast path never words a detail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

import msgspec
import orjson

from stream_app import contract
from stream_app.contract import (
    DEFAULT_MAX_BYTES,
    DEFAULT_SCALES,
    EVENT_TIME_MAX_MS,
    EVENT_TIME_MIN_MS,
    MAX_SECONDS,
    parse_timestamp_ms,
)
from stream_app.errors import InvalidEvent
from stream_app.events import Answer, Interaction, Survey

__all__ = ["DEFAULT_MAX_BYTES", "decode_batch", "decode_interaction", "decode_survey"]

_DEFAULT_TENANT = "default"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# --- the schemas' constraints, as msgspec types ---------------------------------------------------

_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_Time = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
# The schema bounds a time below only at 0; MAX_SECONDS is the contract's next check, taken here too.
_Seconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_SECONDS)]
# JSON Schema integers are unbounded; orjson keeps them exact only within 64 bits: take int64 here.
_Count = Annotated[int, msgspec.Meta(ge=0, le=_INT64_MAX)]
_ScaleEnd = Annotated[int, msgspec.Meta(ge=_INT64_MIN, le=_INT64_MAX)]


class _Interaction(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """interaction-closed.v1 as the schema says it, with no unknown field (see the module docstring)."""

    event_id: _Text
    interaction_id: _Text
    channel: _Text
    closed_at: _Time
    tenant: _Text | None = None
    queue: _Text | None = None
    agent_id: _Text | None = None
    touchpoint: _Text | None = None
    started_at: _Time | None = None
    wait_seconds: _Seconds | None = None
    handle_seconds: _Seconds | None = None
    transfers: _Count | None = None
    abandoned: bool | None = None
    resolved: bool | None = None
    customer_id: _Text | None = None  # checked, never copied


class _InteractionLoose(_Interaction, forbid_unknown_fields=False):
    """The same, unknown fields ignored: only for values that orjson has already parsed."""


class _Answer(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """One answer as the schema says it; frozen, so that it can be a key of the answers cache."""

    metric: Literal["ces", "csat", "nps"]
    value: float
    scale_min: _ScaleEnd | None = None
    scale_max: _ScaleEnd | None = None
    higher_is_easier: bool | None = None


class _AnswerLoose(_Answer, forbid_unknown_fields=False, frozen=True):
    pass


class _Survey(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """survey-answered.v1 as the schema says it (but for its anyOf), with no unknown field."""

    event_id: _Text
    answered_at: _Time
    answers: Annotated[tuple[_Answer, ...], msgspec.Meta(min_length=1, max_length=10)]
    interaction_id: _Text | None = None
    tenant: _Text | None = None
    channel: _Text | None = None
    queue: _Text | None = None
    agent_id: _Text | None = None
    touchpoint: _Text | None = None
    comment: str | None = None  # checked, never copied


class _SurveyLoose(_Survey, forbid_unknown_fields=False):
    """The same, unknown fields ignored (in the answers too): only for values orjson has parsed."""

    answers: Annotated[tuple[_AnswerLoose, ...], msgspec.Meta(min_length=1, max_length=10)]


_decode_interaction = msgspec.json.Decoder(_Interaction).decode
_decode_survey = msgspec.json.Decoder(_Survey).decode
_ValidationError = msgspec.ValidationError
_convert = msgspec.convert
_loads = orjson.loads
_S = TypeVar("_S", _Interaction, _Survey)
_new = tuple.__new__  # a NamedTuple's own __new__ is a Python function: this is its body, in C


def _lenient(value: bytes, error: msgspec.ValidationError, loose: type[_S]) -> _S | None:
    """The Struct of a value that has fields the schema does not name (and allows): orjson parses it,
    as in the contract, so nothing is skipped unchecked. None when anything else is wrong."""
    if not str(error).startswith("Object contains unknown field"):
        return None
    try:
        return _convert(_loads(value), loose)
    except Exception:  # noqa: BLE001 - whatever it is, the contract words it
        return None


# --- times ----------------------------------------------------------------------------------------

#: Milliseconds of validated 'YYYY-MM-DDTHH:MM' prefixes (a producer's times share a few per minute).
_MINUTES: dict[str, int] = {}
_MINUTES_MAX = 4096
_HOURS = frozenset(f"{h:02d}" for h in range(24))
_MINUTE_OF_HOUR = frozenset(f"{m:02d}" for m in range(60))
#: ':SS' (a leap second ':60' counts as the next second, as in the contract), then '.f', '.ff' or
#: '.fff' and 'Z'; ASCII digits only, by construction (int() would take ' 1', '+1', '1_0', '١').
_SECONDS = {f":{s:02d}": s * 1000 for s in range(61)}
_TAILS = {
    "Z": 0,
    **{f".{d}Z": d * 100 for d in range(10)},
    **{f".{d:02d}Z": d * 10 for d in range(100)},
    **{f".{d:03d}Z": d for d in range(1000)},
}


def _learn_minute(prefix: str) -> int | None:
    """Check a new 'YYYY-MM-DDTHH:MM' once with the exact parser and remember its milliseconds."""
    # Hours and minutes in range whatever datetime.fromisoformat accepts (newer ones take 24:00).
    if len(prefix) != 16 or prefix[11:13] not in _HOURS or prefix[14:16] not in _MINUTE_OF_HOUR:
        return None
    try:
        ms = parse_timestamp_ms(prefix + ":00Z")
    except InvalidEvent:
        return None
    if len(_MINUTES) >= _MINUTES_MAX:
        _MINUTES.clear()
    _MINUTES[prefix] = ms
    return ms


def _time_ms(text: str) -> int | None:
    """``contract.parse_timestamp_ms(text)``, or None where that raises.

    Quick for the common shape 'YYYY-MM-DDTHH:MM:SS(.fff)Z': two small dict look-ups and the cache.
    """
    second = _SECONDS.get(text[16:19])
    tail = _TAILS.get(text[19:])
    if second is not None and tail is not None:
        base = _MINUTES.get(text[:16])
        if base is None:
            base = _learn_minute(text[:16])
        if base is not None:
            return base + second + tail
    try:  # any other shape: the exact parser (an invalid prefix ends here too)
        return parse_timestamp_ms(text)
    except InvalidEvent:
        return None


# --- the checks a schema cannot say ---------------------------------------------------------------


#: Trimmed, lower-cased dimension values (channel, queue, agent, touchpoint) by their raw text: there
#: are few. Never a blank one, so that ``_NORMAL.get(text) or _normal(text)`` is "" only for a blank.
_NORMAL: dict[str, str] = {}
_NORMAL_MAX = 4096


def _normal(text: str) -> str:
    """``text.strip().lower()``, remembered when not blank."""
    normal = text.strip().lower()
    if normal:
        if len(_NORMAL) >= _NORMAL_MAX:
            _NORMAL.clear()
        _NORMAL[text] = normal
    return normal


def _interaction(event: _Interaction) -> Interaction | None:
    """The Interaction of a Struct that passed the schema's constraints, or None."""
    closed_ms = _time_ms(event.closed_at)
    if closed_ms is None or not EVENT_TIME_MIN_MS <= closed_ms < EVENT_TIME_MAX_MS:
        return None
    started_at = event.started_at
    if started_at is not None and _time_ms(started_at) is None:  # only checked, as in the contract
        return None
    # Dimensions trimmed and lower-cased; a blank one ("" after that) is rejected.
    channel, queue, agent, touchpoint = event.channel, event.queue, event.agent_id, event.touchpoint
    channel = _NORMAL.get(channel) or _normal(channel)
    if queue is not None:
        queue = _NORMAL.get(queue) or _normal(queue)
    if agent is not None:
        agent = _NORMAL.get(agent) or _normal(agent)
    if touchpoint is not None:
        touchpoint = _NORMAL.get(touchpoint) or _normal(touchpoint)
    if not channel or queue == "" or agent == "" or touchpoint == "":
        return None
    tenant, transfers, abandoned = event.tenant, event.transfers, event.abandoned
    return _new(Interaction, (
        event.event_id,
        event.interaction_id,
        _DEFAULT_TENANT if tenant is None else tenant,
        channel,
        queue,
        agent,
        touchpoint,
        closed_ms,
        event.wait_seconds,
        event.handle_seconds,
        0 if transfers is None else transfers,
        False if abandoned is None else abandoned,
        event.resolved,
    ))


#: Finished answers by their Struct (a survey's answers come from a few scales and values).
_ANSWERS: dict[_Answer, Answer] = {}
_ANSWERS_MAX = 4096


def _answer(item: _Answer) -> Answer | None:
    """The answer with its scale filled in, or None if it breaks a rule of the contract."""
    metric, low, high = item.metric, item.scale_min, item.scale_max
    if metric == "nps":  # the schema's if/then/else: nps on 0-10 only
        if (low is not None and low != 0) or (high is not None and high != 10):
            return None
        low, high = 0, 10
    else:
        default_low, default_high = DEFAULT_SCALES[metric]
        low = default_low if low is None else low
        high = default_high if high is None else high
        if low >= high:
            return None
    value = item.value
    if not low <= value <= high:
        return None
    easier = metric != "ces" or item.higher_is_easier is not False  # ignored outside ces
    return _new(Answer, (metric, value, low, high, easier))


def _answers(items: tuple[_Answer, ...]) -> tuple[Answer, ...] | None:
    """The answers of a survey, or None if one breaks a rule of the contract."""
    answers = []
    for item in items:
        answer = _ANSWERS.get(item)
        if answer is None:
            answer = _answer(item)
            if answer is None:
                return None
            if item.value:  # 0.0 and -0.0 are equal keys: keep each zero's own sign, uncached
                if len(_ANSWERS) >= _ANSWERS_MAX:
                    _ANSWERS.clear()
                _ANSWERS[item] = answer
        answers.append(answer)
    return tuple(answers)


def _survey(event: _Survey) -> Survey | None:
    """The Survey of a Struct that passed the schema's constraints, or None."""
    answered_ms = _time_ms(event.answered_at)
    if answered_ms is None or not EVENT_TIME_MIN_MS <= answered_ms < EVENT_TIME_MAX_MS:
        return None
    interaction_id, channel = event.interaction_id, event.channel
    if channel is not None:
        channel = _NORMAL.get(channel) or _normal(channel)
    elif interaction_id is None:  # the schema's anyOf
        return None
    queue, agent, touchpoint = event.queue, event.agent_id, event.touchpoint
    if queue is not None:
        queue = _NORMAL.get(queue) or _normal(queue)
    if agent is not None:
        agent = _NORMAL.get(agent) or _normal(agent)
    if touchpoint is not None:
        touchpoint = _NORMAL.get(touchpoint) or _normal(touchpoint)
    if channel == "" or queue == "" or agent == "" or touchpoint == "":
        return None
    answers = _answers(event.answers)
    if answers is None:
        return None
    tenant = event.tenant
    return _new(Survey, (
        event.event_id,
        interaction_id,
        _DEFAULT_TENANT if tenant is None else tenant,
        channel,
        queue,
        agent,
        touchpoint,
        answered_ms,
        answers,
    ))


def _fast(kind: _Kind, value: object, max_bytes: int) -> Interaction | Survey | None:
    """The contract's event for this value, or None: then only the contract may decide."""
    if type(value) is not bytes or len(value) > max_bytes:
        return None
    try:
        struct = kind.decode(value)
    except _ValidationError as error:
        struct = _lenient(value, error, kind.loose)
    except Exception:  # noqa: BLE001 - DecodeError, RecursionError, ...: the contract says what it is
        return None
    return None if struct is None else kind.build(struct)


def _fast_interaction(value: object, max_bytes: int) -> Interaction | None:
    event = _fast(_KINDS["interaction"], value, max_bytes)
    return event if isinstance(event, Interaction) else None


def _fast_survey(value: object, max_bytes: int) -> Survey | None:
    event = _fast(_KINDS["survey"], value, max_bytes)
    return event if isinstance(event, Survey) else None


# --- the contract's interface ---------------------------------------------------------------------


def decode_interaction(value: bytes | None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Interaction:
    """``contract.decode_interaction``, the same in every result and every ``InvalidEvent``, faster."""
    event = _fast_interaction(value, max_bytes)
    return contract.decode_interaction(value, max_bytes=max_bytes) if event is None else event


def decode_survey(value: bytes | None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Survey:
    """``contract.decode_survey``, the same in every result and every ``InvalidEvent``, faster."""
    event = _fast_survey(value, max_bytes)
    return contract.decode_survey(value, max_bytes=max_bytes) if event is None else event


class _Kind(NamedTuple):
    """What decode_batch needs of one input kind."""

    decode: Callable[[bytes], Any]  # strict Struct decode: raises on an unknown field
    lenient: Callable[[bytes], Any]  # orjson's parse, converted to the lenient Struct
    loose: type[Any]
    build: Callable[[Any], Interaction | Survey | None]
    contract: Callable[..., Interaction | Survey]


def _lenient_interaction(value: bytes) -> _Interaction:
    return _convert(_loads(value), _InteractionLoose)


def _lenient_survey(value: bytes) -> _Survey:
    return _convert(_loads(value), _SurveyLoose)


_KINDS = {
    "interaction": _Kind(_decode_interaction, _lenient_interaction, _InteractionLoose, _interaction,
                         contract.decode_interaction),
    "survey": _Kind(_decode_survey, _lenient_survey, _SurveyLoose, _survey, contract.decode_survey),
}


def decode_batch(
    values: Sequence[bytes | None], kind: Literal["interaction", "survey"], max_bytes: int
) -> list[Interaction | Survey | InvalidEvent]:
    """Decode one batch of one kind, in order: a value, or the ``InvalidEvent`` that rejects it.

    Never raises for a record (the engine dead-letters the ``InvalidEvent`` items). The fast path is
    inlined here (one call less a record); once a value has fields the schema does not name, the rest
    of the batch (the same producer, most likely) is parsed leniently straight away, without first
    failing the strict decoder.
    """
    try:
        decode, lenient, loose, build, slow = _KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}: 'interaction' or 'survey'") from None
    out: list[Interaction | Survey | InvalidEvent] = []
    append = out.append
    for value in values:
        event = None
        if type(value) is bytes and len(value) <= max_bytes:
            try:
                struct = decode(value)
            except _ValidationError as error:
                struct = _lenient(value, error, loose)
                if struct is not None:
                    decode = lenient
            except Exception:  # noqa: BLE001 - DecodeError, RecursionError, ...: the contract says what it is
                struct = None
            if struct is not None:
                event = build(struct)
        if event is None:
            try:
                event = slow(value, max_bytes=max_bytes)
            except InvalidEvent as exc:
                # Kept until the batch is dead-lettered: not with the frames (and parsed values,
                # personal data included) that its traceback and context would keep alive.
                exc.__traceback__ = exc.__context__ = None
                append(exc)
                continue
        append(event)
    return out
