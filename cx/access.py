"""Password hashing for the app's optional password mode (no Streamlit here).

The hash lives in ``.streamlit/secrets.toml`` under ``[touchpoint] password_hash``; the password itself
is never stored. Format: ``scrypt$N$r$p$salt$hash`` (salt and hash in URL-safe base64), memory-hard so
a stolen secrets file does not give the password away quickly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cx.errors import TouchpointError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1
MIN_PASSWORD_LENGTH = 10


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The ``scrypt$…`` hash of ``password`` with a fresh 16-byte salt (or the one given)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise TouchpointError(f"The password has {len(password)} characters; use at least {MIN_PASSWORD_LENGTH}.",
                              fix="Choose a longer password, e.g. four unrelated words.")
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the stored hash (constant-time comparison). A malformed hash
    raises ``TouchpointError`` naming the fix, so a typo in the secrets never lets anyone in."""
    try:
        scheme, n, r, p, salt, digest = stored.strip().split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        n, r, p = int(n), int(r), int(p)
        expected = _unb64(digest)
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=n, r=r, p=p, dklen=len(expected))
    except (ValueError, TypeError) as exc:
        raise TouchpointError("The password_hash in .streamlit/secrets.toml is not a Touchpoint password hash.",
                              fix="Make one with `python -m cx hash-password` and paste it as password_hash.") from exc
    return hmac.compare_digest(got, expected)
