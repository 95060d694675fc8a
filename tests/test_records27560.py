"""ISO/IEC TS 27560 consent records (W3C DPV, JSON-LD), built from DynamoDB Local.

Decisions are recorded the way people make them (a confirm link, a withdraw link, the
signup form and the mail); the records document is read back from the table, checked
field by field against the chain, and validated against
schemas/consent-record-27560.v1.json. The schema is then shown to refuse records that
lack what ISO 27560 makes mandatory (legal basis, withdrawal method, ...).
"""
from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker, ValidationError

from chalicelib.consent import rules
from chalicelib.consent.rules import RequestContext
from chalicelib.core.clock import iso, parse_iso
from chalicelib.core.errors import CatalogueError
from chalicelib.core.services import get_catalogue, get_ledger
from chalicelib.core.settings import get_settings
from chalicelib.proof import records27560 as records
from chalicelib.store import keys
from tests.conftest import ROOT

SCHEMA = json.loads(
    (ROOT / "schemas" / "consent-record-27560.v1.json").read_text(encoding="utf-8"))
CTX = RequestContext("192.0.2.10", "pytest-browser/1.0", "en-GB")


def validate(document: dict[str, Any]) -> None:
    Draft202012Validator(SCHEMA, format_checker=FormatChecker()).validate(document)


def decide(email: str, **choices: str) -> str:
    """Mint a confirm link for the chosen purposes and decide through it; the subject."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    issued = rules.issue_link(ledger, settings, catalogue, email, list(choices), channel="test")
    link, record = rules.open_link(ledger, settings, "confirm", issued.token, catalogue)
    shown = {p: catalogue.get(p).text("en").sha256 for p in choices}
    rules.decide(ledger, catalogue, link, record, choices, "en", shown, CTX)
    return issued.subject


def withdraw(email: str, *purposes: str) -> None:
    """One-click withdrawal through a withdraw link, as a mail client does it."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    issued = rules.issue_link(ledger, settings, catalogue, email, list(purposes),
                              kind="withdraw", channel="test")
    link, record = rules.open_link(ledger, settings, "withdraw", issued.token)
    rules.withdraw(ledger, catalogue, link, record, "en", CTX, method="one_click")


def document_of(subject: str, catalogue: Any = None) -> dict[str, Any]:
    return records.for_subject(get_ledger(), get_settings(), catalogue or get_catalogue(),
                               subject)


def by_purpose(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["dpv:hasProcess"]["dpv:hasPurpose"]["dct:identifier"]: r
            for r in document["@graph"]}


def kinds(record: dict[str, Any]) -> list[str]:
    return [s["@type"] for s in record["dpv:hasConsentStatus"]]


# -- built from the ledger -------------------------------------------------------------------

