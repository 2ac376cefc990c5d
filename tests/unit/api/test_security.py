"""API keys and the Fernet key: formats, hashing, and the key file's life."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from services.api.security import hash_key, hashes_match, is_well_formed, key_prefix, new_api_key
from shared.secrets import SecretKeyError, encrypt_token, load_fernet
from shared.settings import Settings


def test_new_key_is_kaizen_and_32_hex_digits() -> None:
    key = new_api_key()
    assert is_well_formed(key)
    assert key.startswith("kaizen_") and len(key) == len("kaizen_") + 32
    assert new_api_key() != key


@pytest.mark.parametrize(
    "bad", ["", "kaizen_", "kaizen_XYZ", "kaizen_" + "g" * 32, "key_" + "a" * 32, "kaizen_" + "a" * 33]
)
def test_malformed_keys_are_recognised(bad: str) -> None:
    assert not is_well_formed(bad)


def test_hash_is_sha256_hex_and_prefix_shows_only_the_start() -> None:
    key = new_api_key()
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert key_prefix(key) == key[:15]
    assert hashes_match(hash_key(key), hash_key(key))
    assert not hashes_match(hash_key(key), hash_key(new_api_key()))


def test_secret_key_setting_is_used(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    fernet = load_fernet(Settings(home=tmp_path, secret_key=SecretStr(key)))
    assert Fernet(key.encode()).decrypt(encrypt_token(fernet, "ghp_token").encode()) == b"ghp_token"
    assert not (tmp_path / "secret.key").exists()


def test_key_file_is_created_once_with_mode_0600_and_reused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    first = load_fernet(settings)
    path = tmp_path / "home" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ciphertext = encrypt_token(first, "glpat-secret")
    assert load_fernet(settings).decrypt(ciphertext.encode()) == b"glpat-secret"
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]


def test_ciphertext_does_not_contain_the_token(tmp_path: Path) -> None:
    fernet = load_fernet(Settings(home=tmp_path))
    assert "ghp_abcdef" not in encrypt_token(fernet, "ghp_abcdef")


def test_a_bad_secret_key_fails_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError, match="KAIZEN_SECRET_KEY is not a Fernet key"):
        load_fernet(Settings(home=tmp_path, secret_key=SecretStr("not-a-key")))
