"""Signed links: mint and verify, one salt and one lifetime per link kind.

A link is a bearer credential in an e-mail, so:
- the payload holds no personal data in clear: the subject key, the purpose ids and
  a random link id;
- each kind (confirm, withdraw, preferences, rights) signs with its own salt, so a
  withdraw link cannot confirm and a rights link cannot decide;
- keys rotate: ``LINK_SECRET_KEYS`` lists keys oldest first; we sign with the newest
  and accept any listed one, so removing a key kills exactly the links it signed.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from itsdangerous import BadData, BadSignature, SignatureExpired

from chalicelib.core.errors import (
    LinkExpired,
    LinkTampered,
    LinkTruncated,
    LinkWrongKind,
)
from chalicelib.core.settings import LINK_KINDS, Settings
from chalicelib.core.tokens import Codec, codec

_SALT_PREFIX = "optinproof.link."
# base64url of a SHA-256 HMAC, without padding: every token we mint ends with this many.
_SIGNATURE_LENGTH = 43
#: The exact shape of every token we sign: payload.timestamp.signature, base64url, the
#: signature's last character carrying only 2 bits. itsdangerous decodes leniently
#: (padding, '+/', stray bits), so a token that differs from ours only in such details
#: would still verify: anything not in this canonical form is refused first.
CANONICAL = re.compile(r"\.?[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")


class Link(NamedTuple):
    """A verified link: what it allows, for whom, since when.

    A named tuple, not a frozen dataclass: built on every page view, and a frozen
    dataclass's constructor alone costs half a raw HMAC.
    """

    kind: str
    link_id: str
    subject: str
    purposes: tuple[str, ...]
    #: When it was signed, in seconds since the epoch (``issued_at`` as a datetime).
    signed: int

    @property
    def issued_at(self) -> datetime:
        return datetime.fromtimestamp(self.signed, UTC)


def new_link_id() -> str:
    """128 random bits, URL-safe: unguessable, and short enough for a log line."""
    return secrets.token_urlsafe(16)


_quote: Callable[[str], str] = json.encoder.encode_basestring


def signer(settings: Settings, salt: str) -> Codec:
    """The one way we sign tokens: HMAC-SHA256, every listed key accepted, newest signs.

    Each use has its own salt, so a token made for one purpose never passes another.
    Built once per key list and salt (see :mod:`chalicelib.core.tokens`).
    """
    return codec(settings.link_secret_keys, salt)


def _serializer(settings: Settings, kind: str) -> Codec:
    if kind not in LINK_KINDS:
        raise ValueError(f"unknown link kind {kind!r}; known: {', '.join(LINK_KINDS)}")
    return signer(settings, _SALT_PREFIX + kind)


def mint(
    settings: Settings,
    kind: str,
    subject: str,
    purposes: list[str] | tuple[str, ...],
    link_id: str | None = None,
) -> tuple[str, str]:
    """Sign a link; returns ``(token, link_id)``. Nothing is recorded here."""
    link_id = link_id or new_link_id()
    return _serializer(settings, kind).sign_json(_payload_json(link_id, subject, purposes)), link_id


def _payload_json(link_id: str, subject: str, purposes: Sequence[str]) -> str:
    """``{"i":…,"s":…,"p":[…]}`` as compact JSON, each string quoted by the json module's
    own C quoting: byte for byte what ``json_text`` writes, in a third of its time (a
    test compares both)."""
    return (
        f'{{"i":{_quote(link_id)},"s":{_quote(subject)},"p":[{",".join(map(_quote, purposes))}]}}'
    )


def _looks_truncated(token: str) -> bool:
    # A leading "." marks a compressed payload; it is not a separator.
    parts = token.removeprefix(".").split(".")
    return len(parts) != 3 or len(parts[2]) < _SIGNATURE_LENGTH or not parts[0]


def _other_kind(settings: Settings, kind: str, token: str) -> str | None:
    for other in LINK_KINDS:
        if other == kind:
            continue
        try:
            _serializer(settings, other).loads(token)
        except SignatureExpired:
            return other
        except BadData:
            continue
        return other
    return None


def _link_from(kind: str, payload: object, signed: int) -> Link:
    if type(payload) is dict:
        link_id, subject, purposes = payload.get("i"), payload.get("s"), payload.get("p")
        if type(link_id) is str and type(subject) is str and type(purposes) is list:
            for purpose in purposes:
                if type(purpose) is not str:
                    break
            else:
                return Link(kind, link_id, subject, tuple(purposes), signed)
    raise LinkTampered("This link's content is not one we issue.")


def _expired_link_id(serializer: Codec, exc: SignatureExpired) -> str | None:
    """The link id of an authentic but expired token, so a renewal can name it."""
    try:
        payload = serializer.load_payload(exc.payload) if exc.payload is not None else None
    except BadData:
        return None
    return payload.get("i") if isinstance(payload, dict) else None


def verify(settings: Settings, kind: str, token: str) -> Link:
    """Check a token of ``kind``; raise a :class:`LinkError` subclass saying why not."""
    serializer = _serializer(settings, kind)
    try:
        token.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LinkTampered("This link contains characters we never put in links.") from exc
    if not CANONICAL.fullmatch(token):
        if _looks_truncated(token):
            raise LinkTruncated("This link is incomplete: part of it is missing.")
        raise LinkTampered("This link was altered: it is not in the form we write links.")
    try:
        payload, signed = serializer.unsign(token, settings.link_max_age[kind])
    except SignatureExpired as exc:
        raise LinkExpired(
            "This link has expired.", link_id=_expired_link_id(serializer, exc)
        ) from exc
    except BadSignature as exc:
        if _looks_truncated(token):
            raise LinkTruncated("This link is incomplete: part of it is missing.") from exc
        other = _other_kind(settings, kind, token)
        if other:
            raise LinkWrongKind(f"This is a {other} link, not a {kind} link.") from exc
        raise LinkTampered(
            "This link was altered, or signed with a key that has been retired."
        ) from exc
    except BadData as exc:
        raise LinkTruncated("This link is incomplete or damaged.") from exc
    return _link_from(kind, payload, signed)


def verify_signature(settings: Settings, kind: str, token: str) -> Link:
    """Like :func:`verify`, but an expired link still passes: it is authentic.

    Only for asking a new link in place of an old one; never to decide anything.
    """
    try:
        return verify(settings, kind, token)
    except LinkExpired:
        payload, signed = _serializer(settings, kind).unsign(token)
        return _link_from(kind, payload, signed)
