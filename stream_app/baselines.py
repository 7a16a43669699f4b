"""Baselines: what a figure usually is, learned from the figure at the rule's own past step boundaries.

Pure and JSON-friendly. A baseline's history is a plain dict that lives inside the rule's alert state
(``state["baseline"]``), so it is stored, restored and replayed with it. ``level`` reads the baseline at
a step boundary from the steps before it, and only then ``feed`` adds that step's figure: a figure never
feeds the baseline it is compared with.

- ``ewma``: the mean of the fed figures weighted by ``0.5 ** (age / half_life)``. Kept as the running
  weighted mean and its total weight as of the last fed step; a new step first decays the total by
  ``0.5 ** (gap / half_life)``, so irregular gaps (steps without a figure) weigh exactly.
- ``seasonal``: the median of the figures fed at ``t - period``, ``t - 2 period``, ... ``t - lookback
  period``; kept as a map from step time (ms, as a string: a JSON key) to figure, of the steps that a
  later boundary can still look back to (the last ``lookback`` periods).

Until the first fed step lies ``min_history`` behind the boundary, there is no baseline (``None``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

__all__ = ["Baseline", "Ewma", "Seasonal", "feed", "level"]

History = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Ewma:
    """Exponentially weighted mean: a step's weight halves every ``half_life_ms`` of event time."""

    half_life_ms: int
    min_history_ms: int

    @property
    def method(self) -> str:
        return "ewma"


@dataclass(frozen=True, slots=True)
class Seasonal:
    """Median of the figure at the same step boundary 1..``lookback`` periods earlier."""

    period_ms: int
    lookback: int
    min_history_ms: int

    @property
    def method(self) -> str:
        return "seasonal"


Baseline = Ewma | Seasonal


def level(spec: Baseline, history: History | None, t_ms: int) -> float | None:
    """The baseline at the step boundary ``t_ms``, from the steps fed before it; None until it has
    ``min_history`` behind it (or, seasonal, when no earlier period has a figure at this boundary)."""
    if history is None or history["first_ms"] is None or t_ms - history["first_ms"] < spec.min_history_ms:
        return None
    if isinstance(spec, Ewma):
        value = history["mean"]
    else:
        values = history["values"]
        past = [values[str(t_ms - k * spec.period_ms)] for k in range(1, spec.lookback + 1)
                if str(t_ms - k * spec.period_ms) in values]
        value = statistics.median(past) if past else None
    return None if value is None else round(value, 4) + 0.0  # as the snapshot rounds its figures


def feed(spec: Baseline, history: History | None, t_ms: int, figure: float | None) -> History:
    """The history after the step boundary ``t_ms`` whose figure is ``figure`` (None: the figure is
    null or rests on too few samples, and feeds nothing). A new dict: the argument is left as it was.

    Steps come in increasing event time; a step at or before the last fed one feeds nothing (ewma) or
    replaces its figure (seasonal), so a repeated call does not count a step twice.
    """
    if isinstance(spec, Ewma):
        return _feed_ewma(spec, history or _EWMA_EMPTY, t_ms, figure)
    return _feed_seasonal(spec, history or _SEASONAL_EMPTY, t_ms, figure)


_EWMA_EMPTY: History = {"first_ms": None, "last_ms": None, "mean": None, "weight": 0.0}
_SEASONAL_EMPTY: History = {"first_ms": None, "values": {}}


def _feed_ewma(spec: Ewma, history: History, t_ms: int, figure: float | None) -> History:
    last_ms = history["last_ms"]
    if figure is None or (last_ms is not None and t_ms <= last_ms):
        return dict(history)
    if last_ms is None:
        return {"first_ms": t_ms, "last_ms": t_ms, "mean": figure, "weight": 1.0}
    weight = history["weight"] * 0.5 ** ((t_ms - last_ms) / spec.half_life_ms) + 1.0
    mean = history["mean"] + (figure - history["mean"]) / weight
    return {"first_ms": history["first_ms"], "last_ms": t_ms, "mean": mean, "weight": weight}


def _feed_seasonal(spec: Seasonal, history: History, t_ms: int, figure: float | None) -> History:
    # A boundary after t looks back at most lookback periods: nothing at or before this is needed again.
    horizon_ms = t_ms - spec.lookback * spec.period_ms
    values = {at: v for at, v in history["values"].items() if int(at) > horizon_ms}
    first_ms = history["first_ms"]
    if figure is not None:
        values[str(t_ms)] = figure
        first_ms = t_ms if first_ms is None else first_ms
    return {"first_ms": first_ms, "values": values}
