"""The data-subject rights: a person asks by address, gets a signed link, sees their data.

Access goes through the mailbox, like consent: anyone may type an address into the
public page, but only its owner receives the rights link. The answer is the same
whether we hold data about the address or not (no enumeration), requests are
throttled per address and per IP, and the link is of its own kind (it cannot decide
consent) and short-lived (``LINK_MAX_AGE_RIGHTS``, 24 h by default).

What the person sees and downloads is built here, from their own items only:
profile, purpose states, the exact wordings they were shown, every event of their
chain (with the chain's verification), and the Act! sync state of each purpose. The
JSON follows ``schemas/subject-export.v1.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.consent import links
from chalicelib.consent.catalogue import Catalogue
from chalicelib.consent.links import Link
from chalicelib.consent.rules import RequestContext, draft_link
from chalicelib.consent.subjects import mail_address, normalise_email, subject_key
from chalicelib.consent.throttle import Throttle, rate_key
from chalicelib.core.clock import now_iso
from chalicelib.core.errors import Contention, OutcomeUnknown, StoreUnavailable
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.mail.compose import N_
from chalicelib.mail.outbox import MailOrder, new_mail_id, outbox_item
from chalicelib.proof import anchor, audit
from chalicelib.proof.chain import PERSONAL_FIELDS, new_event_id
from chalicelib.store import keys
from chalicelib.store.ledger import Draft, Ledger, Plan, Snapshot

EXPORT_SCHEMA = "https://optinproof.eu/schemas/subject-export.v1.json"
EXPORT_VERSION = 1


@dataclass(frozen=True)
class RightsRequest:
    """What happened behind the neutral answer (for logs and tests only)."""

    status: str  # mailed | unknown | throttled_ip | throttled_address | no_mail
    subject: str | None = None
    mail_id: str | None = None


def request_access(
    ledger: Ledger,
    settings: Settings,
    catalogue: Catalogue,
    email: str,
    locale: str,
    ctx: RequestContext,
) -> RightsRequest:
    """Mail a rights link to ``email`` if we hold data about it; InvalidEmail if malformed."""
    address = mail_address(email)
    taken: list[tuple[str, str, int]] = []
    reason = _throttled(ledger, settings, address, ctx, taken)
    if reason:
        return RightsRequest(reason)
    subject = subject_key(settings.subject_pepper, normalise_email(address))
    if settings.mail.transport == "none":
        log("rights_request_unmailable", level="warning", subject=subject)
        return RightsRequest("no_mail", subject)
    at, state = now_iso(), {"status": "unknown"}

    def build(snap: Snapshot) -> Plan:
        if not snap.profile or not snap.profile.get("email"):
            state["status"] = "unknown"  # nothing held, or erased: no mail, same answer
            return Plan()
        rights = draft_link(settings, subject, "rights", [], "rights_page", at, ctx)
        # The page's "change my choices" link, issued with it (a rights link never decides).
        prefs = draft_link(
            settings, subject, "preferences", list(catalogue.purposes), "rights_page", at, ctx
        )
        rights.record["preferences_link_id"] = prefs.issued.link_id
        order = MailOrder(
            new_mail_id(),
            subject,
            "rights",
            snap.profile.get("locale") or locale,
            (),
            "",
            channel="rights_page",
            rights_link_id=rights.issued.link_id,
        )
        state.update(status="mailed", mail_id=order.mail_id)
        note = Draft(
            {
                "event_id": new_event_id(),
                "kind": "access_requested",
                "at": at,
                "channel": "rights_page",
                "link_id": rights.issued.link_id,
            },
            ctx.personal(),
        )
        return Plan(
            events=[note, rights.event, prefs.event],
            puts=[rights.record, prefs.record, outbox_item(order, at, rights.record["expires_at"])],
            profile={"updated_at": at},
        )

    try:
        ledger.commit(subject, build)
    except OutcomeUnknown:
        raise
    except StoreUnavailable:  # nothing recorded: the throttle gets its hits back
        Throttle(ledger).refund(taken)
        raise
    log("rights_requested", subject=subject, outcome=state["status"])
    return RightsRequest(state["status"], subject, state.get("mail_id"))


def _throttled(
    ledger: Ledger,
    settings: Settings,
    address: str,
    ctx: RequestContext,
    taken: list[tuple[str, str, int]],
) -> str:
    throttle, pepper, limits = Throttle(ledger), settings.subject_pepper, settings.mail
    try:
        if ctx.ip and not throttle.hit(
            "rights-ip", rate_key(pepper, "ip", ctx.ip), limits.per_ip, taken=taken
        ):
            return "throttled_ip"
        if not throttle.hit(
            "rights-address",
            rate_key(pepper, "address", normalise_email(address)),
            limits.per_address,
            taken=taken,
        ):
            return "throttled_address"
    except Contention:
        return "throttled_contention"
    return ""


# -- what we hold --------------------------------------------------------------------------


def _texts(ledger: Ledger, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The exact wording of every text version this person's events cite."""
    shas = sorted({e["text_sha256"] for e in events if e.get("text_sha256")} | _opt_outs(events))
    texts = []
    for sha in shas:
        item = ledger.get(*keys.content(keys.TEXT, sha)) or {}
        texts.append(
            {
                "sha256": sha,
                "purpose": item.get("purpose"),
                "locale": item.get("locale"),
                "purpose_version": item.get("purpose_version"),
                "title": item.get("title"),
                "text": item.get("text"),
                **({"wording": item["wording"]} if item.get("wording") else {}),
            }
        )
    return texts


