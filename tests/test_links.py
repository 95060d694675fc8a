"""Signed links (chalicelib/links.py): what a token carries and why each bad one is refused.

Pure Python: no DynamoDB. Settings are built with ``load_settings`` from a plain dict.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import time
import zlib
from datetime import datetime, timedelta, timezone

from unittest import mock

import pytest
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode
from itsdangerous.timed import TimestampSigner

from chalicelib.core import tokens
from chalicelib.consent import links
from chalicelib.core.errors import (
    LinkError, LinkExpired, LinkTampered, LinkTruncated, LinkWrongKind,
)
from chalicelib.core.settings import LINK_KINDS, Settings, load_settings
from chalicelib.consent.subjects import subject_key

KEY_OLD = "old-" + "o" * 40
KEY_NEW = "new-" + "n" * 40
PEPPER = "pepper-" + "p" * 40
EMAIL = "ann.example@example.eu"
SUBJECT = subject_key(PEPPER, EMAIL)
ONE_PURPOSE = ["newsletter"]
# Long enough for itsdangerous to zlib-compress the payload (token starts with "."): the
# links minted before our own codec, still in mail boxes (see ``minted``).
MANY_PURPOSES = ["newsletter", "promotions", "events"]


def make_settings(keys: str = KEY_NEW, **extra: str) -> Settings:
    """Settings from a minimal environment; ``extra`` overrides any variable."""
    return load_settings({"LINK_SECRET_KEYS": keys, "SUBJECT_PEPPER": PEPPER, **extra})


def minted(settings: Settings, kind: str, purposes: list[str]) -> tuple[str, str]:
    """A link as mail boxes hold them: for ``MANY_PURPOSES``, one minted the way links
    were before ``chalicelib.core.tokens`` (itsdangerous itself, zlib-compressed), so
    every test below also proves those still verify; otherwise one we mint today."""
    if purposes is not MANY_PURPOSES:
        return links.mint(settings, kind, SUBJECT, purposes)
    link_id = links.new_link_id()
    serializer = URLSafeTimedSerializer(
        list(settings.link_secret_keys), salt=f"optinproof.link.{kind}",
        signer_kwargs={"digest_method": hashlib.sha256})
    return serializer.dumps({"i": link_id, "s": SUBJECT, "p": purposes}), link_id


def mint_aged(monkeypatch: pytest.MonkeyPatch, settings: Settings, kind: str,
              age_seconds: int, purposes: list[str] = ONE_PURPOSE) -> tuple[str, str]:
    """Mint a token whose signature timestamp lies ``age_seconds`` in the past."""
    signed_at = int(time.time()) - age_seconds
    with monkeypatch.context() as patch:
        patch.setattr(tokens, "signing_time", lambda: signed_at)
        patch.setattr(TimestampSigner, "get_timestamp", lambda self: signed_at)
        return minted(settings, kind, purposes)


def decode_payload(token: str) -> dict:
    """The token's payload as JSON, decoded by hand (no key needed: it is only signed)."""
    payload = token.rsplit(".", 2)[0]
    compressed = payload.startswith(".")
    raw = base64_decode(payload.removeprefix("."))
    if compressed:
        raw = zlib.decompress(raw)
    return json.loads(raw)


@pytest.fixture
def settings() -> Settings:
    return make_settings()


# --- round trip ---------------------------------------------------------------------


@pytest.mark.parametrize("purposes", [ONE_PURPOSE, MANY_PURPOSES], ids=["plain", "compressed"])
@pytest.mark.parametrize("kind", LINK_KINDS)
def test_mint_verify_round_trip(settings: Settings, kind: str, purposes: list[str]) -> None:
    """Every kind verifies as itself and gives back exactly what was minted."""
    token, link_id = minted(settings, kind, purposes)
    link = links.verify(settings, kind, token)
    assert link.kind == kind
    assert link.link_id == link_id
    assert link.subject == SUBJECT
    assert link.purposes == tuple(purposes)
    assert link.issued_at.tzinfo is not None
    assert link.issued_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - link.issued_at) < timedelta(seconds=5)


def test_mint_keeps_a_given_link_id(settings: Settings) -> None:
    """A caller-chosen link id (e.g. re-minting a recorded issuance) is kept as is."""
    token, link_id = links.mint(settings, "confirm", SUBJECT, ONE_PURPOSE, link_id="my-link-id")
    assert link_id == "my-link-id"
    assert links.verify(settings, "confirm", token).link_id == "my-link-id"


