"""Consent receipts: built from what the ledger really holds, signed, and checked.

Decisions are recorded the way people make them (a confirm link, the confirmation
page, a withdraw link) on DynamoDB Local; the receipt is then built from the table
and compared with the chain, validated against schemas/consent-receipt.v1.json, and
its JWS is attacked the usual ways.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from chalicelib.consent import rules
from chalicelib.consent import links
from chalicelib.proof import chain
from chalicelib.proof import receipts
from chalicelib.consent.rules import RequestContext
from chalicelib.core.errors import BadInput, LinkError, ReceiptError
from chalicelib.consent.catalogue import canonical_text, parse_catalogue
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import LINK_KINDS, get_settings
from tests.conftest import KEY_NEW, KEY_OLD, ROOT, form_fields

SCHEMA = json.loads((ROOT / "schemas" / "consent-receipt.v1.json").read_text(encoding="utf-8"))
CTX = RequestContext("192.0.2.10", "pytest-browser/1.0", "en-GB")
NOW = datetime(2031, 5, 4, 3, 2, 1, tzinfo=timezone.utc)


# -- recording decisions the way the app does ---------------------------------------------

def decide(email: str, locale: str = "en", **choices: str) -> rules.IssuedLink:
    """Mint a confirm link for the chosen purposes and decide through it."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    issued = rules.issue_link(ledger, settings, catalogue, email, list(choices), channel="test")
    link, record = rules.open_link(ledger, settings, "confirm", issued.token, catalogue)
    shown = {p: catalogue.get(p).text(locale).sha256 for p in choices}
    rules.decide(ledger, catalogue, link, record, choices, locale, shown, CTX)
    return issued


