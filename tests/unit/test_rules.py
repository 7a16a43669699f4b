"""Alert rules from YAML: the example loads, and every kind of bad rule stops the worker with a message
that names the rule and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_app.baselines import Ewma, Seasonal
from stream_app.errors import ConfigError
from stream_app.rules import METRICS, Rule, load_rules, parse_rules

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "rules.example.yaml"
WINDOWS = ("15m", "1h", "1d")


def rule(**fields) -> dict:
    """A valid rule; a field given as ``...`` is left out."""
    base = {
        "name": "chat-effort", "metric": "ces.net_ease", "dimension": "channel", "key": "chat",
        "window": "15m", "comparison": "below", "threshold": 20, "severity": "critical",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def parse_one(**fields) -> Rule:
    (parsed,) = parse_rules({"rules": [rule(**fields)]}, "test.yaml", windows=WINDOWS)
    return parsed


def test_example_rules_file_loads_with_the_default_windows():
    rules = load_rules(EXAMPLE, windows=WINDOWS)
    assert len(rules) == 7
    assert {r.metric for r in rules} == {
        "ces.net_ease", "csat.pct", "nps.score",
        "interactions.abandoned_pct", "interactions.service_level_pct", "interactions.response_pct",
    }
    effort = next(r for r in rules if r.metric == "ces.net_ease")
    assert effort.significant and effort.dimension == "channel" and effort.window == "15m"
    by_name = {r.name: r for r in rules}
    assert by_name["chat-csat-drop"].baseline == Ewma(half_life_ms=7_200_000, min_history_ms=28_800_000)
    assert by_name["survey-collapse"].baseline == Seasonal(86_400_000, 3, 86_400_000)
    assert [r.name for r in rules if r.baseline is None] == [
        "channel-effort", "channel-csat", "channel-nps", "channel-abandonment", "live-service-level"]


def test_defaults_clear_at_threshold_20_samples_no_for_10m_cooldown_not_significant():
    parsed = parse_one()
    assert parsed == Rule(
        name="chat-effort", metric="ces.net_ease", dimension="channel", window="15m", comparison="<",
        threshold=20.0, clear=20.0, severity="critical", key=("chat",), tenant=None, min_samples=20,
        for_ms=0, cooldown_ms=600_000, significant=False,
    )


def test_durations_keys_and_comparisons_are_normalised():
    parsed = parse_one(key=["Chat", "voice", "chat"], comparison=">=", threshold=-10, clear=-20,
                       **{"for": "2m", "cooldown": 90}, tenant="acme", min_samples=0)
    assert parsed.key == ("chat", "voice")  # lower-cased like the worker's channel values, once each
    assert (parsed.comparison, parsed.below) == (">=", False)
    assert (parsed.for_ms, parsed.cooldown_ms) == (120_000, 90_000)
    assert parsed.tenant == "acme" and parsed.min_samples == 0
    assert parse_one(comparison="above", clear=...).comparison == ">"


def test_comparison_words_are_strict_and_symbols_say_whether_equal_counts():
    below, at_most = parse_one(comparison="below"), parse_one(comparison="<=")
    assert not below.holds(20.0, 20.0) and at_most.holds(20.0, 20.0)
    assert below.holds(19.9, 20.0) and not below.holds(20.1, 20.0)


def test_significant_is_accepted_on_every_metric_with_an_interval():
    for metric in ("ces.net_ease", "ces.mean", "ces.effort_mean", "csat.pct", "csat.mean", "nps.score"):
        threshold = 4 if metric.endswith("mean") else 20
        assert parse_one(metric=metric, threshold=threshold, significant=True).significant


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"threshold": ...}, "threshold", "required"),
        ({"threshold": "low"}, "threshold", "must be a number"),
        ({"threshold": True}, "threshold", "must be a number"),
        ({"threshold": float("nan")}, "threshold", "must be a number"),
        ({"threshold": 150, "metric": "csat.pct"}, "threshold", "outside the range of csat.pct"),
        ({"threshold": 9, "metric": "ces.mean"}, "threshold", "outside the range"),
        ({"threshhold": 20}, "threshhold", "unknown field"),
        ({"metric": "ces.score"}, "metric", "is not one of"),
        ({"metric": ...}, "metric", "required"),
        ({"dimension": "region"}, "dimension", "is not one of"),
        ({"dimension": "all", "key": "chat"}, "key", 'the dimension "all" has the one key "all"'),
        ({"key": []}, "key", "non-empty"),
        ({"key": True}, "key", "non-empty string"),  # YAML reads an unquoted `key: on` as true
        ({"key": ["chat", 3]}, "key", "non-empty string"),
        ({"tenant": ""}, "tenant", "non-empty string"),
        ({"window": "15min"}, "window", "not a configured window"),
        ({"window": 15}, "window", "non-empty string"),
        ({"comparison": "under"}, "comparison", "is not one of"),
        ({"comparison": "=="}, "comparison", "is not one of"),
        ({"clear": 10}, "clear", "at or above the threshold 20"),
        ({"comparison": "above", "clear": 30}, "clear", "at or below the threshold 20"),
        ({"clear": "x"}, "clear", "must be a number"),
        ({"min_samples": -1}, "min_samples", ">= 0"),
        ({"min_samples": 2.5}, "min_samples", "whole number"),
        ({"min_samples": True}, "min_samples", "whole number"),
        ({"for": "2 minutes"}, "for", "not a duration"),
        ({"for": -5}, "for", "duration >= 0"),
        ({"for": [1]}, "for", "duration"),
        ({"cooldown": "-1m"}, "cooldown", "not a duration"),
        ({"cooldown": float("inf")}, "cooldown", "duration >= 0"),
        ({"severity": "page"}, "severity", "is not one of info, warning, critical"),
        ({"significant": "yes"}, "significant", "true or false"),
        ({"significant": True, "metric": "interactions.abandoned_pct"}, "significant", "has no 95% interval"),
        ({"significant": True, "metric": "ces.easy_pct"}, "significant", "has no 95% interval"),
        ({"name": "Chat Effort"}, "name", "a-z, 0-9 and '-'"),
    ],
)
def test_bad_rule_is_rejected_naming_rule_and_field(fields, field, problem):
    data = {"rules": [rule(**fields)]}
    with pytest.raises(ConfigError) as caught:
        parse_rules(data, "deploy/rules.yaml", windows=WINDOWS)
    message = str(caught.value)
    name = data["rules"][0]["name"]
    assert message.startswith(f'rules file deploy/rules.yaml: rule "{name}": field "{field}": ')
    assert problem in message


def test_rule_without_a_name_is_named_by_its_position():
    with pytest.raises(ConfigError, match=r'rule #2: field "name": required'):
        parse_rules({"rules": [rule(), rule(name=...)]}, "r.yaml")


def test_duplicate_rule_names_are_rejected():
    with pytest.raises(ConfigError, match=r'rule "chat-effort": field "name": duplicate: rule #1 has the'):
        parse_rules({"rules": [rule(), rule()]}, "r.yaml")


def test_a_rule_that_is_not_a_mapping_is_rejected():
    with pytest.raises(ConfigError, match=r'rule #1: field "\(rule\)": must be a mapping'):
        parse_rules({"rules": ["chat-effort"]}, "r.yaml")


def test_every_bad_rule_of_a_file_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        parse_rules({"rules": [rule(name="a", severity="page"), rule(name="b"), rule(name="c", metric="x")]},
                    "r.yaml")
    lines = str(caught.value).splitlines()
    assert lines == [
        'rules file r.yaml: rule "a": field "severity": \'page\' is not one of info, warning, critical',
        'rules file r.yaml: rule "c": field "metric": ' + f"'x' is not one of {', '.join(METRICS)}",
    ]


def test_any_window_name_is_accepted_when_the_configured_windows_are_not_given():
    (parsed,) = parse_rules({"rules": [rule(window="4h")]}, "r.yaml")
    assert parsed.window == "4h"


def test_dimensions_can_be_narrowed_to_the_configured_ones():
    with pytest.raises(ConfigError, match=r'field "dimension"'):
        parse_rules({"rules": [rule()]}, "r.yaml", dimensions=("all", "queue"))


@pytest.mark.parametrize(
    "data", [None, [], {"rule": []}, {"rules": [], "extra": 1}, {"rules": {"a": 1}}, {"rules": None}]
)
def test_top_level_must_be_exactly_a_rules_list(data):
    with pytest.raises(ConfigError, match=r"^rules file r\.yaml: .*rules"):
        parse_rules(data, "r.yaml")


def test_an_empty_rules_list_is_allowed():
    assert parse_rules({"rules": []}, "r.yaml") == ()


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"rules file .*nope\.yaml: cannot read it"):
        load_rules(tmp_path / "nope.yaml")


def test_invalid_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"rules file .*rules\.yaml: not valid YAML"):
        load_rules(path)


def test_a_field_given_twice_is_an_error_not_silently_the_last(tmp_path):
    path = tmp_path / "rules.yaml"
    twice = EXAMPLE.read_text().replace("    threshold: -25\n", "    threshold: -25\n    threshold: 25\n")
    path.write_text(twice)
    with pytest.raises(ConfigError, match=r"not valid YAML: .*'threshold' is given twice"):
        load_rules(path)


def test_an_unquoted_greater_than_is_explained(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: a\n    metric: ces.mean\n    dimension: all\n    window: 15m\n"
                    "    comparison: <\n    threshold: 4\n    severity: info\n")
    (parsed,) = load_rules(path)
    assert parsed.comparison == "<"
    with pytest.raises(ConfigError, match=r"quote it in YAML"):
        parse_rules({"rules": [rule(comparison=">>")]}, "r.yaml")


def test_yaml_merge_keys_share_fields_between_rules_and_may_be_overridden(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - &base\n    name: a\n    metric: csat.pct\n    dimension: channel\n"
                    "    window: 15m\n    comparison: below\n    threshold: 30\n    severity: warning\n"
                    "  - <<: *base\n    name: b\n    threshold: 20\n")
    a, b = load_rules(path)
    assert (a.name, a.threshold, b.name, b.threshold, b.metric) == ("a", 30.0, "b", 20.0, "csat.pct")


def test_a_yaml_key_that_is_a_list_is_a_config_error(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - [a]: 1\n")
    with pytest.raises(ConfigError, match=r"(?s)not valid YAML: .*unhashable key"):
        load_rules(path)


# --- baseline rules -------------------------------------------------------------------------------------


def baseline_rule(**fields) -> dict:
    """A valid rule on its baseline: CSAT 15 points below it fires, 5 below clears."""
    return rule(**{"metric": "csat.pct", "threshold": -15, "clear": -5,
                   "baseline": {"method": "ewma", "half_life": "2h"}} | fields)


def test_ewma_baseline_defaults_to_four_half_lives_of_history():
    (parsed,) = parse_rules({"rules": [baseline_rule()]}, "r.yaml", windows=WINDOWS)
    assert parsed.baseline == Ewma(half_life_ms=7_200_000, min_history_ms=28_800_000)
    assert (parsed.threshold, parsed.clear, parsed.below) == (-15.0, -5.0, True)
    custom = baseline_rule(baseline={"method": "ewma", "half_life": "30m", "min_history": "1h"})
    assert parse_rules({"rules": [custom]}, "r.yaml")[0].baseline == Ewma(1_800_000, 3_600_000)


def test_seasonal_baseline_defaults_to_lookback_periods_of_history():
    for period, period_ms in (("1d", 86_400_000), ("1w", 604_800_000)):
        fields = baseline_rule(baseline={"method": "seasonal", "period": period, "lookback": 4})
        (parsed,) = parse_rules({"rules": [fields]}, "r.yaml")
        assert parsed.baseline == Seasonal(period_ms, 4, 4 * period_ms)
    seasonal = {"method": "seasonal", "period": "1w", "lookback": 4, "min_history": "7d"}
    fields = baseline_rule(baseline=seasonal)
    assert parse_rules({"rules": [fields]}, "r.yaml")[0].baseline == Seasonal(604_800_000, 4, 604_800_000)


def test_a_fixed_rule_has_no_baseline():
    assert parse_one().baseline is None


def test_with_a_baseline_the_levels_are_differences_bounded_by_the_metrics_span():
    parsed = parse_rules({"rules": [baseline_rule(threshold=-100, clear=0)]}, "r.yaml")[0]
    assert (parsed.threshold, parsed.clear) == (-100.0, 0.0)
    above = baseline_rule(metric="interactions.aht_seconds", comparison="above", threshold=600, clear=120)
    assert parse_rules({"rules": [above]}, "r.yaml")[0].threshold == 600.0  # no upper end: any difference
    net = baseline_rule(metric="ces.net_ease", threshold=-200, clear=-150)
    assert parse_rules({"rules": [net]}, "r.yaml")[0].threshold == -200.0  # net ease spans 200


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"baseline": "ewma"}, "baseline", "must be a mapping"),
        ({"baseline": {"half_life": "2h"}}, "baseline.method", "required: ewma or seasonal"),
        ({"baseline": {"method": "mean"}}, "baseline.method", "'mean' is not one of ewma, seasonal"),
        ({"baseline": {"method": "ewma"}}, "baseline.half_life", "required for method ewma"),
        ({"baseline": {"method": "ewma", "half_life": 0}}, "baseline.half_life", "duration > 0"),
        ({"baseline": {"method": "ewma", "half_life": "2 hours"}}, "baseline.half_life", "not a duration"),
        ({"baseline": {"method": "ewma", "half_life": "2h", "min_history": -1}}, "baseline.min_history",
         "duration >= 0"),
        ({"baseline": {"method": "ewma", "half_life": "2h", "period": "1d"}}, "baseline.period",
         "unknown field for method ewma; its fields are method, half_life, min_history"),
        ({"baseline": {"method": "seasonal", "lookback": 4}}, "baseline.period",
         "required for method seasonal"),
        ({"baseline": {"method": "seasonal", "period": "1d"}}, "baseline.lookback", "required"),
        ({"baseline": {"method": "seasonal", "period": "1h", "lookback": 4}}, "baseline.period",
         "'1h' is not one of 1d, 1w"),
        ({"baseline": {"method": "seasonal", "period": "1w", "lookback": 0}}, "baseline.lookback",
         "from 1 to 8"),
        ({"baseline": {"method": "seasonal", "period": "1w", "lookback": 9}}, "baseline.lookback",
         "from 1 to 8"),
        ({"baseline": {"method": "seasonal", "period": "1w", "lookback": "4"}}, "baseline.lookback",
         "whole number"),
        ({"baseline": {"method": "seasonal", "period": "1w", "lookback": True}}, "baseline.lookback",
         "whole number"),
        ({"baseline": {"method": "seasonal", "period": "1w", "lookback": 4, "half_life": "2h"}},
         "baseline.half_life", "unknown field for method seasonal"),
        ({"threshold": -101}, "threshold",
         "difference from the baseline that csat.pct can never reach (-100 to"),
        ({"clear": 100.5}, "clear", "can never reach"),
        ({"clear": -20}, "clear", "at or above the threshold -15"),
    ],
)
def test_bad_baseline_rule_is_rejected_naming_rule_and_field(fields, field, problem):
    data = {"rules": [baseline_rule(**fields)]}
    with pytest.raises(ConfigError) as caught:
        parse_rules(data, "deploy/rules.yaml", windows=WINDOWS)
    message = str(caught.value)
    assert message.startswith(f'rules file deploy/rules.yaml: rule "chat-effort": field "{field}": ')
    assert problem in message and "\n" not in message


def test_a_bad_baseline_stops_the_worker_at_start_with_one_line(tmp_path, monkeypatch, capsys):
    from stream_app import cli

    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: chat-csat-drop\n    metric: csat.pct\n    dimension: channel\n"
                    "    window: 15m\n    comparison: below\n    threshold: -15\n    severity: warning\n"
                    "    baseline: {method: ewma, half_life: 0}\n")
    monkeypatch.setenv("CX_RULES_FILE", str(path))
    assert cli.main(["worker"]) == 2
    assert capsys.readouterr().err == (f'cx worker: rules file {path}: rule "chat-csat-drop": field '
                                       '"baseline.half_life": must be a duration > 0 such as 30m or 2h\n')
