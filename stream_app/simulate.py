"""Seeded, realistic contact-center traffic: interactions closing, surveys answered minutes later.

``generate`` is a pure generator (no Kafka, no clock): the same arguments give the same records.
``produce`` sends records to Kafka with aiokafka; ``main`` is ``python -m stream_app simulate``.

The model, in short: six channels with their own volume, queues, agents, wait and handle times,
abandonment, transfers, first-contact resolution and effort profile (voice and email are harder,
chat and messaging easier). Each interaction gets a latent ease on the 1-7 scale from its channel,
agent, touchpoint, wait, transfers and resolution; about 30% get a survey, answered 1-10 minutes
(event time) after closing, with 1-3 answers (ces, csat, nps) drawn around that latent ease. An
``incident`` on a channel makes it much worse from the start of the run. ``surveys_stop`` makes one
channel's surveys stop (a broken survey mailer: its response rate collapses while its traffic goes on).

customer_id and comment are generated (fake) because the contract has them, but are never logged
and never printed by ``--dry-run``.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import logging
import math
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

__all__ = [
    "CHANNELS",
    "PanelAgent",
    "SimRecord",
    "agent_panel",
    "backfilled",
    "expected_records_per_interaction",
    "format_time",
    "generate",
    "main",
    "produce",
    "public_value",
]

log = logging.getLogger("stream_app.simulate")

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_TOPIC_INTERACTIONS = "cx.interaction-closed.v1"
DEFAULT_TOPIC_SURVEYS = "cx.survey-answered.v1"
DEFAULT_RATE = 50.0
DEFAULT_COUNT = 10_000
PRIVATE_FIELDS = ("customer_id", "comment")


@dataclass(frozen=True)
class SimRecord:
    """One record to send: ``value`` is the JSON event exactly per the contract."""

    kind: str  # "interaction" | "survey"
    key: bytes  # interaction_id (a survey's key is its interaction_id)
    value: dict
    event_ms: int


@dataclass(frozen=True, slots=True)
class PanelAgent:
    """An agent of known true quality, for testing what the agents-to-coach view recovers."""

    agent_id: str
    channel: str
    workload: float  # relative share of its channel's interactions
    csat_top_box: float  # true probability that a CSAT answer about this agent is a 4 or a 5


@dataclass(frozen=True, slots=True)
class _Seat:
    """An agent as the generator sees it: a skill on the ease scale, or a known CSAT top-box share."""

    agent_id: str
    skill: float
    csat_top_box: float | None = None


# A channel's agents and their relative workloads (None: all alike, drawn with rng.choice).
_Roster = dict[str, tuple[list[_Seat], list[float] | None]]


@dataclass(frozen=True)
class _Channel:
    name: str
    weight: float  # share of interactions
    queues: tuple[str, ...]
    agents: int  # agents working this channel
    wait_median_s: float  # log-normal wait: median and sigma
    wait_sigma: float
    handle_median_s: float
    handle_sigma: float
    abandon_p: float
    transfer_p: float
    fcr_p: float
    ease: float  # mean latent ease, 1-7 (higher = easier)
    survey_p: float  # survey response rate of answered interactions


CHANNELS: tuple[_Channel, ...] = (
    _Channel("voice", 0.34, ("voice-billing", "voice-support", "voice-sales"), 12, 35, 0.9, 360, 0.5,
             0.07, 0.15, 0.70, 5.2, 0.28),
    _Channel("chat", 0.26, ("chat-support", "chat-sales", "chat-returns"), 9, 20, 0.8, 540, 0.5,
             0.05, 0.08, 0.76, 6.0, 0.36),
    _Channel("email", 0.14, ("email-support", "email-billing"), 5, 14_400, 0.8, 420, 0.6,
             0.0, 0.05, 0.60, 4.9, 0.24),
    _Channel("messaging", 0.13, ("messaging-support", "messaging-orders"), 6, 90, 0.9, 720, 0.6,
             0.03, 0.06, 0.74, 5.8, 0.33),
    _Channel("social", 0.08, ("social-care", "social-complaints"), 4, 1_800, 1.0, 600, 0.6,
             0.02, 0.10, 0.62, 5.3, 0.22),
    _Channel("sms", 0.05, ("sms-support", "sms-notifications"), 4, 300, 0.9, 240, 0.6,
             0.02, 0.04, 0.70, 5.6, 0.30),
)
_BY_NAME = {c.name: c for c in CHANNELS}
_CHANNEL_WEIGHTS = tuple(c.weight for c in CHANNELS)

# Touchpoint mix per queue suffix, and the touchpoint's effect on ease.
_TOUCHPOINTS_BY_SUFFIX: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "billing": (("billing", "support"), (0.9, 0.1)),
    "sales": (("purchase", "returns"), (0.85, 0.15)),
    "orders": (("purchase", "returns"), (0.85, 0.15)),
    "returns": (("returns", "purchase"), (0.9, 0.1)),
    "notifications": (("purchase", "support"), (0.6, 0.4)),
}
_TOUCHPOINTS_DEFAULT = (("support", "returns", "billing", "purchase"), (0.6, 0.2, 0.1, 0.1))
_TOUCHPOINT_EASE = {"purchase": 0.2, "support": 0.0, "returns": -0.3, "billing": -0.4}

_SURVEY_WHEN_ABANDONED = 0.1  # relative response rate of abandoned interactions
_SURVEY_DELAY_MAX_MS = 600_000  # a survey is answered at most this long after its interaction closed
_RESOLVED_ABSENT_P = 0.15
_SURVEY_CARRIES_DIMENSIONS_P = 0.10
_COMMENT_P = 0.15
_CES_EFFORT_WORDED_P = 0.20
_CES_FIVE_POINT_P = 0.15
_EXPLICIT_SCALE_P = 0.5

# An incident: much harder, longer waits, more abandonment, from the first record on.
_INCIDENT_EASE_DROP = 2.6
_INCIDENT_WAIT_FACTOR = 4.0
_INCIDENT_FCR_DROP = 0.25


def _incident_abandon_p(p: float) -> float:
    return min(0.6, 3.0 * p + 0.10)


_COMMENTS_GOOD = ("Quick and easy, thanks.", "The agent was very helpful.", "Sorted in one go.",
                  "Friendly and clear.")
_COMMENTS_BAD = ("Took far too long to get through.", "Had to repeat my details twice.",
                 "Still not resolved.", "I was transferred three times.", "Nobody answered my question.")


def expected_records_per_interaction(incident: str | None = None) -> float:
    """1 + the expected number of surveys per interaction (for pacing event time to a record rate)."""
    incident = incident.strip().lower() if incident else None
    total = 0.0
    for c in CHANNELS:
        abandon = _incident_abandon_p(c.abandon_p) if c.name == incident else c.abandon_p
        total += c.weight * c.survey_p * ((1 - abandon) + abandon * _SURVEY_WHEN_ABANDONED)
    return 1.0 + total / sum(_CHANNEL_WEIGHTS)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_time(ms: int) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. ``2024-05-01T10:00:00.123Z``."""
    dt = _EPOCH + timedelta(milliseconds=ms)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def _answer(rng: random.Random, metric: str, ease: float) -> dict[str, Any]:
    """One answer drawn around the latent ease (1-7, higher = easier)."""
    share = (ease - 1.0) / 6.0  # 0..1
    if metric == "ces":
        five = rng.random() < _CES_FIVE_POINT_P
        hi = 5 if five else 7
        e = int(round(_clip(1 + share * (hi - 1) + rng.gauss(0, 0.65 if five else 0.9), 1, hi)))
        answer: dict[str, Any] = {"metric": "ces"}
        if rng.random() < _CES_EFFORT_WORDED_P:  # "how much effort": hi = the most effort
            answer.update(value=1 + hi - e, scale_min=1, scale_max=hi, higher_is_easier=False)
        else:
            answer["value"] = e
            if five or rng.random() < _EXPLICIT_SCALE_P:
                answer.update(scale_min=1, scale_max=hi)
        return answer
    if metric == "csat":
        value = int(round(_clip(1 + share * 4 + 0.3 + rng.gauss(0, 0.7), 1, 5)))
        answer = {"metric": "csat", "value": value}
        if rng.random() < _EXPLICIT_SCALE_P:
            answer.update(scale_min=1, scale_max=5)
        return answer
    value = int(round(_clip(share * 10 + 1.3 + rng.gauss(0, 1.5), 0, 10)))
    answer = {"metric": "nps", "value": value}
    if rng.random() < _EXPLICIT_SCALE_P:
        answer.update(scale_min=0, scale_max=10)
    return answer


