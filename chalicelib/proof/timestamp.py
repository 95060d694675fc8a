"""RFC 3161 time-stamping: the request, the TSA's answer, the token's facts.

The Lambda asks a time-stamping authority (TSA) to sign "this SHA-256 existed at
this time". A request is tiny (version, message imprint, nonce, certReq), so it is
built in DER by hand rather than shipping an ASN.1 or crypto library in the Lambda;
the answer is read with the minimal DER reader below, enough to check the status,
that the token covers our digest and our nonce, and to read its time. The token's
signature is verified offline by ``proof/anchor_verify.py`` (CLI side, with
``cryptography``) or by ``openssl ts -verify``: the Lambda only stores the token.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from chalicelib.core.errors import TimestampFailed

#: OIDs (DER content bytes) the request and the token use.
OID_SHA256 = bytes.fromhex("608648016503040201")  # 2.16.840.1.101.3.4.2.1
OID_SIGNED_DATA = bytes.fromhex("2a864886f70d010702")  # 1.2.840.113549.1.7.2
OID_TST_INFO = bytes.fromhex("2a864886f70d0109100104")  # 1.2.840.113549.1.9.16.1.4

_SEQUENCE, _SET, _INTEGER, _OCTETS, _OID, _NULL, _BOOLEAN = 0x30, 0x31, 2, 4, 6, 5, 1
_GENERALIZED_TIME = 0x18
_EXPLICIT_0 = 0xA0
#: PKIStatus values that mean the token was issued (granted, grantedWithMods).
_GRANTED = (0, 1)


# -- DER, written ----------------------------------------------------------------------


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag, definite length, content."""
    return bytes([tag]) + _length(len(content)) + content


def der_integer(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)
    return tlv(_INTEGER, raw)


def request(digest: bytes, nonce: int) -> bytes:
    """A DER ``TimeStampReq`` for a SHA-256 ``digest``, asking for the TSA certificate."""
    if len(digest) != 32:
        raise ValueError("the message imprint must be a SHA-256 digest (32 bytes)")
    algorithm = tlv(_SEQUENCE, tlv(_OID, OID_SHA256) + tlv(_NULL, b""))
    imprint = tlv(_SEQUENCE, algorithm + tlv(_OCTETS, digest))
    return tlv(_SEQUENCE, der_integer(1) + imprint + der_integer(nonce) + tlv(_BOOLEAN, b"\xff"))


def granted_response(token: bytes) -> bytes:
    """A ``TimeStampResp`` (status granted) around a stored token: the ``.tsr`` file
    ``openssl ts -verify -in`` reads."""
    return tlv(_SEQUENCE, tlv(_SEQUENCE, der_integer(0)) + token)


# -- DER, read ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Element:
    """One DER element: its tag, its content, and its whole encoding."""

    tag: int
    content: bytes
    encoded: bytes

    def children(self) -> list[Element]:
        return elements(self.content)


def read(data: bytes, offset: int = 0) -> tuple[Element, int]:
    """The element at ``offset`` and the offset after it; ValueError when malformed."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER element")
    tag, first = data[offset], data[offset + 1]
    start = offset + 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise ValueError("unsupported DER length")
        size = int.from_bytes(data[start : start + count], "big")
        start += count
    else:
        size = first
    end = start + size
    if end > len(data):
        raise ValueError("DER element runs past the end of its data")
    return Element(tag, data[start:end], data[offset:end]), end


def elements(data: bytes) -> list[Element]:
    """Every element of a constructed content, in order."""
    found, offset = [], 0
    while offset < len(data):
        element, offset = read(data, offset)
        found.append(element)
    return found


def _integer(element: Element) -> int:
    if element.tag != _INTEGER:
        raise ValueError("expected an INTEGER")
    return int.from_bytes(element.content, "big", signed=True)


# -- the token ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenInfo:
    """What the TSA signed (``TSTInfo``): imprint, time, nonce, serial, policy."""

    digest: bytes
    hash_oid: bytes
    gen_time: str
    nonce: int | None
    serial: int
    policy: str
    tst_info: bytes


def _oid_text(content: bytes) -> str:
    first, numbers, value = content[0], [], 0
    numbers.extend([min(first // 40, 2), first - 40 * min(first // 40, 2)])
    for byte in content[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            numbers.append(value)
            value = 0
    return ".".join(str(n) for n in numbers)


def _iso_time(raw: bytes) -> str:
    """``20261207231500.123Z`` → ``2026-12-07T23:15:00.123Z``."""
    text = raw.decode("ascii").rstrip("Z")
    whole, _, fraction = text.partition(".")
    stamp = f"{whole[0:4]}-{whole[4:6]}-{whole[6:8]}T{whole[8:10]}:{whole[10:12]}:{whole[12:14]}"
    return f"{stamp}{'.' + fraction if fraction else ''}Z"


def signed_data(token: bytes) -> list[Element]:
    """The children of the token's ``SignedData`` (version, digests, content, ...)."""
    content_info, _ = read(token)
    parts = content_info.children()
    if len(parts) < 2 or parts[0].content != OID_SIGNED_DATA or parts[1].tag != _EXPLICIT_0:
        raise ValueError("the token is not a CMS SignedData")
    return parts[1].children()[0].children()


