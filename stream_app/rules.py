"""Alert rules, read from YAML once at start.

Every field is checked before the worker starts, and unknown fields, duplicate keys and values a
metric can never reach are errors: a typo in a rules file must stop the worker with a message that
names the rule and the field, never leave a rule that silently cannot fire.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from pathlib import Path

import yaml

from stream_app.baselines import Baseline, Ewma, Seasonal
from stream_app.errors import ConfigError
from stream_app.settings import DIMENSIONS
from stream_app.windows import parse_duration_ms

__all__ = ["COMPARISONS", "METRICS", "PERIODS", "SEVERITIES", "Metric", "Rule", "load_rules", "parse_rules"]

SEVERITIES = ("info", "warning", "critical")

#: YAML spelling -> operator. ``below`` and ``above`` are strict; quote the symbols in YAML.
COMPARISONS = {"below": "<", "above": ">", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}

DEFAULT_MIN_SAMPLES = 20
DEFAULT_COOLDOWN_MS = 600_000
_BELOW = ("<", "<=")

#: A seasonal baseline's period; its state keeps every step of ``lookback`` periods, hence the bound.
PERIODS = {"1d": 86_400_000, "1w": 604_800_000}
MAX_LOOKBACK = 8
EWMA_MIN_HISTORY_HALF_LIVES = 4

_NAME = re.compile(r"[a-z0-9-]+")
_INF = math.inf


@dataclass(frozen=True, slots=True)
class Metric:
    """What a rule may watch: its label in messages, its range, and where its 95% interval is.

    ``interval`` is the field of the metric's group that holds its interval (``None``: it has none);
    ``mirrored`` marks ``ces.effort_mean`` = 8 - ``ces.mean``, whose interval is 8 - ``mean_ci95``.
    """

    label: str
    low: float
    high: float
    interval: str | None = None
    mirrored: bool = False


METRICS: dict[str, Metric] = {
    "ces.net_ease": Metric("CES net ease", -100, 100, "ci95"),
    "ces.mean": Metric("CES mean", 1, 7, "mean_ci95"),
    "ces.effort_mean": Metric("CES effort mean", 1, 7, "mean_ci95", mirrored=True),
    "ces.easy_pct": Metric("CES easy %", 0, 100),
    "ces.difficult_pct": Metric("CES difficult %", 0, 100),
    "csat.pct": Metric("CSAT satisfied %", 0, 100, "ci95"),
    "csat.mean": Metric("CSAT mean", 1, 5, "mean_ci95"),
    "nps.score": Metric("NPS", -100, 100, "ci95"),
    "nps.promoters_pct": Metric("NPS promoters %", 0, 100),
    "nps.detractors_pct": Metric("NPS detractors %", 0, 100),
    "interactions.n": Metric("interactions", 0, _INF),
    "interactions.abandoned_pct": Metric("abandoned %", 0, 100),
    "interactions.aht_seconds": Metric("handle time (s)", 0, _INF),
    "interactions.asa_seconds": Metric("speed of answer (s)", 0, _INF),
    "interactions.fcr_pct": Metric("first-contact resolution %", 0, 100),
    "interactions.transfer_pct": Metric("transferred %", 0, 100),
    "interactions.service_level_pct": Metric("service level %", 0, 100),
    "interactions.response_pct": Metric("survey response %", 0, _INF),  # surveys lag: can pass 100
    "surveys.n": Metric("survey responses", 0, _INF),
    "surveys.delay_p50_seconds": Metric("survey delay p50 (s)", 0, _INF),
    "surveys.delay_p90_seconds": Metric("survey delay p90 (s)", 0, _INF),
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One validated rule. ``key`` None watches every key of the dimension; ``tenant`` None, every tenant."""

    name: str
    metric: str
    dimension: str
    window: str
    comparison: str  # "<", "<=", ">" or ">="
    threshold: float
    clear: float
    severity: str
    key: tuple[str, ...] | None = None
    tenant: str | None = None
    min_samples: int = DEFAULT_MIN_SAMPLES
    for_ms: int = 0
    cooldown_ms: int = DEFAULT_COOLDOWN_MS
    significant: bool = False
    baseline: Baseline | None = None  # threshold and clear are then differences from it

    @property
    def group(self) -> str:
        """The snapshot group (``ces``, ``csat``, ``nps``, ``interactions``) whose ``n`` counts samples."""
        return self.metric.split(".", 1)[0]

    @property
    def below(self) -> bool:
        """True when low values are the unhealthy side."""
        return self.comparison in _BELOW

    def holds(self, value: float, limit: float) -> bool:
        """The rule's comparison of ``value`` against ``limit`` (the threshold or the clear level)."""
        return _OPERATORS[self.comparison](value, limit)