def _answers(rng: random.Random, ease: float, csat_top_box: float | None) -> list[dict[str, Any]]:
    """A survey's answers; with the agent's true ``csat_top_box``, CSAT is asked and drawn from it."""
    metrics = _metrics(rng)
    if csat_top_box is None:
        return [_answer(rng, metric, ease) for metric in metrics]
    if "csat" not in metrics:
        metrics = sorted([*metrics, "csat"], key=("ces", "csat", "nps").index)
    return [_panel_csat(rng, csat_top_box) if metric == "csat" else _answer(rng, metric, ease)
            for metric in metrics]


def _panel_csat(rng: random.Random, top_box: float) -> dict[str, Any]:
    satisfied = rng.random() < top_box
    value = rng.choices((5, 4), weights=(0.6, 0.4))[0] if satisfied else rng.choice((3, 3, 2, 1))
    return {"metric": "csat", "value": value}


def _metrics(rng: random.Random) -> list[str]:
    """1-3 distinct metrics, CES the most common (this is an effort product), in asking order."""
    k = rng.choices((1, 2, 3), weights=(0.35, 0.40, 0.25))[0]
    pool, weights, chosen = ["ces", "csat", "nps"], [0.6, 0.25, 0.15], []
    for _ in range(k):
        metric = rng.choices(pool, weights=weights)[0]
        index = pool.index(metric)
        del pool[index], weights[index]
        chosen.append(metric)
    order = {"ces": 0, "csat": 1, "nps": 2}
    return sorted(chosen, key=order.__getitem__)


