"""Consent records others can read: ISO/IEC TS 27560 in the W3C DPV vocabulary, JSON-LD.

The Kantara receipt (:mod:`chalicelib.proof.receipts`) says which consents are in
force; this says, per purpose, everything ISO/IEC TS 27560:2023 asks a consent record
to hold, in the terms the W3C Data Privacy Vocabularies and Controls Community Group
maps it to, so a consent manager, a regulator's tool or the person's own software can
read it without knowing OptinProof:

* the DPVCG guide "Consent Records and Receipts as per ISO/IEC TS 27560:2023 using
  DPV" (final report 2024-08-01, https://w3id.org/dpv/guides/consent-27560): the
  field table of its section 8.2 and the record fields of section 9;
* DPV 2 (https://w3id.org/dpv, namespace ``https://w3id.org/dpv#``), its EU GDPR
  extension (``https://w3id.org/dpv/legal/eu/gdpr#``), locations
  (``https://w3id.org/dpv/loc#``) and personal data (``https://w3id.org/dpv/pd#``).

One document per person: an inline ``@context`` (no fetch needed to read it), and in
``@graph`` one ``dpv:ConsentRecord`` per purpose the person was ever asked about,
``dct:conformsTo`` ``https://w3id.org/dpv/schema/dpv-27560#record``. Field by field
(the guide's names, then ours):

* schema version ``dct:conformsTo``; record id ``dct:identifier`` (a UUID5 of subject
  and purpose: the same record across downloads, updated by each event);
* PII principal ``dpv:hasDataSubject``: the keyed subject hash, never the address
  (below); notice ``dpv:hasNotice``: every wording version the person was shown for
  the purpose (``dpv:ConsentNotice``, id and ``dct:identifier`` its SHA-256, with title,
  text, language and purpose version) and the privacy policy (``dpv:PrivacyNotice``);
* processing ``dpv:hasProcess``: purpose, legal basis, personal data, processing
  operations, controller, processors and recipients (``dpv:hasDataProcessor``,
  ``dpv:hasRecipient``: the hosting and mail provider, Act! CRM when configured),
  jurisdiction (``loc:EU`` plus the controller's country when the catalogue names
  one), applicable law, retention and storage location (``dpv:hasStorageCondition``),
  and the withdrawal method (``dpv:hasConsentControl`` with ``dpv:WithdrawConsent``
  and ``dpv:isExercisedAt``);
* events ``dpv:hasConsentStatus``: one node per event of the person's hash chain about
  the purpose, oldest first (the last is the current status), each with its type
  (``dpv:ConsentRequested``, ``ConsentGiven``, ``RenewedConsentGiven``,
  ``ConsentRefused``, ``ConsentWithdrawn``, ``ConsentExpired``), time
  (``dpv:isIndicatedAtTime``), who (``dpv:isIndicatedBy``), how
  (``dpv:hasIndicationMethod``), validity (``dpv:hasDuration``: ``TemporalDuration``
  ``P1095D``, ``UntilTimeDuration`` the expiry, or ``UntilEventDuration``) and the
  event's id and hash in the chain, which stays the evidence;
* parties ``dpv:hasEntity``: controller (legal name, postal address, contact,
  policy), processors, data subject.

Legal basis (``Purpose.legal_basis``, ``consent`` by default): ``consent`` is GDPR art.
6(1)(a), ``eu-gdpr:A6-1-a`` with ``dpv:ExpressedConsent`` (a click on "accept" on a page
reached from the mailbox is an expressed, double opt-in consent). ``legitimate_interest``
is art. 6(1)(f), ``eu-gdpr:A6-1-f`` with ``dpv:LegitimateInterestOfController``.
``soft_opt_in`` is the same GDPR basis: the ePrivacy Directive art. 13(2) (France: CPCE
art. L.34-5) lifts the consent requirement for mail to existing customers about
similar products if an opt-out is offered at collection and in every mail, and GDPR
recital 47 names direct marketing as a legitimate interest; DPV has no term for the
ePrivacy exemption, so the record says it in ``dct:description``. A purpose on another
basis than consent is not a consent, so its record is an ``optinproof:OptOutRecord``
and its events read ``optinproof:OptOutOffered`` / ``NotObjected`` / ``Objected`` /
``Lapsed`` instead of DPV's consent statuses: it never shows a consent given.

The person's address is left out of every record, even the one the person downloads:
a record is made to be handed on (to a regulator, another tool), the guide itself
calls an e-mail as identifier contrary to data protection by design, and the keyed
hash is what the chain is filed under: the controller, holding the pepper, can link
an address to it on request, no one else can. The address is in ``export.json`` and
in the signed receipt, which the person gets from the same page.

Validity: the state's ``valid_until`` when the catalogue's validity rule set one,
else the decision time plus ``Purpose.validity_days`` (1095 days by default; ``None``:
until withdrawn). Built by :func:`for_subject` (reads the table) or :func:`build`
(pure), validated in the tests against ``schemas/consent-record-27560.v1.json``.

Size: one format's whole mapping (statuses, methods, durations, parties, notices),
kept in one place so the schema, the docs and the code name the same fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from chalicelib.consent.catalogue import Catalogue, Purpose
from chalicelib.core.clock import iso, now_iso, parse_iso
from chalicelib.core.errors import CatalogueError
from chalicelib.core.settings import Settings
from chalicelib.proof.receipts import _channel_words
from chalicelib.rights.access import retention
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

SCHEMA = "https://optinproof.eu/schemas/consent-record-27560.v1.json"
RECORD_PROFILE = "https://w3id.org/dpv/schema/dpv-27560#record"
MEDIA_TYPE = "application/ld+json"
_NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://optinproof.eu/consent-record-27560")

#: Inline, so the document reads (and expands) without fetching anything. Terms whose
#: values are IRIs are coerced to ``@id``; times are ``xsd:dateTime``.
CONTEXT: dict[str, Any] = {
    "dpv": "https://w3id.org/dpv#",
    "eu-gdpr": "https://w3id.org/dpv/legal/eu/gdpr#",
    "loc": "https://w3id.org/dpv/loc#",
    "pd": "https://w3id.org/dpv/pd#",
    "dct": "http://purl.org/dc/terms/",
    "schema": "https://schema.org/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "optinproof": "https://optinproof.eu/ns#",
    **{
        term: {"@type": "@id"}
        for term in (
            "dct:conformsTo",
            "dct:publisher",
            "dpv:hasDataSubject",
            "dpv:hasDataController",
            "dpv:hasDataProcessor",
            "dpv:hasRecipient",
            "dpv:hasLegalBasis",
            "dpv:hasJurisdiction",
            "dpv:hasApplicableLaw",
            "dpv:hasLocation",
            "dpv:hasPersonalData",
            "dpv:hasProcessing",
            "dpv:isIndicatedBy",
            "dpv:isExercisedAt",
            "dpv:hasNotice",
            "schema:url",
            "optinproof:currentStatus",
        )
    },
    **{
        term: {"@type": "xsd:dateTime"}
        for term in (
            "dct:created",
            "dct:modified",
            "dpv:isIndicatedAtTime",
            "optinproof:validUntil",
        )
    },
}

CONTROLLER_ID = "urn:optinproof:party:controller"
HOSTING_ID = "urn:optinproof:party:aws"
ACT_ID = "urn:optinproof:party:act-crm"
SMTP_ID = "urn:optinproof:party:smtp-relay"

#: Catalogue legal basis → (DPV / GDPR terms, why, in words).
LEGAL_BASES: dict[str, tuple[list[str], str]] = {
    "consent": (
        ["eu-gdpr:A6-1-a", "dpv:ExpressedConsent"],
        "Consent (GDPR art. 6(1)(a)), given by double opt-in: a click on a link "
        "e-mailed to the address.",
    ),
    "soft_opt_in": (
        ["eu-gdpr:A6-1-f", "dpv:LegitimateInterestOfController"],
        "Soft opt-in: mail to an existing customer about similar products, with an "
        "opt-out offered at collection and in every mail (ePrivacy Directive "
        "2002/58/EC art. 13(2); France: CPCE art. L.34-5); GDPR art. 6(1)(f), "
        "recital 47.",
    ),
    "legitimate_interest": (
        ["eu-gdpr:A6-1-f", "dpv:LegitimateInterestOfController"],
        "Legitimate interest of the controller (GDPR art. 6(1)(f)); an objection "
        "(art. 21) is honoured like a withdrawal.",
    ),
}

#: Event kind → status, for consent and for the other bases (no consent to show).
_CONSENT_STATUS = {
    "requested": "dpv:ConsentRequested",
    "accepted": "dpv:ConsentGiven",
    "refused": "dpv:ConsentRefused",
    "withdrawn": "dpv:ConsentWithdrawn",
    "expired": "dpv:ConsentExpired",
}
_OPT_OUT_STATUS = {
    "requested": "optinproof:OptOutOffered",
    "accepted": "optinproof:NotObjected",
    "refused": "optinproof:Objected",
    "withdrawn": "optinproof:Objected",
    "expired": "optinproof:Lapsed",
}
_DECISIONS = ("accepted", "refused", "withdrawn")
_RENEWING = ("accepted", "expired")

#: European AWS regions and their country (ISO 3166-1 alpha-2), for the storage location;
#: GB and CH are outside the EU, and the record then says so by the country itself.
_REGION_COUNTRY = {
    "eu-west-1": "IE",
    "eu-west-3": "FR",
    "eu-central-1": "DE",
    "eu-central-2": "CH",
    "eu-north-1": "SE",
    "eu-south-1": "IT",
    "eu-south-2": "ES",
    "eu-west-2": "GB",
}


# -- reading ---------------------------------------------------------------------------


def for_subject(
    ledger: Ledger, settings: Settings, catalogue: Catalogue, subject: str
) -> dict[str, Any]:
    """The records document of one subject, read from the table (chain, states, texts)."""
    profile, states = ledger.current(subject)
    events = list(ledger.events(subject))
    return build(settings, catalogue, subject, profile, states, events, _texts(ledger, events))


def _texts(ledger: Ledger, events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The stored wording (``TEXT#<sha>``) of every text version the events cite."""
    found = {}
    for sha in sorted({e["text_sha256"] for e in events if e.get("text_sha256")}):
        item = ledger.get(*keys.content(keys.TEXT, sha))
        if item is not None:
            found[sha] = item
    return found