def _opt_outs(events: list[dict[str, Any]]) -> set[str]:
    """The opt-out wordings the events cite (a purpose not on consent, consent/basis.py)."""
    shas = {e["opt_out_sha256"] for e in events if e.get("opt_out_sha256")}
    for event in events:
        shas.update(o["opt_out_sha256"] for o in event.get("opt_outs_offered") or ())
    return shas


def _purposes(
    catalogue: Catalogue, states: dict[str, dict[str, Any]], locale: str
) -> list[dict[str, Any]]:
    rows = []
    for purpose_id in sorted(states):
        state = states[purpose_id]
        known = purpose_id in catalogue.purposes
        rows.append(
            {
                "id": purpose_id,
                "title": catalogue.get(purpose_id).text(locale).title if known else purpose_id,
                "offered": known,
                "state": state.get("state"),
                "decided_at": state.get("decided_at"),
                "channel": state.get("channel"),
                "purpose_version": state.get("purpose_version"),
                "text_sha256": state.get("text_sha256"),
                "event_id": state.get("event_id"),
                "legal_basis": state.get("legal_basis")
                or (catalogue.get(purpose_id).legal_basis if known else "consent"),
                "act_sync": {
                    "status": state.get("sync_status"),
                    "synced_at": state.get("synced_at"),
                    "attempts": state.get("sync_attempts"),
                    "last_error": state.get("sync_error"),
                },
                **_imported(state),
            }
        )
    return rows


def _imported_rows(ledger: Ledger, subject: str) -> dict[str, Any]:
    """The rows imported about the person from other tools, with their original
    columns (personal data we hold, hence in the export); absent when there are none."""
    rows = [
        {
            "source": item.get("source"),
            "purpose": item.get("purpose"),
            "grade": item.get("grade"),
            "line": item.get("line"),
            "imported_at": item.get("imported_at"),
            "event_id": item.get("event_id"),
            "columns": item.get("columns"),
            "columns_salt": item.get("columns_salt"),
        }
        for item in ledger.query(keys.subject_pk(subject), keys.IMPORTED_PREFIX)
    ]
    return {"imported_rows": rows} if rows else {}


def _imported(state: dict[str, Any]) -> dict[str, Any]:
    """A state resting on imported evidence says where from and its grade: it is never
    a double opt-in recorded by OptinProof (``consent.imports``)."""
    if state.get("source") != "imported":
        return {}
    return {"imported": {"source": state.get("import_source"), "grade": state.get("grade")}}


