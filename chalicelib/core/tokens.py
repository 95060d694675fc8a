"""Signed, timestamped tokens in itsdangerous' URL-safe format, without its per-call cost.

Every link, form field and signup token is ``payload.timestamp.signature`` exactly as
``itsdangerous.URLSafeTimedSerializer`` writes it (HMAC-SHA256, ``django-concat`` key
derivation, compact JSON, base64url without padding), so tokens already in mail boxes
keep verifying and itsdangerous itself reads ours. What this module saves is the work
itsdangerous repeats on every call: building the serializer and its signer, deriving
each key (one SHA-256 per key per call), encoding JSON through a fresh encoder, and
trying zlib on every payload. Here keys are derived once per key list and salt, the
HMAC is the one-shot ``hmac.digest``, and a new token is never compressed (zlib's
set-up alone costs more than the whole signature; compressed tokens minted before
still verify). The errors raised are itsdangerous' own, so callers keep one mapping.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import time
import zlib
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadPayload, BadSignature, SignatureExpired

_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_DECODE = json.JSONDecoder().raw_decode
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def signing_time() -> int:
    """Seconds since the epoch written into a new token (tests move it to age a token)."""
    return int(time.time())


def json_text(obj: Any) -> str:
    """Compact JSON as itsdangerous writes a payload (``,`` and ``:``, UTF-8 kept)."""
    return _ENCODE(obj)


@functools.lru_cache(maxsize=4)
def _stamp(seconds: int) -> bytes:
    """The timestamp part; the same for every token of one second, so cached."""
    return _b64encode(seconds.to_bytes((seconds.bit_length() + 7) // 8 or 1, "big"))


@functools.lru_cache(maxsize=4)
def _stamp_seconds(part: bytes) -> int:
    """The inverse of :func:`_stamp`; tokens checked together are mostly of one moment."""
    return int.from_bytes(_b64decode(part), "big")


def _b64encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64decode(data: bytes) -> bytes:
    """Only ever applied to parts under a valid signature: parts we wrote ourselves."""
    try:
        return binascii.a2b_base64(data.translate(_FROM_URLSAFE) + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadPayload("Could not base64 decode the payload.", original_error=exc) from exc


class Codec:
    """One salt's tokens: signs with the newest key, accepts any listed one."""

    def __init__(self, secret_keys: tuple[str, ...], salt: str) -> None:
        if not secret_keys:
            raise ValueError("No secret key to sign with: LINK_SECRET_KEYS is empty.")
        self.salt = salt
        #: itsdangerous' django-concat derivation, oldest first as the keys are listed.
        self.derived_keys: tuple[bytes, ...] = tuple(
            hashlib.sha256(salt.encode("utf-8") + b"signer" + key.encode("utf-8")).digest()
            for key in secret_keys
        )
        self._newest_first = tuple(reversed(self.derived_keys))

    def dumps(self, obj: Any) -> str:
        """A token carrying ``obj`` and the signing time."""
        return self.sign_json(_ENCODE(obj))

    def sign_json(self, text: str) -> str:
        """A token carrying ``text``, compact JSON exactly as :func:`json_text` writes it."""
        value = _b64encode(text.encode("utf-8")) + b"." + _stamp(signing_time())
        signature = _b64encode(hmac.digest(self._newest_first[0], value, "sha256"))
        return (value + b"." + signature).decode("ascii")

    def loads(
        self, token: str, max_age: float | None = None, return_timestamp: bool = False
    ) -> Any:
        """The payload (with ``return_timestamp``, ``(payload, signed_at)``), as
        itsdangerous answers."""
        payload, signed = self.unsign(token, max_age)
        return (payload, datetime.fromtimestamp(signed, UTC)) if return_timestamp else payload

    def unsign(self, token: str, max_age: float | None = None) -> tuple[Any, int]:
        """``(payload, signed at in epoch seconds)``; itsdangerous' BadSignature /
        SignatureExpired / BadPayload say why not. An expired token's error carries its
        raw payload.

        The signature is compared in its encoded form, so only the one canonical
        encoding of the right MAC passes (itsdangerous' lenient base64 would also take
        padding or stray low bits).
        """
        value, dot, signature = token.encode("utf-8").rpartition(b".")
        payload, dot2, stamp = value.rpartition(b".")
        if not dot or not dot2:
            raise BadSignature("No separator found in the token.")
        for key in self._newest_first:
            if hmac.compare_digest(_b64encode(hmac.digest(key, value, "sha256")), signature):
                break
        else:
            raise BadSignature("Signature does not match.", payload=payload)
        signed = _stamp_seconds(stamp)  # ours: the signature says so
        if max_age is not None:
            age = signing_time() - signed
            if age > max_age or age < 0:
                raise SignatureExpired(
                    f"Signature age {age} is outside 0..{max_age} seconds.",
                    payload=payload,
                    date_signed=datetime.fromtimestamp(signed, UTC),
                )
        return self.load_payload(payload), signed

    @staticmethod
    def load_payload(payload: bytes) -> Any:
        """The object a token's payload part holds (zlib-compressed when it starts with '.')."""
        compressed = payload.startswith(b".")
        data = _b64decode(payload[1:] if compressed else payload)
        try:
            if compressed:
                data = zlib.decompress(data)
            return _DECODE(data.decode("utf-8"))[0]
        except (zlib.error, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError too
            raise BadPayload(
                "The payload is not a JSON object we wrote.", original_error=exc
            ) from exc


@functools.lru_cache(maxsize=64)
def codec(secret_keys: tuple[str, ...], salt: str) -> Codec:
    """The codec of one key list and salt, built once per container."""
    return Codec(secret_keys, salt)