def test_accept_and_refuse_make_two_valid_records_matching_the_chain(env, catalogue):
    subject = decide("ann@example.eu", newsletter="accept", events="refuse")
    document = document_of(subject)
    validate(document)
    chain = list(get_ledger().events(subject))
    accepted = next(e for e in chain if e["kind"] == "accepted")
    refused = next(e for e in chain if e["kind"] == "refused")
    assert "ann@example.eu" not in json.dumps(document)  # the keyed hash, never the address
    assert document["dpv:hasDataSubject"] == f"urn:optinproof:subject:{subject}"
    assert document["@context"]["dpv"] == "https://w3id.org/dpv#"

    news, events = by_purpose(document)["newsletter"], by_purpose(document)["events"]
    assert news["@type"] == "dpv:ConsentRecord"
    assert news["dct:conformsTo"] == "https://w3id.org/dpv/schema/dpv-27560#record"
    assert kinds(news) == ["dpv:ConsentRequested", "dpv:ConsentGiven"]
    assert kinds(events) == ["dpv:ConsentRequested", "dpv:ConsentRefused"]
    assert news["optinproof:state"] == "accepted" and events["optinproof:state"] == "refused"
    assert news["optinproof:currentStatus"] == "dpv:ConsentGiven"

    given = news["dpv:hasConsentStatus"][-1]
    assert given["dct:identifier"] == accepted["event_id"]
    assert given["optinproof:eventHash"] == accepted["hash"]
    assert given["dpv:isIndicatedAtTime"] == accepted["at"]
    assert given["dpv:isIndicatedBy"] == f"urn:optinproof:subject:{subject}"
    assert given["dpv:hasNotice"] == f"urn:optinproof:text:{accepted['text_sha256']}"
    assert "'Accept' on the confirmation page" in given["dpv:hasIndicationMethod"]
    expiry = iso(parse_iso(accepted["at"]) + timedelta(days=1095))
    assert given["dpv:hasDuration"] == [
        {"@type": "dpv:TemporalDuration", "rdf:value": "P1095D"},
        {"@type": "dpv:UntilTimeDuration", "rdf:value": expiry}]
    assert news["optinproof:validUntil"] == expiry and events["optinproof:validUntil"] is None
    requested = news["dpv:hasConsentStatus"][0]
    assert requested["dpv:isIndicatedBy"] == records.CONTROLLER_ID
    assert events["dpv:hasConsentStatus"][-1]["dct:identifier"] == refused["event_id"]

    [notice, policy] = news["dpv:hasNotice"]
    text = catalogue.get("newsletter").text("en")
    assert notice == {"@id": f"urn:optinproof:text:{text.sha256}", "@type": "dpv:ConsentNotice",
                      "dct:identifier": text.sha256, "dct:title": text.title,
                      "dct:description": text.text, "dct:language": "en",
                      "dct:hasVersion": catalogue.get("newsletter").version}
    assert policy["@type"] == "dpv:PrivacyNotice"
    assert policy["schema:url"] == catalogue.controller.privacy_policy_url
    assert news["dct:language"] == ["en"]

    process = news["dpv:hasProcess"]
    assert process["dpv:hasLegalBasis"] == ["eu-gdpr:A6-1-a", "dpv:ExpressedConsent"]
    assert process["dpv:hasJurisdiction"] == ["loc:EU"]  # the catalogue names no country
    assert process["dpv:hasRecipient"] == [records.HOSTING_ID]  # no Act!, no SMTP here
    assert process["dpv:hasDataController"] == records.CONTROLLER_ID
    storage = process["dpv:hasStorageCondition"]
    assert storage[-1] == {"@type": "dpv:StorageLocation", "dpv:hasLocation": "loc:IE",
                           "dct:description": "Amazon Web Services region eu-west-1"}
    assert "proof of consent" in storage[1]["dpv:hasDuration"]["rdf:value"]
    exercised = [c.get("dpv:isExercisedAt") for c in process["dpv:hasConsentControl"]]
    assert exercised == [None, "http://testserver/rights",
                         f"mailto:{catalogue.controller.contact_email}"]
    [controller] = [e for e in news["dpv:hasEntity"] if e["@id"] == records.CONTROLLER_ID]
    assert controller["dpv:hasLegalName"] == catalogue.controller.name
    assert controller["schema:address"]["schema:streetAddress"] == catalogue.controller.address
    # the same person in the same states: the same record ids, download after download
    assert [r["@id"] for r in document_of(subject)["@graph"]] == \
        [r["@id"] for r in document["@graph"]]


def test_withdrawal_closes_the_record_and_says_how(env):
    subject = decide("bob@example.eu", newsletter="accept")
    first = by_purpose(document_of(subject))["newsletter"]
    withdraw("bob@example.eu", "newsletter")
    document = document_of(subject)
    validate(document)
    news = by_purpose(document)["newsletter"]
    assert news["@id"] == first["@id"] and news["dct:modified"] > first["dct:modified"]
    assert kinds(news) == ["dpv:ConsentRequested", "dpv:ConsentGiven", "dpv:ConsentWithdrawn"]
    withdrawn = news["dpv:hasConsentStatus"][-1]
    assert withdrawn["dpv:hasIndicationMethod"].startswith("One-click withdrawal link")
    assert withdrawn["dpv:isIndicatedBy"] == f"urn:optinproof:subject:{subject}"
    # the expiry shown belongs to the decision in force only: none once withdrawn
    assert news["optinproof:state"] == "withdrawn" and news["optinproof:validUntil"] is None
    assert len(news["dpv:hasConsentStatus"][1]["dpv:hasDuration"]) == 1


def test_act_crm_is_named_as_processor_and_recipient(act_env):
    subject = decide("cy@example.eu", newsletter="accept")
    document = document_of(subject)
    validate(document)
    process = by_purpose(document)["newsletter"]["dpv:hasProcess"]
    assert process["dpv:hasRecipient"] == [records.HOSTING_ID, records.ACT_ID]
    assert process["dpv:hasDataProcessor"] == process["dpv:hasRecipient"]
    [act] = [e for e in by_purpose(document)["newsletter"]["dpv:hasEntity"]
             if e["@id"] == records.ACT_ID]
    assert act["@type"] == ["dpv:LegalEntity", "dpv:DataProcessor", "dpv:Recipient"]
    assert act["dpv:hasLegalName"] == "Act! CRM"