def tst_info_bytes(token: bytes) -> bytes:
    """The DER ``TSTInfo`` the TSA signed, out of the token's encapsulated content."""
    encap = signed_data(token)[2].children()
    if encap[0].content != OID_TST_INFO or len(encap) < 2:
        raise ValueError("the token does not hold a TSTInfo")
    return encap[1].children()[0].content


def token_info(token: bytes) -> TokenInfo:
    """Read a token's ``TSTInfo``; ValueError when it is not a time-stamp token."""
    raw = tst_info_bytes(token)
    fields = read(raw)[0].children()
    algorithm, hashed = fields[2].children()
    nonce = next((_integer(f) for f in fields[5:] if f.tag == _INTEGER), None)
    gen_time = next(f for f in fields[4:] if f.tag == _GENERALIZED_TIME)
    return TokenInfo(
        digest=hashed.content,
        hash_oid=algorithm.children()[0].content,
        gen_time=_iso_time(gen_time.content),
        nonce=nonce,
        serial=_integer(fields[3]),
        policy=_oid_text(fields[1].content),
        tst_info=raw,
    )


def parse_response(answer: bytes, digest: bytes, nonce: int) -> tuple[bytes, TokenInfo]:
    """The token out of a ``TimeStampResp``, checked: granted, our digest, our nonce."""
    try:
        parts = read(answer)[0].children()
        status = _integer(parts[0].children()[0])
    except (ValueError, IndexError) as exc:
        raise TimestampFailed(f"the TSA's answer is not a TimeStampResp: {exc}") from exc
    if status not in _GRANTED or len(parts) < 2:
        raise TimestampFailed(f"the TSA refused the request (PKIStatus {status})")
    token = parts[1].encoded
    try:
        info = token_info(token)
    except (ValueError, IndexError, StopIteration) as exc:
        raise TimestampFailed(f"the TSA's token cannot be read: {exc}") from exc
    if info.hash_oid != OID_SHA256 or info.digest != digest:
        raise TimestampFailed("the TSA's token covers another digest than the one asked")
    if info.nonce != nonce:
        raise TimestampFailed("the TSA's token carries another nonce (a replayed answer?)")
    return token, info


# -- asking a TSA --------------------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    """A granted token (DER), the TSA that issued it and what it says."""

    token: bytes
    tsa_url: str
    info: TokenInfo

    @property
    def token_b64(self) -> str:
        return base64.b64encode(self.token).decode("ascii")


def ask(url: str, digest: bytes, timeout: float, pool: Any = None) -> Stamp:
    """POST one request to one TSA; TimestampFailed on any failure (network, refusal,
    an answer that does not cover our digest and nonce)."""
    import urllib3

    nonce = secrets.randbits(63)
    http = pool or urllib3.PoolManager()
    target, headers = _target(url)
    try:
        answer = http.request(
            "POST",
            target,
            body=request(digest, nonce),
            headers=headers,
            timeout=urllib3.Timeout(total=timeout),
            retries=False,
        )
    except urllib3.exceptions.HTTPError as exc:
        raise TimestampFailed(f"the TSA at {target} cannot be reached: {exc}") from exc
    if answer.status != 200:
        raise TimestampFailed(f"the TSA at {target} answered HTTP {answer.status}")
    token, info = parse_response(answer.data, digest, nonce)
    return Stamp(token, target, info)


def _target(url: str) -> tuple[str, dict[str, str]]:
    """A TSA that needs an account is named ``https://user:password@host/path``: the
    credentials go in an ``Authorization: Basic`` header, never in logs or tokens."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/timestamp-query"}
    if parts.username is None:
        return url, headers
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), headers


def public_url(url: str) -> str:
    """The URL without its credentials: what is stored with an anchor and logged."""
    return _target(url)[0]


def first_granted(urls: tuple[str, ...], digest: bytes, timeout: float) -> tuple[Stamp, list[str]]:
    """Ask each TSA in order until one grants; the stamp and what failed before it.
    TimestampFailed (with every reason) when none does."""
    failures: list[str] = []
    for url in urls:
        try:
            return ask(url, digest, timeout), failures
        except TimestampFailed as exc:
            failures.append(str(exc))
    raise TimestampFailed("no time-stamping authority granted a token: " + "; ".join(failures))
