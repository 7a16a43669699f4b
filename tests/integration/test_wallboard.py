"""The supervisor wallboard in Debian's headless chromium, against a live worker and its Redis."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from stream_app.settings import Settings
from stream_app.sinks.redis import ReadModel
from tests.harness import free_port, produce, wait_for
from tests.integration.traffic import assert_exact, simulated
from tests.samples import alert

pytestmark = pytest.mark.integration

QUERY = "tenant=default&window=15m&dimension=all,channel"
# Everything a tile shows, read in one call: per tile its scope, each figure's raw value and text,
# and how many points its sparkline draws.
READ_TILES = """
return [...document.querySelectorAll('.tile')].map(t => ({
  dimension: t.dataset.dimension, key: t.dataset.key, classes: [...t.classList],
  fields: Object.fromEntries([...t.querySelectorAll('[data-field]')]
                             .map(f => [f.dataset.field, [f.dataset.value, f.textContent]])),
  points: t.querySelector('svg.spark').dataset.points}));
"""
GROUPS = ("interactions", "ces", "csat", "nps")  # a scope with n = 0 in all of them gets no tile
DECIMALS = {"ces.mean": 2, "ces.net_ease": 1, "csat.pct": 1, "nps.score": 0, "interactions.n": 0, "ces.n": 0}


@pytest.fixture(scope="module")
def browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1600,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


def api(worker, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}{path}", timeout=5) as response:
        return json.loads(response.read())


def until(browser, check, message: str, timeout: float = 30.0):
    """Wait for a truthy ``check(browser)``; fail with the message and the page's text."""
    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.25).until(check)
    except TimeoutException:
        page = browser.find_element(By.TAG_NAME, "body").text
        raise AssertionError(f"{message}; page shows:\n{page}") from None


def field_problems(tile: dict, doc: dict) -> list[str]:
    """Each figure's raw value equals the API's, and its text is that value rounded for the wall."""
    problems = []
    for name, (raw, text) in tile["fields"].items():
        group, field = name.split(".")
        expected = doc[group][field]
        if expected is None:
            if (raw, text) != ("", "\u2013"):
                problems.append(f"{name}: {raw!r} {text!r}, expected no data")
            continue
        shown = float(text.replace("%", "").replace(",", "").replace("+", ""))
        if raw == "" or float(raw) != expected or abs(shown - expected) > 0.5 * 10 ** -DECIMALS[name] + 1e-9:
            problems.append(f"{name}: {raw!r} {text!r}, expected {expected}")
    return problems


async def settled_scores(worker) -> list[dict]:
    """The API's rolling 15m snapshots of all and channel, once two reads a second apart agree."""
    previous: list[dict] = []

    async def check():
        nonlocal previous
        current = api(worker, f"/api/scores?{QUERY}")["scores"]
        stable, previous = current == previous and bool(current), current
        return stable
    await wait_for(check, timeout=30, every=1.0, message="stable scores in the API")
    return previous


