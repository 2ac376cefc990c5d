"""Every ``KAIZEN_*`` setting, validated once at start.

One pydantic-settings class for all services: a bad value stops the process with a
message naming the variable, before any connection is made.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.git_policy import DEFAULT_GIT_HOSTS, Origin, parse_allowlist
from shared.model_policy import DEFAULT_ALLOWED_MODELS, ModelPrice, ModelRules, parse_patterns
from shared.tracing.mode import TracingMode, tracing_missing

#: The shortest bootstrap token accepted: whoever guesses it gets the first admin key.
MIN_BOOTSTRAP_TOKEN = 16

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
LogFormat = Literal["auto", "json", "text"]
_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS = ("SSL", "SASL_SSL")


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
    # Client security (docs/kafka-security.md). Validated together, each field after the
    # protocol: a value the protocol would ignore is an error, never silently plaintext.
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        "PLAINTEXT", description="How every Kafka client connects: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL."
    )
    kafka_sasl_mechanism: KafkaSaslMechanism | None = Field(
        None, validate_default=True, description="SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    kafka_sasl_username: str | None = Field(None, validate_default=True, description="SASL user name.")
    kafka_sasl_password_file: Path | None = Field(
        None, description="A file holding the SASL password instead (e.g. a mounted secret)."
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, validate_default=True, description="SASL password (wins over the file)."
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="PEM file of the CAs that sign the brokers' certificates. Unset: the system's CAs."
    )
    kafka_ssl_certfile: Path | None = Field(
        None, description="PEM client certificate (mutual TLS), possibly with its key."
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, validate_default=True, description="PEM private key of the client certificate (unencrypted)."
    )
    topic_prefix: str = Field(
        "kaizen", pattern=r"^[a-zA-Z0-9._-]+$", description="Prefix of every topic name."
    )
    partitions: int = Field(6, ge=1, le=1000, description="Partitions of the task event topic.")
    replication_factor: int = Field(1, ge=1, le=10, description="Replication factor of created topics.")
    api_host: str = Field("127.0.0.1", description="API bind address.")
    api_port: int = Field(8000, ge=1, le=65535, description="API port.")
    api_processes: int = Field(
        2,
        ge=1,
        le=16,
        description=(
            "API processes `kaizen up` runs on the one port (SO_REUSEPORT): with two or more, a killed "
            "process never leaves the port unserved while the supervisor restarts it."
        ),
    )
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
    allowed_models: str = Field(
        DEFAULT_ALLOWED_MODELS,
        description="fnmatch patterns (comma-separated) of the LiteLLM model strings a task may name "
        "(teacher_model, judge_model, evaluator_config.task_model); the default models are always "
        "allowed, URL-like model strings never. Empty: only the default models.",
    )
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description='JSON: model -> {"input_usd_per_million": x, "output_usd_per_million": y}. '
        "Prices a model LiteLLM does not know, so a task's cost_budget can be enforced with it.",
    )
    optimizer_concurrency: int = Field(
        2, ge=1, le=64, description="Jobs of different tasks run at once per optimizer."
    )
    job_time_limit_seconds: int = Field(3600, ge=10, description="Wall-clock limit of one job.")
    heartbeat_seconds: float = Field(
        5.0, gt=0, description="Interval of service heartbeats (seen in /health)."
    )
    write_timeout_seconds: float = Field(10.0, gt=0, description="How long a write waits for the projector.")
    loop_stall_seconds: float = Field(
        120.0,
        gt=0,
        description="A background loop with no progress for longer than this makes /health and /livez fail.",
    )
    retry_pr_timeout_seconds: float = Field(
        60.0, gt=0, description="How long retry-pr waits for the outcome."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of every service."
    )
    log_format: LogFormat = Field(
        "auto", description="Service logs: json (one object a line), text, or auto (text in a terminal)."
    )
    git_hosts: str = Field(
        DEFAULT_GIT_HOSTS,
        description="Git API origins that may receive a task's token: scheme://host[:port], "
        "comma-separated. https only, unless an origin is listed with http://. Empty: none.",
    )

    # Worker services' Prometheus endpoints (the API serves /metrics on its own port).
    metrics_host: str = Field(
        "127.0.0.1", description="Bind address of the worker services' metrics endpoints (unauthenticated)."
    )
    metrics_port_projector: int = Field(
        9464, ge=0, le=65535, description="Projector's Prometheus metrics port; 0: off."
    )
    metrics_port_optimizer: int = Field(
        9465, ge=0, le=65535, description="Optimizer's Prometheus metrics port; 0: off."
    )
    metrics_port_pr_publisher: int = Field(
        9466, ge=0, le=65535, description="PR publisher's Prometheus metrics port; 0: off."
    )

    # OpenTelemetry traces (docs/operations.md, "Traces"); the exporter reads the standard
    # OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, ...).
    tracing: TracingMode = Field(
        "off",
        description="Traces: off, otlp (OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT) or console (stdout). "
        "otlp and console need the `tracing` extra (pip install 'kaizen[tracing]').",
    )

    @field_validator("tracing")
    @classmethod
    def _tracing_is_installed(cls, value: TracingMode) -> TracingMode:
        if value != "off" and (problem := tracing_missing(value)) is not None:
            raise ValueError(problem)
        return value

    # Webhooks (services/webhooks, docs/webhooks.md).
    webhook_hosts: str = Field(
        "",
        description="Origins webhook subscriptions may target: scheme://host[:port], comma-separated, "
        "the syntax of KAIZEN_GIT_HOSTS. https only, unless an origin is listed with http://. Empty: none.",
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=300, description="Timeout of one webhook request.")
    webhook_max_attempts: int = Field(
        8, ge=1, le=100, description="Attempts per event and subscription before it is declared dead."
    )
    webhook_backoff_seconds: float = Field(
        1.0, gt=0, description="First retry delay of a webhook delivery; doubles each attempt (with jitter)."
    )
    webhook_backoff_cap_seconds: float = Field(
        600.0, gt=0, description="Longest delay between two attempts, Retry-After included."
    )
    metrics_port_webhooks: int = Field(
        9467, ge=0, le=65535, description="Webhooks service's Prometheus metrics port; 0: off."
    )

    bootstrap_token: SecretStr | None = Field(
        None,
        description="Secret that opens POST /api/v1/keys/bootstrap (sent as X-Bootstrap-Token), "
        "at least 16 characters. Unset (and no file): the first key comes from `kaizen keys bootstrap`.",
    )
    bootstrap_token_file: Path | None = Field(
        None, description="A file holding the bootstrap token instead (e.g. a mounted secret)."
    )

    @field_validator("bootstrap_token")
    @classmethod
    def _bootstrap_token_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value().strip()) < MIN_BOOTSTRAP_TOKEN:
            raise ValueError(f"must be at least {MIN_BOOTSTRAP_TOKEN} characters")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("bootstrap_token_file")
    @classmethod
    def _bootstrap_token_file_is_readable(cls, value: Path | None) -> Path | None:
        if value is None or str(value) == "":
            return None
        try:
            token = value.read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror}") from None
        if len(token) < MIN_BOOTSTRAP_TOKEN:
            raise ValueError(f"{value} must hold a token of at least {MIN_BOOTSTRAP_TOKEN} characters")
        return value

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

    @field_validator(
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password_file",
        "kafka_sasl_password",
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("kafka_security_protocol")
    @classmethod
    def _secured_cluster_is_named(cls, value: str, info: ValidationInfo) -> str:
        # The broker `kaizen up` starts speaks plaintext: security settings without a
        # cluster would make every service fail at its first connection.
        if value != "PLAINTEXT" and "kafka_bootstrap" in info.data and info.data["kafka_bootstrap"] is None:
            raise ValueError(
                f"{value} needs KAIZEN_KAFKA_BOOTSTRAP (the broker `kaizen up` starts is plaintext)"
            )
        return value

    @field_validator("kafka_sasl_mechanism", "kafka_sasl_username")
    @classmethod
    def _sasl_setting_matches_protocol(cls, value: str | None, info: ValidationInfo) -> str | None:
        protocol = info.data.get("kafka_security_protocol")
        if protocol in _SASL and value is None:
            raise ValueError(f"required when KAIZEN_KAFKA_SECURITY_PROTOCOL is {protocol}")
        if protocol is not None and protocol not in _SASL and value is not None:
            raise ValueError(f"set, but KAIZEN_KAFKA_SECURITY_PROTOCOL={protocol} uses no SASL")
        return value

    @field_validator("kafka_sasl_password_file", "kafka_ssl_cafile", "kafka_ssl_certfile")
    @classmethod
    def _kafka_file_is_readable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        protocol = info.data.get("kafka_security_protocol")
        uses = _SASL if info.field_name == "kafka_sasl_password_file" else _TLS
        if protocol is not None and protocol not in uses:
            raise ValueError(f"set, but KAIZEN_KAFKA_SECURITY_PROTOCOL={protocol} does not use it")
        _readable(value)
        if info.field_name == "kafka_sasl_password_file" and not value.read_text().strip():
            raise ValueError(f"{value} is empty")
        return value

    @field_validator("kafka_sasl_password")
    @classmethod
    def _sasl_password_is_given(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        protocol = info.data.get("kafka_security_protocol")
        has_file = info.data.get("kafka_sasl_password_file") is not None
        if protocol in _SASL and value is None and not has_file:
            raise ValueError(
                f"required when KAIZEN_KAFKA_SECURITY_PROTOCOL is {protocol} "
                "(or KAIZEN_KAFKA_SASL_PASSWORD_FILE)"
            )
        if protocol is not None and protocol not in _SASL and value is not None:
            raise ValueError(f"set, but KAIZEN_KAFKA_SECURITY_PROTOCOL={protocol} uses no SASL")
        return value

    @field_validator("kafka_ssl_keyfile")
    @classmethod
    def _keyfile_has_certificate(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        protocol = info.data.get("kafka_security_protocol")
        if protocol is not None and protocol not in _TLS:
            raise ValueError(f"set, but KAIZEN_KAFKA_SECURITY_PROTOCOL={protocol} does not use it")
        if "kafka_ssl_certfile" in info.data and info.data["kafka_ssl_certfile"] is None:
            raise ValueError("needs KAIZEN_KAFKA_SSL_CERTFILE (the certificate of this key)")
        return _readable(value)

    @field_validator("git_hosts")
    @classmethod
    def _git_hosts_are_origins(cls, value: str) -> str:
        # Stored in canonical form; parse_allowlist's message names the bad entry.
        return ",".join(map(str, parse_allowlist(value)))

    @property
    def git_host_allowlist(self) -> tuple[Origin, ...]:
        return parse_allowlist(self.git_hosts)

    @field_validator("webhook_hosts")
    @classmethod
    def _webhook_hosts_are_origins(cls, value: str) -> str:
        return ",".join(map(str, parse_allowlist(value)))

    @property
    def webhook_host_allowlist(self) -> tuple[Origin, ...]:
        return parse_allowlist(self.webhook_hosts)

    @property
    def resolved_bootstrap_token(self) -> str | None:
        """The bootstrap secret (the variable wins over the file); ``None``: HTTP bootstrap is off.

        The file is read on each call, so a rotated secret applies without a restart.
        """
        if self.bootstrap_token is not None:
            return self.bootstrap_token.get_secret_value()
        if self.bootstrap_token_file is None:
            return None
        try:
            token = self.bootstrap_token_file.read_text().strip()
        except OSError:
            return None
        return token if len(token) >= MIN_BOOTSTRAP_TOKEN else None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.home / 'kaizen.db').resolve()}"

    @property
    def resolved_kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @field_validator("allowed_models")
    @classmethod
    def _allowed_models_are_patterns(cls, value: str) -> str:
        return ",".join(parse_patterns(value))

    @property
    def resolved_llm_api_base(self) -> str:
        """Where the default models are served: the configured endpoint or the embedded server."""
        return self.llm_api_base or f"http://127.0.0.1:{self.llm_port}/v1"

    @property
    def model_rules(self) -> ModelRules:
        return ModelRules(
            patterns=parse_patterns(self.allowed_models),
            default_teacher=self.default_teacher_model,
            default_judge=self.default_judge_model,
            default_api_base=self.resolved_llm_api_base,
            prices=dict(self.model_prices),
        )


def _readable(path: Path) -> Path:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    return path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
