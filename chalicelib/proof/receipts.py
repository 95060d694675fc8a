"""Consent receipts: what a person keeps of their decisions, readable and signed.

A receipt follows the Kantara Initiative Consent Receipt Specification v1.1 (field
names, ``KI-CR-v1.1.0``), so any tool that knows the format can read it. It records
the consents *in force*: only purposes whose current state is ``accepted`` appear in
``services``. The ``x-optinproof`` extension lists every purpose's state (accepted,
refused, withdrawn) with the text version and the proof event it rests on, so a
receipt can be matched to the subject's hash chain, which stays the real evidence.

Each accepted purpose's ``purpose`` is the exact wording the person was shown, in its
canonical form: ``sha256(purpose)`` equals the ``text_sha256`` recorded in the chain.

Signing: a compact JWS (RFC 7515), HS256, over the canonical JSON of the receipt. The
key is derived from ``LINK_SECRET_KEYS`` through :func:`chalicelib.consent.links.signer` with
the receipt's own salt, so it is never a link key; the newest key signs and every
listed key verifies, so removing a key retires the receipts it signed (as it retires
links). The JWS header's ``kid`` names the key by a fingerprint, never the key.

Receipts are built from the table by :func:`for_subject`, or from given parts by
:func:`build` (pure: no I/O), and handed out by :func:`document`.

Size: one format, built, signed (JWS) and verified here together, so the
fields signed and the fields checked cannot drift apart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from chalicelib.consent import links
from chalicelib.consent.catalogue import Catalogue, Controller, Purpose, canonical_text
from chalicelib.core.clock import iso, parse_iso, utcnow
from chalicelib.core.errors import (
    BadInput,
    NothingToReceipt,
    ReceiptAlgorithmRefused,
    ReceiptEvidenceMissing,
    ReceiptMalformed,
    ReceiptTampered,
    ReceiptUnknownKey,
)
from chalicelib.core.settings import Settings
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

VERSION = "KI-CR-v1.1.0"
SCHEMA = "https://optinproof.eu/schemas/consent-receipt.v1.json"
EXTENSION = "x-optinproof"
RECEIPT_FORMAT = 1
#: The JWS ``typ``: explicit typing (RFC 8725 §3.11). Not ``JWT``: the payload is a
#: Kantara receipt, not a JWT claims set, and nothing that accepts our JWTs (if any
#: ever exist) may take a receipt for one.
JWS_TYPE = "kantara-cr+jws"
JWS_ALG = "HS256"
#: The signing salt: receipts get their own key, derived like every token key we use.
SALT = "optinproof.receipt"
#: A UUID namespace for receipt ids (uuid5 of "optinproof.receipt" in the URL namespace).
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://optinproof.eu/consent-receipt")
#: A receipt of twenty long purposes is a few tens of KB; anything far larger is not ours.
_MAX_JWS_LENGTH = 512 * 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_SIGNATURE_LENGTH = 43  # base64url of 32 bytes, unpadded
_HEADER_KEYS = frozenset(("alg", "kid", "typ"))

DEFAULT_JURISDICTION = "EU"
#: Kantara v1.1 purpose categories and PII categories we can vouch for without the
#: catalogue saying more (it has no per-purpose category or data list yet).
_MARKETING = "6 - Marketing"
_CONTACT_REQUESTED = "4 - Contact Requested"
_PII_CONTACT = "2 - Contact"


# -- building ------------------------------------------------------------------------------


def for_subject(
    ledger: Ledger,
    catalogue: Catalogue,
    subject: str,
    locale: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The receipt of a subject's current states, read from the table.

    Reads the profile, the states, the chain (for event hashes) and the stored wordings
    the states cite: what the person accepted is what they read, even if marketing has
    reworded the purpose since.
    """
    profile, states = ledger.current(subject)
    events = list(ledger.events(subject))
    texts = stored_texts(ledger, states)
    return build(catalogue, subject, profile, states, events, locale, now, texts)


