"""Every ``KAIZEN_*`` setting, validated once at start.

One pydantic-settings class for all services: a bad value stops the process with a
message naming the variable, before any connection is made.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.git_policy import DEFAULT_GIT_HOSTS, Origin, parse_allowlist


class Settings(BaseSettings):
    """Configuration read from ``KAIZEN_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="KAIZEN_", extra="ignore", frozen=True)

    home: Path = Field(Path(".kaizen"), description="Local state: broker jars and data, SQLite, keys, logs.")
    kafka_bootstrap: str | None = Field(
        None, description="Existing Kafka cluster (host:port,...). Unset: `kaizen up` starts a local broker."
    )
    kafka_port: int = Field(9092, ge=1, le=65535, description="Local broker's client port.")
    kafka_controller_port: int = Field(
        9093, ge=1, le=65535, description="Local broker's KRaft controller port."
    )
    kafka_heap: str = Field("1g", pattern=r"^\d+[mg]$", description="Local broker's JVM heap (-Xmx).")
    topic_prefix: str = Field(
        "kaizen", pattern=r"^[a-zA-Z0-9._-]+$", description="Prefix of every topic name."
    )
    partitions: int = Field(6, ge=1, le=1000, description="Partitions of the task event topic.")
    replication_factor: int = Field(1, ge=1, le=10, description="Replication factor of created topics.")
    api_host: str = Field("127.0.0.1", description="API bind address.")
    api_port: int = Field(8000, ge=1, le=65535, description="API port.")
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest JSON request body the API reads; larger ones get 413."
    )
    database_url: str | None = Field(
        None, description="Read model (SQLAlchemy async URL). Unset: SQLite at <home>/kaizen.db."
    )
    secret_key: SecretStr | None = Field(
        None, description="Fernet key encrypting Git tokens. Unset: generated once into <home>/secret.key."
    )
    llm_api_base: str | None = Field(
        None, description="OpenAI-compatible endpoint for the default models. Unset: the embedded SmolLM2."
    )
    llm_port: int = Field(8765, ge=1, le=65535, description="Embedded LLM server port.")
    default_teacher_model: str = Field(
        "openai/smollm2", description="LiteLLM model string used when a task names none."
    )
    default_judge_model: str = Field("openai/smollm2", description="LiteLLM model string for the LLM judge.")
    optimizer_concurrency: int = Field(
        2, ge=1, le=64, description="Jobs of different tasks run at once per optimizer."
    )
    job_time_limit_seconds: int = Field(3600, ge=10, description="Wall-clock limit of one job.")
    heartbeat_seconds: float = Field(
        5.0, gt=0, description="Interval of service heartbeats (seen in /health)."
    )
    write_timeout_seconds: float = Field(10.0, gt=0, description="How long a write waits for the projector.")
    retry_pr_timeout_seconds: float = Field(
        60.0, gt=0, description="How long retry-pr waits for the outcome."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of every service."
    )
    git_hosts: str = Field(
        DEFAULT_GIT_HOSTS,
        description="Git API origins that may receive a task's token: scheme://host[:port], "
        "comma-separated. https only, unless an origin is listed with http://. Empty: none.",
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {server.strip()!r}")
        return value

    @field_validator("git_hosts")
    @classmethod
    def _git_hosts_are_origins(cls, value: str) -> str:
        # Stored in canonical form; parse_allowlist's message names the bad entry.
        return ",".join(map(str, parse_allowlist(value)))

    @property
    def git_host_allowlist(self) -> tuple[Origin, ...]:
        return parse_allowlist(self.git_hosts)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.home / 'kaizen.db').resolve()}"

    @property
    def resolved_kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
