"""Verify Amazon SNS HTTP(S) messages (SES bounces and complaints arrive this way).

Anyone can POST to our endpoint, so a message counts only if SNS signed it: the
signature is RSA PKCS#1 v1.5 over fixed fields, made with the key of a certificate
SNS serves over HTTPS from ``sns.<region>.amazonaws.com``. Trust rests on that host
and TLS, as in AWS's own validators; the certificate chain is not walked.

Only the stdlib and urllib3 (in the Lambda runtime) are used, to keep the package
small: the certificate is read by a minimal, strict DER reader, and the signature is
checked by rebuilding the whole expected PKCS#1 block and comparing it as bytes,
never by parsing the decrypted block (which lets e=3 signatures be forged).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import urllib3

from chalicelib.core.clock import utcnow
from chalicelib.core.errors import SnsRejected, SnsUnavailable

#: SNS caps Message at 256 KiB; JSON escaping of an SES JSON Message (quotes) and the
#: ~2 KiB envelope make the body larger, so allow twice that and no more.
MAX_BODY = 512 * 1024
MAX_CERT = 64 * 1024
MAX_FUTURE = timedelta(minutes=5)  # clock skew between SNS and us
_CACHE_SIZE = 16
_BASE = (
    "Type",
    "MessageId",
    "TopicArn",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
)
REQUIRED = {
    "Notification": _BASE,
    "SubscriptionConfirmation": (*_BASE, "Token", "SubscribeURL"),
    "UnsubscribeConfirmation": (*_BASE, "Token", "SubscribeURL"),
}
_SIGNED_NOTIFICATION = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SIGNED_CONFIRMATION = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_DIGESTS = {"1": "sha1", "2": "sha256"}
#: DER DigestInfo prefixes of RFC 8017 section 9.2, note 1.
_DIGEST_INFO = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
}
_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
_ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$", re.ASCII)
_RSA_OID = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1 rsaEncryption
_POOL = urllib3.PoolManager(num_pools=4, cert_reqs="CERT_REQUIRED", retries=False)
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")


def parse(body: bytes | str) -> dict[str, Any]:
    """The JSON object of an SNS message, with every field its ``Type`` needs as a string."""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_BODY:
        raise SnsRejected(f"SNS message body is {len(raw)} bytes, more than {MAX_BODY}")
    try:
        msg = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SnsRejected(f"SNS message body is not UTF-8 JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise SnsRejected(f"SNS message body is a JSON {type(msg).__name__}, not an object")
    kind = msg.get("Type")
    required = REQUIRED.get(kind) if isinstance(kind, str) else None
    if required is None:
        raise SnsRejected(f"SNS message Type {kind!r} is none of {sorted(REQUIRED)}")
    if msg.get("Subject", "") is None:
        del msg["Subject"]  # null cannot have been signed: same as absent
    bad = [key for key in (*required, "Subject") if key in msg and not isinstance(msg[key], str)]
    missing = [key for key in required if key not in msg]
    if missing or bad:
        raise SnsRejected(f"SNS {msg['Type']} lacks {missing} or has non-string {bad}")
    return msg


def string_to_sign(msg: dict[str, Any]) -> bytes:
    """The bytes SNS signs: ``Key\\nValue\\n`` for fixed keys in byte order (AWS docs)."""
    keys = _SIGNED_NOTIFICATION if msg["Type"] == "Notification" else _SIGNED_CONFIRMATION
    return "".join(f"{key}\n{msg[key]}\n" for key in keys if key in msg).encode()


def _check_sns_url(url: str, what: str) -> Any:
    if not url.isascii() or not url.isprintable() or " " in url or "\\" in url:
        raise SnsRejected(f"{what} {url!r} has characters a URL may not hold")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme != "https":
        raise SnsRejected(f"{what} {url!r} is not https")
    if "@" in parts.netloc or port not in (None, 443):
        raise SnsRejected(f"{what} {url!r} has a user name or a non-default port")
    if not _SNS_HOST.fullmatch(parts.hostname or ""):
        raise SnsRejected(f"{what} {url!r} is not on an sns.<region>.amazonaws.com host")
    return parts


def check_cert_url(url: str) -> None:
    """A SigningCertURL we may fetch: https on an SNS host, a ``.pem`` path, nothing else."""
    parts = _check_sns_url(url, "SigningCertURL")
    if not parts.path.endswith(".pem") or parts.query or parts.fragment:
        raise SnsRejected(f"SigningCertURL {url!r} is not a plain .pem path")


def check_subscribe_url(url: str) -> None:
    """A SubscribeURL we may call: https on an SNS host (its query carries the token)."""
    _check_sns_url(url, "SubscribeURL")


# --- Minimal strict DER: just enough of X.509 to reach the RSA key and validity. ---


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at ``pos``; definite, minimal lengths."""
    if pos + 2 > len(data) or data[pos] & 0x1F == 0x1F:
        raise SnsRejected("certificate: truncated DER or unsupported tag")
    tag, first, pos = data[pos], data[pos + 1], pos + 2
    length = first
    if first & 0x80:
        count = first & 0x7F
        if not 1 <= count <= 4 or pos + count > len(data) or data[pos] == 0:
            raise SnsRejected("certificate: bad DER length")
        length, pos = int.from_bytes(data[pos : pos + count], "big"), pos + count
        if length < 0x80:
            raise SnsRejected("certificate: non-minimal DER length")
    if pos + length > len(data):
        raise SnsRejected("certificate: DER element runs past its parent")
    return tag, pos, pos + length