def withdraw(email: str, *purposes: str) -> None:
    """One-click withdrawal through a withdraw link, as a mail client does it."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    issued = rules.issue_link(ledger, settings, catalogue, email, list(purposes),
                                kind="withdraw", channel="test")
    link, record = rules.open_link(ledger, settings, "withdraw", issued.token)
    rules.withdraw(ledger, catalogue, link, record, "en", CTX, method="one_click")


def receipt_of(subject: str, **kwargs: Any) -> dict[str, Any]:
    return receipts.for_subject(get_ledger(), get_catalogue(), subject, now=kwargs.pop("now", NOW),
                                **kwargs)


def rows(receipt: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in receipt[receipts.EXTENSION]["purposes"]}


def validate(receipt: dict[str, Any]) -> None:
    Draft202012Validator(SCHEMA, format_checker=FormatChecker()).validate(receipt)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def reforged(jws: str, header: dict[str, Any] | None = None,
             payload: dict[str, Any] | None = None, key: bytes | None = None,
             digest: Any = hashlib.sha256) -> str:
    """The token with a replaced header and/or payload; re-signed only when given a key."""
    head, body, signature = jws.split(".")
    if header is not None:
        head = b64(json.dumps(header, separators=(",", ":")).encode())
    if payload is not None:
        body = b64(json.dumps(payload, separators=(",", ":")).encode())
    if key is not None:
        signature = b64(hmac.new(key, f"{head}.{body}".encode(), digest).digest())
    return f"{head}.{body}.{signature}"


def receipt_key(link_key: str) -> bytes:
    """The documented derivation, written out: what an outside verifier computes."""
    return hashlib.sha256(receipts.SALT.encode() + b"signer" + link_key.encode()).digest()


# -- the receipt --------------------------------------------------------------------------

def test_receipt_holds_the_kantara_fields_from_the_ledger(env, catalogue):
    issued = decide("ann@example.eu", newsletter="accept", events="refuse")
    receipt = receipt_of(issued.subject)
    events = list(get_ledger().events(issued.subject))
    accepted = next(e for e in events if e["kind"] == "accepted")
    controller = catalogue.controller

    assert receipt["version"] == "KI-CR-v1.1.0"
    assert receipt["jurisdiction"] == "EU"  # the catalogue names no country
    assert receipt["consentTimestamp"] == int(datetime.strptime(
        accepted["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp())
    assert receipt["collectionMethod"].startswith("Double opt-in: channel 'test'")
    assert "confirmation link e-mailed" in receipt["collectionMethod"]
    assert uuid.UUID(receipt["consentReceiptID"]).version == 5
    assert receipt["language"] == "en"
    assert receipt["piiPrincipalId"] == "ann@example.eu"
    assert receipt["piiControllers"] == [{
        "piiController": controller.name, "onBehalf": False,
        "contact": controller.contact_email, "address": {"streetAddress": controller.address},
        "email": controller.contact_email}]
    assert receipt["policyUrl"] == controller.privacy_policy_url
    assert receipt["sensitive"] is False and receipt["spiCat"] == []
    assert "publicKey" not in receipt  # HMAC-signed: there is no public key to give

    [service] = receipt["services"]
    assert service["service"] == f"{controller.name} e-mail communications"
    [purpose] = service["purposes"]  # only the accepted purpose: "events" was refused
    text = catalogue.get("newsletter").text("en")
    assert purpose == {
        "purpose": canonical_text(text.title, text.text),
        "purposeCategory": ["6 - Marketing"], "consentType": "EXPLICIT",
        "piiCategory": ["2 - Contact"], "primaryPurpose": False,
        "termination": "Until you withdraw it: use the withdrawal link at the bottom of any "
                       f"of our e-mails, or write to {controller.contact_email}.",
        "thirdPartyDisclosure": False}
    # the wording in the receipt is the very text version the chain recorded
    assert hashlib.sha256(purpose["purpose"].encode()).hexdigest() == accepted["text_sha256"]
    validate(receipt)


def test_controller_details_the_catalogue_may_add_are_used(env, catalogue):
    """Country, phone, contact name and website: not in the catalogue format yet."""
    issued = decide("amy@example.eu", newsletter="accept")
    profile, states = get_ledger().current(issued.subject)
    base = catalogue.controller
    richer = replace(catalogue, controller=SimpleNamespace(
        name=base.name, address=base.address, contact_email=base.contact_email,
        privacy_policy_url=base.privacy_policy_url, country="FR", phone="+33 4 00 00 00 00",
        contact_name="Data Protection Officer", url="https://example-outdoor.eu"))
    receipt = receipts.build(richer, issued.subject, profile, states, now=NOW)
    assert receipt["jurisdiction"] == "FR"
    assert receipt["piiControllers"] == [{
        "piiController": base.name, "onBehalf": False, "contact": "Data Protection Officer",
        "address": {"streetAddress": base.address, "addressCountry": "FR"},
        "email": base.contact_email, "phone": "+33 4 00 00 00 00",
        "piiControllerUrl": "https://example-outdoor.eu"}]
    validate(receipt)


def test_only_accepted_purposes_are_consents_but_the_extension_lists_every_state(env):
    issued = decide("bob@example.eu", newsletter="accept", promotions="accept", events="refuse")
    withdraw("bob@example.eu", "promotions")
    receipt = receipt_of(issued.subject)
    ledger = get_ledger()
    events = list(ledger.events(issued.subject))
    by_id = {event["event_id"]: event for event in events}
    _, states = ledger.current(issued.subject)

    [service] = receipt["services"]
    text = get_catalogue().get("newsletter").text("en")
    assert [p["purpose"] for p in service["purposes"]] == [canonical_text(text.title, text.text)]

    extension = receipt[receipts.EXTENSION]
    assert extension["subject"] == issued.subject
    assert extension["schema"] == receipts.SCHEMA and extension["format"] == 1
    assert extension["issued_at"] == "2031-05-04T03:02:01.000Z"
    listed = rows(receipt)
    assert {p: r["state"] for p, r in listed.items()} == {
        "events": "refused", "newsletter": "accepted", "promotions": "withdrawn"}
    for purpose, row in listed.items():
        state, event = states[purpose], by_id[row["event_id"]]
        assert row["event_id"] == state["event_id"] and row["event_seq"] == event["seq"]
        assert row["event_hash"] == event["hash"] == chain.event_hash(event)
        assert event["kind"] == row["state"] and event["purpose"] == purpose
        assert row["decided_at"] == state["decided_at"] == event["at"]
        assert row["purpose_version"] == event["purpose_version"]
        assert row["text_sha256"] == event.get("text_sha256")
        assert row["channel"] == "test"
    assert listed["promotions"]["text_sha256"] is None  # a withdrawal cites no wording
    assert listed["promotions"]["title"] == "Offers and promotions"
    assert listed["newsletter"]["text_locale"] == "en"
    assert chain.verify_chain(issued.subject, events).ok
    assert receipts.matches_chain(receipt, events)
    assert not receipts.matches_chain(receipt, events[:-1])  # the withdrawal is gone

    latest = max(state["decided_at"] for state in states.values())
    assert receipt["consentTimestamp"] == int(datetime.strptime(
        latest, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp())
    validate(receipt)


def test_a_receipt_with_every_consent_withdrawn_has_no_service(env):
    issued = decide("cat@example.eu", newsletter="accept")
    withdraw("cat@example.eu", "newsletter")
    receipt = receipt_of(issued.subject)
    assert receipt["services"] == []
    assert receipt["collectionMethod"] == "One-click unsubscribe from an e-mail (channel 'test')"
    assert rows(receipt)["newsletter"]["state"] == "withdrawn"
    validate(receipt)


def test_through_the_confirmation_page_and_no_personal_request_data_leaks(client, mint):
    issued = mint("dan@example.eu", "newsletter", "promotions")
    page = client.http.get(f"/c/{issued.token}?lang=fr").body.decode()
    fields = form_fields(page)
    fields.update({"decision.newsletter": "accept", "decision.promotions": "refuse"})
    response = client.http.post(
        f"/c/{issued.token}", body=urlencode(fields),
        headers={"content-type": "application/x-www-form-urlencoded",
                 "user-agent": "Mozilla/5.0 ReceiptTest/2.0"})
    assert response.status_code == 200
    receipt = receipt_of(issued.subject, locale="fr")
    text = get_catalogue().get("newsletter").text("fr")
    assert receipt["language"] == "fr"
    assert [p["purpose"] for p in receipt["services"][0]["purposes"]] == [
        canonical_text(text.title, text.text)]
    assert rows(receipt)["newsletter"]["text_locale"] == "fr"
    signed = receipts.canonical(receipt).decode()
    assert "127.0.0.1" not in signed and "ReceiptTest" not in signed
    validate(receipt)


def test_the_wording_accepted_stays_on_the_receipt_after_marketing_rewords_it(env):
    issued = decide("eve@example.eu", newsletter="accept")
    shipped = (ROOT / "catalogue.toml").read_text(encoding="utf-8")
    assert "Once a month we e-mail you our newsletter" in shipped
    reworded = parse_catalogue(shipped.replace("Once a month we e-mail you our newsletter",
                                               "Every week we e-mail you our newsletter"),
                               "reworded.toml")
    ledger = get_ledger()
    receipt = receipts.for_subject(ledger, reworded, issued.subject, now=NOW)
    [purpose] = receipt["services"][0]["purposes"]
    assert "Once a month" in purpose["purpose"] and "Every week" not in purpose["purpose"]
    event = list(ledger.events(issued.subject))[-1]
    assert hashlib.sha256(purpose["purpose"].encode()).hexdigest() == event["text_sha256"]


def test_receipt_id_is_the_same_for_the_same_states_and_new_after_a_decision(env, client):
    first = decide("fay@example.eu", newsletter="accept")
    one = receipt_of(first.subject)
    again = receipt_of(first.subject, locale="fr", now=datetime(2040, 1, 1, tzinfo=timezone.utc))
    assert again["consentReceiptID"] == one["consentReceiptID"]  # language and time do not count

    # the same click twice records nothing: still the same receipt
    link, record = rules.open_link(get_ledger(), get_settings(), "confirm", first.token)
    rules.decide(get_ledger(), get_catalogue(), link, record, {"newsletter": "accept"}, "en",
                   {"newsletter": get_catalogue().get("newsletter").text("en").sha256}, CTX)
    assert receipt_of(first.subject)["consentReceiptID"] == one["consentReceiptID"]

    decide("fay@example.eu", events="accept")
    changed = receipt_of(first.subject)
    assert changed["consentReceiptID"] != one["consentReceiptID"]
    other = decide("gus@example.eu", newsletter="accept")
    assert receipt_of(other.subject)["consentReceiptID"] not in (
        one["consentReceiptID"], changed["consentReceiptID"])


def test_no_receipt_without_an_address_or_a_decision(env, mint, catalogue):
    issued = mint("hal@example.eu", "newsletter")
    with pytest.raises(receipts.NothingToReceipt, match="not decided"):
        receipt_of(issued.subject)
    _, states = get_ledger().current(decide("ivy@example.eu", newsletter="accept").subject)
    with pytest.raises(receipts.NothingToReceipt, match="no address on record"):
        receipts.build(catalogue, "f" * 64, None, states)
    with pytest.raises(BadInput, match="Unsupported language 'de'"):
        receipts.build(catalogue, "f" * 64, {"email": "ivy@example.eu"}, states, locale="de")


def test_a_state_the_chain_does_not_back_is_refused(env, catalogue):
    issued = decide("jo@example.eu", newsletter="accept")
    ledger = get_ledger()
    profile, states = ledger.current(issued.subject)
    events = list(ledger.events(issued.subject))
    with pytest.raises(receipts.ReceiptEvidenceMissing, match="chain verify"):
        receipts.build(catalogue, issued.subject, profile, states, events[:-1])
    forged = {"newsletter": {**states["newsletter"], "text_sha256": "0" * 64}}
    with pytest.raises(receipts.ReceiptEvidenceMissing, match="neither stored"):
        receipts.build(catalogue, issued.subject, profile, forged, events)
    # without the chain, the receipt still builds, with no event hashes to match
    loose = receipts.build(catalogue, issued.subject, profile, states, now=NOW)
    assert rows(loose)["newsletter"]["event_hash"] is None
    validate(loose)


def test_schema_is_valid_and_catches_a_misspelt_field(env):
    Draft202012Validator.check_schema(SCHEMA)
    receipt = receipt_of(decide("kim@example.eu", newsletter="accept").subject)
    validate(receipt)
    misspelt = {**receipt, "consentReceiptId": receipt["consentReceiptID"]}
    with pytest.raises(Exception, match="consentReceiptId"):
        validate(misspelt)
    unsigned_third_party = json.loads(json.dumps(receipt))
    unsigned_third_party["services"][0]["purposes"][0]["thirdPartyDisclosure"] = True
    with pytest.raises(Exception, match="thirdPartyName"):
        validate(unsigned_third_party)


# -- signing ------------------------------------------------------------------------------

@pytest.fixture
def signed(env) -> tuple[dict[str, Any], str]:
    receipt = receipt_of(decide("lea@example.eu", newsletter="accept", events="refuse").subject)
    return receipt, receipts.sign(get_settings(), receipt)


def test_sign_and_verify_round_trip(signed):
    receipt, jws = signed
    settings = get_settings()
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}", jws)
    head, body, signature = jws.split(".")
    header = json.loads(unb64(head))
    key = receipt_key(KEY_NEW)
    assert header == {"alg": "HS256", "kid": receipts.key_id(key), "typ": "kantara-cr+jws"}
    assert re.fullmatch(r"[0-9a-f]{16}", header["kid"]) and header["kid"] not in KEY_NEW
    assert unb64(body) == receipts.canonical(receipt)  # sorted keys, compact, UTF-8
    assert unb64(body) == json.dumps(receipt, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()
    # the derivation is pinned: receipts signed today must verify with tomorrow's code
    assert unb64(signature) == hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert receipts.verify(settings, jws) == receipt
    assert receipts.verify(settings, f"  {jws}\n") == receipt
    assert receipts.sign(settings, receipt) == jws  # deterministic


def test_document_holds_the_readable_receipt_and_its_signed_form(signed):
    receipt, jws = signed
    document = receipts.document(get_settings(), receipt)
    assert set(document) == {"receipt", "jws"}
    assert document["receipt"] == receipt and document["jws"] == jws
    downloaded = json.loads(json.dumps(document, ensure_ascii=False))
    assert receipts.verify(get_settings(), downloaded["jws"]) == downloaded["receipt"]
    validate(downloaded["receipt"])


def test_an_edited_receipt_is_refused(signed):
    receipt, jws = signed
    edited = {**receipt, "piiPrincipalId": "mallory@example.eu"}
    with pytest.raises(receipts.ReceiptTampered, match="altered after it was signed"):
        receipts.verify(get_settings(), reforged(jws, payload=edited))
    extension = {**receipt[receipts.EXTENSION], "purposes": [
        {**row, "state": "accepted"} for row in receipt[receipts.EXTENSION]["purposes"]]}
    with pytest.raises(receipts.ReceiptTampered):
        receipts.verify(get_settings(), reforged(jws, payload={**receipt,
                                                                receipts.EXTENSION: extension}))


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_an_unsigned_receipt_is_refused(signed, alg):
    receipt, jws = signed
    header = {"alg": alg, "typ": receipts.JWS_TYPE}
    for signature in ("", jws.split(".")[2]):
        token = reforged(jws, header=header).rsplit(".", 1)[0] + "." + signature
        with pytest.raises(receipts.ReceiptAlgorithmRefused, match="not signed"):
            receipts.verify(get_settings(), token)


def test_other_algorithms_types_and_header_fields_are_refused(signed):
    receipt, jws = signed
    header = json.loads(unb64(jws.split(".")[0]))
    key = receipt_key(KEY_NEW)
    hs512 = reforged(jws, header={**header, "alg": "HS512"}, key=key, digest=hashlib.sha512)
    with pytest.raises(receipts.ReceiptAlgorithmRefused, match="'HS512' is not accepted"):
        receipts.verify(get_settings(), hs512)
    with pytest.raises(receipts.ReceiptAlgorithmRefused, match="'RS256' is not accepted"):
        receipts.verify(get_settings(), reforged(jws, header={**header, "alg": "RS256"}))
    as_jwt = reforged(jws, header={**header, "typ": "JWT"}, key=key)
    with pytest.raises(receipts.ReceiptAlgorithmRefused, match="not a consent receipt"):
        receipts.verify(get_settings(), as_jwt)
    with pytest.raises(receipts.ReceiptAlgorithmRefused, match="jku"):
        receipts.verify(get_settings(), reforged(
            jws, header={**header, "jku": "https://evil.example/keys"}, key=key))
    without_alg = {k: v for k, v in header.items() if k != "alg"}
    with pytest.raises(receipts.ReceiptAlgorithmRefused, match="no signing algorithm"):
        receipts.verify(get_settings(), reforged(jws, header=without_alg))


def test_an_edited_signature_is_refused(signed):
    _, jws = signed
    head, body, signature = jws.split(".")
    middle = signature[:20] + ("A" if signature[20] != "A" else "B") + signature[21:]
    with pytest.raises(receipts.ReceiptTampered):
        receipts.verify(get_settings(), f"{head}.{body}.{middle}")
    # the last character has two spare bits: another spelling of the same bytes is refused
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelt = signature[:-1] + alphabet[alphabet.index(signature[-1]) + 1]
    assert unb64(respelt) == unb64(signature)
    with pytest.raises(receipts.ReceiptMalformed, match="canonical encoding"):
        receipts.verify(get_settings(), f"{head}.{body}.{respelt}")
    with pytest.raises(receipts.ReceiptMalformed, match="not base64url"):
        receipts.verify(get_settings(), f"{head}.{body}.{signature[:-1]}+")


@pytest.mark.parametrize("cut", [1, 10, 43, 60])
def test_a_truncated_receipt_is_refused(signed, cut):
    _, jws = signed
    with pytest.raises(ReceiptError):
        receipts.verify(get_settings(), jws[:-cut])


def test_a_cut_signature_says_incomplete(signed):
    _, jws = signed
    with pytest.raises(receipts.ReceiptMalformed, match="incomplete"):
        receipts.verify(get_settings(), jws[:-5])
    with pytest.raises(receipts.ReceiptMalformed, match="incomplete"):
        receipts.verify(get_settings(), jws.rsplit(".", 1)[0])


@pytest.mark.parametrize("token", [None, "", "   ", "abc", "a.b", "a.b.c.d", "é.é.é",
                                   "W10.e30." + "A" * 43])
def test_garbage_is_malformed(env, token):
    with pytest.raises(receipts.ReceiptMalformed):
        receipts.verify(get_settings(), token)


def test_signed_content_that_is_not_a_receipt_is_refused(signed):
    _, jws = signed
    head = jws.split(".")[0]
    key = receipt_key(KEY_NEW)
    for body, message in ((b"[]", "not a JSON object"), (b"{nope", "not JSON"),
                          (b'{"version":"KI-CR-v1.1.0","version":"x"}', "names a field twice"),
                          (b'{"version":"KI-CR-v1.0.0"}', "not a KI-CR-v1.1.0")):
        mac = hmac.new(key, f"{head}.{b64(body)}".encode(), hashlib.sha256).digest()
        token = f"{head}.{b64(body)}.{b64(mac)}"
        with pytest.raises(receipts.ReceiptMalformed, match=message):
            receipts.verify(get_settings(), token)


def test_a_wrong_key_id_is_refused(signed):
    _, jws = signed
    header = json.loads(unb64(jws.split(".")[0]))
    with pytest.raises(receipts.ReceiptUnknownKey, match="key we no longer hold"):
        receipts.verify(get_settings(), reforged(jws, header={**header, "kid": "0" * 16}))
    with pytest.raises(receipts.ReceiptUnknownKey):
        receipts.verify(get_settings(), reforged(jws, header={**header, "kid": 7}))


def test_key_rotation(env, monkeypatch):
    subject = decide("max@example.eu", newsletter="accept").subject
    receipt = receipt_of(subject)
    monkeypatch.setenv("LINK_SECRET_KEYS", KEY_OLD)
    old = receipts.sign(get_settings(), receipt)

    monkeypatch.setenv("LINK_SECRET_KEYS", f"{KEY_OLD},{KEY_NEW}")
    assert receipts.verify(get_settings(), old) == receipt  # the old key is still listed
    new = receipts.sign(get_settings(), receipt)  # the newest key signs
    kid = lambda token: json.loads(unb64(token.split(".")[0]))["kid"]  # noqa: E731
    assert kid(new) == receipts.key_id(receipt_key(KEY_NEW)) != kid(old)
    assert receipts.verify(get_settings(), new) == receipt
    # another listed key's id on this signature does not make it pass
    header = json.loads(unb64(new.split(".")[0]))
    with pytest.raises(receipts.ReceiptTampered):
        receipts.verify(get_settings(), reforged(new, header={**header, "kid": kid(old)}))

    monkeypatch.setenv("LINK_SECRET_KEYS", KEY_NEW)  # the old key is retired
    with pytest.raises(receipts.ReceiptUnknownKey):
        receipts.verify(get_settings(), old)
    assert receipts.verify(get_settings(), new) == receipt


def test_a_receipt_key_is_never_a_link_key(signed):
    _, jws = signed
    settings = get_settings()
    key = receipt_key(KEY_NEW)
    for kind in LINK_KINDS:
        assert key not in links.signer(settings, f"optinproof.link.{kind}").derived_keys
        with pytest.raises(LinkError):
            links.verify(settings, kind, jws)
    token, _ = links.mint(settings, "confirm", "a" * 64, ["newsletter"])
    with pytest.raises(ReceiptError):
        receipts.verify(settings, token)