def agent_panel(seed: int, agents: int, *, mean: float = 0.85, sd: float = 0.05, struggling: float = 0.0,
                struggling_mean: float = 0.65) -> tuple[PanelAgent, ...]:
    """``agents`` agents (numbered ``agent-0001`` on) with a true CSAT top-box share each, seeded.

    Shares are drawn from a Beta with ``mean`` and ``sd``; a ``struggling`` fraction of the agents
    (every ``round(1 / struggling)``-th) from one with ``struggling_mean`` and the same sd. Channels
    get agents in proportion to their volume (at least one each, largest remainder); workloads are
    log-uniform over a 13-fold range, so that a day gives some agents a few surveys and others about 40.
    """
    if agents < len(CHANNELS):
        raise ValueError(f"a panel needs at least {len(CHANNELS)} agents, one per channel")
    if not 0.0 <= struggling < 1.0:
        raise ValueError("struggling must be a fraction in [0, 1)")
    rng = random.Random(seed)
    every = round(1.0 / struggling) if struggling else 0
    seats = [max(1, math.floor(c.weight * agents)) for c in CHANNELS]
    while sum(seats) < agents:  # largest remainder
        seats[max(range(len(CHANNELS)), key=lambda i: CHANNELS[i].weight * agents - seats[i])] += 1
    channels = [c.name for c, k in zip(CHANNELS, seats, strict=True) for _ in range(k)]
    rng.shuffle(channels)
    panel = []
    for number, channel in enumerate(channels, start=1):
        centre = struggling_mean if every and number % every == 0 else mean
        common = centre * (1.0 - centre) / (sd * sd) - 1.0  # alpha + beta of the Beta with that mean and sd
        panel.append(PanelAgent(f"agent-{number:04d}", channel, math.exp(rng.uniform(0.0, math.log(13.0))),
                                rng.betavariate(centre * common, (1.0 - centre) * common)))
    return tuple(panel)