async def test_tiles_show_the_values_the_api_returns(deployment, start_worker, redis_server, browser):
    traffic = simulated(deployment, 2_000, seed=4)  # 5 records/s of event time: about 7 minutes
    worker = start_worker(CX_REDIS_URL=redis_server.url)
    for minute in range(0, len(traffic.records), 300):  # a minute at a time, so each one is emitted
        await produce(traffic.records[minute:minute + 300])
        await asyncio.sleep(0.5)
    await assert_exact(deployment, traffic)
    scores = [d for d in await settled_scores(worker) if any(d[g]["n"] for g in GROUPS)]
    series = api(worker, f"/api/history?{QUERY}")["series"]
    history = {(s["dimension"], s["key"]): s["points"] for s in series}

    browser.get(f"http://127.0.0.1:{worker.port}/?tenant=default&window=15m")
    until(browser, lambda d: len(d.execute_script(READ_TILES)) == len(scores), f"{len(scores)} tiles")
    tiles = browser.execute_script(READ_TILES)
    docs = {(d["dimension"], d["key"]): d for d in scores}
    channels = sorted((d for d in scores if d["dimension"] == "channel"),
                      key=lambda d: (-d["interactions"]["n"], d["key"]))
    expected_order = [("all", "all")] + [("channel", d["key"]) for d in channels]
    assert [(t["dimension"], t["key"]) for t in tiles] == expected_order
    for tile in tiles:
        scope = (tile["dimension"], tile["key"])
        assert not field_problems(tile, docs[scope]), (scope, field_problems(tile, docs[scope]))
        assert set(tile["fields"]) == set(DECIMALS)
        assert int(tile["points"]) == sum(p["ces_mean"] is not None for p in history[scope]), scope
    assert int(tiles[0]["points"]) >= 3, "the sparkline of all channels has a point per minute emitted"
    status = browser.find_element(By.ID, "status")
    assert status.text.startswith("live") and "down" not in status.get_attribute("class")
    assert not browser.find_element(By.ID, "alerts").is_displayed()


async def test_firing_alert_in_the_read_model_shows_in_the_banner_until_resolved(deployment, start_worker,
                                                                                 redis_server, browser):
    worker = start_worker(CX_REDIS_URL=redis_server.url)
    await produce(simulated(deployment, 300, seed=6).records)
    browser.get(f"http://127.0.0.1:{worker.port}/")
    until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '.tile[data-key="chat"]'), "a chat tile")
    model = ReadModel(Settings(redis_url=redis_server.url))
    try:
        model.publish([], [alert("a1", tenant="default", key="chat")])
        assert await model.flush()
        banner = until(browser, lambda d: d.find_element(By.CSS_SELECTOR, '#alerts [data-alert-id="a1"]'),
                       "the alert in the banner")
        assert "critical" in banner.get_attribute("class")
        assert "chat-effort" in banner.text and "net ease 12.0 below 20.0" in banner.text
        assert "channel chat" in banner.text and banner.is_displayed()
        until(browser, lambda d: "alert-critical" in d.find_element(By.CSS_SELECTOR, '.tile[data-key="chat"]')
              .get_attribute("class"), "the chat tile marked")

        model.publish([], [alert("a1", status="resolved", tenant="default", key="chat")])
        assert await model.flush()
        until(browser, lambda d: not d.find_element(By.ID, "alerts").is_displayed(), "the banner gone")
        chat = browser.find_element(By.CSS_SELECTOR, '.tile[data-key="chat"]')
        assert "alert-critical" not in chat.get_attribute("class")
    finally:
        await model.client.aclose()


async def test_rule_firing_on_live_traffic_shows_in_the_banner(deployment, start_worker, redis_server,
                                                               browser):
    rules = deployment.tmp / "rules.yaml"
    rules.write_text("""
rules:
  - name: chat-busy
    metric: interactions.n
    dimension: channel
    key: chat
    window: 15m
    comparison: above
    threshold: 0
    clear: 0
    min_samples: 0
    for: 0s
    severity: critical
""")
    worker = start_worker(CX_REDIS_URL=redis_server.url, CX_RULES_FILE=str(rules))
    # Minutes of event time: rules are judged when every partition's data pass a step boundary.
    await produce(simulated(deployment, 1500, seed=7).records)
    browser.get(f"http://127.0.0.1:{worker.port}/")
    banner = until(browser, lambda d: [a for a in d.find_elements(By.CSS_SELECTOR, "#alerts .alert")
                                       if "chat-busy" in a.text], "the chat-busy alert", timeout=60)
    assert "channel chat" in banner[0].text and "critical" in banner[0].get_attribute("class")


async def test_wallboard_says_no_data_while_the_read_model_is_unreachable(deployment, start_worker, browser):
    worker = start_worker(CX_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    browser.get(f"http://127.0.0.1:{worker.port}/")
    status = until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#status.down"), "status down")
    assert "read model unavailable" in status.text