def stored_texts(
    ledger: Ledger, states: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The stored wording (``TEXT#<sha>``) of every text version the states cite."""
    texts = {}
    for sha in sorted({s["text_sha256"] for s in states.values() if s.get("text_sha256")}):
        item = ledger.get(*keys.content(keys.TEXT, sha))
        if item is not None:
            texts[sha] = item
    return texts


def build(
    catalogue: Catalogue,
    subject: str,
    profile: Mapping[str, Any] | None,
    states: Mapping[str, Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]] | None = None,
    locale: str | None = None,
    now: datetime | None = None,
    texts: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Kantara v1.1 receipt of ``states`` (``Ledger.current``), plus our extension.

    ``events`` (the subject's chain) adds each decision's event hash and checks that
    every state rests on its event; ``texts`` maps text versions to stored wordings
    (else the catalogue's current wordings are searched). ``locale`` is the receipt's
    language (default: the person's, then the catalogue's). Pure: no I/O.
    """
    address = (profile or {}).get("email")
    if not address:
        raise NothingToReceipt(
            "There is no address on record for this person (never "
            "confirmed, or erased): no consent receipt can be made."
        )
    decided = {
        p: s for p, s in states.items() if s.get("state") in ("accepted", "refused", "withdrawn")
    }
    if not decided:
        raise NothingToReceipt(
            "This person has not decided on any purpose yet: a consent receipt records decisions."
        )
    locale = _locale(catalogue, profile, locale)
    by_id = _events_by_id(events)
    rows = [
        _row(catalogue, purpose, decided[purpose], by_id, texts or {}, locale)
        for purpose in sorted(decided)
    ]
    # Kantara's services list the consents OptinProof recorded (consentType EXPLICIT):
    # imported evidence is named in the collection method and the extension, never as
    # one of ours, and a purpose on another basis is no consent (extension rows only).
    accepted = [row for row in rows if row["state"] == "accepted" and not row.get("source")]
    imported = [row for row in rows if row.get("source") == "imported"]
    consents = [row for row in accepted if row["legal_basis"] == "consent"]
    controller = catalogue.controller
    return {
        "version": VERSION,
        "jurisdiction": _optional(controller, "country") or DEFAULT_JURISDICTION,
        "consentTimestamp": max(_epoch(row["decided_at"]) for row in rows),
        "collectionMethod": _collection_method((accepted or [max(rows, key=_when)]) + imported),
        "consentReceiptID": receipt_id(subject, decided),
        "language": locale,
        "piiPrincipalId": address,
        "piiControllers": [_controller(controller)],
        "policyUrl": controller.privacy_policy_url,
        "services": [
            {
                "service": f"{controller.name} e-mail communications",
                "purposes": [_kantara_purpose(catalogue, controller, row) for row in consents],
            }
        ]
        if consents
        else [],
        "sensitive": False,
        "spiCat": [],
        EXTENSION: {
            "schema": SCHEMA,
            "format": RECEIPT_FORMAT,
            "subject": subject,
            "issued_at": iso(now or utcnow()),
            "purposes": [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows],
        },
    }


def receipt_id(subject: str, states: Mapping[str, Mapping[str, Any]]) -> str:
    """Deterministic: the same person in the same states gets the same receipt id.

    So a receipt mailed after a decision and one downloaded later name the same
    record, a re-download makes no new "receipt", and any new decision (a new event
    id) makes a new id; no table item is needed to remember ids. The language and the
    moment of issue do not enter: they change the rendering, not what is recorded.
    """
    basis = "|".join([subject, *(f"{p}={states[p].get('event_id')}" for p in sorted(states))])
    return str(uuid.uuid5(_ID_NAMESPACE, basis))


def _locale(catalogue: Catalogue, profile: Mapping[str, Any] | None, locale: str | None) -> str:
    chosen = locale or (profile or {}).get("locale") or catalogue.default_locale
    if chosen not in catalogue.locales:
        raise BadInput(
            f"Unsupported language {chosen!r} for a receipt; choose one of "
            f"{', '.join(catalogue.locales)}."
        )
    return chosen


def _optional(thing: Any, name: str) -> Any:
    """A catalogue field the current catalogue format may not have yet (e.g. a country)."""
    value = getattr(thing, name, None)
    return value or None


def _epoch(at: str) -> int:
    return int(parse_iso(at).timestamp())


def _when(row: Mapping[str, Any]) -> str:
    return row["decided_at"]


def _events_by_id(
    events: Iterable[Mapping[str, Any]] | None,
) -> dict[str, Mapping[str, Any]] | None:
    if events is None:
        return None
    return {e["event_id"]: e for e in events if e.get("event_id")}


def _row(
    catalogue: Catalogue,
    purpose_id: str,
    state: Mapping[str, Any],
    events: Mapping[str, Mapping[str, Any]] | None,
    texts: Mapping[str, Mapping[str, Any]],
    locale: str,
) -> dict[str, Any]:
    """One purpose's line of the extension (keys with ``_`` are for building only)."""
    event = _event_for(purpose_id, state, events)
    sha = state.get("text_sha256")
    wording = _wording(catalogue, purpose_id, sha, texts) if sha else None
    if state["state"] == "accepted" and wording is None and state.get("source") != "imported":
        raise ReceiptEvidenceMissing(
            f"Purpose {purpose_id!r} is accepted but records no text version: the wording "
            "the person accepted is unknown. Run `python -m chalicelib.cli chain verify`."
        )
    return {
        "id": purpose_id,
        "title": wording["title"] if wording else _current_title(catalogue, purpose_id, locale),
        "state": state["state"],
        "decided_at": state["decided_at"],
        "purpose_version": state.get("purpose_version"),
        "text_sha256": sha,
        "text_locale": wording["locale"] if wording else None,
        "channel": state.get("channel"),
        "event_id": state.get("event_id"),
        "event_seq": state.get("event_seq"),
        "event_hash": event.get("hash") if event else None,
        "legal_basis": _legal_basis(catalogue, purpose_id, state),
        "_wording": wording,
        "_method": (event or {}).get("method"),
        **_imported(state),
    }


def _imported(state: Mapping[str, Any]) -> dict[str, Any]:
    """An imported state says so, with its source and grade (never "double opt-in")."""
    if state.get("source") != "imported":
        return {}
    return {
        "source": "imported",
        "import_source": state.get("import_source"),
        "evidence_grade": state.get("grade"),
    }


def _event_for(
    purpose_id: str, state: Mapping[str, Any], events: Mapping[str, Mapping[str, Any]] | None
) -> Mapping[str, Any] | None:
    """The decision event the state rests on; with the chain given, it must be there."""
    if events is None:
        return None
    event = events.get(state.get("event_id") or "")
    # an imported row that became the state names the state it set (``consent.imports``)
    kind = (event or {}).get("state") if (event or {}).get("kind") == "imported" else None
    if (
        event is None
        or event.get("purpose") != purpose_id
        or (kind or event.get("kind")) != state["state"]
    ):
        raise ReceiptEvidenceMissing(
            f"The state of purpose {purpose_id!r} ({state['state']}, event "
            f"{state.get('event_id')}) has no matching event in the person's chain. Run "
            "`python -m chalicelib.cli chain verify` before issuing receipts."
        )
    return event


def _wording(
    catalogue: Catalogue, purpose_id: str, sha: str, texts: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The exact title and text of version ``sha``: stored, else in the catalogue.

    A stored wording is re-hashed: a receipt must never show words other than the
    ones the version names.
    """
    stored = texts.get(sha)
    if stored is not None:
        canonical = canonical_text(stored.get("title", ""), stored.get("text", ""))
        if hashlib.sha256(canonical.encode("utf-8")).hexdigest() != sha:
            raise ReceiptEvidenceMissing(
                f"The stored wording TEXT#{sha[:12]}… of purpose {purpose_id!r} no longer "
                "hashes to its version (altered). Run `python -m chalicelib.cli chain verify`."
            )
        return {"title": stored["title"], "locale": stored.get("locale"), "canonical": canonical}
    purpose = catalogue.purposes.get(purpose_id)
    for text in purpose.texts.values() if purpose else ():
        if text.sha256 == sha:
            return {
                "title": text.title,
                "locale": text.locale,
                "canonical": canonical_text(text.title, text.text),
            }
    raise ReceiptEvidenceMissing(
        f"The wording {sha[:12]}… that purpose {purpose_id!r} was decided on is neither "
        f"stored (TEXT#{sha}) nor in the catalogue. Run `python -m chalicelib.cli chain verify`."
    )


def _current_title(catalogue: Catalogue, purpose_id: str, locale: str) -> str | None:
    """A title for a purpose decided without a cited wording (a withdrawal)."""
    purpose = catalogue.purposes.get(purpose_id)
    return purpose.text(locale).title if purpose else None


def _channel_words(channel: str) -> str:
    if channel.startswith("form:"):
        return f"signup form '{channel.removeprefix('form:')}'"
    if channel.startswith("campaign:"):
        return f"re-permission campaign '{channel.removeprefix('campaign:')}'"
    known = {
        "act": "request started from the Act! CRM",
        "cli": "link issued by an operator",
        "renewal": "renewed confirmation link",
        "ses": "complaint reported by the mailbox provider",
    }
    return known.get(channel, f"channel '{channel}'" if channel else "unknown channel")


def _collection_method(rows: list[dict[str, Any]]) -> str:
    """How the consents in force were collected (or, with none, the latest decision).

    Acceptance only ever comes through a confirm link mailed to the address, so an
    accepted purpose is a double opt-in; the channel says where it started.
    """
    methods = []
    for row in rows:
        where = _channel_words(row.get("channel") or "")
        if row.get("source") == "imported":
            methods.append(
                f"Imported from {row.get('import_source')} (evidence grade "
                f"{row.get('evidence_grade')}); not a double opt-in recorded by OptinProof"
            )
        elif row["state"] == "accepted":
            methods.append(
                f"Double opt-in: {where}, then acceptance through a confirmation "
                "link e-mailed to the address"
            )
        elif row["_method"] == "one_click":
            methods.append(f"One-click unsubscribe from an e-mail ({where})")
        else:
            methods.append(f"Decision through a link e-mailed to the address ({where})")
    return "; ".join(dict.fromkeys(methods))


def _controller(controller: Controller) -> dict[str, Any]:
    """Kantara ``piiControllers[0]``: what the catalogue knows about the controller.

    The catalogue holds one address line and a contact mailbox; country, phone, a
    contact name and a website are used as soon as the catalogue carries them.
    """
    address: dict[str, Any] = {"streetAddress": controller.address}
    country = _optional(controller, "country")
    if country:
        address["addressCountry"] = country
    entry = {
        "piiController": controller.name,
        "onBehalf": False,
        "contact": _optional(controller, "contact_name") or controller.contact_email,
        "address": address,
        "email": controller.contact_email,
        "phone": _optional(controller, "phone"),
        "piiControllerUrl": _optional(controller, "url"),
    }
    return {key: value for key, value in entry.items() if value is not None}


def _legal_basis(catalogue: Catalogue, purpose_id: str, state: Mapping[str, Any]) -> str:
    """The basis the state was recorded on (older states: the catalogue's, else consent)."""
    if state.get("legal_basis"):
        return str(state["legal_basis"])
    purpose = catalogue.purposes.get(purpose_id)
    return purpose.legal_basis if purpose is not None else "consent"


def _purpose_category(purpose: Purpose | None) -> list[str]:
    """Kantara purpose category: marketing mail, or mail the person asked for."""
    configured = _optional(purpose, "purpose_category")
    if configured:
        return list(configured)
    return [_MARKETING if purpose is None or purpose.email_marketing else _CONTACT_REQUESTED]


def _kantara_purpose(
    catalogue: Catalogue, controller: Controller, row: dict[str, Any]
) -> dict[str, Any]:
    """One accepted purpose, in Kantara's words; ``purpose`` is the wording accepted."""
    purpose = catalogue.purposes.get(row["id"])
    return {
        "purpose": row["_wording"]["canonical"],
        "purposeCategory": _purpose_category(purpose),
        "consentType": "EXPLICIT",
        "piiCategory": list(_optional(purpose, "pii_categories") or [_PII_CONTACT]),
        "primaryPurpose": False,
        "termination": (
            "Until you withdraw it: use the withdrawal link at the bottom of "
            f"any of our e-mails, or write to {controller.contact_email}."
        ),
        # Act! is the controller's own CRM (a processor), not a third party.
        "thirdPartyDisclosure": False,
    }


# -- signing -------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(part: str, what: str) -> bytes:
    """Strict base64url: our alphabet, no padding, and the one canonical encoding.

    Canonical matters: the last character of a 32-byte signature has spare bits, and
    an edit there must not pass as the same signature.
    """
    if not _B64URL.fullmatch(part) or len(part) % 4 == 1:
        raise ReceiptMalformed(
            f"The receipt's {what} is not base64url: it was damaged or "
            "re-encoded; download the receipt again."
        )
    try:
        data = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ReceiptMalformed(f"The receipt's {what} cannot be decoded.") from exc
    if _b64(data) != part:
        raise ReceiptMalformed(f"The receipt's {what} is not in its canonical encoding (altered).")
    return data


def _keys(settings: Settings) -> list[bytes]:
    """Receipt keys, oldest first, derived from each listed link key with our salt.

    Through :func:`links.signer`, so receipts follow the one signing rule; the result
    is ``SHA-256("optinproof.receipt" + "signer" + link_key)`` (itsdangerous' key
    derivation), written out in the tests so that a library change which would orphan
    every receipt already mailed cannot pass unnoticed.
    """
    return list(links.signer(settings, SALT).derived_keys)


def key_id(key: bytes) -> str:
    """A fingerprint naming a receipt key: 16 hex of SHA-256 of the derived key.

    Tells which key to check with, and reveals nothing of it (the link key behind it
    is two one-way steps away).
    """
    return hashlib.sha256(b"optinproof.receipt.kid\0" + key).hexdigest()[:16]


def _mac(key: bytes, signing_input: bytes) -> bytes:
    return hmac.new(key, signing_input, hashlib.sha256).digest()


def canonical(receipt: Mapping[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8: the one byte string a receipt is signed as."""
    return json.dumps(
        receipt, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sign(settings: Settings, receipt: Mapping[str, Any]) -> str:
    """Compact JWS (RFC 7515) of ``receipt``, HS256, signed with the newest key."""
    key = _keys(settings)[-1]
    header = {"alg": JWS_ALG, "kid": key_id(key), "typ": JWS_TYPE}
    signing_input = f"{_b64(canonical(header))}.{_b64(canonical(receipt))}".encode("ascii")
    return f"{signing_input.decode('ascii')}.{_b64(_mac(key, signing_input))}"


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ReceiptMalformed(f"The receipt's {what} names a field twice.")
        return dict(pairs)

    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReceiptMalformed(f"The receipt's {what} is not JSON.") from exc
    if not isinstance(value, dict):
        raise ReceiptMalformed(f"The receipt's {what} is not a JSON object.")
    return value


def _split(jws: object) -> tuple[str, str, str]:
    if not isinstance(jws, str) or not jws.strip():
        raise ReceiptMalformed("No signed receipt was given.")
    jws = jws.strip()
    if len(jws) > _MAX_JWS_LENGTH:
        raise ReceiptMalformed("This is far larger than any receipt we issue.")
    parts = jws.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise ReceiptMalformed(
            "The signed receipt is incomplete (it needs three parts: "
            "header.receipt.signature): copy all of it, or download the "
            "receipt again."
        )
    return parts[0], parts[1], parts[2]


def _check_header(header: Mapping[str, Any], keys: dict[str, bytes]) -> bytes:
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise ReceiptAlgorithmRefused("The receipt's header names no signing algorithm.")
    if alg.lower() == "none":
        raise ReceiptAlgorithmRefused("This receipt is not signed (alg none): refused.")
    if alg != JWS_ALG:
        raise ReceiptAlgorithmRefused(
            f"Algorithm {alg!r} is not accepted: our receipts are signed with {JWS_ALG} only."
        )
    if header.get("typ") != JWS_TYPE:
        raise ReceiptAlgorithmRefused(
            f"This token is of type {header.get('typ')!r}, not a consent receipt ({JWS_TYPE})."
        )
    extra = sorted(set(header) - _HEADER_KEYS)
    if extra:
        raise ReceiptAlgorithmRefused(
            f"Header field(s) {', '.join(extra)} are not ones we use: refused."
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        raise ReceiptUnknownKey(
            "This receipt was signed with a key we no longer hold (it "
            "was retired), or not by us: it cannot be verified. Ask for "
            "a new receipt; the proof of your consent is unaffected."
        )
    return keys[kid]


def verify(settings: Settings, jws: str) -> dict[str, Any]:
    """The receipt inside ``jws`` if we signed it with a listed key; else a ReceiptError.

    Checks, in order: three parts; a header with exactly our algorithm, type and a
    known key id (so ``alg: none`` is named as such, whatever its signature); a
    complete, canonical base64url signature; the HMAC (constant time); a JSON object
    of our version.
    """
    header_part, payload_part, signature_part = _split(jws)
    header = _json_object(_unb64(header_part, "header"), "header")
    key = _check_header(header, {key_id(k): k for k in _keys(settings)})
    if len(signature_part) < _SIGNATURE_LENGTH:
        raise ReceiptMalformed(
            "The receipt's signature is incomplete (cut short): copy all "
            "of it, or download the receipt again."
        )
    content = _unb64(payload_part, "content")
    signature = _unb64(signature_part, "signature")
    expected = _mac(key, f"{header_part}.{payload_part}".encode("ascii"))
    if not hmac.compare_digest(signature, expected):
        raise ReceiptTampered(
            "This receipt was altered after it was signed: its signature "
            "does not match. Download the receipt again."
        )
    receipt = _json_object(content, "content")
    if receipt.get("version") != VERSION:
        raise ReceiptMalformed(f"This is not a {VERSION} consent receipt.")
    return receipt


def document(settings: Settings, receipt: Mapping[str, Any]) -> dict[str, Any]:
    """What the person downloads (or gets by mail): the readable receipt and its JWS."""
    return {"receipt": dict(receipt), "jws": sign(settings, receipt)}


def matches_chain(receipt: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> bool:
    """Whether every purpose line of a receipt cites an event of ``events`` by id and hash.

    For anyone holding the person's chain (an export, a regulator): the receipt's
    claims rest on those events; ``proof.verify_chain`` then proves the events.
    """
    hashes = {e.get("event_id"): e.get("hash") for e in events}
    rows = (receipt.get(EXTENSION) or {}).get("purposes") or []
    return bool(rows) and all(
        row.get("event_hash") and hashes.get(row.get("event_id")) == row["event_hash"]
        for row in rows
    )
