"""One typed, frozen settings object read from ``CX_*`` environment variables (see README)."""

from __future__ import annotations

import ssl
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_app.windows import WindowSpec, parse_duration_ms, parse_windows

DIMENSIONS = ("all", "channel", "queue", "agent", "touchpoint")


class Settings(BaseSettings):
    """Everything a worker, the simulator and the benchmark can be told; units are in the names."""

    model_config = SettingsConfigDict(env_prefix="CX_", frozen=True, extra="ignore", populate_by_name=True)

    app_id: str = "cx-engine"
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: FilePath | None = None  # the CA (PEM) the TLS context trusts; unset: the system's
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_key_ttl_seconds: float = Field(default=172800.0, gt=0)
    rules_file: Path | None = None
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    data_dir: Path = Path(".run/worker")

    topic_interactions: str = "cx.interaction-closed.v1"
    topic_surveys: str = "cx.survey-answered.v1"
    topic_scores: str = "cx.scores.v1"
    topic_alerts: str = "cx.alerts.v1"
    topic_dead_letter: str = "cx.dead-letter.v1"
    topic_partials: str = "cx.internal.partials.v1"
    partitions: int = Field(default=8, ge=1)
    replication_factor: int = Field(default=1, ge=1)

    windows: str = "15m:15m:1m,1h:1h:5m,1d:1d:1d"
    dimensions: str = ",".join(DIMENSIONS)
    allowed_lateness_seconds: float = Field(default=3600.0, alias="CX_ALLOWED_LATENESS", ge=0)
    max_clock_skew_seconds: float = Field(default=600.0, alias="CX_MAX_CLOCK_SKEW", ge=0)
    emit_interval_seconds: float = Field(default=1.0, alias="CX_EMIT_INTERVAL", gt=0)
    idle_timeout_seconds: float = Field(default=60.0, alias="CX_IDLE_TIMEOUT", gt=0)
    service_level_seconds: float = Field(default=20.0, ge=0)
    join_retention_seconds: float = Field(default=7200.0, ge=0)
    max_record_bytes: int = Field(default=65536, gt=0)
    max_keys_per_dimension: int = Field(default=10000, gt=0)

    batch_max_records: int = Field(default=20000, gt=0)
    store_write_buffer_mib: int = Field(default=2, ge=1)
    store_block_cache_mib: int = Field(default=1, ge=1)
    commit_interval_seconds: float = Field(default=1.0, gt=0)
    fetch_max_wait_seconds: float = Field(default=0.1, gt=0)
    session_timeout_seconds: float = Field(default=10.0, gt=0)
    log_level: str = "INFO"

    @field_validator("allowed_lateness_seconds", "max_clock_skew_seconds", "emit_interval_seconds",
                     "idle_timeout_seconds", "join_retention_seconds", "redis_key_ttl_seconds", mode="before")
    @classmethod
    def _durations(cls, value: object) -> object:
        """Accept ``90``, ``"90"``, ``"90s"``, ``"15m"``, ``"1h"``: a bare number is seconds."""
        if isinstance(value, str):
            return parse_duration_ms(value) / 1000
        return value

    @field_validator("windows")
    @classmethod
    def _windows_parse(cls, value: str) -> str:
        parse_windows(value)
        return value

    @field_validator("dimensions")
    @classmethod
    def _dimensions_known(cls, value: str) -> str:
        names = [d.strip() for d in value.split(",") if d.strip()]
        unknown = sorted(set(names) - set(DIMENSIONS))
        if unknown or not names:
            raise ValueError(f"unknown dimension(s) {unknown}; choose from {', '.join(DIMENSIONS)}")
        return value

    @model_validator(mode="after")
    def _retention_covers_lateness(self) -> Settings:
        """Deduplication must outlive lateness: an older duplicate is then too late anyway."""
        if self.join_retention_seconds < self.allowed_lateness_seconds:
            raise ValueError("CX_JOIN_RETENTION_SECONDS must be at least CX_ALLOWED_LATENESS")
        return self

    @cached_property
    def window_specs(self) -> tuple[WindowSpec, ...]:
        return parse_windows(self.windows)

    @cached_property
    def dimension_names(self) -> tuple[str, ...]:
        return tuple(d.strip() for d in self.dimensions.split(",") if d.strip())

    @property
    def allowed_lateness_ms(self) -> int:
        return round(self.allowed_lateness_seconds * 1000)

    @property
    def max_clock_skew_ms(self) -> int:
        return round(self.max_clock_skew_seconds * 1000)

    @property
    def join_retention_ms(self) -> int:
        return round(self.join_retention_seconds * 1000)

    def kafka_client_options(self) -> dict:
        """Security settings in aiokafka's keyword form, shared by every client we build (Faust's
        too, see ``app._credentials``). The protocol decides: TLS for ``SSL`` and ``SASL_SSL``, which
        checks the broker's certificate and host name against ``CX_KAFKA_SSL_CAFILE`` (the system's
        trusted CAs when unset); SASL credentials (mechanism ``PLAIN`` unless set) only for ``SASL_*``."""
        protocol = self.kafka_security_protocol
        options: dict = {"security_protocol": protocol}
        if protocol in ("SSL", "SASL_SSL"):
            cafile = None if self.kafka_ssl_cafile is None else str(self.kafka_ssl_cafile)
            options["ssl_context"] = ssl.create_default_context(cafile=cafile)
        if protocol.startswith("SASL_"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                options["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        return options
