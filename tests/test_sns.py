"""SNS message verification (chalicelib/sns.py) against real keys, certificates and signatures.

``cryptography`` (a dev-only dependency) is the reference: it makes RSA keys and X.509
certificates and signs messages exactly as SNS does (PKCS#1 v1.5 over the string to
sign). The module under test reads those certificates and checks those signatures with
the stdlib alone. No network: the verifier is handed a ``fetch`` that returns our PEM,
and ``fetch_https`` is exercised against a loopback HTTP server.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import socket
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from chalicelib.mail import sns
from chalicelib.core.clock import iso, utcnow
from chalicelib.mail.sns import SnsRejected, SnsUnavailable, Verifier

NOW = utcnow()
REGION = "eu-west-1"
TOPIC = f"arn:aws:sns:{REGION}:123456789012:ses-bounces"
OTHER_TOPIC = f"arn:aws:sns:{REGION}:123456789012:ses-complaints"
CERT_URL = f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
SUBSCRIBE_URL = (f"https://sns.{REGION}.amazonaws.com/?Action=ConfirmSubscription"
                 f"&TopicArn={TOPIC}&Token=2336412f37")
TOPICS = frozenset({TOPIC, OTHER_TOPIC})


# --- reference material made with cryptography ---------------------------------------


def make_cert(key: Any, not_before: datetime = NOW - timedelta(days=1),
              not_after: datetime = NOW + timedelta(days=30), extensions: bool = True) -> bytes:
    """A self-signed PEM certificate for ``key``, shaped like SNS's signing certificates."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sns.{REGION}.amazonaws.com")])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after))
    if extensions:
        builder = (builder
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False)
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.DNSName(f"sns.{REGION}.amazonaws.com")]), critical=False))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def e3_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=3, key_size=2048)


@pytest.fixture(scope="module")
def pem(key: rsa.RSAPrivateKey) -> bytes:
    return make_cert(key)


class Fetcher:
    """Stands in for HTTPS: serves PEMs by URL and counts the calls."""

    def __init__(self, pems: dict[str, bytes]) -> None:
        self.pems = pems
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        return self.pems[url]


@pytest.fixture
def fetch(pem: bytes) -> Fetcher:
    return Fetcher({CERT_URL: pem})


@pytest.fixture
def verifier(fetch: Fetcher) -> Verifier:
    return Verifier(TOPICS, fetch=fetch, now=lambda: NOW)


