"""API keys.

An API key is ``kaizen_`` + 32 hex digits. It is shown once, when created; the log and
the read model only ever hold its SHA-256 hex digest. (Git tokens are encrypted with
``shared.secrets``, which the PR publisher shares.)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_PREFIX = "kaizen_"
_KEY_RE = re.compile(r"^kaizen_[0-9a-f]{32}$")
# Shown in key lists so a person can tell keys apart; reveals 32 of the key's 128 bits.
_SHOWN_HEX_DIGITS = 8


def new_api_key() -> str:
    """A fresh random key, ``kaizen_<32 hex>``."""
    return KEY_PREFIX + secrets.token_hex(16)


def is_well_formed(key: str) -> bool:
    return _KEY_RE.fullmatch(key) is not None


def hash_key(key: str) -> str:
    """The SHA-256 hex digest stored instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    """The first characters of a key, to recognise it in lists."""
    return key[: len(KEY_PREFIX) + _SHOWN_HEX_DIGITS]


def hashes_match(stored: str, presented: str) -> bool:
    """Constant-time comparison, so response times reveal nothing about stored hashes."""
    return hmac.compare_digest(stored.encode(), presented.encode())


def bootstrap_token_matches(configured: str, presented: str) -> bool:
    """Constant-time, and comparing digests so the time reveals not even the token's length."""
    return hmac.compare_digest(hash_key(configured).encode(), hash_key(presented).encode())