class _Invalid(Exception):
    """One field of one rule is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field
        self.problem = problem


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden, by design
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base class rejects it with its own message
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_rules(path: str | Path, *, windows: Collection[str] | None = None,
               dimensions: Collection[str] = DIMENSIONS) -> tuple[Rule, ...]:
    """The rules of a YAML file (a top-level ``rules:`` list); raises ``ConfigError`` naming what to fix.

    ``windows`` (the configured window names) and ``dimensions`` reject rules that could never match.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"rules file {path}: cannot read it: {exc}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"rules file {path}: not valid YAML: {exc}") from None
    return parse_rules(data, str(path), windows=windows, dimensions=dimensions)


def parse_rules(data: object, source: str, *, windows: Collection[str] | None = None,
                dimensions: Collection[str] = DIMENSIONS) -> tuple[Rule, ...]:
    """Validate already-parsed YAML; every bad rule is reported at once, each line naming rule and field."""
    prefix = f"rules file {source}"
    if not isinstance(data, dict) or set(data) != {"rules"}:
        raise ConfigError(f'{prefix}: expected exactly one top-level key "rules" with a list of rules')
    items = data["rules"]
    if not isinstance(items, list):
        raise ConfigError(f'{prefix}: "rules" must be a list of rules')
    rules: list[Rule] = []
    errors: list[str] = []
    first_at: dict[str, int] = {}
    for position, item in enumerate(items, start=1):
        label = _label(item, position)
        try:
            rule = _rule(item, windows, dimensions)
            if rule.name in first_at:
                raise _Invalid("name", f"duplicate: rule #{first_at[rule.name]} has the same name")
        except _Invalid as exc:
            errors.append(f'{prefix}: {label}: field "{exc.field}": {exc.problem}')
            continue
        first_at[rule.name] = position
        rules.append(rule)
    if errors:
        raise ConfigError("\n".join(errors))
    return tuple(rules)


def _label(item: object, position: int) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    return f'rule "{name}"' if isinstance(name, str) and name else f"rule #{position}"


_REQUIRED = ("name", "metric", "dimension", "window", "comparison", "threshold", "severity")
_OPTIONAL = ("key", "tenant", "clear", "min_samples", "for", "cooldown", "significant", "baseline")


def _rule(item: object, windows: Collection[str] | None, dimensions: Collection[str]) -> Rule:
    if not isinstance(item, dict):
        raise _Invalid("(rule)", "must be a mapping of fields")
    for field in item:
        if field not in _REQUIRED and field not in _OPTIONAL:
            raise _Invalid(str(field), f"unknown field; the fields are {', '.join(_REQUIRED + _OPTIONAL)}")
    for field in _REQUIRED:
        if field not in item:
            raise _Invalid(field, "required")

    name = _text(item, "name")
    if not _NAME.fullmatch(name):
        raise _Invalid("name", "use only a-z, 0-9 and '-'")
    metric = _choice(item, "metric", METRICS)
    dimension = _choice(item, "dimension", dimensions)
    window = _text(item, "window")
    if windows is not None and window not in windows:
        raise _Invalid("window", f"{window!r} is not a configured window ({', '.join(windows)})")
    comparison = COMPARISONS[_choice(item, "comparison", COMPARISONS)]
    baseline = _baseline(item["baseline"]) if "baseline" in item else None
    threshold = _level(item, "threshold", metric, baseline is not None)
    clear = _level(item, "clear", metric, baseline is not None) if "clear" in item else threshold
    below = comparison in _BELOW
    if (clear < threshold) if below else (clear > threshold):
        side = "at or above" if below else "at or below"
        raise _Invalid("clear", f"must be {side} the threshold {threshold:g} (the healthy side)")
    significant = item.get("significant", False)
    if not isinstance(significant, bool):
        raise _Invalid("significant", "must be true or false")
    if significant and METRICS[metric].interval is None:
        with_interval = ", ".join(m for m, spec in METRICS.items() if spec.interval)
        raise _Invalid("significant", f"{metric} has no 95% interval; only {with_interval} have one")
    min_samples = item.get("min_samples", DEFAULT_MIN_SAMPLES)
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 0:
        raise _Invalid("min_samples", "must be a whole number >= 0")
    return Rule(
        name=name, metric=metric, dimension=dimension, window=window, comparison=comparison,
        threshold=threshold, clear=clear, severity=_choice(item, "severity", SEVERITIES),
        key=_keys(item, dimension), tenant=_text(item, "tenant") if "tenant" in item else None,
        min_samples=min_samples, for_ms=_duration(item, "for", 0),
        cooldown_ms=_duration(item, "cooldown", DEFAULT_COOLDOWN_MS), significant=significant,
        baseline=baseline,
    )