# -- legal bases and validity the catalogue may set ------------------------------------------

def _with(catalogue: Any, purpose_id: str, **changes: Any) -> Any:
    changed = replace(catalogue.get(purpose_id), **changes)
    return replace(catalogue, purposes={**catalogue.purposes, purpose_id: changed})


@pytest.mark.parametrize(("basis", "terms", "given", "record_type"), [
    ("soft_opt_in", ["eu-gdpr:A6-1-f", "dpv:LegitimateInterestOfController"],
     "optinproof:NotObjected", "optinproof:OptOutRecord"),
    ("legitimate_interest", ["eu-gdpr:A6-1-f", "dpv:LegitimateInterestOfController"],
     "optinproof:NotObjected", "optinproof:OptOutRecord"),
    ("consent", ["eu-gdpr:A6-1-a", "dpv:ExpressedConsent"], "dpv:ConsentGiven",
     "dpv:ConsentRecord"),
])
def test_each_legal_basis_maps_to_its_gdpr_article(env, basis, terms, given, record_type):
    subject = decide("dee@example.eu", newsletter="accept")
    catalogue = _with(get_catalogue(), "newsletter", legal_basis=basis)
    document = document_of(subject, catalogue)
    validate(document)
    news = by_purpose(document)["newsletter"]
    assert news["@type"] == record_type
    assert news["dpv:hasProcess"]["dpv:hasLegalBasis"] == terms
    assert news["dpv:hasProcess"]["optinproof:legalBasis"] == basis
    assert kinds(news)[-1] == given  # another basis never shows a consent given
    if basis == "soft_opt_in":
        assert "L.34-5" in news["dpv:hasProcess"]["dct:description"]
    # the validity the decision was stamped with (the state's valid_until) stands
    (state,) = get_ledger().get_many([keys.purpose(subject, "newsletter")])
    assert news["dpv:hasConsentStatus"][-1]["dpv:hasDuration"][-1] == {
        "@type": "dpv:UntilTimeDuration", "rdf:value": state["valid_until"]}
    assert news["optinproof:validUntil"] == state["valid_until"]


def test_an_unknown_legal_basis_is_a_catalogue_error(env):
    subject = decide("eve@example.eu", newsletter="accept")
    catalogue = _with(get_catalogue(), "newsletter", legal_basis="contract")
    with pytest.raises(CatalogueError, match="legal basis 'contract' has no DPV mapping"):
        document_of(subject, catalogue)


def test_expiry_renewal_and_imported_evidence_from_the_chain(env, catalogue):
    """Events the validity sweep and the importer record (issue 18, parts 1 and 3)."""
    subject, base = "f" * 64, {"purpose": "newsletter", "channel": "import"}
    chain = [
        {**base, "event_id": "e1", "seq": 1, "kind": "imported", "at": "2025-01-01T00:00:00.000Z",
         "source": "mailchimp", "grade": "B", "hash": "1" * 64},
        {**base, "event_id": "e2", "seq": 2, "kind": "expired", "at": "2028-01-01T00:00:00.000Z",
         "hash": "2" * 64},
        {**base, "event_id": "e3", "seq": 3, "kind": "accepted", "at": "2028-02-01T00:00:00.000Z",
         "previous_state": "expired", "channel": "renewal", "hash": "3" * 64},
    ]
    state = {"state": "accepted", "event_id": "e3", "decided_at": chain[2]["at"],
             "valid_until": "2031-03-01T00:00:00.000Z"}
    document = records.build(get_settings(), catalogue, subject, None, {"newsletter": state},
                             chain, {}, now="2028-02-02T00:00:00.000Z")
    validate(document)
    [news] = document["@graph"]
    assert kinds(news) == ["dpv:ConsentGiven", "dpv:ConsentExpired", "dpv:RenewedConsentGiven"]
    imported, expired, renewed = news["dpv:hasConsentStatus"]
    assert "mailchimp, grade B: not a double opt-in" in imported["dpv:hasIndicationMethod"]
    assert expired["dpv:isIndicatedBy"] == records.CONTROLLER_ID
    assert news["optinproof:validUntil"] == "2031-03-01T00:00:00.000Z"  # the state's own
    assert renewed["dpv:hasDuration"][-1] == {"@type": "dpv:UntilTimeDuration",
                                              "rdf:value": "2031-03-01T00:00:00.000Z"}
    assert news["dct:created"] == chain[0]["at"] and news["dct:modified"] == chain[2]["at"]


