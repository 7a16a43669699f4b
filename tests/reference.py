"""An independent count of what the windows must hold, written from the contract, not the worker.

Only counts and simple shares: the formulas themselves are checked in tests/unit/test_scoring.py.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import Any

DAY_MS = 86_400_000


def to_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _ces_band(answer: dict) -> str | None:
    lo, hi = answer.get("scale_min", 1), answer.get("scale_max", 7)
    e = answer["value"] if answer.get("higher_is_easier", True) else lo + hi - answer["value"]
    k = (hi - lo + 1 - 1) // 2
    if e <= lo + k - 1:
        return "difficult"
    if e >= hi - k + 1:
        return "easy"
    return None


def expected_counts(interactions: list[dict], surveys: list[dict], dimension: str = "channel",
                    window_ms: int = DAY_MS) -> dict[tuple[str, int], dict[str, Any]]:
    """(key, window start) -> counts, for tumbling windows of ``window_ms`` in one tenant; under
    ``delays``, the survey delays (ms) of the surveys whose interaction is among ``interactions``."""
    attr = {"channel": "channel", "queue": "queue", "agent": "agent_id",
            "touchpoint": "touchpoint"}.get(dimension)
    by_id = {}
    for ix in interactions:
        by_id.setdefault(ix["interaction_id"], ix)
    out: dict[tuple[str, int], dict[str, Any]] = defaultdict(lambda: defaultdict(int))

    def key_of(event: dict, base: dict | None) -> str:
        if attr is None:
            return "all"
        value = event.get(attr) or (base or {}).get(attr)
        return value.strip().lower() if value else "unknown"  # the schemas: trimmed and lower-cased

    for ix in interactions:
        t = to_ms(ix["closed_at"])
        c = out[(key_of(ix, None), t - t % window_ms)]
        c["interactions"] += 1
        c["abandoned"] += bool(ix.get("abandoned"))
    for sv in surveys:
        t = to_ms(sv["answered_at"])
        base = by_id.get(sv.get("interaction_id"))
        c = out[(key_of(sv, base), t - t % window_ms)]
        c["surveys"] += 1
        if base is not None:
            c.setdefault("delays", []).append(t - to_ms(base["closed_at"]))
        for a in sv["answers"]:
            metric = a["metric"]
            c[f"{metric}_n"] += 1
            if metric == "ces":
                band = _ces_band(a)
                if band:
                    c[f"ces_{band}"] += 1
            elif metric == "csat":
                c["csat_satisfied"] += a["value"] >= a.get("scale_max", 5) - 1
            else:
                c["nps_promoters"] += a["value"] >= 9
                c["nps_detractors"] += a["value"] <= 6
    return {k: dict(v) for k, v in out.items()}


def pct(k: int, n: int) -> float | None:
    return None if n == 0 else round(100.0 * k / n, 4)


def delay_quantile_error(estimate: float | None, delays_ms: list[int], q: float) -> str | None:
    """Why ``estimate`` is not the q-quantile of the delays within README's bound (None when it is):
    the smallest delay with rank >= q·n, within 19% above 15 s and within 7.5 s below."""
    if not delays_ms:
        return None if estimate is None else f"got {estimate}, want null"
    ordered = sorted(max(0, d) / 1000.0 for d in delays_ms)
    true = ordered[max(0, math.ceil(q * len(ordered)) - 1)]
    bound = 7.5 if true < 15.0 else (2 ** 0.25 - 1) * true
    if estimate is None or abs(estimate - true) > bound + 1e-3:
        return f"got {estimate}, want {true} ± {bound:.1f}"
    return None


def snapshot_matches(doc: dict, counts: dict[str, Any]) -> list[str]:
    """Differences between a score snapshot and the expected counts (empty when equal)."""
    c = defaultdict(int, counts)
    checks = {
        "interactions.n": (doc["interactions"]["n"], c["interactions"]),
        "interactions.abandoned_pct": (doc["interactions"]["abandoned_pct"],
                                       pct(c["abandoned"], c["interactions"])),
        "ces.n": (doc["ces"]["n"], c["ces_n"]),
        "ces.easy_pct": (doc["ces"]["easy_pct"], pct(c["ces_easy"], c["ces_n"])),
        "ces.difficult_pct": (doc["ces"]["difficult_pct"], pct(c["ces_difficult"], c["ces_n"])),
        "csat.n": (doc["csat"]["n"], c["csat_n"]),
        "csat.pct": (doc["csat"]["pct"], pct(c["csat_satisfied"], c["csat_n"])),
        "nps.n": (doc["nps"]["n"], c["nps_n"]),
        "nps.promoters_pct": (doc["nps"]["promoters_pct"], pct(c["nps_promoters"], c["nps_n"])),
        "nps.detractors_pct": (doc["nps"]["detractors_pct"], pct(c["nps_detractors"], c["nps_n"])),
    }
    diffs = []
    for name, (got, want) in checks.items():
        if got is None or want is None:
            if got != want:
                diffs.append(f"{name}: got {got}, want {want}")
        elif abs(got - want) > 1e-3:
            diffs.append(f"{name}: got {got}, want {want}")
    if doc["surveys"]["n"] != c["surveys"]:
        diffs.append(f"surveys.n: got {doc['surveys']['n']}, want {c['surveys']}")
    for q, field in ((0.5, "delay_p50_seconds"), (0.9, "delay_p90_seconds")):
        error = delay_quantile_error(doc["surveys"][field], c.get("delays") or [], q)
        if error:
            diffs.append(f"surveys.{field}: {error}")
    return diffs