def _children(data: bytes) -> list[tuple[int, bytes]]:
    """The (tag, content) elements that fill ``data`` exactly."""
    items, pos = [], 0
    while pos < len(data):
        tag, begin, end = _tlv(data, pos)
        items.append((tag, data[begin:end]))
        pos = end
    return items


def _inside(data: bytes, what: str, count: int | None = None) -> list[tuple[int, bytes]]:
    """Children of the one SEQUENCE that is all of ``data`` (``count`` of them if given)."""
    outer = _children(data)
    if len(outer) != 1 or outer[0][0] != 0x30:
        raise SnsRejected(f"certificate: {what} is not one DER SEQUENCE")
    items = _children(outer[0][1])
    if count is not None and len(items) != count:
        raise SnsRejected(f"certificate: {what} has {len(items)} parts, not {count}")
    return items


def _uint(tag: int, content: bytes) -> int:
    if (
        tag != 0x02
        or not content
        or content[0] & 0x80
        or (len(content) > 1 and content[0] == 0 and not content[1] & 0x80)
    ):
        raise SnsRejected("certificate: RSA key number is not a positive minimal DER INTEGER")
    return int.from_bytes(content, "big")


def _time(tag: int, content: bytes) -> datetime:
    """UTCTime ``YYMMDDHHMMSSZ`` or GeneralizedTime ``YYYYMMDDHHMMSSZ`` (RFC 5280 4.1.2.5)."""
    digits = content[:-1]
    if (
        (tag, len(content)) not in ((0x17, 13), (0x18, 15))
        or not digits.isdigit()
        or (content[-1:] != b"Z")
    ):
        raise SnsRejected("certificate: validity is not a UTCTime/GeneralizedTime ending in Z")
    year, rest = (int(digits[:2]), digits[2:]) if tag == 0x17 else (int(digits[:4]), digits[4:])
    if tag == 0x17:
        year += 1900 if year >= 50 else 2000
    try:
        month, day, hour, minute, second = (int(rest[i : i + 2]) for i in range(0, 10, 2))
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise SnsRejected("certificate: impossible validity date") from None


def read_certificate(pem: bytes) -> tuple[int, int, datetime, datetime]:
    """(n, e, not_before, not_after) of the first certificate in ``pem``; it must be RSA."""
    found = _PEM.search(pem)
    try:
        der = base64.b64decode(b"".join(found.group(1).split()), validate=True) if found else b""
    except binascii.Error:
        der = b""
    if not der:
        raise SnsRejected("certificate: no PEM CERTIFICATE block")
    cert = _inside(der, "Certificate", 3)
    if [tag for tag, _ in cert] != [0x30, 0x30, 0x03]:
        raise SnsRejected("certificate: not (tbsCertificate, signatureAlgorithm, signature)")
    tbs = _children(cert[0][1])
    fields = tbs[1:] if tbs and tbs[0][0] == 0xA0 else tbs  # [0] version is optional (v1)
    if [tag for tag, _ in fields[:6]] != [0x02, 0x30, 0x30, 0x30, 0x30, 0x30]:
        raise SnsRejected("certificate: tbsCertificate fields missing or out of order")
    validity = _children(fields[3][1])
    if len(validity) != 2:
        raise SnsRejected("certificate: validity is not two times")
    return (*_rsa_key(fields[5][1]), _time(*validity[0]), _time(*validity[1]))


def _rsa_key(spki: bytes) -> tuple[int, int]:
    """(n, e) of a SubjectPublicKeyInfo's content; the algorithm must be rsaEncryption."""
    parts = _children(spki)
    if len(parts) != 2 or parts[0][0] != 0x30 or parts[1][0] != 0x03:
        raise SnsRejected("certificate: malformed SubjectPublicKeyInfo")
    algorithm = _children(parts[0][1])
    if (
        not algorithm
        or algorithm[0] != (0x06, _RSA_OID)
        or algorithm[1:] not in ([], [(0x05, b"")])
    ):
        raise SnsRejected("certificate: public key is not rsaEncryption")
    bits = parts[1][1]
    if not bits or bits[0] != 0:
        raise SnsRejected("certificate: public key BIT STRING has unused bits")
    numbers = _inside(bits[1:], "RSAPublicKey", 2)
    n, e = _uint(*numbers[0]), _uint(*numbers[1])
    if not 2048 <= n.bit_length() <= 16384 or e < 3 or not e & 1 or e >= n:
        raise SnsRejected(f"certificate: unacceptable RSA key ({n.bit_length()} bits, e={e})")
    return n, e


