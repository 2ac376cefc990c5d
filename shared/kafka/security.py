"""How our Kafka clients authenticate and encrypt: one place turns settings into client options.

Every producer, consumer and admin client we build passes :func:`client_options` to
aiokafka, so a cluster that demands TLS or SASL (``KAIZEN_KAFKA_SECURITY_PROTOCOL`` and
friends, see ``docs/kafka-security.md``) is reached by all of them alike. The values are
validated in :mod:`shared.settings`; the password never appears in a repr or a log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr

from shared.settings import KafkaSaslMechanism, KafkaSecurityProtocol, Settings, get_settings


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS and SASL settings of a client; the default is plaintext without authentication."""

    protocol: KafkaSecurityProtocol = "PLAINTEXT"
    sasl_mechanism: KafkaSaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaSecurity:
        return cls(
            protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=settings.kafka_sasl_password,
            sasl_password_file=settings.kafka_sasl_password_file,
            ssl_cafile=settings.kafka_ssl_cafile,
            ssl_certfile=settings.kafka_ssl_certfile,
            ssl_keyfile=settings.kafka_ssl_keyfile,
        )

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def password(self) -> str:
        """The SASL password: the value, else the file's content read now (a rotated file applies)."""
        if self.sasl_password is not None:
            return self.sasl_password.get_secret_value()
        if self.sasl_password_file is not None:
            return self.sasl_password_file.read_text().strip()
        raise ValueError("no SASL password configured")

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaProducer``, ``AIOKafkaConsumer`` and ``AIOKafkaAdminClient``."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_tls:
            # Without a CA file the system's CAs verify the broker (managed clusters).
            options["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.password()
        return options


PLAINTEXT = KafkaSecurity()


def client_options(security: KafkaSecurity | None = None) -> dict[str, Any]:
    """Security options for one aiokafka client; ``None``: this process's ``KAIZEN_KAFKA_*`` settings."""
    return (security or KafkaSecurity.from_settings(get_settings())).client_options()