def aws_string_to_sign(msg: dict[str, Any]) -> bytes:
    """Written independently from the AWS page "Verifying the signatures of Amazon SNS messages"."""
    if msg["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    out = b""
    for name in keys:
        if name in msg:
            out += name.encode() + b"\n" + msg[name].encode() + b"\n"
    return out


def sign(msg: dict[str, Any], key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """Sign in place as SNS does: SignatureVersion 1 is SHA1, 2 is SHA256."""
    digest = hashes.SHA1() if msg["SignatureVersion"] == "1" else hashes.SHA256()
    raw = key.sign(aws_string_to_sign(msg), padding.PKCS1v15(), digest)
    msg["Signature"] = base64.b64encode(raw).decode()
    return msg


def message(key: rsa.RSAPrivateKey, kind: str = "Notification", version: str = "2",
            subject: str | None = "Amazon SES Email Event Notification",
            at: datetime = NOW - timedelta(seconds=5), **fields: str) -> dict[str, Any]:
    """A signed SNS message of ``kind``, shaped like a real HTTP(S) delivery."""
    ses = {"notificationType": "Bounce", "bounce": {"bounceType": "Permanent",
           "bouncedRecipients": [{"emailAddress": "gone@example.org"}]},
           "mail": {"messageId": "0100018f-aaaa"}}
    msg: dict[str, Any] = {
        "Type": kind, "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b", "TopicArn": TOPIC,
        "Message": json.dumps(ses), "Timestamp": iso(at), "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        "UnsubscribeURL": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe",
    }
    if kind == "Notification":
        if subject is not None:
            msg["Subject"] = subject
    else:
        msg.update(Token="2336412f37", SubscribeURL=SUBSCRIBE_URL,
                   Message=f"You have chosen to subscribe to the topic {TOPIC}.")
    msg.update(fields)
    return sign(msg, key)


def roundtrip(msg: dict[str, Any]) -> dict[str, Any]:
    """What the endpoint sees: the JSON body, parsed."""
    return sns.parse(json.dumps(msg).encode())


# --- the string to sign ----------------------------------------------------------------


def test_string_to_sign_matches_the_aws_recipe_byte_for_byte() -> None:
    msg = {"Type": "Notification", "MessageId": "m", "TopicArn": "t", "Subject": "s",
           "Message": "a\nb", "Timestamp": "2024-01-01T00:00:00.000Z", "Token": "ignored",
           "SignatureVersion": "1"}
    assert sns.string_to_sign(msg) == (b"Message\na\nb\nMessageId\nm\nSubject\ns\n"
                                       b"Timestamp\n2024-01-01T00:00:00.000Z\nTopicArn\nt\n"
                                       b"Type\nNotification\n")
    del msg["Subject"]
    assert b"Subject" not in sns.string_to_sign(msg)
    confirm = dict(msg, Type="SubscriptionConfirmation", Token="k", SubscribeURL="u", Subject="x")
    assert sns.string_to_sign(confirm) == (b"Message\na\nb\nMessageId\nm\nSubscribeURL\nu\n"
                                           b"Timestamp\n2024-01-01T00:00:00.000Z\nToken\nk\n"
                                           b"TopicArn\nt\nType\nSubscriptionConfirmation\n")
    assert sns.string_to_sign(confirm) == aws_string_to_sign(
        {k: v for k, v in confirm.items() if k != "Subject"})


# --- genuine messages --------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("kind,subject", [
    ("Notification", "Amazon SES Email Event Notification"), ("Notification", None),
    ("Notification", ""), ("SubscriptionConfirmation", None), ("UnsubscribeConfirmation", None),
])
def test_genuine_messages_verify(verifier: Verifier, key: rsa.RSAPrivateKey, version: str,
                                 kind: str, subject: str | None) -> None:
    verifier.verify(roundtrip(message(key, kind, version, subject)))


def test_null_subject_counts_as_absent(verifier: Verifier, key: rsa.RSAPrivateKey) -> None:
    msg = message(key, subject=None)
    msg["Subject"] = None
    parsed = roundtrip(msg)
    assert "Subject" not in parsed
    verifier.verify(parsed)


def test_non_ascii_message_verifies(verifier: Verifier, key: rsa.RSAPrivateKey) -> None:
    verifier.verify(roundtrip(message(key, Message="Zustellung fehlgeschlagen: Müller 💌")))


def test_our_rsa_verify_agrees_with_cryptography(key: rsa.RSAPrivateKey) -> None:
    numbers = key.public_key().public_numbers()
    for digest, name in ((hashes.SHA1(), "sha1"), (hashes.SHA256(), "sha256")):
        signature = key.sign(b"payload", padding.PKCS1v15(), digest)
        assert sns.rsa_pkcs1v15_verify(numbers.n, numbers.e, signature, name, b"payload")
        assert not sns.rsa_pkcs1v15_verify(numbers.n, numbers.e, signature, name, b"payloaD")
    sha1_sig = key.sign(b"payload", padding.PKCS1v15(), hashes.SHA1())
    assert not sns.rsa_pkcs1v15_verify(numbers.n, numbers.e, sha1_sig, "sha256", b"payload")


# --- tampering ---------------------------------------------------------------------------