def generate(
    seed: int,
    count: int | None,
    start_ms: int,
    rate_per_s: float,
    incident: str | None = None,
    tenant: str = "default",
    surveys_stop: str | None = None,
    surveys_stop_ms: int | None = None,
    panel: Sequence[PanelAgent] | None = None,
) -> Iterator[SimRecord]:
    """``count`` records (interactions and surveys; ``None``: without end) in event-time order.

    Interactions close on average every ``1000 / rate_per_s`` ms (exponential gaps: a Poisson
    process) from ``start_ms``; surveys are answered 1-10 minutes after their interaction. The
    records of a shorter run are a prefix of those of a longer one with the same other arguments.
    ``surveys_stop``: the interactions of this channel that close from ``surveys_stop_ms`` on (None:
    from the start) get no survey; every other record is the same as without it.

    With a ``panel``, its agents are the roster (picked by workload within their channel), every
    survey of an interaction they answered asks CSAT, and that answer is top-box (4 or 5) with the
    agent's true share, whatever the interaction's ease.
    """
    if count is not None and count < 0:
        raise ValueError("count must be >= 0")
    if not rate_per_s > 0 or math.isinf(rate_per_s):
        raise ValueError("rate_per_s must be a positive number")
    incident = None if incident is None else _channel(incident, "incident")
    from_ms = start_ms if surveys_stop_ms is None else surveys_stop_ms
    stop = None if surveys_stop is None else (_channel(surveys_stop, "surveys-stop"), from_ms)
    if panel is not None and {c.name for c in CHANNELS} - {a.channel for a in panel}:
        raise ValueError("a panel needs at least one agent per channel")
    return _generate(random.Random(seed), count, start_ms, rate_per_s, incident, tenant, stop, panel)


def _channel(name: str, what: str) -> str:
    name = name.strip().lower()
    if name not in _BY_NAME:
        raise ValueError(f"unknown {what} channel {name!r}; choose from {', '.join(_BY_NAME)}")
    return name


def _roster(rng: random.Random, panel: Sequence[PanelAgent] | None) -> _Roster:
    """Without a panel: agents numbered across channels, each with a skill offset on the ease scale."""
    if panel is not None:
        return {c.name: ([_Seat(a.agent_id, 0.0, a.csat_top_box) for a in panel if a.channel == c.name],
                         [a.workload for a in panel if a.channel == c.name]) for c in CHANNELS}
    agents: _Roster = {}
    number = 0
    for c in CHANNELS:
        seats = []
        for _ in range(c.agents):
            number += 1
            seats.append(_Seat(f"agent-{number:03d}", _clip(rng.gauss(0, 0.35), -0.9, 0.9)))
        agents[c.name] = (seats, None)
    return agents


def _generate(
    rng: random.Random, count: int | None, start_ms: int, rate_per_s: float, incident: str | None,
    tenant: str, stop: tuple[str, int] | None, panel: Sequence[PanelAgent] | None,
) -> Iterator[SimRecord]:
    agents = _roster(rng, panel)

    with_tenant = {} if tenant == "default" else {"tenant": tenant}
    mean_gap_ms = 1000.0 / rate_per_s
    pending: list[tuple[int, int, SimRecord]] = []  # surveys waiting for their event time
    sequence = 0
    clock_ms = float(start_ms)
    emitted = 0
    while count is None or emitted < count:
        clock_ms += rng.expovariate(1.0) * mean_gap_ms
        closed_ms = int(clock_ms)
        interaction, survey = _interaction(rng, closed_ms, agents, incident, with_tenant)
        if stop is not None and interaction.value["channel"] == stop[0] and closed_ms >= stop[1]:
            survey = None  # drawn all the same, so that every other record stays as it was
        while pending and pending[0][0] <= closed_ms:
            yield heapq.heappop(pending)[2]
            emitted += 1
            if count is not None and emitted >= count:
                return
        yield interaction
        emitted += 1
        if survey is not None:
            sequence += 1
            heapq.heappush(pending, (survey.event_ms, sequence, survey))


def backfilled(
    seed: int,
    count: int | None,
    start_ms: int,
    backfill_ms: int,
    rate_per_s: float,
    incident: str | None = None,
    tenant: str = "default",
    surveys_stop: str | None = None,
    surveys_stop_ms: int | None = None,
) -> Iterator[SimRecord]:
    """The history of the ``backfill_ms`` before ``start_ms``, then ``count`` live records from it.

    History: ``generate(seed, ...)`` from ``start_ms - backfill_ms``, its interactions that close
    before ``start_ms`` and all their surveys, including those answered after ``start_ms``. Live:
    ``generate(seed + 1, count, start_ms, ...)``, merged in event-time order with those late surveys
    (which are not counted in ``count``). Pure, like ``generate``: the same arguments, the same records.
    ``surveys_stop`` applies to both, from ``surveys_stop_ms`` (None: from ``start_ms``, the live part).
    """
    if backfill_ms < 0:
        raise ValueError("backfill_ms must be >= 0")
    stop_ms = start_ms if surveys_stop_ms is None else surveys_stop_ms
    history = generate(seed, None, start_ms - backfill_ms, rate_per_s, incident, tenant, surveys_stop,
                       stop_ms)
    live = generate(seed + 1, count, start_ms, rate_per_s, incident, tenant, surveys_stop, stop_ms)
    return _backfilled(history, live, start_ms)


