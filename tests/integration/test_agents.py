"""Agents to coach against a live worker and its Redis: ``/api/agents`` and the ``/agents`` page in
Debian's headless chromium, on simulator traffic of agents with a known CSAT quality."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import msgspec
import pytest
from selenium.webdriver.common.by import By

from stream_app import agents
from stream_app.simulate import agent_panel
from tests.harness import produce, wait_for
from tests.integration.test_wallboard import browser, until  # noqa: F401 - the module's chromium fixture
from tests.integration.traffic import assert_exact, simulated

pytestmark = pytest.mark.integration

QUERY = {"tenant": "default", "metric": "csat.pct", "target": "85"}
# Per row of the page: its agent, coach class, the shown figures' raw values, and the drawn interval.
READ_ROWS = """
return [...document.querySelectorAll('tr.agent')].map(r => {
  const svg = r.querySelector('svg.interval'), range = svg.querySelector('line.range'),
        dot = svg.querySelector('circle.adjusted');
  return {key: r.dataset.key, coach: r.classList.contains('coach'),
          n: r.querySelector('td.n').dataset.value, value: r.querySelector('td.value').dataset.value,
          adjusted: r.querySelector('td.adjusted').dataset.value, p: r.querySelector('td.p').dataset.value,
          low: svg.dataset.low, high: svg.dataset.high,
          x1: range && Number(range.getAttribute('x1')), x2: range && Number(range.getAttribute('x2')),
          dot: dot && Number(dot.getAttribute('cx'))};
});
"""


def api(worker, path: str, **params: str) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{worker.port}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def live_agents(deployment, start_worker, redis_server, seed: int):
    """A worker that has scored a day of a 40-agent panel; the latest agent snapshots on Kafka."""
    traffic = simulated(deployment, 4_000, seed=seed, panel=agent_panel(seed, 40, struggling=0.1))
    worker = start_worker(CX_REDIS_URL=redis_server.url)
    await produce(traffic.records)
    latest = await assert_exact(deployment, traffic, dimensions=("agent",))
    return worker, [d for d in latest.values()
                    if d["dimension"] == "agent" and d["window"] == "1d" and not d["final"]]


def expected(docs: list[dict], metric: str, target: float) -> dict:
    spec = agents.METRICS[metric]
    ranked = agents.rank(spec, target, [agents.figure(spec, d["key"], d) for d in agents.latest_window(docs)])
    return json.loads(msgspec.json.encode(ranked))


async def test_api_ranks_every_agent_of_the_tenant_from_the_read_model(deployment, start_worker,
                                                                        redis_server):
    worker, docs = await live_agents(deployment, start_worker, redis_server, seed=21)
    want = expected(docs, "csat.pct", 85.0)

    async def same():
        status, body = api(worker, "/api/agents", **QUERY)
        return (status == 200 and {"prior": body.get("prior"), "agents": body.get("agents")} == want, body)

    _, body = await wait_for(same, timeout=30, message="/api/agents equals the ranking of Kafka's snapshots")
    assert len(body["agents"]) == 40 and body["prior"]["fitted"]
    assert [body[f] for f in ("tenant", "window", "metric", "target")] == ["default", "1d", "csat.pct", 85.0]
    assert body["window_start"].startswith("2026-11-20T00:00:00") and body["window_end"]
    p = [a["p_below_target"] for a in body["agents"]]
    assert p == sorted(p, reverse=True) and any(a["coach"] for a in body["agents"])

    status, body = api(worker, "/api/agents", **{**QUERY, "metric": "ces.effort_mean", "target": "3"})
    assert status == 200 and body == {**body, **expected(docs, "ces.effort_mean", 3.0)}
    status, body = api(worker, "/api/agents", **{**QUERY, "tenant": "nobody"})
    assert status == 200 and body["agents"] == [] and body["window_start"] is None


BAD = [
    ({"metric": None}, "metric is required"),
    ({"target": None}, "target is required"),
    ({"tenant": None}, "tenant is required"),
    ({"metric": "csat.mean"}, "metric must be one of csat.pct, ces.easy_pct"),
    ({"target": "high"}, "target must be a number"),
    ({"target": "nan"}, "target for csat.pct must be between 0 and 100"),
    ({"target": "120"}, "target for csat.pct must be between 0 and 100"),
    ({"metric": "ces.mean", "target": "0.5"}, "target for ces.mean must be between 1 and 7"),
    ({"window": "1w"}, "window must be one of 15m, 1d, 1h"),
]


async def test_a_missing_or_bad_parameter_is_a_400_that_says_which(deployment, start_worker, redis_server):
    worker = start_worker(CX_REDIS_URL=redis_server.url)
    for params, message in BAD:
        query = {k: v for k, v in {**QUERY, **params}.items() if v is not None}
        status, body = api(worker, "/api/agents", **query)
        assert status == 400 and body["error"].startswith(message), (params, body)


async def test_agents_page_shows_the_agents_to_coach_first_with_their_intervals(deployment, start_worker,
                                                                                redis_server, browser):  # noqa: F811
    worker, docs = await live_agents(deployment, start_worker, redis_server, seed=22)
    want = expected(docs, "csat.pct", 85.0)
    await wait_for(lambda: _async(api(worker, "/api/agents", **QUERY)[1].get("agents") == want["agents"]),
                   timeout=30, message="the read model holds every agent")

    browser.get(f"http://127.0.0.1:{worker.port}/agents?{urllib.parse.urlencode(QUERY)}")
    until(browser, lambda d: len(d.execute_script(READ_ROWS)) == len(want["agents"]), "a row per agent")
    rows = browser.execute_script(READ_ROWS)
    assert [r["key"] for r in rows] == [a["key"] for a in want["agents"]], "the API's order: coach first"
    coached = [r["coach"] for r in rows]
    assert any(coached) and coached == sorted(coached, reverse=True)
    for row, agent in zip(rows, want["agents"], strict=True):
        assert int(row["n"]) == agent["n"] and row["coach"] == agent["coach"], row
        if agent["n"] == 0:  # listed last, nothing drawn
            assert [row[f] for f in ("value", "adjusted", "p", "low", "dot")] == ["", "", "", None, None]
            continue
        assert float(row["value"]) == agent["value"] and float(row["adjusted"]) == agent["adjusted"], row
        assert float(row["p"]) == agent["p_below_target"]
        assert [float(row["low"]), float(row["high"])] == agent["interval"]
        assert row["x1"] <= row["dot"] <= row["x2"], "the adjusted figure inside its drawn interval"
    scope = browser.find_element(By.ID, "scope").text
    assert "csat.pct target 85" in scope and f"{sum(coached)} of {len(rows)} to coach" in scope
    assert browser.find_element(By.ID, "status").text.startswith("live")


async def _async(value):
    return value