@pytest.mark.parametrize("change", [
    {"Message": '{"notificationType": "Complaint"}'},
    {"TopicArn": OTHER_TOPIC},  # also ours: only the signature can catch it
    {"Subject": "Something else"},
    {"Subject": None},  # removed
    {"Timestamp": iso(NOW - timedelta(seconds=4))},
    {"MessageId": "another-id"},
    {"SignatureVersion": "1"},  # a SHA256 signature presented as SHA1
])
def test_altered_notification_is_rejected(verifier: Verifier, key: rsa.RSAPrivateKey,
                                          change: dict[str, str | None]) -> None:
    msg = message(key)
    msg.update(change)
    msg = {k: v for k, v in msg.items() if v is not None}
    with pytest.raises(SnsRejected, match="does not verify"):
        verifier.verify(roundtrip(msg))


def test_added_subject_is_rejected(verifier: Verifier, key: rsa.RSAPrivateKey) -> None:
    msg = message(key, subject=None)
    msg["Subject"] = "injected"
    with pytest.raises(SnsRejected, match="does not verify"):
        verifier.verify(roundtrip(msg))


@pytest.mark.parametrize("field", ["Token", "SubscribeURL", "Message"])
def test_altered_confirmation_is_rejected(verifier: Verifier, key: rsa.RSAPrivateKey,
                                          field: str) -> None:
    msg = message(key, "SubscriptionConfirmation")
    msg[field] = SUBSCRIBE_URL + "&x=1" if field == "SubscribeURL" else "changed"
    with pytest.raises(SnsRejected, match="does not verify"):
        verifier.verify(roundtrip(msg))