def _backfilled(history: Iterator[SimRecord], live: Iterator[SimRecord],
                start_ms: int) -> Iterator[SimRecord]:
    record = None
    for record in history:
        if record.event_ms >= start_ms:
            break
        yield record
    # The surveys of history's interactions that are answered from start_ms on: read history on
    # until no survey of an interaction closed before start_ms can still come.
    later: set[str] = set()  # interactions closed from start_ms on: not history, their surveys neither
    tail: list[SimRecord] = []
    while record is not None and record.event_ms < start_ms + _SURVEY_DELAY_MAX_MS:
        interaction_id = record.value["interaction_id"]
        if record.kind == "interaction":
            later.add(interaction_id)
        elif interaction_id not in later:
            tail.append(record)
        record = next(history, None)
    yield from heapq.merge(tail, live, key=lambda r: r.event_ms)


def _latent_ease(c: _Channel, skill: float, touchpoint: str, wait: float, transfers: int,
                 resolved: bool | None, abandoned: bool, hit: bool) -> float:
    """Latent ease on the 1-7 scale (draws nothing from the random generator)."""
    ease = c.ease + (0.0 if abandoned else skill) + _TOUCHPOINT_EASE[touchpoint]
    ease -= 0.6 * max(0.0, math.log(wait / c.wait_median_s))  # waiting longer than usual hurts
    ease -= 0.5 * transfers
    if resolved is not None:
        ease += 0.3 if resolved else -1.2
    if abandoned:
        ease -= 1.5
    if hit:
        ease -= _INCIDENT_EASE_DROP
    return _clip(ease, 1.0, 7.0)


def _interaction(
    rng: random.Random,
    closed_ms: int,
    agents: _Roster,
    incident: str | None,
    with_tenant: dict[str, str],
) -> tuple[SimRecord, SimRecord | None]:
    c = rng.choices(CHANNELS, weights=_CHANNEL_WEIGHTS)[0]
    hit = c.name == incident
    queue = rng.choice(c.queues)
    names, weights = _TOUCHPOINTS_BY_SUFFIX.get(queue.rsplit("-", 1)[1], _TOUCHPOINTS_DEFAULT)
    touchpoint = rng.choices(names, weights=weights)[0]
    seats, workloads = agents[c.name]
    seat = rng.choice(seats) if workloads is None else rng.choices(seats, weights=workloads)[0]
    agent_id, skill = seat.agent_id, seat.skill

    abandon_p = _incident_abandon_p(c.abandon_p) if hit else c.abandon_p
    abandoned = rng.random() < abandon_p
    wait_median = c.wait_median_s * (_INCIDENT_WAIT_FACTOR if hit else 1.0)
    wait = wait_median * math.exp(rng.gauss(0, c.wait_sigma)) * (1.5 if abandoned else 1.0)
    handle = 0.0 if abandoned else c.handle_median_s * math.exp(rng.gauss(0, c.handle_sigma))
    transfers = 0
    if not abandoned:
        while transfers < 4 and rng.random() < (c.transfer_p if transfers == 0 else 0.25):
            transfers += 1
    fcr_p = max(0.05, c.fcr_p - (_INCIDENT_FCR_DROP if hit else 0.0) - 0.15 * transfers)
    resolved = None if abandoned else rng.random() < fcr_p
    says_resolved = resolved is not None and rng.random() >= _RESOLVED_ABSENT_P

    ease = _latent_ease(c, skill, touchpoint, wait, transfers, resolved, abandoned, hit)

    interaction_id = _uuid(rng)
    started_ms = closed_ms - int(round((wait + handle) * 1000))
    value: dict[str, Any] = {"event_id": _uuid(rng), "interaction_id": interaction_id, **with_tenant,
                             "channel": c.name, "queue": queue}
    if not abandoned:
        value["agent_id"] = agent_id
    value.update(touchpoint=touchpoint, started_at=format_time(started_ms), closed_at=format_time(closed_ms),
                 wait_seconds=round(wait, 1))
    if not abandoned:
        value["handle_seconds"] = round(handle, 1)
    value.update(transfers=transfers, abandoned=abandoned)
    if says_resolved:
        value["resolved"] = resolved
    value["customer_id"] = f"cust-{rng.randrange(1, 250_000):06d}"
    key = interaction_id.encode()
    interaction = SimRecord("interaction", key, value, closed_ms)

    survey_p = c.survey_p * (_SURVEY_WHEN_ABANDONED if abandoned else 1.0)
    if rng.random() >= survey_p:
        return interaction, None
    answered_ms = closed_ms + rng.randint(60_000, 600_000)
    survey: dict[str, Any] = {"event_id": _uuid(rng), "interaction_id": interaction_id, **with_tenant}
    if rng.random() < _SURVEY_CARRIES_DIMENSIONS_P:
        survey.update(channel=c.name, queue=queue, touchpoint=touchpoint)
        if not abandoned:
            survey["agent_id"] = agent_id
    survey["answered_at"] = format_time(answered_ms)
    top_box = None if abandoned else seat.csat_top_box
    survey["answers"] = _answers(rng, ease, top_box)
    if rng.random() < _COMMENT_P:
        survey["comment"] = rng.choice(_COMMENTS_GOOD if ease >= 4.5 else _COMMENTS_BAD)
    return interaction, SimRecord("survey", key, survey, answered_ms)


