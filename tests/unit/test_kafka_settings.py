"""Kafka client security settings: refused when inconsistent, one set of client options everywhere."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from kaizen_cli.kafka_secure import SecureMaterial
from shared.kafka.security import PLAINTEXT, KafkaSecurity, client_options
from shared.settings import Settings, get_settings

CLUSTER = "broker-1.example.com:9096"


def settings(**values: Any) -> Settings:
    return Settings(kafka_bootstrap=CLUSTER, **values)


def errors(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    """``KAIZEN_*`` variable → message, as ``kaizen`` prints them."""
    return {"KAIZEN_" + "_".join(map(str, e["loc"])).upper(): e["msg"] for e in exc.value.errors()}


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "kafka.password"
    path.write_text("s3cret-from-file\n")
    return path


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> SecureMaterial:
    secure = SecureMaterial(tmp_path_factory.mktemp("secure") / "secure")
    secure.ensure()
    return secure


def test_the_default_is_plaintext_without_credentials() -> None:
    assert client_options(KafkaSecurity.from_settings(Settings())) == {"security_protocol": "PLAINTEXT"}


def test_sasl_without_mechanism_user_or_password_names_each_missing_variable() -> None:
    with pytest.raises(ValidationError) as exc:
        settings(kafka_security_protocol="SASL_SSL")

    assert set(errors(exc)) == {
        "KAIZEN_KAFKA_SASL_MECHANISM",
        "KAIZEN_KAFKA_SASL_USERNAME",
        "KAIZEN_KAFKA_SASL_PASSWORD",
    }


def test_credentials_without_a_sasl_protocol_are_refused_not_ignored() -> None:
    with pytest.raises(ValidationError) as exc:
        settings(kafka_sasl_username="kaizen", kafka_sasl_password=SecretStr("x"))

    assert set(errors(exc)) == {"KAIZEN_KAFKA_SASL_USERNAME", "KAIZEN_KAFKA_SASL_PASSWORD"}


def test_tls_files_without_tls_are_refused(material: SecureMaterial) -> None:
    with pytest.raises(ValidationError) as exc:
        settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_ssl_cafile=material.ca_file)

    assert "KAIZEN_KAFKA_SSL_CAFILE" in errors(exc)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as exc:
        settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "absent.pem")

    message = f"Value error, cannot read {tmp_path}/absent.pem: No such file or directory"
    assert errors(exc) == {"KAIZEN_KAFKA_SSL_CAFILE": message}


def test_a_key_needs_its_certificate(material: SecureMaterial) -> None:
    with pytest.raises(ValidationError) as exc:
        settings(kafka_security_protocol="SSL", kafka_ssl_keyfile=material.broker_keystore)

    assert set(errors(exc)) == {"KAIZEN_KAFKA_SSL_KEYFILE"}


def test_security_without_a_cluster_is_refused() -> None:
    # `kaizen up`'s own broker is plaintext; services would fail at their first connection.
    with pytest.raises(ValidationError) as exc:
        Settings(kafka_security_protocol="SSL")

    assert set(errors(exc)) == {"KAIZEN_KAFKA_SECURITY_PROTOCOL"}


def test_an_unknown_mechanism_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="GSSAPI",
            kafka_sasl_username="kaizen",
            kafka_sasl_password=SecretStr("x"),
        )

    assert set(errors(exc)) == {"KAIZEN_KAFKA_SASL_MECHANISM"}


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CAFILE", "SASL_PASSWORD_FILE"):
        monkeypatch.setenv(f"KAIZEN_KAFKA_{name}", "")

    assert KafkaSecurity.from_settings(Settings()) == PLAINTEXT


def test_sasl_ssl_options_carry_a_verifying_tls_context_and_the_password(material: SecureMaterial) -> None:
    options = client_options(
        KafkaSecurity.from_settings(
            settings(
                kafka_security_protocol="SASL_SSL",
                kafka_sasl_mechanism="SCRAM-SHA-512",
                kafka_sasl_username="kaizen",
                kafka_sasl_password=SecretStr("s3cret"),
                kafka_ssl_cafile=material.ca_file,
            )
        )
    )

    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "kaizen",
        "sasl_plain_password": "s3cret",
    }


def test_the_password_file_is_read_when_a_client_is_built(password_file: Path) -> None:
    security = KafkaSecurity.from_settings(
        settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="PLAIN",
            kafka_sasl_username="kaizen",
            kafka_sasl_password_file=password_file,
        )
    )
    assert client_options(security)["sasl_plain_password"] == "s3cret-from-file"

    password_file.write_text("rotated\n")

    assert client_options(security)["sasl_plain_password"] == "rotated"


def test_mutual_tls_loads_the_client_certificate(material: SecureMaterial) -> None:
    # The broker's keystore holds a key and a certificate in one PEM, as a client file may.
    options = client_options(
        KafkaSecurity.from_settings(
            settings(
                kafka_security_protocol="SSL",
                kafka_ssl_cafile=material.ca_file,
                kafka_ssl_certfile=material.broker_keystore,
                kafka_ssl_keyfile=material.broker_keystore,
            )
        )
    )

    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "sasl_plain_password" not in options


def test_the_password_appears_in_no_repr(password_file: Path) -> None:
    configured = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="kaizen",
        kafka_sasl_password=SecretStr("hunter2-hunter2"),
    )

    assert "hunter2" not in repr(configured)
    assert "hunter2" not in repr(KafkaSecurity.from_settings(configured))


def test_clients_without_explicit_security_use_the_process_settings(
    monkeypatch: pytest.MonkeyPatch, password_file: Path
) -> None:
    monkeypatch.setenv("KAIZEN_KAFKA_BOOTSTRAP", CLUSTER)
    monkeypatch.setenv("KAIZEN_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAIZEN_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KAIZEN_KAFKA_SASL_USERNAME", "kaizen")
    monkeypatch.setenv("KAIZEN_KAFKA_SASL_PASSWORD_FILE", str(password_file))
    get_settings.cache_clear()
    try:
        assert client_options()["sasl_mechanism"] == "SCRAM-SHA-256"
    finally:
        get_settings.cache_clear()


def test_the_secure_broker_material_is_private_and_complete(material: SecureMaterial) -> None:
    assert material.exists()
    for secret in (material.broker_keystore, material.service_password_file, material.broker_password_file):
        assert secret.stat().st_mode & 0o077 == 0
    arguments = material.scram_arguments()
    assert arguments[0] == "--add-scram" and "saltedpassword=" in arguments[1]
    assert material.service_password_file.read_text().strip() not in " ".join(arguments)