# -- the schema refuses what 27560 makes mandatory -------------------------------------------

def _valid_document(env: Any) -> dict[str, Any]:
    document = document_of(decide("gil@example.eu", newsletter="accept"))
    validate(document)
    return document


def _process(document: dict[str, Any]) -> dict[str, Any]:
    return document["@graph"][0]["dpv:hasProcess"]


@pytest.mark.parametrize("breakage", [
    "no legal basis", "no GDPR article", "no withdrawal method", "no recipient",
    "no jurisdiction", "no retention", "no notice", "no status", "status without time",
    "address in the record", "address as subject", "unknown status", "no controller",
    "wrong profile",
])
def test_schema_refuses_a_record_missing_what_27560_requires(env, breakage):
    document = copy.deepcopy(_valid_document(env))
    record, process = document["@graph"][0], _process(document)
    status = record["dpv:hasConsentStatus"][-1]
    if breakage == "no legal basis":
        del process["dpv:hasLegalBasis"]
    elif breakage == "no GDPR article":
        process["dpv:hasLegalBasis"] = ["dpv:ExpressedConsent"]
    elif breakage == "no withdrawal method":
        process["dpv:hasConsentControl"] = [
            c for c in process["dpv:hasConsentControl"]
            if "dpv:WithdrawConsent" not in c["@type"]]
    elif breakage == "no recipient":
        process["dpv:hasRecipient"] = []
    elif breakage == "no jurisdiction":
        del process["dpv:hasJurisdiction"]
    elif breakage == "no retention":
        process["dpv:hasStorageCondition"] = [
            c for c in process["dpv:hasStorageCondition"] if c["@type"] != "dpv:StorageDuration"]
    elif breakage == "no notice":
        record["dpv:hasNotice"] = []
    elif breakage == "no status":
        record["dpv:hasConsentStatus"] = []
    elif breakage == "status without time":
        del status["dpv:isIndicatedAtTime"]
    elif breakage == "address in the record":
        record["schema:email"] = "gil@example.eu"
    elif breakage == "address as subject":
        record["dpv:hasDataSubject"] = "mailto:gil@example.eu"
    elif breakage == "unknown status":
        status["@type"] = "dpv:ConsentMaybe"
    elif breakage == "no controller":
        record["dpv:hasEntity"] = [e for e in record["dpv:hasEntity"]
                                   if e["@id"] != records.CONTROLLER_ID]
    elif breakage == "wrong profile":
        record["dct:conformsTo"] = "https://example.com/other"
    with pytest.raises(ValidationError):
        validate(document)


# -- where a person, an operator and a script get them ---------------------------------------

def test_rights_page_offers_the_records_download(person, client):
    page = client.http.get(person["rights"])
    assert page.status_code == 200
    assert f'href="{person["rights"]}/records.jsonld"' in page.body.decode()
    answer = client.http.get(person["rights"] + "/records.jsonld")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/ld+json"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert 'filename="consent-records.jsonld"' in answer.headers["Content-Disposition"]
    document = json.loads(answer.body)
    validate(document)
    assert "zoe@example.eu" not in answer.body.decode().lower()
    news, events = by_purpose(document)["newsletter"], by_purpose(document)["events"]
    assert kinds(news) == ["dpv:ConsentRequested", "dpv:ConsentGiven"]
    assert kinds(events) == ["dpv:ConsentRequested", "dpv:ConsentRefused"]
    assert news["dpv:hasConsentStatus"][0]["dpv:hasIndicationMethod"].startswith(
        "Request from the signup form 'website'")
    assert news["dpv:hasProcess"]["dpv:hasRecipient"] == [  # SMTP mail here, and Act!
        records.HOSTING_ID, records.SMTP_ID, records.ACT_ID]
    assert "pd:Name" in news["dpv:hasProcess"]["dpv:hasPersonalData"]  # the form asked it


def test_records_download_refuses_bad_tokens_like_the_other_downloads(person, client):
    rights = person["rights"]
    forged = rights[:-3] + ("abc" if not rights.endswith("abc") else "xyz")
    for token_path in (forged, "/r/not-a-token"):
        mine = client.http.get(token_path + "/records.jsonld")
        theirs = client.http.get(token_path + "/receipt.json")
        assert mine.status_code == theirs.status_code >= 400
        assert "@context" not in mine.body.decode()