def public_value(value: dict) -> dict:
    """The value without personal data (customer_id, comment): what may be printed or logged."""
    return {k: v for k, v in value.items() if k not in PRIVATE_FIELDS}


async def _require_topics(producer: Any, topics: Iterable[str], timeout_s: float = 10.0) -> None:
    """Fail fast, with one clear message, when a topic does not exist (and is not auto-created)."""
    from stream_app.errors import ConfigError

    cluster_log = logging.getLogger("aiokafka.cluster")  # logs every metadata retry at ERROR
    level = cluster_log.level
    cluster_log.setLevel(logging.CRITICAL)
    try:
        for topic in dict.fromkeys(topics):
            try:
                await asyncio.wait_for(producer.partitions_for(topic), timeout_s)
            except Exception as exc:  # noqa: BLE001 - TimeoutError, UnknownTopicOrPartitionError, ...
                raise ConfigError(
                    f"Kafka topic {topic!r} not found ({type(exc).__name__}); create it "
                    "(deploy/ or the worker's topic setup) or point CX_TOPIC_* at the right name"
                ) from None
    finally:
        cluster_log.setLevel(level)


async def _drain(pending: list[asyncio.Future]) -> None:
    if pending:
        await asyncio.gather(*pending)
        pending.clear()


async def produce(
    records: Iterable[SimRecord],
    bootstrap: str,
    interactions_topic: str,
    surveys_topic: str,
    rate_per_s: float | None,
    *,
    follow_event_time: bool = False,
    event_time_origin_ms: int | None = None,
    client_options: dict[str, Any] | None = None,
    chunk: int = 2000,
) -> int:
    """Send ``records`` with aiokafka (murmur2 on the key, as Java clients do); return how many.

    ``rate_per_s`` None (or 0): as fast as possible; else paced by the wall clock at that many
    records per second. ``follow_event_time``: instead, send each record when the wall clock has
    advanced as far from the start as its event time has from the first record's (live demos), or
    from ``event_time_origin_ms`` when given: records before it (a backfill) go as fast as possible.
    """
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="cx-simulate",
        linger_ms=5,
        max_batch_size=256 * 1024,
        acks=1,
        **(client_options or {}),
    )
    await producer.start()
    try:
        await _require_topics(producer, (interactions_topic, surveys_topic))
    except BaseException:
        await producer.stop()
        raise
    loop = asyncio.get_running_loop()
    clock = loop.time
    started = last_drain = last_log = clock()
    first_event_ms = event_time_origin_ms
    pending: list[asyncio.Future] = []
    handed = sent = 0
    dumps = orjson.dumps
    try:
        for record in records:
            due = None
            if follow_event_time:
                if first_event_ms is None:
                    first_event_ms = record.event_ms
                due = started + (record.event_ms - first_event_ms) / 1000.0
            elif rate_per_s:
                due = started + handed / rate_per_s
            if due is not None:
                delay = due - clock()
                if delay > 0.002:
                    await asyncio.sleep(delay)
            topic = interactions_topic if record.kind == "interaction" else surveys_topic
            pending.append(await producer.send(topic, dumps(record.value), key=record.key))
            handed += 1
            now = clock()
            if len(pending) >= chunk or now - last_drain >= 1.0:
                sent += len(pending)
                await _drain(pending)
                last_drain = now
                if now - last_log >= 10.0:
                    log.info("simulate: %d records sent (%.0f/s)", sent, sent / max(now - started, 1e-9))
                    last_log = now
        sent += len(pending)
        await _drain(pending)
    finally:
        await producer.stop()  # flushes what is still queued
        elapsed = max(clock() - started, 1e-9)
        log.info("simulate: %d records handed to Kafka in %.1f s (%.0f/s)", handed, elapsed, handed / elapsed)
    return sent