def _text(item: dict, field: str) -> str:
    value = item[field]
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(field, "must be a non-empty string")
    return value.strip()


def _choice(item: dict, field: str, choices: Collection[str], prefix: str = "") -> str:
    value = item[field]
    if not isinstance(value, str) or value not in choices:
        hint = " (quote it in YAML: '>=')" if field == "comparison" else ""
        raise _Invalid(prefix + field, f"{value!r} is not one of {', '.join(choices)}{hint}")
    return value


def _level(item: dict, field: str, metric: str, difference: bool) -> float:
    """A level of the metric, or with a baseline a difference from it: within plus or minus its span."""
    value = item[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Invalid(field, "must be a number")
    spec = METRICS[metric]
    if difference:
        span = spec.high - spec.low
        if not -span <= value <= span:
            raise _Invalid(field, f"{value:g} is a difference from the baseline that {metric} can never "
                                  f"reach ({-span:g} to {span:g})")
    elif not spec.low <= value <= spec.high:
        raise _Invalid(field, f"{value:g} is outside the range of {metric} ({spec.low:g} to {spec.high:g})")
    return float(value)


_BASELINE_REQUIRED = {"ewma": ("half_life",), "seasonal": ("period", "lookback")}


def _baseline(value: object) -> Baseline:
    """``{method: ewma, half_life: 2h[, min_history: 8h]}`` or ``{method: seasonal, period: 1d|1w,
    lookback: N[, min_history: ...]}``; errors name the field as ``baseline.<field>``."""
    if not isinstance(value, dict):
        raise _Invalid("baseline", "must be a mapping such as {method: ewma, half_life: 2h} or "
                                   "{method: seasonal, period: 1w, lookback: 4}")
    if "method" not in value:
        raise _Invalid("baseline.method", "required: ewma or seasonal")
    method = _choice(value, "method", _BASELINE_REQUIRED, prefix="baseline.")
    fields = ("method", *_BASELINE_REQUIRED[method], "min_history")
    for field in value:
        if field not in fields:
            raise _Invalid(f"baseline.{field}", f"unknown field for method {method}; its fields are "
                                                f"{', '.join(fields)}")
    for field in _BASELINE_REQUIRED[method]:
        if field not in value:
            raise _Invalid(f"baseline.{field}", f"required for method {method}")
    if method == "ewma":
        half_life_ms = _duration(value, "half_life", 0, prefix="baseline.")
        if half_life_ms <= 0:
            raise _Invalid("baseline.half_life", "must be a duration > 0 such as 30m or 2h")
        return Ewma(half_life_ms, _duration(value, "min_history", EWMA_MIN_HISTORY_HALF_LIVES * half_life_ms,
                                            prefix="baseline."))
    period_ms = PERIODS[_choice(value, "period", PERIODS, prefix="baseline.")]
    lookback = value["lookback"]
    if isinstance(lookback, bool) or not isinstance(lookback, int) or not 1 <= lookback <= MAX_LOOKBACK:
        raise _Invalid("baseline.lookback", f"must be a whole number of periods from 1 to {MAX_LOOKBACK}")
    return Seasonal(period_ms, lookback, _duration(value, "min_history", lookback * period_ms,
                                                   prefix="baseline."))


def _keys(item: dict, dimension: str) -> tuple[str, ...] | None:
    """Keys are lower-cased, as the worker lower-cases channel, queue, agent and touchpoint."""
    if "key" not in item:
        return None
    value = item["key"]
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise _Invalid("key", "must be a non-empty string or a non-empty list of them (quote yes/no/on/off)")
    keys = tuple(dict.fromkeys(v.strip().lower() for v in values))
    if dimension == "all" and keys != ("all",):
        raise _Invalid("key", 'the dimension "all" has the one key "all"')
    return keys


def _duration(item: dict, field: str, default_ms: int, prefix: str = "") -> int:
    if field not in item:
        return default_ms
    value = item[field]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number or isinstance(value, str)) or (number and not (math.isfinite(value) and value >= 0)):
        raise _Invalid(prefix + field,
                       "must be a duration >= 0 such as 90s, 2m, 1h (a bare number is seconds)")
    try:
        return parse_duration_ms(value)
    except ValueError as exc:
        raise _Invalid(prefix + field, str(exc)) from None