#: What we keep and for how long: the same words for every person, in the export (in
#: English) and on the report page (translated there).
RETENTION = {
    "profile": N_(
        "Your address, name and language: while you hold a consent with us; if "
        "you never confirm, until your confirmation link expires."
    ),
    "events": N_(
        "The record of each request, e-mail and decision: kept as proof of consent "
        "for as long as we may need to show it (GDPR art. 7(1)); erasure removes "
        "your address, name, IP address and browser from it."
    ),
    "links": N_(
        "Links: confirmation %(confirm)d days, withdrawal %(withdraw)d days, this "
        "page %(rights)d hours."
    ),
}


def link_lifetimes(settings: Settings) -> dict[str, int]:
    return {
        "confirm": settings.link_max_age["confirm"] // 86400,
        "withdraw": settings.link_max_age["withdraw"] // 86400,
        "rights": max(1, settings.link_max_age["rights"] // 3600),
    }


def retention(settings: Settings, translate: Callable[[str], str] = str) -> dict[str, str]:
    """The retention statement, in English unless a gettext function is given."""
    texts = {key: translate(text) for key, text in RETENTION.items()}
    texts["links"] %= link_lifetimes(settings)
    return texts


def export(
    ledger: Ledger,
    settings: Settings,
    catalogue: Catalogue,
    subject: str,
    locale: str | None = None,
) -> dict[str, Any]:
    """Everything we hold about one subject, as the documented JSON (schema v1)."""
    profile, states = ledger.current(subject)
    events = list(ledger.events(subject))
    locale = locale or (profile or {}).get("locale") or catalogue.default_locale
    report = audit.verify_subject(ledger, subject)
    controller = catalogue.controller
    tombstone = ledger.get(*keys.tombstone(subject))
    return {
        "$schema": EXPORT_SCHEMA,
        "export_version": EXPORT_VERSION,
        "generated_at": now_iso(),
        "controller": {
            "name": controller.name,
            "address": controller.address,
            "contact_email": controller.contact_email,
            "privacy_policy_url": controller.privacy_policy_url,
        },
        "subject": {
            "key": subject,
            "email": (profile or {}).get("email"),
            "name": (profile or {}).get("name"),
            "locale": (profile or {}).get("locale"),
            "created_at": (profile or {}).get("created_at"),
            "updated_at": (profile or {}).get("updated_at"),
            "act_contact_ids": list((profile or {}).get("act_contact_ids") or []),
            "undeliverable": bool((profile or {}).get("undeliverable")),
            "erased_at": (tombstone or {}).get("erased_at"),
        },
        "purposes": _purposes(catalogue, states, locale),
        "texts": _texts(ledger, events),
        **_imported_rows(ledger, subject),
        # As sealed, salt included: anyone holding the file can re-check every hash and
        # every IP / user-agent commitment with chalicelib/proof.py alone.
        "events": events,
        "chain": {
            "events": report.events,
            "verified": report.ok,
            "problem": report.reason or None,
            "how_to_verify": "SHA-256 of the canonical JSON of each event (sorted keys, "
            "no spaces, UTF-8, null fields omitted) without hash and "
            f"{', '.join(PERSONAL_FIELDS)}, personal_salt; each "
            "prev_hash is the previous event's hash (the first: 64 "
            "zeros).",
        },
        "retention": retention(settings),
        # Each anchor: the head it stamped, the leaf, its Merkle path and the RFC 3161
        # token (proof/anchor.py); ``optinproof evidence verify`` checks them offline.
        "anchors": anchor.subject_anchors(ledger, subject),
    }


def offered(link: Link, catalogue: Catalogue) -> Link:
    """A preferences link shows the purposes still offered (a retired one is left out)."""
    return link._replace(purposes=tuple(p for p in link.purposes if p in catalogue.purposes))


def preferences_href(
    ledger: Ledger, settings: Settings, link: Link, record: dict[str, Any]
) -> str | None:
    """The preferences page issued with this rights link (re-signed from its record)."""
    prefs = (
        ledger.link(record.get("preferences_link_id") or "")
        if record.get("preferences_link_id")
        else None
    )
    if not prefs or prefs.get("subject") != link.subject:
        return None
    token, _ = links.mint(
        settings, "preferences", link.subject, prefs["purposes"], prefs["link_id"]
    )
    return f"/p/{token}"
