"""The Fernet key that encrypts Git tokens, shared by the API (encrypts) and the PR
publisher (decrypts).

The key comes from ``KAIZEN_SECRET_KEY`` or, when unset, is generated once into
``<home>/secret.key`` (mode 0600) so every service on the machine shares it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from shared.private_files import ensure_private_file
from shared.settings import Settings


class SecretKeyError(ValueError):
    """``KAIZEN_SECRET_KEY`` or ``<home>/secret.key`` does not hold a usable Fernet key."""


def load_fernet(settings: Settings) -> Fernet:
    """The Fernet of this installation: from the setting, else from (or into) ``<home>/secret.key``."""
    if settings.secret_key is not None:
        return _fernet(settings.secret_key.get_secret_value().encode(), "KAIZEN_SECRET_KEY")
    path = settings.home / "secret.key"
    return _fernet(_read_or_create(path), str(path))


def _fernet(key: bytes, origin: str) -> Fernet:
    try:
        return Fernet(key.strip())
    except ValueError as exc:
        raise SecretKeyError(f"{origin} is not a Fernet key (32 url-safe base64-encoded bytes)") from exc


def _read_or_create(path: Path) -> bytes:
    """Create the key file atomically; a process that loses the race reads the winner's key."""
    if path.exists():
        ensure_private_file(path)  # a key file from an older install may be world-readable
        return path.read_bytes()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
        # link() fails when the file exists, so two first starts never overwrite each other.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def encrypt_token(fernet: Fernet, token: str) -> str:
    """Ciphertext of a Git token: the only form that leaves the API."""
    return fernet.encrypt(token.encode()).decode()


class TokenUnreadable(ValueError):
    """The stored ciphertext does not decrypt with this installation's key."""


def decrypt_token(fernet: Fernet, ciphertext: str) -> str:
    try:
        return fernet.decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise TokenUnreadable(
            "the task's Git token cannot be decrypted with this installation's KAIZEN_SECRET_KEY; "
            "set the token on the task again"
        ) from exc
