"""Every PromQL expression of the Grafana dashboard and the Prometheus rules, against a live worker.

A worker gets simulator traffic with an incident (so alert rules fire), a duplicate, an invalid and
a too-late record (so every outcome has a series); Debian's Prometheus scrapes it every second with
deploy/prometheus/prometheus.yml (targets and intervals replaced) and deploy/prometheus/rules.yml.
Then each expression must parse and return data:

- dashboard targets, with the template variables set as Grafana would: each variable's own
  ``label_values(selector, label)`` query is run (its selector must return data too), tenant and
  window take the first or default value, the multi-valued channel takes "All" as ``(a|b|…)``;
  ``$__rate_interval`` becomes ``1m``;
- alert rules, whose condition is normally false: the whole expression must parse, and each term
  (``<query> <comparison> <number>``, terms joined by ``and``) must return data without its
  comparison; Prometheus itself must report every rule evaluated without error.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.harness import ROOT, dumps, free_port, produce, wait_for
from tests.integration.traffic import simulated

pytestmark = pytest.mark.integration

PROMETHEUS_DIR = ROOT / "deploy/prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
CONFIGS = (PROMETHEUS_DIR / "prometheus.yml", PROMETHEUS_DIR / "prometheus.compose.yml")
DASHBOARD = ROOT / "deploy/grafana/dashboards/cx-engine.json"
ALERT_RULES = ROOT / "deploy/rules.example.yaml"
RATE_INTERVAL = "1m"
COMPARISON = re.compile(r"^(?P<query>.+?)\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?-?[0-9.]+(?:e[+-]?[0-9]+)?$",
                        re.S)
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$", re.S)


def test_promtool_accepts_rules_and_every_config():
    for command in (["check", "rules", str(RULES)], *(["check", "config", str(c)] for c in CONFIGS)):
        done = subprocess.run(["promtool", *command], capture_output=True, text=True)
        assert done.returncode == 0, f"promtool {' '.join(command)}:\n{done.stdout}\n{done.stderr}"


class Prometheus:
    """Debian's prometheus on a free port with its own storage, scraping one worker."""

    def __init__(self, tmp: Path, target: str) -> None:
        config = yaml.safe_load(CONFIGS[0].read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["rule_files"] = [str(RULES)]
        (job,) = config["scrape_configs"]
        job["static_configs"] = [{"targets": [target]}]
        self.config = tmp / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.data = tmp / "prometheus-data"
        self.log = tmp / "prometheus.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Prometheus:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["prometheus", f"--config.file={self.config}", f"--storage.tsdb.path={self.data}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        shutil.rmtree(self.data, ignore_errors=True)

    def api(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:  # a bad query answers 400 with the parser's message
            return json.load(error)
        except OSError as error:
            return {"status": "unreachable", "error": str(error)}

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)


def dashboard_panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def render(expr: str, values: dict[str, str]) -> str:
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
    return expr


def label_values(prometheus: Prometheus, variable: dict, values: dict[str, str]) -> tuple[str, list[str]]:
    """The selector a query variable runs, rendered, and the label values it finds."""
    match = LABEL_VALUES.match(variable["definition"])
    assert match, f"variable {variable['name']}: only label_values(selector, label) is supported"
    selector = render(match["selector"], values)
    answer = prometheus.query(selector)
    found = sorted({s["metric"][match["label"]] for s in answer.get("data", {}).get("result", [])
                    if match["label"] in s["metric"]})
    return selector, found


def dashboard_checks(prometheus: Prometheus) -> list[tuple[str, str]]:
    """(where, rendered expression) for every variable selector and panel target of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    values: dict[str, str] = {}
    checks = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        selector, found = label_values(prometheus, variable, values)
        checks.append((f"variable {variable['name']}", selector))
        if not found:
            values[variable["name"]] = "<no values>"
        elif variable.get("multi") or variable.get("includeAll"):
            values[variable["name"]] = "(" + "|".join(re.escape(v) for v in found) + ")"
        else:
            default = variable.get("current", {}).get("value")
            values[variable["name"]] = default if default in found else found[0]
    for panel in dashboard_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            checks.append((f"panel {panel['title']!r} {target['refId']}", render(target["expr"], values)))
    return checks


def rule_checks() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Whole rule expressions (must parse) and their terms without comparison (must return data)."""
    whole, terms = [], []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule["record"]
            whole.append((f"rule {name}", rule["expr"]))
            for term in re.split(r"\s+and\s+", rule["expr"].strip()):
                match = COMPARISON.match(term.strip())
                assert match, f"rule {name}: term {term!r} is not '<query> <comparison> <number>'"
                terms.append((f"rule {name} term", match["query"]))
    return whole, terms


def problems(prometheus: Prometheus, must_parse: list[tuple[str, str]],
             must_have_data: list[tuple[str, str]]) -> list[str]:
    found = []
    for where, expr in must_parse + must_have_data:
        answer = prometheus.query(expr)
        if answer.get("status") != "success":
            found.append(f"{where}: {answer.get('error', answer)} in {expr}")
        elif (where, expr) in must_have_data and not answer["data"]["result"]:
            found.append(f"{where}: no data for {expr}")
    return found


async def test_every_dashboard_and_rule_expression_returns_data_from_a_live_worker(
        deployment, start_worker, tmp_path, capsys):
    worker = start_worker(CX_RULES_FILE=str(ALERT_RULES))
    traffic = simulated(deployment, 6_000, seed=5, incident="chat")
    topics = deployment.topics
    with Prometheus(tmp_path, f"127.0.0.1:{worker.port}") as prometheus:
        await produce(traffic.records)
        late = {**traffic.interactions[0], "event_id": "too-late", "closed_at": "2026-11-20T05:00:00Z"}
        await produce([traffic.records[0],  # a duplicate
                       (topics["interactions"], b"bad", b"{not json"),
                       (topics["interactions"], late["interaction_id"].encode(), dumps(late))])

        async def outcomes_counted():
            text = worker.metrics()
            return all(f'outcome="{o}"' in text for o in ("ok", "duplicate", "invalid", "too_late"))
        await wait_for(outcomes_counted, timeout=90, message="every outcome counted")

        parse_only, terms = rule_checks()

        async def all_answered():
            found = problems(prometheus, parse_only, terms + dashboard_checks(prometheus))
            return (not found, found)
        try:
            await wait_for(all_answered, timeout=60, every=2, message="every expression answered with data")
        except AssertionError:
            pytest.fail("\n".join(problems(prometheus, parse_only, terms + dashboard_checks(prometheus))))

        rules = prometheus.api("rules")["data"]["groups"]
        unhealthy = [(r["name"], r.get("lastError")) for g in rules for r in g["rules"]
                     if r["health"] != "ok"]
        assert not unhealthy, f"Prometheus could not evaluate rules: {unhealthy}"
        dashboard = dashboard_checks(prometheus)
    with capsys.disabled():
        print(f"\nPromQL checked against a live worker: {len(dashboard)} dashboard expressions "
              f"(variables and targets), {len(parse_only)} rule expressions, {len(terms)} rule terms")