def test_admin_api_cli_and_evidence_pack_give_the_same_records(person, client, tmp_path,
                                                              capsys, monkeypatch):
    from chalicelib.cli import main
    from chalicelib.web import admin_auth

    monkeypatch.setenv("ADMIN_SECRET_KEYS", "k" * 40)
    bearer = {"Authorization": f"Bearer {admin_auth.mint(get_settings(), 'dpo-desk', 300)}"}
    answer = client.http.get("/admin/records?email=Zoe@Example.eu", headers=bearer)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/ld+json"
    by_api = json.loads(answer.body)
    validate(by_api)
    assert client.http.get("/admin/records?email=zoe@example.eu").status_code == 401
    assert client.http.get("/admin/records?email=nobody@example.eu",
                           headers=bearer).status_code == 404

    capsys.readouterr()
    assert main(["records", "--email", "zoe@example.eu"]) == 0
    by_cli = json.loads(capsys.readouterr().out)
    validate(by_cli)
    assert [r["@id"] for r in by_cli["@graph"]] == [r["@id"] for r in by_api["@graph"]]
    out = tmp_path / "zoe.jsonld"
    assert main(["records", "--subject", by_api["dpv:hasDataSubject"].rsplit(":", 1)[1],
                 "--out", str(out)]) == 0
    validate(json.loads(out.read_text(encoding="utf-8")))
    assert main(["records", "--email", "nobody@example.eu"]) == 1

    assert main(["evidence", "--email", "zoe@example.eu", "--out", str(tmp_path)]) == 0
    [pack] = tmp_path.glob("evidence-*.json")
    in_pack = json.loads(pack.read_text(encoding="utf-8"))["evidence"]["consent_records_27560"]
    validate(in_pack)
    assert [r["@id"] for r in in_pack["@graph"]] == [r["@id"] for r in by_api["@graph"]]


def test_the_document_is_json_ld_that_expands_offline_to_dpv_iris(env):
    """The inline context is enough (no fetch), and every term becomes the DPV IRI."""
    from pyld import jsonld

    def no_network(url: str, options: Any = None) -> Any:
        raise AssertionError(f"the records document made the reader fetch {url}")

    subject = decide("hal@example.eu", newsletter="accept", events="refuse")
    document = document_of(subject)
    quads = jsonld.to_rdf(document, {"format": "application/n-quads",
                                     "documentLoader": no_network})
    record = next(r["@id"] for r in document["@graph"]
                  if r["dpv:hasProcess"]["dpv:hasPurpose"]["dct:identifier"] == "newsletter")
    rdf_type = "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>"
    assert f"<{record}> {rdf_type} <https://w3id.org/dpv#ConsentRecord>" in quads
    assert ("<https://w3id.org/dpv#hasLegalBasis> "
            "<https://w3id.org/dpv/legal/eu/gdpr#A6-1-a>") in quads
    assert f"{rdf_type} <https://w3id.org/dpv#ConsentGiven>" in quads
    assert f"{rdf_type} <https://w3id.org/dpv#ConsentRefused>" in quads
    assert "<https://w3id.org/dpv#hasJurisdiction> <https://w3id.org/dpv/loc#EU>" in quads
    assert "^^<http://www.w3.org/2001/XMLSchema#dateTime>" in quads
    # no compact IRI was left behind as a plain string (a term the context misses)
    for prefix in ("dpv:", "eu-gdpr:", "loc:", "pd:", "dct:", "schema:", "optinproof:"):
        assert f'"{prefix}' not in quads, prefix


def test_after_erasure_the_records_still_prove_and_name_nobody(env, capsys):
    from chalicelib.cli import main

    subject = decide("ivy@example.eu", newsletter="accept")
    withdraw("ivy@example.eu", "newsletter")
    assert main(["erase", "--email", "ivy@example.eu", "--yes"]) == 0
    capsys.readouterr()
    assert main(["records", "--subject", subject]) == 0
    document = json.loads(capsys.readouterr().out)
    validate(document)
    [news] = document["@graph"]
    assert news["optinproof:state"] == "erased" and news["optinproof:validUntil"] is None
    assert kinds(news) == ["dpv:ConsentRequested", "dpv:ConsentGiven", "dpv:ConsentWithdrawn"]
    assert "ivy@example.eu" not in json.dumps(document)