# --------------------------------------------------------------------------------------------------
# CLI


def _start_ms(text: str) -> int:
    from stream_app.contract import parse_timestamp_ms
    from stream_app.errors import InvalidEvent

    try:
        return parse_timestamp_ms(text, "--start")
    except InvalidEvent as exc:
        raise argparse.ArgumentTypeError(exc.detail) from None


def _backfill_ms(text: str) -> int:
    from stream_app.windows import parse_duration_ms

    try:
        value = parse_duration_ms(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a duration > 0, e.g. 30m or 2h")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return value


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m stream_app simulate",
        description="Seeded, realistic contact-center traffic (interactions and surveys) into Kafka.",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--count", type=_positive_int, default=None,
                        help=f"records to send (interactions + surveys); default: without end when --rate is "
                             f"given, else {DEFAULT_COUNT}")
    parser.add_argument("--rate", type=_rate, default=None,
                        help=f"records per second, in step with the wall clock (default {DEFAULT_RATE:g}); "
                             "0 = as fast as possible")
    parser.add_argument("--incident", metavar="CHANNEL", choices=sorted(_BY_NAME),
                        help="degrade one channel from the start: " + ", ".join(_BY_NAME))
    parser.add_argument("--surveys-stop", metavar="CHANNEL", choices=sorted(_BY_NAME),
                        help="no surveys for the interactions of this channel that close from "
                             "--surveys-stop-at on (a survey collapse); its traffic goes on")
    parser.add_argument("--surveys-stop-at", metavar="TIME", type=_start_ms, default=None,
                        help="RFC 3339 (default: --start, i.e. after any --backfill history)")
    parser.add_argument("--tenant", default="default", help="tenant of every event (default: default)")
    parser.add_argument("--start", type=_start_ms, default=None,
                        help="event time of the first record, RFC 3339 (default: now)")
    parser.add_argument("--backfill", metavar="DURATION", type=_backfill_ms, default=None,
                        help="first send the traffic of the last DURATION (e.g. 30m, 2h; event times from "
                             "start - DURATION to start, same rate) as fast as possible, then go on live "
                             "(seed + 1); --count then counts the live records")
    parser.add_argument("--bootstrap", default=env("CX_KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP),
                        help="Kafka bootstrap servers (env CX_KAFKA_BOOTSTRAP)")
    parser.add_argument("--interactions-topic",
                        default=env("CX_TOPIC_INTERACTIONS", DEFAULT_TOPIC_INTERACTIONS),
                        help="env CX_TOPIC_INTERACTIONS")
    parser.add_argument("--surveys-topic", default=env("CX_TOPIC_SURVEYS", DEFAULT_TOPIC_SURVEYS),
                        help="env CX_TOPIC_SURVEYS")
    parser.add_argument("--dry-run", action="store_true",
                        help="print JSON lines {topic, key, value} to stdout instead of producing "
                             "(customer_id and comment left out)")
    parser.add_argument("--events-only", action="store_true",
                        help="with --dry-run: only the events, one a line, as `backtest --events` reads")
    return parser


def _client_options() -> dict[str, Any]:
    """Kafka security options from the shared settings (CX_KAFKA_SECURITY_PROTOCOL, SASL ...)."""
    try:
        from stream_app.settings import Settings
    except ImportError:
        return {}
    return Settings().kafka_client_options()


def _dry_run(records: Iterable[SimRecord], interactions_topic: str, surveys_topic: str, paced: bool,
             origin_ms: int | None = None, events_only: bool = False) -> int:
    out = sys.stdout.buffer
    started = time.monotonic()
    first_event_ms = origin_ms
    printed = 0
    try:
        for record in records:
            if paced:
                if first_event_ms is None:
                    first_event_ms = record.event_ms
                delay = started + (record.event_ms - first_event_ms) / 1000.0 - time.monotonic()
                if delay > 0.002:
                    out.flush()
                    time.sleep(delay)
            topic = interactions_topic if record.kind == "interaction" else surveys_topic
            value = public_value(record.value)
            line = value if events_only else {"topic": topic, "key": record.key.decode(), "value": value}
            out.write(orjson.dumps(line) + b"\n")
            printed += 1
        out.flush()
    except BrokenPipeError:  # e.g. piped into head
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return printed


async def _produce_until_stopped(records: Iterable[SimRecord], args: argparse.Namespace, rate: float,
                                 origin_ms: int | None = None) -> int:
    task = asyncio.current_task()
    assert task is not None  # a coroutine run by asyncio
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    except (NotImplementedError, RuntimeError):  # not the main thread / not supported
        pass
    return await produce(
        records,
        args.bootstrap,
        args.interactions_topic,
        args.surveys_topic,
        None,
        follow_event_time=rate > 0,
        event_time_origin_ms=origin_ms,
        client_options=_client_options(),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m stream_app simulate [options]``; returns the exit status."""
    args = _parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=os.environ.get("CX_LOG_LEVEL", "INFO").upper(),
                            format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    explicit_rate = args.rate is not None
    rate = args.rate if explicit_rate else DEFAULT_RATE
    count = args.count if args.count is not None else (None if explicit_rate and rate > 0 else DEFAULT_COUNT)
    start_ms = args.start if args.start is not None else time.time_ns() // 1_000_000
    # Event time advances at `rate` records per second (interactions plus their surveys), so a
    # paced run keeps event time in step with the wall clock. As fast as possible: the density of 50/s.
    density = rate if rate > 0 else DEFAULT_RATE
    interactions_per_s = density / expected_records_per_interaction(args.incident)
    origin_ms = None
    if args.backfill:
        records = backfilled(args.seed, count, start_ms, args.backfill, interactions_per_s, args.incident,
                             args.tenant, args.surveys_stop, args.surveys_stop_at)
        origin_ms = start_ms  # the history is sent at once, then the wall clock keeps pace from start_ms
    else:
        records = generate(args.seed, count, start_ms, interactions_per_s, args.incident, args.tenant,
                           args.surveys_stop, args.surveys_stop_at)
    if args.dry_run:
        _dry_run(records, args.interactions_topic, args.surveys_topic, paced=explicit_rate and rate > 0,
                 origin_ms=origin_ms, events_only=args.events_only)
        return 0
    log.info(
        "simulate: seed=%d count=%s rate=%s backfill=%s incident=%s surveys-stop=%s tenant=%s "
        "bootstrap=%s topics=%s,%s", args.seed, "unlimited" if count is None else count,
        f"{rate:g}/s" if rate > 0 else "max", f"{args.backfill / 1000:g}s" if args.backfill else "none",
        args.incident or "none", args.surveys_stop or "none", args.tenant, args.bootstrap,
        args.interactions_topic, args.surveys_topic,
    )
    try:
        asyncio.run(_produce_until_stopped(records, args, rate, origin_ms))
    except KeyboardInterrupt:
        return 130
    except asyncio.CancelledError:  # SIGTERM
        return 0
    except Exception as exc:  # noqa: BLE001 - a CLI: one line, not a traceback
        log.error("simulate: %s: %s", type(exc).__name__, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
