"""The terminal wallboard's table: render() on hand-made snapshots, no Kafka."""

from __future__ import annotations

import copy

from stream_app.watch import NULL, render

START, END, UPDATED = "2026-05-01T09:46:00Z", "2026-05-01T10:01:00Z", "2026-05-01T10:00:12.345Z"
EMPTY_SURVEYS = {
    "ces": {"n": 0, "mean": None, "effort_mean": None, "easy_pct": None, "difficult_pct": None,
            "net_ease": None, "ci95": None, "mean_ci95": None},
    "csat": {"n": 0, "pct": None, "mean": None, "ci95": None, "mean_ci95": None},
    "nps": {"n": 0, "score": None, "promoters_pct": None, "detractors_pct": None, "ci95": None},
}


def snap(dimension: str, key: str, *, n: int, ces: float | None = None, net_ease: float | None = None,
         csat: float | None = None, nps: float | None = None, abandoned: float | None = 0.0,
         aht: float | None = 300.0, sl: float | None = 80.0, window: str = "15m", tenant: str = "default",
         final: bool = False, start: str = START, end: str = END, updated: str = UPDATED) -> dict:
    doc = {"tenant": tenant, "dimension": dimension, "key": key, "window": window,
           "window_start": start, "window_end": end, "final": final, "updated_at": updated,
           **copy.deepcopy(EMPTY_SURVEYS),
           "interactions": {"n": n, "abandoned_pct": abandoned, "aht_seconds": aht, "asa_seconds": 20.0,
                            "fcr_pct": 70.0, "transfer_pct": 10.0, "service_level_pct": sl,
                            "response_pct": 12.0}}
    if ces is not None:
        doc["ces"].update(n=40, mean=ces, net_ease=net_ease)
    if csat is not None:
        doc["csat"].update(n=30, pct=csat)
    if nps is not None:
        doc["nps"].update(n=12, score=nps)
    return doc


def keyed(*docs: dict) -> dict[str, dict]:
    out = {}
    for d in docs:
        key = f"{d['tenant']}/{d['dimension']}/{d['key']}/{d['window']}"
        if d["final"]:
            key += f"/{d['window_start']}"
        out[key] = d
    return out


def row(text: str, name: str) -> list[str]:
    """The cells of the table row whose first cell is ``name``."""
    for line in text.splitlines():
        cells = line.split()
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r} in\n{text}")


def body(text: str) -> list[str]:
    """First cells of the data rows, in order (after the column titles' rule, up to a blank line)."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    names = []
    for line in lines[rule + 1:]:
        if not line.strip():
            break
        names.append(line.split()[0])
    return names


def snapshots() -> dict[str, dict]:
    return keyed(
        snap("all", "all", n=310, ces=5.61, net_ease=42.5, csat=80.6, nps=25.0, abandoned=3.2, aht=312.4,
             sl=80.1),
        # chat has fewer interactions than voice: voice first, whatever the key order
        snap("channel", "chat", n=110, ces=6.2, net_ease=61.0, csat=90.0, nps=40.0, abandoned=1.0, aht=540.0,
             sl=95.5),
        snap("channel", "voice", n=200, ces=4.8, net_ease=-12.0, csat=None, nps=None, abandoned=4.5,
             aht=None, sl=70.25),
    )


def test_shows_the_values_of_all_and_each_channel():
    text = render(snapshots(), "15m", "default")
    assert row(text, "all") == ["all", "310", "5.61", "+42.5", "80.6", "+25.0", "3.2", "312", "80.1"]
    assert row(text, "chat") == ["chat", "110", "6.20", "+61.0", "90.0", "+40.0", "1.0", "540", "95.5"]
    assert row(text, "voice")[:3] == ["voice", "200", "4.80"]
    assert row(text, "voice")[3] == "-12.0"


def test_header_has_the_window_and_the_update_time():
    header = render(snapshots(), "15m", "default").splitlines()[0]
    for part in ("default", "15m", START, END, UPDATED):
        assert part in header


def test_all_first_then_channels_by_interactions_descending():
    assert body(render(snapshots(), "15m", "default")) == ["all", "voice", "chat"]
    reordered = dict(reversed(list(snapshots().items())))
    assert body(render(reordered, "15m", "default")) == ["all", "voice", "chat"]


def test_nulls_print_as_a_dash():
    cells = row(render(snapshots(), "15m", "default"), "voice")
    assert cells == ["voice", "200", "4.80", "-12.0", NULL, NULL, "4.5", NULL, "70.2"]
    assert NULL == "\u2013"
    empty = keyed(snap("all", "all", n=0, abandoned=None, aht=None, sl=None))
    assert row(render(empty, "15m", "default"), "all") == ["all", "0", *[NULL] * 7]


def test_ignores_finals_other_windows_tenants_and_dimensions():
    docs = snapshots()
    docs.update(keyed(
        snap("channel", "email", n=999, final=True, start="2026-05-01T09:30:00Z", end="2026-05-01T09:45:00Z"),
        snap("all", "all", n=5000, window="1h"),
        snap("channel", "sms", n=777, window="1h"),
        snap("all", "all", n=42, tenant="acme"),
        snap("channel", "social", n=888, tenant="acme"),
        snap("queue", "chat-support", n=999),
        snap("agent", "agent-001", n=999),
    ))
    text = render(docs, "15m", "default")
    assert body(text) == ["all", "voice", "chat"]
    assert row(text, "all")[1] == "310"
    for absent in ("email", "sms", "social", "chat-support", "agent-001", "999", "5000", "777", "888"):
        assert absent not in text
    acme = render(docs, "15m", "acme")
    assert body(acme) == ["all", "social"]
    assert row(acme, "all")[1] == "42"
    assert body(render(docs, "1h", "default")) == ["all", "sms"]


def test_a_final_alone_is_not_shown():
    docs = keyed(snap("all", "all", n=10, final=True), snap("channel", "chat", n=10, final=True))
    text = render(docs, "15m", "default")
    assert "waiting" in text
    assert "chat" not in text


def test_a_channel_of_another_window_is_marked():
    docs = snapshots()
    docs.update(keyed(snap("channel", "email", n=3, start="2026-05-01T08:00:00Z",
                           end="2026-05-01T08:15:00Z")))
    text = render(docs, "15m", "default")
    assert body(text)[-1] == "email*"
    assert "2026-05-01T08:15:00Z" in text


def test_never_prints_personal_data():
    docs = snapshots()
    for doc in docs.values():
        doc["customer_id"] = "cust-123456"
        doc["comment"] = "call me on 555-0100"
    text = render(docs, "15m", "default")
    assert "cust-123456" not in text and "555-0100" not in text