def test_signature_by_another_key_is_rejected(verifier: Verifier,
                                              other_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(SnsRejected, match="does not verify"):
        verifier.verify(roundtrip(message(other_key)))


def test_unknown_topic_is_rejected_before_any_fetch(verifier: Verifier, fetch: Fetcher,
                                                    key: rsa.RSAPrivateKey) -> None:
    stranger = "arn:aws:sns:eu-west-1:999999999999:not-ours"
    with pytest.raises(SnsRejected) as caught:
        verifier.verify(roundtrip(message(key, TopicArn=stranger)))
    assert stranger in str(caught.value) and "SES_SNS_TOPIC_ARNS" in str(caught.value)
    assert fetch.calls == []


@pytest.mark.parametrize("version", ["", "3", "01", "2 "])
def test_unknown_signature_version_is_rejected(verifier: Verifier, fetch: Fetcher,
                                               key: rsa.RSAPrivateKey, version: str) -> None:
    msg = message(key)
    msg["SignatureVersion"] = version
    with pytest.raises(SnsRejected, match="SignatureVersion"):
        verifier.verify(roundtrip(msg))
    assert fetch.calls == []


@pytest.mark.parametrize("signature", [
    "not base64!!", "QUJD=", "QUJD" * 10, "", "\u00e9" * 4,
])
def test_malformed_signature_is_rejected(verifier: Verifier, key: rsa.RSAPrivateKey,
                                         signature: str) -> None:
    msg = message(key)
    msg["Signature"] = signature
    with pytest.raises(SnsRejected, match="Signature is not base64|does not verify"):
        verifier.verify(roundtrip(msg))


def test_signature_of_wrong_length_is_rejected(verifier: Verifier, key: rsa.RSAPrivateKey) -> None:
    msg = message(key)
    raw = base64.b64decode(msg["Signature"])
    for bad in (raw[1:], b"\x00" + raw, raw + b"\x00", raw[:128]):
        msg["Signature"] = base64.b64encode(bad).decode()
        with pytest.raises(SnsRejected, match="does not verify"):
            verifier.verify(roundtrip(msg))
    n = key.public_key().public_numbers().n
    assert not sns.rsa_pkcs1v15_verify(n, 65537, b"\xff" * 256, "sha256", b"x")  # s >= n


# --- the certificate URL and the subscribe URL ----------------------------------------------


BAD_CERT_URLS = [
    "https://sns.us-east-1.amazonaws.com.evil.com/x.pem",
    "https://evil.com/sns.us-east-1.amazonaws.com/x.pem",
    "http://sns.us-east-1.amazonaws.com/x.pem",
    "https://user@sns.us-east-1.amazonaws.com/x.pem",
    "https://user:pw@sns.us-east-1.amazonaws.com/x.pem",
    "https://evil.com@sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com:8443/x.pem",
    "https://sns.us-east-1.amazonaws.com:abc/x.pem",
    "https://sns.us-east-1.amazonaws.com/x.txt",
    "https://sns.us-east-1.amazonaws.com/x.pem?x=1",
    "https://sns.us-east-1.amazonaws.com/x.pem#frag",
    "https://sns.us-east-1.amazonaws.com./x.pem",
    "https://sns.us-east-1.amazonaws.com\\@evil.com/x.pem",
    "https://sns.us-east-1.amazonaws.com\n/x.pem",
    "https://sns.us_east-1.amazonaws.com/x.pem",
    "https://sqs.us-east-1.amazonaws.com/x.pem",
    "https://xsns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com.cn.evil.com/x.pem",
    "https://sns.evil.com/.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com",
    "//sns.us-east-1.amazonaws.com/x.pem",
    "ftp://sns.us-east-1.amazonaws.com/x.pem",
    "https://[::1]/x.pem",
    "https://sns.ünicode.amazonaws.com/x.pem",
    "",
]


@pytest.mark.parametrize("url", BAD_CERT_URLS)
def test_bad_cert_urls_are_rejected(url: str) -> None:
    with pytest.raises(SnsRejected, match="SigningCertURL"):
        sns.check_cert_url(url)


@pytest.mark.parametrize("url", BAD_CERT_URLS[:7])
def test_verify_never_fetches_a_bad_cert_url(verifier: Verifier, key: rsa.RSAPrivateKey,
                                             fetch: Fetcher, url: str) -> None:
    with pytest.raises(SnsRejected, match="SigningCertURL"):
        verifier.verify(roundtrip(message(key, SigningCertURL=url)))
    assert fetch.calls == []


@pytest.mark.parametrize("url", [
    CERT_URL, "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem",
    "https://sns.us-gov-west-1.amazonaws.com/a/b.pem", "https://SNS.US-EAST-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com:443/x.pem",
])
def test_genuine_cert_urls_pass(url: str) -> None:
    sns.check_cert_url(url)


def test_subscribe_url_check_allows_the_query_but_not_look_alikes() -> None:
    sns.check_subscribe_url(SUBSCRIBE_URL)
    for url in ("https://sns.eu-west-1.amazonaws.com.evil.com/?Action=ConfirmSubscription",
                "http://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
                "https://a@sns.eu-west-1.amazonaws.com/", "https://sns.eu-west-1.amazonaws.com:1/"):
        with pytest.raises(SnsRejected, match="SubscribeURL"):
            sns.check_subscribe_url(url)


def test_confirm_subscription_calls_the_subscribe_url(verifier: Verifier,
                                                      key: rsa.RSAPrivateKey) -> None:
    msg = roundtrip(message(key, "SubscriptionConfirmation"))
    verifier.verify(msg)
    called: list[str] = []
    assert sns.confirm_subscription(msg, lambda url: called.append(url) or b"<ok/>") is None
    assert called == [SUBSCRIBE_URL]


def test_confirm_subscription_refuses_bad_urls_and_other_types(key: rsa.RSAPrivateKey) -> None:
    called: list[str] = []
    fetch: Callable[[str], bytes] = lambda url: called.append(url) or b""  # noqa: E731
    evil = roundtrip(message(key, "SubscriptionConfirmation",
                             SubscribeURL="https://evil.example/?Action=ConfirmSubscription"))
    with pytest.raises(SnsRejected, match="SubscribeURL"):
        sns.confirm_subscription(evil, fetch)
    with pytest.raises(SnsRejected, match="not a SubscriptionConfirmation"):
        sns.confirm_subscription(roundtrip(message(key)), fetch)
    assert called == []


# --- timestamps and certificate validity ---------------------------------------------------


@pytest.mark.parametrize("at", [NOW - timedelta(hours=1, seconds=1), NOW - timedelta(days=3),
                                NOW + timedelta(minutes=5, seconds=1), NOW + timedelta(days=1)])
def test_stale_and_future_timestamps_are_rejected(verifier: Verifier, key: rsa.RSAPrivateKey,
                                                  at: datetime) -> None:
    with pytest.raises(SnsRejected, match="Timestamp"):
        verifier.verify(roundtrip(message(key, at=at)))


@pytest.mark.parametrize("at", [NOW - timedelta(minutes=59), NOW + timedelta(minutes=4)])
def test_timestamps_inside_the_window_pass(verifier: Verifier, key: rsa.RSAPrivateKey,
                                           at: datetime) -> None:
    verifier.verify(roundtrip(message(key, at=at)))


@pytest.mark.parametrize("text", ["2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00",
                                  "2024-01-01", "2024-13-01T00:00:00Z", "yesterday",
                                  "2024-01-01T00:00:00.000Z\n", "２０２４-01-01T00:00:00Z"])
def test_unreadable_timestamps_are_rejected(verifier: Verifier, key: rsa.RSAPrivateKey,
                                            text: str) -> None:
    msg = message(key)
    msg["Timestamp"] = text
    with pytest.raises(SnsRejected, match="not ISO 8601"):
        verifier.verify(roundtrip(msg))


def test_max_age_is_configurable(fetch: Fetcher, key: rsa.RSAPrivateKey) -> None:
    strict = Verifier(TOPICS, fetch=fetch, max_age=timedelta(minutes=1), now=lambda: NOW)
    with pytest.raises(SnsRejected, match="Timestamp"):
        strict.verify(roundtrip(message(key, at=NOW - timedelta(minutes=2))))


@pytest.mark.parametrize("not_before,not_after", [
    (NOW - timedelta(days=30), NOW - timedelta(seconds=1)),  # expired
    (NOW + timedelta(seconds=2), NOW + timedelta(days=30)),  # not yet valid
])
def test_certificate_outside_its_validity_is_rejected(key: rsa.RSAPrivateKey, not_before: datetime,
                                                      not_after: datetime) -> None:
    verifier = Verifier(TOPICS, fetch=Fetcher({CERT_URL: make_cert(key, not_before, not_after)}),
                        now=lambda: NOW)
    with pytest.raises(SnsRejected, match="valid only from"):
        verifier.verify(roundtrip(message(key)))


# --- malformed bodies ------------------------------------------------------------------------


def test_parse_accepts_str_and_bytes(key: rsa.RSAPrivateKey) -> None:
    msg = message(key)
    assert sns.parse(json.dumps(msg)) == sns.parse(json.dumps(msg).encode()) == msg


@pytest.mark.parametrize("body,why", [
    (b"", "not UTF-8 JSON"), (b"not json", "not UTF-8 JSON"), (b"\xff\xfe{}", "not UTF-8 JSON"),
    (b"[]", "JSON list"), (b'"Notification"', "JSON str"), (b"null", "JSON NoneType"),
    (b"{}", "Type None"), (b'{"Type": "Bogus"}', "Type 'Bogus'"),
    (b'{"Type": ["Notification"]}', "Type \\['Notification'\\]"),
    (b'{"Type": "Notification"}', "lacks"),
])
def test_malformed_bodies_are_rejected(body: bytes, why: str) -> None:
    with pytest.raises(SnsRejected, match=why):
        sns.parse(body)


@pytest.mark.parametrize("kind", sorted(sns.REQUIRED))
def test_every_required_field_is_required_and_a_string(key: rsa.RSAPrivateKey, kind: str) -> None:
    msg = message(key, kind)
    for field in sns.REQUIRED[kind]:
        if field == "Type":
            continue
        missing = {k: v for k, v in msg.items() if k != field}
        with pytest.raises(SnsRejected, match=f"lacks \\['{field}'\\]"):
            sns.parse(json.dumps(missing))
        for wrong in (1, ["x"], {"a": "b"}, True, None):
            with pytest.raises(SnsRejected, match=f"non-string \\['{field}'\\]"):
                sns.parse(json.dumps(dict(msg, **{field: wrong})))


def test_non_string_subject_is_rejected(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(SnsRejected, match="non-string \\['Subject'\\]"):
        sns.parse(json.dumps(dict(message(key), Subject=42)))


def test_oversize_body_is_rejected_but_a_maximal_message_fits(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(SnsRejected, match="more than"):
        sns.parse(b" " * (sns.MAX_BODY + 1))
    big = {"notificationType": "Bounce", "padding": 'a"b' * (250 * 1024 // 3)}  # ~250 KiB
    sns.parse(json.dumps(message(key, Message=json.dumps(big))))


# --- the certificate cache -----------------------------------------------------------------


def test_certificate_is_fetched_once_for_many_messages(verifier: Verifier, fetch: Fetcher,
                                                       key: rsa.RSAPrivateKey) -> None:
    for number in range(25):
        verifier.verify(roundtrip(message(key, version="12"[number % 2], MessageId=str(number))))
    assert fetch.calls == [CERT_URL]


def test_cache_is_bounded(pem: bytes, key: rsa.RSAPrivateKey) -> None:
    urls = [CERT_URL.replace(".pem", f"-{number}.pem") for number in range(20)]
    fetch = Fetcher(dict.fromkeys(urls, pem))
    verifier = Verifier(TOPICS, fetch=fetch, now=lambda: NOW)
    for url in urls:
        verifier.verify(roundtrip(message(key, SigningCertURL=url)))
    assert len(verifier._certs) == 16
    verifier.verify(roundtrip(message(key, SigningCertURL=urls[0])))  # evicted: fetched again
    verifier.verify(roundtrip(message(key, SigningCertURL=urls[-1])))  # still cached
    assert fetch.calls == [*urls, urls[0]]


def test_a_bad_certificate_is_not_cached(key: rsa.RSAPrivateKey, pem: bytes) -> None:
    fetch = Fetcher({CERT_URL: b"<html>oops</html>"})
    verifier = Verifier(TOPICS, fetch=fetch, now=lambda: NOW)
    with pytest.raises(SnsRejected, match="no PEM"):
        verifier.verify(roundtrip(message(key)))
    fetch.pems[CERT_URL] = pem
    verifier.verify(roundtrip(message(key)))
    assert len(fetch.calls) == 2


# --- the e=3 forgery trap --------------------------------------------------------------------


def lenient_verify(n: int, e: int, signature: bytes, message_bytes: bytes) -> bool:
    """The classic broken check: skip 00 01 FF.. 00, then read DigestInfo, ignore the rest."""
    block = pow(int.from_bytes(signature, "big"), e, n).to_bytes((n.bit_length() + 7) // 8, "big")
    if block[:2] != b"\x00\x01":
        return False
    rest = block[2:].lstrip(b"\xff")
    digest_info = sns._DIGEST_INFO["sha256"] + hashlib.sha256(message_bytes).digest()
    return rest[:1] == b"\x00" and rest[1:1 + len(digest_info)] == digest_info


def icbrt_ceil(value: int) -> int:
    root = int(round(value ** (1 / 3))) if value < 2 ** 1000 else 1 << (value.bit_length() // 3 + 1)
    while True:  # Newton's method from above
        smaller = (2 * root + value // (root * root)) // 3
        if smaller >= root:
            break
        root = smaller
    while root ** 3 < value:
        root += 1
    return root


def test_wrongly_padded_block_with_the_right_hash_is_rejected(e3_key: rsa.RSAPrivateKey) -> None:
    """Signed with the real private key, but the padding is short and garbage trails the hash."""
    private = e3_key.private_numbers()
    n, d, e = private.public_numbers.n, private.d, private.public_numbers.e
    assert e == 3
    payload = b"Message\nforged\n"
    digest_info = sns._DIGEST_INFO["sha256"] + hashlib.sha256(payload).digest()
    size = 256
    good = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    short = b"\x00\x01" + b"\xff" * 8 + b"\x00" + digest_info
    short += b"\x42" * (size - len(short))
    zeros = b"\x00\x01" + b"\x00" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    def private_op(block: bytes) -> bytes:
        return pow(int.from_bytes(block, "big"), d, n).to_bytes(size, "big")
    assert sns.rsa_pkcs1v15_verify(n, e, private_op(good), "sha256", payload)  # the control
    for block in (short, zeros, good[:-1] + b"\x00"):
        assert not sns.rsa_pkcs1v15_verify(n, e, private_op(block), "sha256", payload)
    assert lenient_verify(n, e, private_op(short), payload)  # the trap is real


def test_bleichenbacher_cube_root_forgery_is_rejected(e3_key: rsa.RSAPrivateKey) -> None:
    """No private key at all: a cube root of 00 01 FF 00 DigestInfo garbage, end to end."""
    n = e3_key.public_key().public_numbers().n
    msg = message(e3_key)
    payload = aws_string_to_sign(dict(msg, Message="Complaint: unsubscribe everyone"))
    digest_info = sns._DIGEST_INFO["sha256"] + hashlib.sha256(payload).digest()
    prefix = b"\x00\x01\xff\x00" + digest_info
    target = int.from_bytes(prefix + b"\x00" * (256 - len(prefix)), "big")
    forged = icbrt_ceil(target).to_bytes(256, "big")
    assert lenient_verify(n, 3, forged, payload)  # a lenient parser would accept it
    assert not sns.rsa_pkcs1v15_verify(n, 3, forged, "sha256", payload)
    msg["Message"] = "Complaint: unsubscribe everyone"
    msg["Signature"] = base64.b64encode(forged).decode()
    verifier = Verifier(TOPICS, fetch=Fetcher({CERT_URL: make_cert(e3_key)}), now=lambda: NOW)
    verifier.verify(roundtrip(message(e3_key)))  # the e=3 certificate itself is fine
    with pytest.raises(SnsRejected, match="does not verify"):
        verifier.verify(roundtrip(msg))


# --- reading certificates ---------------------------------------------------------------------


@pytest.mark.parametrize("size,exponent,extensions", [
    (2048, 65537, True), (2048, 65537, False), (4096, 65537, True), (2048, 3, True),
])
def test_public_key_and_validity_match_cryptography(size: int, exponent: int,
                                                    extensions: bool) -> None:
    private = rsa.generate_private_key(public_exponent=exponent, key_size=size)
    pem_bytes = make_cert(private, extensions=extensions)
    cert = x509.load_pem_x509_certificate(pem_bytes)
    assert cert.version == x509.Version.v3 and bool(cert.extensions) is extensions
    n, e, not_before, not_after = sns.read_certificate(pem_bytes)
    numbers = private.public_key().public_numbers()
    assert (n, e) == (numbers.n, numbers.e)
    assert (not_before, not_after) == (cert.not_valid_before_utc, cert.not_valid_after_utc)


def test_4096_bit_key_verifies_end_to_end() -> None:
    big = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    verifier = Verifier(TOPICS, fetch=Fetcher({CERT_URL: make_cert(big)}), now=lambda: NOW)
    for version in ("1", "2"):
        verifier.verify(roundtrip(message(big, version=version)))


def test_generalized_time_and_1950_utctime_are_read(key: rsa.RSAPrivateKey) -> None:
    """RFC 5280: years from 2050 are GeneralizedTime; UTCTime 50-99 means 19xx."""
    start, end = datetime(1951, 6, 1, tzinfo=timezone.utc), datetime(2051, 6, 1, tzinfo=timezone.utc)
    _, _, not_before, not_after = sns.read_certificate(make_cert(key, start, end))
    assert (not_before, not_after) == (start, end)


def test_pem_with_surrounding_text_and_chain_reads_the_first(key: rsa.RSAPrivateKey,
                                                            other_key: rsa.RSAPrivateKey) -> None:
    pem_bytes = b"subject=CN=x\r\n" + make_cert(key).replace(b"\n", b"\r\n") + make_cert(other_key)
    assert sns.read_certificate(pem_bytes)[0] == key.public_key().public_numbers().n


def test_non_rsa_and_weak_keys_are_rejected() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SnsRejected, match="not rsaEncryption"):
        sns.read_certificate(make_cert(ec_key))
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(SnsRejected, match="1024 bits"):
        sns.read_certificate(make_cert(weak))


def der_of(pem_bytes: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem_bytes).public_bytes(serialization.Encoding.DER)


def as_pem(der: bytes) -> bytes:
    body = base64.encodebytes(der)
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"


def test_malformed_certificates_are_rejected(pem: bytes) -> None:
    der = der_of(pem)
    assert sns.read_certificate(as_pem(der))  # the control
    spki = x509.load_pem_x509_certificate(pem).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    at = der.index(spki)
    rsa_oid = bytes.fromhex("06092a864886f70d010101")
    bad = {
        "truncated": der[:-1], "trailing byte": der + b"\x00", "half": der[: len(der) // 2],
        "not a sequence": b"\x31" + der[1:], "indefinite length": der[:1] + b"\x80" + der[4:],
        "non-minimal length": der[:1] + b"\x83\x00" + der[2:],
        "other OID": der.replace(rsa_oid, bytes.fromhex("06092a864886f70d010102"), 1),
        "unused bits": der[:at] + spki.replace(b"\x03\x82\x01\x0f\x00", b"\x03\x82\x01\x0f\x01")
        + der[at + len(spki):],
        "empty": b"",
    }
    for name, damaged in bad.items():
        with pytest.raises(SnsRejected, match="certificate"):
            sns.read_certificate(as_pem(damaged))
            pytest.fail(f"{name} was accepted")
    with pytest.raises(SnsRejected, match="non-minimal DER length"):  # 81 03: must be 03
        sns.read_certificate(as_pem(b"\x30\x81\x03\x02\x01\x00"))
    for text in (b"", b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
                 pem.replace(b"-----END CERTIFICATE-----", b""), der):
        with pytest.raises(SnsRejected, match="no PEM"):
            sns.read_certificate(text)


# --- fetch_https against a loopback server (never the network) ---------------------------------


@pytest.fixture
def http_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/cert.pem")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b"x" * (sns.MAX_CERT + 1) if self.path == "/huge" else b"PEM"
            self.send_response(404 if self.path == "/missing" else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """No access log on the test's output."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_https_reads_caps_and_does_not_follow_redirects(http_server: str) -> None:
    assert sns.fetch_https(f"{http_server}/cert.pem") == b"PEM"
    for path, why in (("/redirect", "HTTP 302"), ("/missing", "HTTP 404"), ("/huge", "65537 bytes")):
        with pytest.raises(SnsUnavailable, match=why):
            sns.fetch_https(http_server + path)


def test_fetch_https_failure_is_sns_unavailable() -> None:
    with socket.socket() as closed:  # a port nobody listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(SnsUnavailable, match="cannot fetch"):
        sns.fetch_https(f"http://127.0.0.1:{port}/x.pem")
    assert issubclass(SnsUnavailable, SnsRejected) and issubclass(SnsRejected, ValueError)


def test_default_pool_requires_tls_verification() -> None:
    assert sns._POOL.connection_pool_kw["cert_reqs"] == "CERT_REQUIRED"
    verifier = Verifier(TOPICS)
    assert verifier.fetch is sns.fetch_https


def test_messages_are_not_mutated_by_verification(verifier: Verifier, key: rsa.RSAPrivateKey) -> None:
    msg = roundtrip(message(key))
    before = copy.deepcopy(msg)
    verifier.verify(msg)
    assert msg == before
