"""Settings (stream_app/settings.py) against the defaults of CONTRACT.md and the CX_ environment."""

from __future__ import annotations

import os
import ssl

import pydantic
import pytest
from pydantic import SecretStr

from stream_app.settings import DIMENSIONS, Settings
from stream_app.windows import WindowSpec


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No CX_ variable of the surrounding shell may leak into a test."""
    for name in list(os.environ):
        if name.upper().startswith("CX_"):
            monkeypatch.delenv(name)


# --- defaults (CONTRACT.md) --------------------------------------------------------------------


def test_default_kafka_bootstrap():
    assert Settings().kafka_bootstrap == "127.0.0.1:9092"


def test_default_redis_url():
    assert Settings().redis_url == "redis://127.0.0.1:6379/0"


def test_default_allowed_lateness_one_hour():
    s = Settings()
    assert s.allowed_lateness_seconds == 3600.0
    assert s.allowed_lateness_ms == 3_600_000


def test_default_emit_interval_one_second():
    assert Settings().emit_interval_seconds == 1.0


def test_default_idle_timeout_sixty_seconds():
    assert Settings().idle_timeout_seconds == 60.0


def test_default_service_level_twenty_seconds():
    assert Settings().service_level_seconds == 20.0


def test_default_topic_names():
    s = Settings()
    assert s.topic_interactions == "cx.interaction-closed.v1"
    assert s.topic_surveys == "cx.survey-answered.v1"
    assert s.topic_scores == "cx.scores.v1"
    assert s.topic_alerts == "cx.alerts.v1"
    assert s.topic_dead_letter == "cx.dead-letter.v1"


def test_default_eight_partitions():
    assert Settings().partitions == 8


def test_default_windows_15m_1h_1d():
    s = Settings()
    assert s.windows == "15m:15m:1m,1h:1h:5m,1d:1d:1d"
    assert s.window_specs == (
        WindowSpec("15m", 900_000, 60_000),
        WindowSpec("1h", 3_600_000, 300_000),
        WindowSpec("1d", 86_400_000, 86_400_000),
    )


def test_default_dimensions():
    s = Settings()
    assert s.dimension_names == ("all", "channel", "queue", "agent", "touchpoint")
    assert DIMENSIONS == ("all", "channel", "queue", "agent", "touchpoint")


def test_default_security_is_plaintext_without_sasl():
    s = Settings()
    assert s.kafka_security_protocol == "PLAINTEXT"
    assert s.kafka_client_options() == {"security_protocol": "PLAINTEXT"}


def test_default_rules_file_unset():
    assert Settings().rules_file is None


# --- the CX_ environment -----------------------------------------------------------------------


def test_env_prefixed_variables_are_read(monkeypatch):
    monkeypatch.setenv("CX_KAFKA_BOOTSTRAP", "kafka-1:9093")
    monkeypatch.setenv("CX_REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("CX_WEB_PORT", "8080")
    monkeypatch.setenv("CX_PARTITIONS", "16")
    monkeypatch.setenv("CX_TOPIC_SCORES", "acme.scores")
    monkeypatch.setenv("CX_SERVICE_LEVEL_SECONDS", "30")
    monkeypatch.setenv("CX_RULES_FILE", "/etc/cx/rules.yaml")
    s = Settings()
    assert s.kafka_bootstrap == "kafka-1:9093"
    assert s.redis_url == "redis://cache:6379/2"
    assert s.web_port == 8080
    assert s.partitions == 16
    assert s.topic_scores == "acme.scores"
    assert s.service_level_seconds == 30.0
    assert str(s.rules_file) == "/etc/cx/rules.yaml"


def test_env_without_prefix_is_ignored(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "elsewhere:9092")
    assert Settings().kafka_bootstrap == "127.0.0.1:9092"


@pytest.mark.parametrize(
    ("value", "seconds", "ms"),
    [("2h", 7200.0, 7_200_000), ("90s", 90.0, 90_000), ("15m", 900.0, 900_000), ("45", 45.0, 45_000),
     ("0", 0.0, 0)],
)
def test_allowed_lateness_accepts_durations(monkeypatch, value, seconds, ms):
    monkeypatch.setenv("CX_ALLOWED_LATENESS", value)
    s = Settings()
    assert s.allowed_lateness_seconds == seconds
    assert s.allowed_lateness_ms == ms


@pytest.mark.parametrize(("value", "seconds"), [("2h", 7200.0), ("90s", 90.0), ("5m", 300.0), ("30", 30.0)])
def test_idle_timeout_accepts_durations(monkeypatch, value, seconds):
    monkeypatch.setenv("CX_IDLE_TIMEOUT", value)
    assert Settings().idle_timeout_seconds == seconds


@pytest.mark.parametrize(("value", "seconds"), [("90s", 90.0), ("500ms", 0.5), ("2", 2.0), ("2h", 7200.0)])
def test_emit_interval_accepts_durations(monkeypatch, value, seconds):
    monkeypatch.setenv("CX_EMIT_INTERVAL", value)
    assert Settings().emit_interval_seconds == seconds


def test_allowed_lateness_ms_keeps_millisecond_precision(monkeypatch):
    monkeypatch.setenv("CX_ALLOWED_LATENESS", "1001ms")
    assert Settings().allowed_lateness_ms == 1001


@pytest.mark.parametrize("name", ["CX_ALLOWED_LATENESS", "CX_IDLE_TIMEOUT", "CX_EMIT_INTERVAL"])
def test_bad_duration_rejected(monkeypatch, name):
    monkeypatch.setenv(name, "soon")
    with pytest.raises(pydantic.ValidationError, match="soon"):
        Settings()


@pytest.mark.parametrize(("name", "value"), [("CX_EMIT_INTERVAL", "0"), ("CX_IDLE_TIMEOUT", "0s"),
                                             ("CX_ALLOWED_LATENESS", "-1")])
def test_out_of_range_duration_rejected(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(pydantic.ValidationError):
        Settings()


def test_windows_from_env(monkeypatch):
    monkeypatch.setenv("CX_WINDOWS", "5m:5m:1m,2h:2h:10m")
    assert Settings().window_specs == \
        (WindowSpec("5m", 300_000, 60_000), WindowSpec("2h", 7_200_000, 600_000))


def test_dimensions_from_env(monkeypatch):
    monkeypatch.setenv("CX_DIMENSIONS", "all, channel")
    assert Settings().dimension_names == ("all", "channel")


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("CX_DIMENSIONS", "all,channel,skill", "skill"),  # unknown dimension, named
    ("CX_DIMENSIONS", " , ", "dimension"),  # no dimension at all
    ("CX_WINDOWS", "15m:15m:1m,weird:1m:5m", "weird"),  # step over size, named
    ("CX_WINDOWS", "15m:15m:1m,hourly:1h", "hourly:1h"),  # malformed, named
])
def test_bad_dimensions_and_windows_rejected_naming_the_culprit(monkeypatch, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(pydantic.ValidationError, match=named):
        Settings()


def test_window_with_bad_duration_rejected_naming_it():
    with pytest.raises(pydantic.ValidationError, match="1x"):
        Settings(windows="w:1x:1m")


def test_zero_partitions_rejected(monkeypatch):
    monkeypatch.setenv("CX_PARTITIONS", "0")
    with pytest.raises(pydantic.ValidationError):
        Settings()


def test_unknown_security_protocol_rejected(monkeypatch):
    monkeypatch.setenv("CX_KAFKA_SECURITY_PROTOCOL", "TLS")
    with pytest.raises(pydantic.ValidationError):
        Settings()


def test_settings_object_is_frozen():
    s = Settings()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        s.kafka_bootstrap = "elsewhere:9092"
    assert s.kafka_bootstrap == "127.0.0.1:9092"


# --- SASL --------------------------------------------------------------------------------------


def test_sasl_settings_reach_kafka_client_options(monkeypatch):
    monkeypatch.setenv("CX_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CX_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CX_KAFKA_SASL_USERNAME", "cx-worker")
    monkeypatch.setenv("CX_KAFKA_SASL_PASSWORD", "hunter2-secret")
    options = Settings().kafka_client_options()
    assert isinstance(options.pop("ssl_context"), ssl.SSLContext)
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "cx-worker",
        "sasl_plain_password": "hunter2-secret",
    }


def test_sasl_password_is_secret_and_not_in_repr(monkeypatch):
    monkeypatch.setenv("CX_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("CX_KAFKA_SASL_USERNAME", "cx-worker")
    monkeypatch.setenv("CX_KAFKA_SASL_PASSWORD", "hunter2-secret")
    s = Settings()
    assert isinstance(s.kafka_sasl_password, SecretStr)
    assert s.kafka_sasl_password.get_secret_value() == "hunter2-secret"
    assert "hunter2-secret" not in repr(s)
    assert "hunter2-secret" not in str(s)
    assert "hunter2-secret" not in s.model_dump_json()


def test_ssl_without_sasl_mechanism_sends_no_sasl_options(monkeypatch):
    monkeypatch.setenv("CX_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("CX_KAFKA_SASL_USERNAME", "ignored")
    options = Settings().kafka_client_options()
    assert isinstance(options.pop("ssl_context"), ssl.SSLContext)
    assert options == {"security_protocol": "SSL"}


def test_sasl_without_password_omits_password(monkeypatch):
    monkeypatch.setenv("CX_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("CX_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("CX_KAFKA_SASL_USERNAME", "cx-worker")
    assert Settings().kafka_client_options() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "cx-worker",
    }
