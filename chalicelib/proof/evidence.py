"""The evidence pack for a regulator: one person's consent, provable from one file.

GDPR art. 7(1) puts the burden of proof on the controller. The pack holds what a
regulator needs to check a consent without access to our systems: every event of the
person's chain (with the salts, so the IP and user-agent commitments can be checked
too), the full wording of every purpose text version shown, every e-mail template
version sent, the forms and campaigns the events name, and the result of verifying
the chain and everything derived from it. The HTML rendering is the same content for
reading and printing; the JSON is the subject export (schema v1) plus those parts, and
the same consent as ISO/IEC TS 27560 records (``consent_records_27560``, W3C DPV,
JSON-LD) for a regulator's tools.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.settings import Settings
from chalicelib.core.templates import environment, stylesheet
from chalicelib.proof import audit, records27560
from chalicelib.rights import access
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger


def pack(ledger: Ledger, settings: Settings, catalogue: Catalogue, subject: str) -> dict[str, Any]:
    """The export of ``subject`` plus mail templates, forms, campaigns and the audit."""
    data = access.export(ledger, settings, catalogue, subject)
    events = data["events"]
    verdict = audit.verify_subject(ledger, subject)
    data["evidence"] = {
        "mail_templates": _templates(ledger, events),
        "forms": _forms(catalogue, events),
        "campaigns": _campaigns(ledger, events),
        "consent_records_27560": records27560.for_subject(ledger, settings, catalogue, subject),
        "verification": {
            "ok": verdict.ok,
            "events": verdict.events,
            "broken_seq": verdict.broken_seq,
            "reason": verdict.reason or None,
            "checks": [
                "event hashes and prev_hash links",
                "sequence and chain head",
                "IP/user-agent commitments",
                "purpose states follow from their last events",
                "cited wordings and mail templates stored intact",
            ],
        },
    }
    data["evidence"]["anchoring"] = _anchoring(data.get("anchors") or [], len(events))
    return data


def _anchoring(anchors: list[dict[str, Any]], events: int) -> dict[str, Any]:
    """What the anchors cover, for a reader; the checks themselves are
    ``proof.anchor_verify.verify_pack`` (``optinproof evidence verify``)."""
    through = max((int(a["head_seq"]) for a in anchors), default=0)
    return {
        "anchors": len(anchors),
        "anchored_through_seq": through,
        "waiting": max(0, events - through),
        "how_to_verify": "optinproof evidence verify FILE --ca TSA-ROOT.pem, or "
        "openssl ts -verify (docs/verify.md)",
    }


def _templates(ledger: Ledger, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    versions = sorted({e["template_version"] for e in events if e.get("template_version")})
    found = []
    for sha in versions:
        item = ledger.get(*keys.content(keys.MAIL_TEMPLATE, sha)) or {}
        found.append(
            {
                "sha256": sha,
                **{k: item.get(k) for k in ("mail_kind", "locale", "subject", "text", "html")},
            }
        )
    return found


def _forms(catalogue: Catalogue, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = sorted(
        {
            e["channel"].removeprefix("form:")
            for e in events
            if str(e.get("channel", "")).startswith("form:")
        }
    )
    forms = []
    for form_id in ids:
        form = catalogue.forms.get(form_id)
        forms.append(
            {
                "id": form_id,
                "defined_now": form is not None,
                **(
                    {k: v for k, v in dataclasses.asdict(form).items() if k != "id"} if form else {}
                ),
            }
        )
    return forms


def _campaigns(ledger: Ledger, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = sorted(
        {e["campaign_id"] for e in events if e.get("campaign_id")}
        | {
            e["channel"].removeprefix("campaign:")
            for e in events
            if str(e.get("channel", "")).startswith("campaign:")
        }
    )
    found = []
    for campaign_id in ids:
        item = ledger.get(*keys.campaign(campaign_id)) or {"campaign_id": campaign_id}
        found.append({k: v for k, v in item.items() if k not in ("pk", "sk")})
    return found


def html(data: dict[str, Any], locale: str) -> str:
    """The pack as one self-contained, printable HTML page (no external resource)."""
    css, _ = stylesheet()
    return (
        environment(locale)
        .get_template("evidence.html")
        .render(locale=locale, stylesheet=css, pack=data)
    )