# -- building (pure) -------------------------------------------------------------------


def build(
    settings: Settings,
    catalogue: Catalogue,
    subject: str,
    profile: Mapping[str, Any] | None,
    states: Mapping[str, Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    texts: Mapping[str, Mapping[str, Any]],
    now: str | None = None,
) -> dict[str, Any]:
    """One JSON-LD document: a ``dpv:ConsentRecord`` per purpose the person was asked."""
    by_purpose = _events_by_purpose(events)
    purposes = sorted(set(by_purpose) | set(states))
    parties = _parties(settings, catalogue)
    records = [
        _record(
            settings,
            catalogue,
            subject,
            profile,
            purpose,
            states.get(purpose, {}),
            by_purpose.get(purpose, []),
            texts,
            parties,
            any(e.get("kind") == "erased" for e in events) and not profile,
        )
        for purpose in purposes
    ]
    document_id = str(uuid.uuid5(_NS, "|".join([subject, *(e["event_id"] for e in events)])))
    return {
        "@context": CONTEXT,
        "@id": f"urn:uuid:{document_id}",
        "dct:identifier": document_id,
        "dct:conformsTo": SCHEMA,
        "dct:created": now or now_iso(),
        "dct:publisher": CONTROLLER_ID,
        "dpv:hasDataSubject": _subject_id(subject),
        "@graph": records,
    }


def _subject_id(subject: str) -> str:
    return f"urn:optinproof:subject:{subject}"


def _events_by_purpose(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The chain's events about each purpose, in chain order.

    A confirm link issued for purposes counts as the request when no ``requested``
    event (a signup) already names it: the CLI, campaigns and Act! ask that way.
    """
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    requested = {
        (e.get("purpose"), e.get("link_id")) for e in events if e.get("kind") == "requested"
    }
    for event in events:
        if event.get("purpose") and event.get("kind") in (*_CONSENT_STATUS, "imported"):
            grouped.setdefault(event["purpose"], []).append(event)
        elif event.get("kind") == "link_issued" and event.get("link_kind") == "confirm":
            for purpose in event.get("purposes") or ():
                if (purpose, event.get("link_id")) not in requested:
                    grouped.setdefault(purpose, []).append(event)
    return grouped


def _basis(purpose: Purpose | None) -> str:
    basis = purpose.legal_basis if purpose else "consent"
    if basis not in LEGAL_BASES:
        raise CatalogueError(
            f"purpose {purpose.id if purpose else '?'!r}: legal basis {basis!r} has no "
            f"DPV mapping (known: {', '.join(LEGAL_BASES)})"
        )
    return str(basis)


def _validity_days(purpose: Purpose | None) -> int | None:
    if purpose is None:
        return None
    return purpose.validity_days


def _record(
    settings: Settings,
    catalogue: Catalogue,
    subject: str,
    profile: Mapping[str, Any] | None,
    purpose_id: str,
    state: Mapping[str, Any],
    events: list[Mapping[str, Any]],
    texts: Mapping[str, Mapping[str, Any]],
    parties: dict[str, Any],
    erased: bool,
) -> dict[str, Any]:
    purpose = catalogue.purposes.get(purpose_id)
    basis = _basis(purpose)
    days = _validity_days(purpose)
    current = _current(state, erased)
    valid_until = _valid_until(state, days)
    statuses = _statuses(subject, basis, days, events, state, valid_until)
    record_id = str(uuid.uuid5(_NS, f"{subject}|{purpose_id}"))
    times = [s["dpv:isIndicatedAtTime"] for s in statuses] or [state.get("decided_at") or now_iso()]
    notices = _notices(catalogue, events, texts)
    locale = (profile or {}).get("locale") or catalogue.default_locale
    return {
        "@id": f"urn:uuid:{record_id}",
        "@type": "dpv:ConsentRecord" if basis == "consent" else "optinproof:OptOutRecord",
        "dct:conformsTo": RECORD_PROFILE,
        "dct:identifier": record_id,
        "dct:created": min(times),
        "dct:modified": max(times),
        "dpv:hasDataSubject": _subject_id(subject),
        "dpv:hasNotice": notices,
        "dct:language": sorted({n["dct:language"] for n in notices if "dct:language" in n})
        or [locale],
        "dpv:hasProcess": _process(settings, catalogue, purpose_id, purpose, basis, profile),
        "dpv:hasConsentStatus": statuses,
        "optinproof:state": current,
        "optinproof:currentStatus": statuses[-1]["@type"] if statuses else None,
        "optinproof:validUntil": valid_until if current == "accepted" else None,
        "dpv:hasEntity": [
            *parties["entities"],
            {
                "@id": _subject_id(subject),
                "@type": "dpv:DataSubject",
                "dct:identifier": subject,
            },
        ],
    }


def _current(state: Mapping[str, Any], erased: bool) -> str:
    """The purpose's state; after an erasure (states removed) ``erased``."""
    if state.get("state"):
        return str(state["state"])
    if erased:
        return "erased"
    return "pending"


def _valid_until(state: Mapping[str, Any], days: int | None) -> str | None:
    """The state's expiry, else the decision time plus the purpose's validity."""
    if state.get("valid_until"):
        return str(state["valid_until"])
    if state.get("state") != "accepted" or days is None or not state.get("decided_at"):
        return None
    return iso(parse_iso(state["decided_at"]) + timedelta(days=days))


def _notices(
    catalogue: Catalogue,
    events: Iterable[Mapping[str, Any]],
    texts: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Each wording version the person was shown for the purpose, then the policy."""
    notices = []
    for sha in dict.fromkeys(e["text_sha256"] for e in events if e.get("text_sha256")):
        stored = texts.get(sha) or {}
        notice = {
            "@id": f"urn:optinproof:text:{sha}",
            "@type": "dpv:ConsentNotice",
            "dct:identifier": sha,
            "dct:title": stored.get("title"),
            "dct:description": stored.get("text"),
            "dct:language": stored.get("locale"),
            "dct:hasVersion": stored.get("purpose_version"),
        }
        notices.append({k: v for k, v in notice.items() if v is not None})
    notices.append(
        {
            "@id": catalogue.controller.privacy_policy_url,
            "@type": "dpv:PrivacyNotice",
            "schema:url": catalogue.controller.privacy_policy_url,
        }
    )
    return notices


def _process(
    settings: Settings,
    catalogue: Catalogue,
    purpose_id: str,
    purpose: Purpose | None,
    basis: str,
    profile: Mapping[str, Any] | None,
) -> dict[str, Any]:
    terms, words = LEGAL_BASES[basis]
    locale = (profile or {}).get("locale") or catalogue.default_locale
    title = purpose.text(locale).title if purpose and locale in purpose.texts else purpose_id
    category = (
        "dpv:DirectMarketing"
        if purpose is None or purpose.email_marketing
        else ("dpv:CommunicationManagement")
    )
    personal = ["pd:EmailAddress", "pd:IPAddress"]
    if (profile or {}).get("name"):
        personal.append("pd:Name")
    processors = _processor_ids(settings)
    return {
        "@type": "dpv:Process",
        "dpv:hasPurpose": {
            "@id": f"urn:optinproof:purpose:{purpose_id}",
            "@type": ["dpv:Purpose", category],
            "dct:identifier": purpose_id,
            "dct:title": title,
            "optinproof:offered": purpose is not None,
        },
        "dpv:hasLegalBasis": terms,
        "optinproof:legalBasis": basis,
        "dct:description": words,
        "dpv:hasPersonalData": personal,
        "dpv:hasProcessing": ["dpv:Collect", "dpv:Store", "dpv:Use"],
        "dpv:hasDataController": CONTROLLER_ID,
        "dpv:hasDataProcessor": processors,
        "dpv:hasRecipient": processors,
        "dpv:hasJurisdiction": _jurisdictions(catalogue),
        "dpv:hasApplicableLaw": ["eu-gdpr:GDPR"],
        "dpv:hasStorageCondition": _storage(settings),
        "dpv:hasConsentControl": _withdrawal(settings, catalogue),
    }


def _jurisdictions(catalogue: Catalogue) -> list[str]:
    country = getattr(catalogue.controller, "country", None)
    return ["loc:EU", *([f"loc:{country.upper()}"] if country else [])]


def _storage(settings: Settings) -> list[dict[str, Any]]:
    """Retention (the same words as the export) and where the table lives."""
    kept = retention(settings)
    conditions: list[dict[str, Any]] = [
        {
            "@type": "dpv:StorageDuration",
            "dct:title": "Profile",
            "dpv:hasDuration": {"@type": "dpv:UntilEventDuration", "rdf:value": kept["profile"]},
        },
        {
            "@type": "dpv:StorageDuration",
            "dct:title": "Proof of consent",
            "dpv:hasDuration": {"@type": "dpv:UntilEventDuration", "rdf:value": kept["events"]},
        },
    ]
    country = _REGION_COUNTRY.get(settings.aws_region)
    location = {
        "@type": "dpv:StorageLocation",
        "dct:description": f"Amazon Web Services region {settings.aws_region}",
    }
    if country:
        location["dpv:hasLocation"] = f"loc:{country}"
    conditions.append(location)
    return conditions


def _withdrawal(settings: Settings, catalogue: Catalogue) -> list[dict[str, Any]]:
    """How to withdraw: no live token goes into a record (it may be handed on)."""
    controls: list[dict[str, Any]] = [
        {
            "@type": "dpv:WithdrawConsent",
            "dct:title": "Withdrawal link in every e-mail",
            "dct:description": "One click on the withdrawal link at the bottom of any of "
            "our e-mails (or the mail client's unsubscribe button) withdraws at once.",
        },
        {
            "@type": "dpv:WithdrawConsent",
            "dct:title": "Write to the controller",
            "dpv:isExercisedAt": f"mailto:{catalogue.controller.contact_email}",
        },
    ]
    if settings.public_base_url:
        controls.insert(
            1,
            {
                "@type": ["dpv:WithdrawConsent", "dpv:ProvideConsent"],
                "dct:title": "Rights page",
                "dct:description": "Ask for a link by e-mail: the page it opens shows "
                "your data and lets you change your choices.",
                "dpv:isExercisedAt": f"{settings.public_base_url}/rights",
            },
        )
    return controls


def _processor_ids(settings: Settings) -> list[str]:
    ids = [HOSTING_ID]
    if settings.mail.transport == "smtp":
        ids.append(SMTP_ID)
    if settings.act is not None:
        ids.append(ACT_ID)
    return ids


def _parties(settings: Settings, catalogue: Catalogue) -> dict[str, Any]:
    """The controller and the processors, as 27560's party fields."""
    controller = catalogue.controller
    contact = {"@type": "schema:ContactPoint", "schema:email": controller.contact_email}
    entities: list[dict[str, Any]] = [
        {
            "@id": CONTROLLER_ID,
            "@type": ["dpv:LegalEntity", "dpv:DataController"],
            "dpv:hasIdentifier": CONTROLLER_ID,
            "dpv:hasLegalName": controller.name,
            "schema:address": {
                "@type": "schema:PostalAddress",
                "schema:streetAddress": controller.address,
            },
            "schema:contactPoint": contact,
            "schema:url": controller.privacy_policy_url,
        }
    ]
    mail = " and sends its e-mails (Amazon SES)" if settings.mail.transport == "ses" else ""
    described = {
        HOSTING_ID: (
            "Amazon Web Services",
            f"Hosts the consent service and its records{mail}, region {settings.aws_region}.",
        ),
        SMTP_ID: ("SMTP mail relay", "Delivers the e-mails of the consent service."),
        ACT_ID: (
            "Act! CRM",
            "The controller's customer database: receives each decision in the contact's "
            "consent fields and history.",
        ),
    }
    for party in _processor_ids(settings):
        name, what = described[party]
        entities.append(
            {
                "@id": party,
                "@type": ["dpv:LegalEntity", "dpv:DataProcessor", "dpv:Recipient"],
                "dpv:hasIdentifier": party,
                "dpv:hasLegalName": name,
                "dct:description": what,
                "schema:contactPoint": contact,
            }
        )
    return {"entities": entities}


# -- events ----------------------------------------------------------------------------


def _statuses(
    subject: str,
    basis: str,
    days: int | None,
    events: list[Mapping[str, Any]],
    state: Mapping[str, Any],
    valid_until: str | None,
) -> list[dict[str, Any]]:
    """One status node per event, oldest first; the last one is the current status."""
    names = _CONSENT_STATUS if basis == "consent" else _OPT_OUT_STATUS
    nodes = []
    for event in events:
        kind = _kind(event)
        status = names[kind]
        if basis == "consent" and kind == "accepted" and event.get("previous_state") in _RENEWING:
            status = "dpv:RenewedConsentGiven"
        current = event.get("event_id") == state.get("event_id")
        node = {
            "@id": f"urn:optinproof:event:{event['event_id']}",
            "@type": status,
            "dct:identifier": event["event_id"],
            "dpv:isIndicatedAtTime": event["at"],
            "dpv:isIndicatedBy": _subject_id(subject) if _by_person(event) else CONTROLLER_ID,
            "dpv:hasIndicationMethod": _method(event),
            "dpv:hasDuration": _durations(kind, days, valid_until if current else None, event),
            "dpv:hasLegalBasis": LEGAL_BASES[basis][0],
            "optinproof:eventKind": event.get("kind"),
            "optinproof:eventHash": event.get("hash"),
            "optinproof:eventSeq": int(event["seq"]) if event.get("seq") is not None else None,
        }
        if event.get("text_sha256"):
            node["dpv:hasNotice"] = f"urn:optinproof:text:{event['text_sha256']}"
        nodes.append({k: v for k, v in node.items() if v is not None})
    return nodes


def _kind(event: Mapping[str, Any]) -> str:
    """The decision word of an event: imported evidence says its own (default accepted)."""
    kind = str(event.get("kind"))
    if kind == "link_issued":
        return "requested"
    if kind == "imported":
        state = event.get("state") or event.get("decision") or "accepted"
        return state if state in _CONSENT_STATUS else "accepted"
    return kind


def _by_person(event: Mapping[str, Any]) -> bool:
    return event.get("kind") in (*_DECISIONS, "imported")


def _durations(
    kind: str, days: int | None, valid_until: str | None, event: Mapping[str, Any]
) -> list[dict[str, str]]:
    """How long the status holds: 27560's event duration (MUST be present)."""
    if kind == "requested":
        if event.get("link_expires_at"):
            return [{"@type": "dpv:UntilTimeDuration", "rdf:value": event["link_expires_at"]}]
        return [{"@type": "dpv:UntilEventDuration", "rdf:value": "until the person decides"}]
    if kind == "accepted":
        found = [
            {"@type": "dpv:TemporalDuration", "rdf:value": f"P{days}D"}
            if days is not None
            else {"@type": "dpv:UntilEventDuration", "rdf:value": "until withdrawn"}
        ]
        if valid_until:
            found.append({"@type": "dpv:UntilTimeDuration", "rdf:value": valid_until})
        return found
    return [{"@type": "dpv:UntilEventDuration", "rdf:value": "until the person decides again"}]


_WITHDRAW_METHODS = {
    "one_click": "one-click withdrawal link in an e-mail (or the mail client's unsubscribe)",
    "page": "withdrawal button on the page opened from a link e-mailed to the address",
    "complaint": "spam complaint reported by the mailbox provider, taken as a withdrawal",
}


def _method(event: Mapping[str, Any]) -> str:
    """How the status was expressed, in words (``dpv:hasIndicationMethod``)."""
    kind, where = event.get("kind"), _channel_words(str(event.get("channel") or ""))
    if kind == "requested":
        return f"Request from the {where}; a confirmation link was e-mailed to the address"
    if kind == "link_issued":
        return f"Confirmation link e-mailed to the address ({where})"
    if kind == "imported":
        return (
            f"Imported evidence from {event.get('source') or 'an earlier system'}, grade "
            f"{event.get('grade') or '?'}: not a double opt-in recorded by OptinProof"
        )
    if kind == "expired":
        return "Validity period ended without renewal (recorded by the expiry sweep)"
    method = event.get("method")
    if method:
        words = _WITHDRAW_METHODS.get(str(method), f"{method} ({where})")
        return words[:1].upper() + words[1:]
    page = "preferences page" if event.get("link_kind") == "preferences" else "confirmation page"
    answer = "Accept" if kind == "accepted" else "Refuse"
    return f"'{answer}' on the {page} opened from a link e-mailed to the address ({where})"
