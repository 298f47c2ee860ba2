"""Passwords: argon2id hashes (argon2-cffi, RFC 9106's low-memory profile), never the password itself.

argon2-cffi rather than hand-written hashing: a memory-hard KDF with salts and parameters encoded in the
stored string, verification in constant time, and ``check_needs_rehash`` when the defaults move.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from orchestrator.core.errors import InputError

#: NIST SP 800-63B's floor for a chosen password
MIN_PASSWORD_LEN = 8
#: a bound so a login form cannot be used to make the server hash megabytes
MAX_PASSWORD_LEN = 1024

_HASHER = PasswordHasher()
#: verified against when the user does not exist, so an unknown name costs as long as a wrong password
_DUMMY_HASH = _HASHER.hash("not a password anyone has")


def check_password(password: str, field: str = "password") -> str:
    """``password`` if it is acceptable, else InputError naming ``field`` (the password is not echoed)."""
    if len(password) < MIN_PASSWORD_LEN:
        raise InputError(f"too short: at least {MIN_PASSWORD_LEN} characters", field=field)
    if len(password) > MAX_PASSWORD_LEN:
        raise InputError(f"too long: at most {MAX_PASSWORD_LEN} characters", field=field)
    if password != password.strip() or any(ord(c) < 32 for c in password):
        raise InputError("no leading or trailing blanks and no control characters", field=field)
    return password


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: no such user; the same work is done anyway)."""
    if len(password) > MAX_PASSWORD_LEN:
        return False
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