def rsa_pkcs1v15_verify(n: int, e: int, signature: bytes, digest_name: str, message: bytes) -> bool:
    """True if ``signature`` is RSASSA-PKCS1-v1_5 over ``message`` (RFC 8017 8.2.2).

    The whole expected block is built and compared: parsing the decrypted block instead
    lets trailing or padding garbage through, which forges signatures for e=3 keys.
    """
    size = (n.bit_length() + 7) // 8
    digest_info = _DIGEST_INFO[digest_name] + hashlib.new(digest_name, message).digest()
    if len(signature) != size or size < len(digest_info) + 11:
        return False
    number = int.from_bytes(signature, "big")
    if number >= n:
        return False
    expected = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    return hmac.compare_digest(pow(number, e, n).to_bytes(size, "big"), expected)


def fetch_https(url: str) -> bytes:
    """GET ``url`` with TLS verified, short timeouts, no redirects and a size cap."""
    try:
        response = _POOL.request(
            "GET",
            url,
            redirect=False,
            preload_content=False,
            timeout=urllib3.Timeout(connect=2.0, read=3.0),
        )
        try:
            data = response.read(MAX_CERT + 1)
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise SnsUnavailable(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from None
    if response.status != 200 or len(data) > MAX_CERT:
        raise SnsUnavailable(f"fetching {url} gave HTTP {response.status}, {len(data)} bytes")
    return data


class Verifier:
    """Checks SNS messages for our topics. Keep one per process: it caches certificates."""

    def __init__(
        self,
        topics: frozenset[str],
        fetch: Callable[[str], bytes] | None = None,
        max_age: timedelta = timedelta(hours=1),
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.topics = topics
        self.fetch = fetch or fetch_https
        self.max_age = max_age
        self.now = now or utcnow
        self._certs: dict[str, tuple[int, int, datetime, datetime]] = {}

    def verify(self, msg: dict[str, Any]) -> None:
        """Raise :class:`SnsRejected` unless ``msg`` (from :func:`parse`) is a fresh SNS message."""
        if msg["TopicArn"] not in self.topics:
            raise SnsRejected(
                f"SNS topic {msg['TopicArn']} is not ours: add it to SES_SNS_TOPIC_ARNS if it is"
            )
        digest = _DIGESTS.get(msg["SignatureVersion"])
        if digest is None:
            raise SnsRejected(f"SNS SignatureVersion {msg['SignatureVersion']!r} is not 1 or 2")
        check_cert_url(msg["SigningCertURL"])
        now = self.now()
        sent = _timestamp(msg["Timestamp"])
        if now - sent > self.max_age or sent - now > MAX_FUTURE:
            raise SnsRejected(
                f"SNS Timestamp {msg['Timestamp']} is outside "
                f"[now - {self.max_age}, now + {MAX_FUTURE}] (replay or clock skew)"
            )
        n, e, not_before, not_after = self._certificate(msg["SigningCertURL"])
        if not not_before <= now <= not_after:
            raise SnsRejected(
                f"certificate {msg['SigningCertURL']} is valid only from "
                f"{not_before} to {not_after}"
            )
        try:
            signature = base64.b64decode(msg["Signature"], validate=True)
        except ValueError:  # binascii.Error, or non-ASCII text
            raise SnsRejected("SNS Signature is not base64") from None
        if not rsa_pkcs1v15_verify(n, e, signature, digest, string_to_sign(msg)):
            raise SnsRejected(f"SNS signature of message {msg['MessageId']} does not verify")

    def _certificate(self, url: str) -> tuple[int, int, datetime, datetime]:
        """The parsed certificate at ``url``, fetched once per process (a few URLs at most)."""
        if url not in self._certs:
            parsed = read_certificate(self.fetch(url))
            if len(self._certs) >= _CACHE_SIZE:
                del self._certs[next(iter(self._certs))]
            self._certs[url] = parsed
        return self._certs[url]


def _timestamp(text: str) -> datetime:
    """SNS's ``2012-04-26T20:45:04.751Z``; anything without a Z zone is refused."""
    if _ISO_Z.fullmatch(text):
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass  # e.g. month 13
    raise SnsRejected(f"SNS Timestamp {text!r} is not ISO 8601 UTC with a Z")


def confirm_subscription(msg: dict[str, Any], fetch: Callable[[str], bytes] | None = None) -> None:
    """Confirm a verified SubscriptionConfirmation by GETting its SubscribeURL."""
    if msg.get("Type") != "SubscriptionConfirmation":
        raise SnsRejected(f"SNS message Type {msg.get('Type')!r} is not a SubscriptionConfirmation")
    check_subscribe_url(msg["SubscribeURL"])
    (fetch or fetch_https)(msg["SubscribeURL"])