def test_new_link_ids_are_random_and_url_safe() -> None:
    """128 random bits, URL-safe: two ids never collide and need no escaping."""
    ids = {links.new_link_id() for _ in range(200)}
    assert len(ids) == 200
    for link_id in ids:
        assert len(link_id) == 22
        assert set(link_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_unknown_kind_is_a_programming_error(settings: Settings) -> None:
    """A kind outside LINK_KINDS is a bug in the caller, not a bad link."""
    with pytest.raises(ValueError, match="unknown link kind"):
        links.mint(settings, "login", SUBJECT, ONE_PURPOSE)
    with pytest.raises(ValueError, match="unknown link kind"):
        links.verify(settings, "login", "whatever")


# --- no personal data in the token ---------------------------------------------------


@pytest.mark.parametrize("purposes", [ONE_PURPOSE, MANY_PURPOSES], ids=["plain", "compressed"])
def test_payload_holds_no_email_only_subject_purposes_and_link_id(
        settings: Settings, purposes: list[str]) -> None:
    """The token is readable by anyone holding the mail: it must carry no address."""
    token, link_id = minted(settings, "confirm", purposes)
    payload = decode_payload(token)
    assert payload == {"i": link_id, "s": SUBJECT, "p": purposes}
    assert EMAIL not in json.dumps(payload)
    assert "@" not in json.dumps(payload)

    # Same answer through itsdangerous' own decoder (signature checked too).
    serializer = URLSafeTimedSerializer(
        [KEY_NEW], salt="optinproof.link.confirm",
        signer_kwargs={"digest_method": hashlib.sha256})
    valid, loaded = serializer.loads_unsafe(token)
    assert valid is True
    assert loaded == payload


def test_links_minted_before_are_compressed_and_still_verify(settings: Settings) -> None:
    """The decoder above really exercises the zlib branch (token prefix '.')."""
    token, link_id = minted(settings, "confirm", MANY_PURPOSES)
    assert token.startswith(".")
    link = links.verify(settings, "confirm", token)
    assert (link.link_id, link.purposes) == (link_id, tuple(MANY_PURPOSES))


def test_new_links_are_never_compressed_and_itsdangerous_reads_them(settings: Settings) -> None:
    """zlib's set-up costs more than the whole signature, so we never compress; the
    format is otherwise itsdangerous' own, byte for byte."""
    signed_at = 1_800_000_000
    with mock.patch.object(tokens, "signing_time", return_value=signed_at), \
            mock.patch.object(TimestampSigner, "get_timestamp", return_value=signed_at):
        token, link_id = links.mint(settings, "confirm", SUBJECT, MANY_PURPOSES)
        serializer = URLSafeTimedSerializer(
            [KEY_NEW], salt="optinproof.link.confirm",
            signer_kwargs={"digest_method": hashlib.sha256})
        # A fixed id whose payload zlib does not shorten (itsdangerous compresses when
        # it does, which depends on the id): the byte-for-byte comparison is then fair.
        fixed = "q3Zr8VtXk1PdYw0bNs7LmA"
        ours_plain, _ = links.mint(settings, "confirm", SUBJECT, ONE_PURPOSE, fixed)
        theirs_plain = serializer.dumps({"i": fixed, "s": SUBJECT, "p": ONE_PURPOSE})
    assert not theirs_plain.startswith(".")
    assert not token.startswith(".")
    assert serializer.loads(token) == {"i": link_id, "s": SUBJECT, "p": MANY_PURPOSES}
    assert ours_plain == theirs_plain  # what itsdangerous would have written


# --- wrong kind ---------------------------------------------------------------------


@pytest.mark.parametrize("minted, used", list(itertools.permutations(LINK_KINDS, 2)))
def test_link_of_another_kind_is_wrong_kind(settings: Settings, minted: str, used: str) -> None:
    """Each kind has its own salt: a withdraw link cannot confirm, a rights link cannot decide."""
    token, _ = links.mint(settings, minted, SUBJECT, ONE_PURPOSE)
    with pytest.raises(LinkWrongKind) as caught:
        links.verify(settings, used, token)
    assert caught.value.reason == "wrong_kind"
    assert minted in str(caught.value) and used in str(caught.value)


def test_withdraw_link_on_confirm_page(settings: Settings) -> None:
    """The brief's example, spelled out: withdraw token checked as confirm."""
    token, _ = links.mint(settings, "withdraw", SUBJECT, ONE_PURPOSE)
    with pytest.raises(LinkWrongKind, match="This is a withdraw link, not a confirm link"):
        links.verify(settings, "confirm", token)


# --- expiry -------------------------------------------------------------------------


@pytest.mark.parametrize("purposes", [ONE_PURPOSE, MANY_PURPOSES], ids=["plain", "compressed"])
def test_expired_link_carries_its_link_id(monkeypatch: pytest.MonkeyPatch, settings: Settings,
                                          purposes: list[str]) -> None:
    """An authentic but old link names its id, so the page can offer a renewal for it."""
    token, link_id = mint_aged(monkeypatch, settings, "confirm", 31 * 86400, purposes)
    with pytest.raises(LinkExpired) as caught:
        links.verify(settings, "confirm", token)
    assert caught.value.link_id == link_id
    assert caught.value.reason == "expired"


@pytest.mark.parametrize("kind", LINK_KINDS)
def test_every_kind_expires_after_its_lifetime(monkeypatch: pytest.MonkeyPatch,
                                               settings: Settings, kind: str) -> None:
    """Just past its kind's max age, a link is expired; just before, it still works."""
    max_age = settings.link_max_age[kind]
    fresh, _ = mint_aged(monkeypatch, settings, kind, max_age - 60)
    assert links.verify(settings, kind, fresh).subject == SUBJECT
    old, _ = mint_aged(monkeypatch, settings, kind, max_age + 60)
    with pytest.raises(LinkExpired):
        links.verify(settings, kind, old)


def test_lifetime_is_per_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """LINK_MAX_AGE_RIGHTS=1h shortens rights links only; confirm keeps its 30 days."""
    settings = make_settings(LINK_MAX_AGE_RIGHTS="1h")
    assert settings.link_max_age["rights"] == 3600
    rights, rights_id = mint_aged(monkeypatch, settings, "rights", 2 * 3600)
    confirm, confirm_id = mint_aged(monkeypatch, settings, "confirm", 2 * 3600)
    with pytest.raises(LinkExpired) as caught:
        links.verify(settings, "rights", rights)
    assert caught.value.link_id == rights_id
    assert links.verify(settings, "confirm", confirm).link_id == confirm_id


def test_issued_at_is_the_signing_time(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """``issued_at`` comes from the signature timestamp, not from the verifying clock."""
    token, _ = mint_aged(monkeypatch, settings, "confirm", 2 * 86400)
    issued = links.verify(settings, "confirm", token).issued_at
    expected = datetime.now(timezone.utc) - timedelta(days=2)
    assert abs(issued - expected) < timedelta(seconds=5)


# --- key rotation -------------------------------------------------------------------


def test_old_token_verifies_after_a_new_key_is_added() -> None:
    """Adding a key (newest last) must not kill the links already in inboxes."""
    token, link_id = links.mint(make_settings(KEY_OLD), "confirm", SUBJECT, ONE_PURPOSE)
    rotated = make_settings(f"{KEY_OLD},{KEY_NEW}")
    assert links.verify(rotated, "confirm", token).link_id == link_id


def test_new_tokens_are_signed_with_the_newest_key() -> None:
    """After rotation, new links are signed by the newest key, not the old one."""
    rotated = make_settings(f"{KEY_OLD},{KEY_NEW}")
    token, _ = links.mint(rotated, "confirm", SUBJECT, ONE_PURPOSE)
    assert links.verify(make_settings(KEY_NEW), "confirm", token).subject == SUBJECT
    with pytest.raises(LinkTampered):
        links.verify(make_settings(KEY_OLD), "confirm", token)


def test_removing_a_key_kills_exactly_its_links() -> None:
    """A token signed by a retired key is refused as tampered; newer ones still work."""
    old_token, _ = links.mint(make_settings(KEY_OLD), "withdraw", SUBJECT, ONE_PURPOSE)
    new_token, _ = links.mint(make_settings(f"{KEY_OLD},{KEY_NEW}"), "withdraw", SUBJECT,
                              ONE_PURPOSE)
    only_new = make_settings(KEY_NEW)
    with pytest.raises(LinkTampered) as caught:
        links.verify(only_new, "withdraw", old_token)
    assert caught.value.reason == "tampered"
    assert links.verify(only_new, "withdraw", new_token).subject == SUBJECT


# --- truncated, tampered, garbage ---------------------------------------------------


@pytest.mark.parametrize("purposes", [ONE_PURPOSE, MANY_PURPOSES], ids=["plain", "compressed"])
def test_every_prefix_of_a_token_is_truncated(settings: Settings, purposes: list[str]) -> None:
    """A mail client may cut a long link anywhere: every cut reads as 'incomplete'."""
    token, _ = minted(settings, "confirm", purposes)
    for length in range(len(token)):
        with pytest.raises(LinkTruncated):
            links.verify(settings, "confirm", token[:length])


def test_cut_signature_is_truncated(settings: Settings) -> None:
    """Losing even one character of the signature is a truncation, not tampering."""
    token, _ = links.mint(settings, "confirm", SUBJECT, ONE_PURPOSE)
    for cut in (1, 2, 10, 42):
        with pytest.raises(LinkTruncated) as caught:
            links.verify(settings, "confirm", token[:-cut])
        assert caught.value.reason == "truncated"


@pytest.mark.parametrize("purposes", [ONE_PURPOSE, MANY_PURPOSES], ids=["plain", "compressed"])
@pytest.mark.parametrize("drop", [0, 1, 2], ids=["payload", "timestamp", "signature"])
def test_token_missing_a_dot_part_is_truncated(settings: Settings, purposes: list[str],
                                               drop: int) -> None:
    """Payload, timestamp or signature missing entirely: incomplete link."""
    token, _ = minted(settings, "confirm", purposes)
    prefix = "." if token.startswith(".") else ""
    parts = token.removeprefix(".").split(".")
    assert len(parts) == 3
    damaged = prefix + ".".join(part for index, part in enumerate(parts) if index != drop)
    with pytest.raises(LinkTruncated):
        links.verify(settings, "confirm", damaged)


@pytest.mark.parametrize("purposes", [ONE_PURPOSE, MANY_PURPOSES], ids=["plain", "compressed"])
def test_altered_payload_character_is_tampered(settings: Settings, purposes: list[str]) -> None:
    """A changed character at full length is an alteration, not a truncation."""
    token, _ = minted(settings, "confirm", purposes)
    payload_end = token.index(".", 1)
    for position in (1, 5, payload_end // 2, payload_end - 2):
        replacement = "A" if token[position] != "A" else "B"
        altered = token[:position] + replacement + token[position + 1:]
        assert len(altered) == len(token)
        with pytest.raises(LinkTampered) as caught:
            links.verify(settings, "confirm", altered)
        assert not isinstance(caught.value, LinkTruncated)


def test_altered_timestamp_is_tampered(settings: Settings) -> None:
    """Making a link look younger breaks the signature."""
    token, _ = links.mint(settings, "confirm", SUBJECT, ONE_PURPOSE)
    payload, stamp, signature = token.rsplit(".", 2)  # a compressed payload starts with "."
    altered_stamp = stamp[:-1] + ("A" if stamp[-1] != "A" else "B")
    with pytest.raises(LinkTampered):
        links.verify(settings, "confirm", f"{payload}.{altered_stamp}.{signature}")


@pytest.mark.parametrize("payload", ["hello", ["a"], {"i": 1, "s": SUBJECT, "p": []},
                                     {"i": "x", "s": SUBJECT, "p": [1]}, {"s": SUBJECT}])
def test_authentic_token_with_foreign_payload_is_tampered(settings: Settings, payload: object) -> None:
    """Correctly signed but not a shape we mint (e.g. an old format): refused, no crash."""
    serializer = URLSafeTimedSerializer(
        [KEY_NEW], salt="optinproof.link.confirm",
        signer_kwargs={"digest_method": hashlib.sha256})
    with pytest.raises(LinkTampered):
        links.verify(settings, "confirm", serializer.dumps(payload))


GARBAGE = [
    "",
    ".",
    "..",
    "...",
    "abc",
    "a.b.c",
    "a.b." + "c" * 43,
    "." + "x" * 300,
    "héllo.wörld.ünïcode",
    "é.é." + "é" * 43,
    "🙂" * 50,
    "\x00\x01\x02",
    "a\nb\tc.d.e",
    "%2E%2E%2F" * 10,
    "<script>alert(1)</script>",
    "x" * 100_000,
    ("A" * 60 + ".") * 500,
    "eyJpIjoiIn0.AAAAAA." + "_" * 43,
]


@pytest.mark.parametrize("token", GARBAGE, ids=lambda value: repr(value[:20]))
def test_garbage_is_always_a_link_error(settings: Settings, token: str) -> None:
    """Whatever lands in the URL, verify answers with a LinkError (a 4xx page), never a 500."""
    for kind in LINK_KINDS:
        with pytest.raises(LinkError):
            links.verify(settings, kind, token)


@pytest.mark.parametrize("token", ["\ud800", "abc.\udfff.def"], ids=["lone", "embedded"])
def test_lone_surrogate_is_a_link_error(settings: Settings, token: str) -> None:
    """A str that is not encodable as UTF-8 is still just a bad link."""
    with pytest.raises(LinkError):
        links.verify(settings, "confirm", token)
