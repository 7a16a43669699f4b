"""Score maths (CONTRACT.md, "Scores"): mergeable statistics in, snapshot groups out.

A window's aggregate is a flat vector of counts and sums. Partial vectors from different
partitions or workers combine by element-wise addition, and only ``score_groups`` turns them
into ratios, so no ratio is ever averaged. Every entry is kept as a whole number wherever the
input allows, because float addition of whole numbers (below 2**53) is exact in any order: a
merged aggregate is then bit-identical to one built from all events, and a figure sitting on a
rounding tie (a mean of 4.44375, say) rounds the same way on every worker. Hence survey sums in
1/2520ths and seconds in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from stream_app.events import METRICS, Answer, Interaction

# Vector layout: one index per statistic.
CES_N = 0  # CES answers
CES_SUM = 1  # sum of ease on the 1-7 scale, in UNITs
CES_SUM_SQ = 2  # sum of squared ease, in UNITs squared
CES_EASY = 3  # answers in the easy band
CES_DIFFICULT = 4  # answers in the difficult band
CSAT_N = 5  # CSAT answers
CSAT_SUM = 6  # sum of values rescaled to 1-5, in UNITs
CSAT_SUM_SQ = 7  # sum of squared rescaled values, in UNITs squared
CSAT_SATISFIED = 8  # answers in the top two boxes
NPS_N = 9  # NPS answers
NPS_PROMOTERS = 10  # answers 9-10
NPS_DETRACTORS = 11  # answers 0-6
IX_N = 12  # interactions
IX_ABANDONED = 13  # abandoned interactions
IX_HANDLE_N = 14  # answered interactions with handle_seconds
IX_HANDLE_MS = 15  # their sum of handle time, whole milliseconds
IX_WAIT_N = 16  # answered interactions with wait_seconds
IX_WAIT_MS = 17  # their sum of wait time, whole milliseconds
IX_FCR_N = 18  # answered interactions that say whether they were resolved
IX_FCR_RESOLVED = 19  # of those, resolved on first contact
IX_TRANSFERRED = 20  # answered interactions with at least one transfer
IX_SL_N = 21  # interactions with wait_seconds, abandoned included
IX_SL_MET = 22  # answered interactions with wait_seconds <= the service level
SURVEYS = 23  # survey responses (for response_pct and surveys.n)
DELAY_FIRST = 24  # the survey-delay histogram: one count per bin of DELAY_EDGES_SECONDS
# Survey delay bins (answered_at - closed_at, seconds): [0, 15), then two per doubling from 15 s,
# [15·2^(k/2), 15·2^((k+1)/2)) up to 15·2^14 s (68.3 h), then [68.3 h, inf). Counts merge by addition.
DELAY_EDGES_SECONDS: tuple[float, ...] = (0.0, *(15.0 * 2.0 ** (k / 2) for k in range(29)))
DELAY_BINS = len(DELAY_EDGES_SECONDS)  # the last bin is open-ended
STATS_LEN = DELAY_FIRST + DELAY_BINS

# lcm(1..10): a whole answer on any scale of up to 11 points is a whole number of these
UNIT = 2520

Z95 = 1.959964


def empty() -> list[float]:
    """A fresh aggregate: the identity of ``merge_into``."""
    return [0.0] * STATS_LEN


def _ms(seconds: float) -> float:
    """Whole milliseconds, the precision of the event times, so that sums are exact."""
    return float(round(seconds * 1000.0))


def add_survey(acc: list[float], answers: Sequence[Answer]) -> None:
    """Count one survey response and each of its answers (answers are already validated)."""
    for a in answers:  # check everything first so a bad answer leaves acc untouched
        if a.metric not in METRICS:
            raise ValueError(f"unknown metric {a.metric!r}")
        if a.scale_max <= a.scale_min:
            raise ValueError(f"empty scale {a.scale_min}..{a.scale_max}")
    acc[SURVEYS] += 1.0
    for a in answers:
        lo, hi, v = a.scale_min, a.scale_max, a.value
        if a.metric == "ces":
            e = v if a.higher_is_easier else lo + hi - v
            k = (hi - lo) // 2  # floor((n - 1) / 2) with n = hi - lo + 1
            ease = UNIT + 6 * UNIT * (e - lo) / (hi - lo)  # 1 + 6(e-min)/(max-min), in UNITs
            acc[CES_N] += 1.0
            acc[CES_SUM] += ease
            acc[CES_SUM_SQ] += ease * ease
            if e >= hi - k + 1:
                acc[CES_EASY] += 1.0
            elif e <= lo + k - 1:
                acc[CES_DIFFICULT] += 1.0
        elif a.metric == "csat":
            mean5 = UNIT + 4 * UNIT * (v - lo) / (hi - lo)  # 1 + 4(v-min)/(max-min), in UNITs
            acc[CSAT_N] += 1.0
            acc[CSAT_SUM] += mean5
            acc[CSAT_SUM_SQ] += mean5 * mean5
            if v >= hi - 1:
                acc[CSAT_SATISFIED] += 1.0
        else:  # nps, always 0..10
            acc[NPS_N] += 1.0
            if v >= 9:
                acc[NPS_PROMOTERS] += 1.0
            elif v <= 6:
                acc[NPS_DETRACTORS] += 1.0


def interaction_stats(ix: Interaction, service_level_seconds: float) -> list[tuple[int, float]]:
    """One closed interaction as (index, value) pairs: only the few entries that are set."""
    cols, vals = interaction_columns(ix, service_level_seconds)
    return list(zip(cols, vals, strict=True))


def interaction_columns(ix: Interaction, service_level_seconds: float) -> tuple[list[int], list[float]]:
    """One closed interaction as two columns, the indices and the values of the entries that are set:
    built directly, since the worker needs one per record and a dense vector of zeros costs more.

    Handling KPIs only look at interactions that were answered; a caller who hung up while waiting
    was not answered in time and counts against the service level.
    """
    wait = ix.wait_seconds
    cols, vals = [IX_N], [1.0]
    if wait is not None:
        cols.append(IX_SL_N)
        vals.append(1.0)
    if ix.abandoned:
        cols.append(IX_ABANDONED)
        vals.append(1.0)
        return cols, vals
    if ix.handle_seconds is not None:
        cols += (IX_HANDLE_N, IX_HANDLE_MS)
        vals += (1.0, _ms(ix.handle_seconds))
    if wait is not None:
        cols += (IX_WAIT_N, IX_WAIT_MS)
        vals += (1.0, _ms(wait))
        if wait <= service_level_seconds:
            cols.append(IX_SL_MET)
            vals.append(1.0)
    if ix.resolved is not None:
        cols.append(IX_FCR_N)
        vals.append(1.0)
        if ix.resolved:
            cols.append(IX_FCR_RESOLVED)
            vals.append(1.0)
    if ix.transfers >= 1:
        cols.append(IX_TRANSFERRED)
        vals.append(1.0)
    return cols, vals


def delay_index(delay_ms: int) -> int:
    """The stats index of a survey's delay bin; a survey answered before its interaction closed
    (clock skew) counts in the first bin."""
    seconds = delay_ms / 1000.0
    if seconds < DELAY_EDGES_SECONDS[1]:
        return DELAY_FIRST
    bin_ = min(DELAY_BINS - 1, 1 + int(2.0 * math.log2(seconds / DELAY_EDGES_SECONDS[1])))
    # float rounding at an edge may land one bin off: settle it against the edges themselves
    while bin_ > 1 and seconds < DELAY_EDGES_SECONDS[bin_]:
        bin_ -= 1
    while bin_ < DELAY_BINS - 1 and seconds >= DELAY_EDGES_SECONDS[bin_ + 1]:
        bin_ += 1
    return DELAY_FIRST + bin_


def delay_quantile(stats: Sequence[float], q: float) -> float | None:
    """The q-quantile of the survey delays, in seconds: the geometric middle of the bin that holds it
    (the middle for the first bin, the lower edge for the open last one), so the figure is within
    2^(1/4) - 1 = 19% of the truth above 15 s, and within 7.5 s below. None with no joined survey."""
    counts = stats[DELAY_FIRST:DELAY_FIRST + DELAY_BINS]
    total = sum(counts)
    if total <= 0:
        return None
    rank, seen, bin_ = q * total, 0.0, 0
    while seen + counts[bin_] < rank or not counts[bin_]:
        seen += counts[bin_]
        bin_ += 1
    if bin_ == 0:
        return DELAY_EDGES_SECONDS[1] / 2.0
    if bin_ == DELAY_BINS - 1:
        return DELAY_EDGES_SECONDS[-1]
    return math.sqrt(DELAY_EDGES_SECONDS[bin_] * DELAY_EDGES_SECONDS[bin_ + 1])


def add_interaction(acc: list[float], ix: Interaction, service_level_seconds: float) -> None:
    """Count one closed interaction."""
    for index, value in interaction_stats(ix, service_level_seconds):
        acc[index] += value


def merge_into(acc: list[float], other: Sequence[float]) -> None:
    """Add a partial aggregate; refuses vectors of another layout (e.g. state from an older build)."""
    if len(acc) != STATS_LEN or len(other) != STATS_LEN:
        raise ValueError(f"stats vectors must have length {STATS_LEN}, got {len(acc)} and {len(other)}")
    acc[:] = [a + b for a, b in zip(acc, other, strict=True)]


def wilson_pct(k: float, n: float) -> list[float] | None:
    """Wilson score interval: stays inside 0-100 and behaves at small n or extreme shares."""
    if n <= 0:
        return None
    p = k / n
    z2 = Z95 * Z95
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = Z95 * math.sqrt(max(0.0, p * (1.0 - p) / n + z2 / (4.0 * n * n))) / denom
    return [max(0.0, 100.0 * (centre - half)), min(100.0, 100.0 * (centre + half))]


def adjusted_wald_net(k_pos: float, k_neg: float, n: float) -> list[float] | None:
    """Rocks (2016) adjusted Wald interval for a net score (share positive minus share negative)."""
    if n <= 0:
        return None
    n_adj = n + 3.0
    pp = (k_pos + 0.75) / n_adj
    pn = (k_neg + 0.75) / n_adj
    diff = pp - pn
    half = 100.0 * Z95 * math.sqrt(max(0.0, (pp + pn - diff * diff) / n_adj))
    centre = 100.0 * diff
    return [max(-100.0, centre - half), min(100.0, centre + half)]


def mean_ci(total: float, total_sq: float, n: float) -> list[float] | None:
    """Normal interval of a mean with the sample standard deviation; undefined below two values."""
    if n < 2:
        return None
    mean = total / n
    var = max(0.0, (total_sq - total * total / n) / (n - 1.0))  # clamp float cancellation
    half = Z95 * math.sqrt(var / n)
    return [mean - half, mean + half]


def _r(x: float | None) -> float | None:
    """Round for output; adding 0.0 turns -0.0 into 0.0."""
    return None if x is None else round(x, 4) + 0.0


def _rs(xs: list[float] | None, scale: float = 1.0) -> list[float] | None:
    return None if xs is None else [round(x / scale, 4) + 0.0 for x in xs]


def _pct(k: float, n: float) -> float | None:
    return None if n == 0 else 100.0 * k / n


def _mean(total: float, n: float) -> float | None:
    return None if n == 0 else total / n


def score_groups(stats: Sequence[float]) -> dict:
    """The four snapshot groups of CONTRACT.md "Score snapshot", rounded to 4 decimals."""
    if len(stats) != STATS_LEN:
        raise ValueError(f"stats vector must have length {STATS_LEN}, got {len(stats)}")
    s = stats

    n = s[CES_N]
    ces_mean = _mean(s[CES_SUM], n * UNIT)
    ces = {
        "n": int(n),
        "mean": _r(ces_mean),
        "effort_mean": _r(None if ces_mean is None else 8.0 - ces_mean),
        "easy_pct": _r(_pct(s[CES_EASY], n)),
        "difficult_pct": _r(_pct(s[CES_DIFFICULT], n)),
        "net_ease": _r(_pct(s[CES_EASY] - s[CES_DIFFICULT], n)),
        "ci95": _rs(adjusted_wald_net(s[CES_EASY], s[CES_DIFFICULT], n)),
        "mean_ci95": _rs(mean_ci(s[CES_SUM], s[CES_SUM_SQ], n), UNIT),
    }

    n = s[CSAT_N]
    csat = {
        "n": int(n),
        "pct": _r(_pct(s[CSAT_SATISFIED], n)),
        "mean": _r(_mean(s[CSAT_SUM], n * UNIT)),
        "ci95": _rs(wilson_pct(s[CSAT_SATISFIED], n)),
        "mean_ci95": _rs(mean_ci(s[CSAT_SUM], s[CSAT_SUM_SQ], n), UNIT),
    }

    n = s[NPS_N]
    nps = {
        "n": int(n),
        "score": _r(_pct(s[NPS_PROMOTERS] - s[NPS_DETRACTORS], n)),
        "promoters_pct": _r(_pct(s[NPS_PROMOTERS], n)),
        "detractors_pct": _r(_pct(s[NPS_DETRACTORS], n)),
        "ci95": _rs(adjusted_wald_net(s[NPS_PROMOTERS], s[NPS_DETRACTORS], n)),
    }

    n = s[IX_N]
    answered = n - s[IX_ABANDONED]
    interactions = {
        "n": int(n),
        "abandoned_pct": _r(_pct(s[IX_ABANDONED], n)),
        "aht_seconds": _r(_mean(s[IX_HANDLE_MS], s[IX_HANDLE_N] * 1000.0)),
        "asa_seconds": _r(_mean(s[IX_WAIT_MS], s[IX_WAIT_N] * 1000.0)),
        "fcr_pct": _r(_pct(s[IX_FCR_RESOLVED], s[IX_FCR_N])),
        "transfer_pct": _r(_pct(s[IX_TRANSFERRED], answered)),
        "service_level_pct": _r(_pct(s[IX_SL_MET], s[IX_SL_N])),
        "response_pct": _r(_pct(s[SURVEYS], n)),
    }

    surveys = {
        "n": int(s[SURVEYS]),
        "delay_p50_seconds": _r(delay_quantile(s, 0.5)),
        "delay_p90_seconds": _r(delay_quantile(s, 0.9)),
    }

    return {"ces": ces, "csat": csat, "nps": nps, "interactions": interactions, "surveys": surveys}
