"""The secrets of ``kaizen kafka start --secure``: a CA, the broker's certificate, SCRAM users.

Generated on the first start into ``<root>/secure`` and kept with the broker's data: the
SCRAM credentials are written into the KRaft log when the storage is formatted, so the
passwords must live exactly as long as that log. Keys and passwords are files of mode
0600; nothing secret goes on a command line (the format tool gets salted SCRAM hashes).

Layout::

    secure/ca.pem              the CA certificate clients trust (KAIZEN_KAFKA_SSL_CAFILE)
    secure/broker.pem          the broker's PKCS#8 key and certificate (Kafka's PEM keystore)
    secure/kaizen.password     the services' SCRAM password (KAIZEN_KAFKA_SASL_PASSWORD_FILE)
    secure/broker.password     the brokers' own SCRAM password (inter-broker traffic)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import secrets
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from kaizen_cli.kafka_config import SCRAM_MECHANISM, BrokerTls
from shared.kafka.security import KafkaSecurity

#: The SCRAM user every Kaizen service connects as.
SERVICE_USER = "kaizen"
#: The SCRAM user brokers authenticate as to each other.
BROKER_USER = "kaizen-broker"
_SCRAM_ITERATIONS = 8192
_VALID_DAYS = 825


class SecureMaterial:
    """The CA, certificate and passwords under ``directory`` (created by :meth:`ensure`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca_file = directory / "ca.pem"
        self.broker_keystore = directory / "broker.pem"
        self.service_password_file = directory / "kaizen.password"
        self.broker_password_file = directory / "broker.password"

    def exists(self) -> bool:
        files = (self.ca_file, self.broker_keystore, self.service_password_file, self.broker_password_file)
        return all(path.is_file() for path in files)

    def ensure(self) -> None:
        """Generate everything unless a complete set is there (a partial set is replaced)."""
        if self.exists():
            return
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(mode=0o700, parents=True)
        ca_key, ca_cert = _certificate_authority()
        key, cert = _broker_certificate(ca_key, ca_cert)
        _write(self.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
        keystore = _pkcs8(key) + cert.public_bytes(serialization.Encoding.PEM)
        _write(self.broker_keystore, keystore, 0o600)
        for path in (self.service_password_file, self.broker_password_file):
            _write(path, secrets.token_urlsafe(24).encode() + b"\n", 0o600)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def broker_tls(self) -> BrokerTls:
        return BrokerTls(
            keystore=self.broker_keystore,
            truststore=self.ca_file,
            broker_user=BROKER_USER,
            broker_password=_read(self.broker_password_file),
        )

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that create both SCRAM users, as salted hashes."""
        arguments = []
        for user, path in (
            (BROKER_USER, self.broker_password_file),
            (SERVICE_USER, self.service_password_file),
        ):
            arguments += ["--add-scram", _scram_credential(user, _read(path))]
        return arguments

    def client_security(self, *, password: str | None = None) -> KafkaSecurity:
        """How a service connects; ``password`` overrides the real one (to prove refusal)."""
        return KafkaSecurity(
            protocol="SASL_SSL",
            sasl_mechanism=SCRAM_MECHANISM,
            sasl_username=SERVICE_USER,
            sasl_password=SecretStr(password) if password is not None else None,
            sasl_password_file=None if password is not None else self.service_password_file,
            ssl_cafile=self.ca_file,
        )

    def client_env(self, bootstrap: str) -> str:
        """The ``KAIZEN_*`` lines a service needs to use this broker (the password stays in its file)."""
        lines = {
            "KAIZEN_KAFKA_BOOTSTRAP": bootstrap,
            "KAIZEN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAIZEN_KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
            "KAIZEN_KAFKA_SASL_USERNAME": SERVICE_USER,
            "KAIZEN_KAFKA_SASL_PASSWORD_FILE": str(self.service_password_file),
            "KAIZEN_KAFKA_SSL_CAFILE": str(self.ca_file),
        }
        return "".join(f"{name}={value}\n" for name, value in lines.items())


def _scram_credential(user: str, password: str) -> str:
    """RFC 5802's SaltedPassword, in the form ``kafka-storage format --add-scram`` takes."""
    salt = os.urandom(32)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _SCRAM_ITERATIONS)
    b64 = base64.b64encode
    return (
        f"{SCRAM_MECHANISM}=[name={user},iterations={_SCRAM_ITERATIONS},"
        f'salt="{b64(salt).decode()}",saltedpassword="{b64(salted).decode()}"]'
    )


def _certificate_authority() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kaizen local Kafka CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _broker_certificate(
    ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    # Brokers listen on 127.0.0.1 only; clients verify the address against the SAN.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        # Brokers are clients of each other too (inter-broker traffic).
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pkcs8(key: rsa.RSAPrivateKey) -> bytes:
    # Kafka's PEM keystore reads PKCS#8 ("BEGIN PRIVATE KEY") only.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _read(path: Path) -> str:
    return path.read_text().strip()
