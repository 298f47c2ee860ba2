"""API tokens: ``orch_<id>_<43 random characters>``, of which only the SHA-256 is stored.

Why SHA-256 and not argon2 as for passwords: a token carries 256 bits from the operating system's
random source, so there is no dictionary to try and a fast hash of it cannot be brute-forced, while a
slow KDF would cost tens of milliseconds and 64 MiB on every API request. The id in the token picks the
row; the digests are then compared with :func:`hmac.compare_digest` (constant time), so the lookup
does not time the secret part.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "orch_"
#: bytes of randomness in a token (256 bits)
TOKEN_BYTES = 32
_SHAPE = re.compile(r"^orch_([1-9][0-9]{0,18})_([A-Za-z0-9_-]{43})$")


def new_secret() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def assemble(token_id: int, secret: str) -> str:
    return f"{PREFIX}{token_id}_{secret}"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(token: str) -> int | None:
    """The row id a presented token names, or None when it does not have a token's shape."""
    match = _SHAPE.match(token)
    return int(match.group(1)) if match else None


def matches(token: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(token), stored_digest)
