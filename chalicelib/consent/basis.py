"""Legal basis per purpose, objections, and the reasons a withdrawal may give.

Not every message needs consent. In France (CNIL, article L.34-5 of the CPCE) an
existing customer may receive mails about similar products (``soft_opt_in``), and a
professional may receive, at a work address, mails about their job
(``legitimate_interest``), if they could object when their address was collected and
can object in every mail. Such a purpose is never offered as "Accept / Refuse": the
person is informed, and may object. An objection is recorded and honoured exactly
like a withdrawal (state ``withdrawn``, Act!, ``aemOptOut``, the counters); lifting it
later is recorded as ``accepted`` on that basis (the event says which).

What proves the person could object is the opt-out wording they were offered: the
catalogue versions it like a purpose text, the events cite its version and SHA-256,
and the wording itself is stored once (``TEXT#<sha256>``) like every wording shown.

A withdrawal may say why, in one optional click (:data:`REASONS`): never required,
a bad value refused with the reason (400) before anything is written.
"""

from __future__ import annotations

from typing import Any

from chalicelib.consent.catalogue import Catalogue, Purpose
from chalicelib.core.errors import BadInput
from chalicelib.store.ledger import Ledger

CONSENT = "consent"
#: The page's two answers for a purpose on another basis than consent.
KEEP, OBJECT = "keep", "object"
OBJECTION_CHOICES = {KEEP: "accepted", OBJECT: "withdrawn"}
#: Why a person withdraws, one click, optional; counted per purpose on the dashboard.
REASONS = ("too_many", "not_relevant", "never_signed_up", "other")


def on_consent(purpose: Purpose) -> bool:
    """Whether the purpose rests on consent (asked: Accept / Refuse)."""
    return purpose.legal_basis == CONSENT


def offered(purpose: Purpose, locale: str | None) -> dict[str, Any]:
    """The event fields naming a purpose's basis and the opt-out wording offered.

    For a consent purpose only ``legal_basis``; otherwise the opt-out's version and the
    SHA-256 of the wording in ``locale`` (the event's own time is when it was offered).
    """
    fields: dict[str, Any] = {"legal_basis": purpose.legal_basis}
    if on_consent(purpose):
        return fields
    text = purpose.opt_out.get(locale or "") or next(iter(purpose.opt_out.values()))
    fields["opt_out_version"] = purpose.opt_out_version
    fields["opt_out_sha256"] = text.sha256
    return fields


def keep_opt_outs(
    ledger: Ledger, catalogue: Catalogue, purposes: list[str] | tuple[str, ...], locale: str | None
) -> None:
    """Store each opt-out wording the next events cite (idempotent, before the events)."""
    for purpose_id in purposes:
        purpose = catalogue.purposes.get(purpose_id)
        if purpose is None or on_consent(purpose):
            continue
        text = purpose.opt_out.get(locale or "") or next(iter(purpose.opt_out.values()))
        ledger.put_text(
            text.sha256,
            {
                "purpose": purpose.id,
                "locale": text.locale,
                "title": text.title,
                "text": text.text,
                "opt_out_version": purpose.opt_out_version,
                "wording": "opt_out",
            },
        )


def mail_opt_outs(
    catalogue: Catalogue, purposes: list[str] | tuple[str, ...], locale: str | None
) -> list[dict[str, Any]]:
    """What a mail offers to object to: one entry per purpose not on consent."""
    return [
        {"purpose": purpose_id, **offered(catalogue.purposes[purpose_id], locale)}
        for purpose_id in purposes
        if purpose_id in catalogue.purposes and not on_consent(catalogue.purposes[purpose_id])
    ]


def parse_choices(
    catalogue: Catalogue, asked: tuple[str, ...], choices: dict[str, str]
) -> dict[str, str]:
    """Each posted choice as the state it asks for; a choice that does not fit the
    purpose's basis (Accept for a soft opt-in, Object for a consent) is refused."""
    from chalicelib.consent.rules import CHOICES

    parsed: dict[str, str] = {}
    for purpose_id, value in choices.items():
        if purpose_id not in asked:
            raise BadInput(f"This link does not ask about the purpose {purpose_id!r}.")
        purpose = catalogue.purposes.get(purpose_id)
        if purpose is None:
            raise BadInput(f"The purpose {purpose_id!r} is no longer offered.")
        allowed = CHOICES if on_consent(purpose) else OBJECTION_CHOICES
        if value not in allowed:
            raise BadInput(
                f"The choice for {purpose_id!r} must be {' or '.join(allowed)}, not {value!r}."
            )
        parsed[purpose_id] = allowed[value]
    return parsed


def objection_change(
    purpose: Purpose,
    current: dict[str, Any],
    wanted: str,
    locale: str | None,
    method: str | None,
    text_sha256: str | None = None,
) -> dict[str, Any] | None:
    """The change an answer about a non-consent purpose makes, or None.

    Objecting makes the state ``withdrawn`` (whatever it was: the person is out);
    "keep" records something only when it lifts an earlier objection. ``text_sha256``:
    the purpose text the page showed (stored by the decision), None for a withdraw
    link or a complaint, which show no purpose text.
    """
    state = current.get("state")
    if wanted == "withdrawn" and state == "withdrawn":
        return None
    if wanted == "accepted" and state != "withdrawn":
        return None
    extra = {**offered(purpose, locale), "objection": wanted == "withdrawn"}
    return {
        "state": wanted,
        "text_sha256": text_sha256,
        "method": method,
        "extra": extra,
    }


def parse_reason(value: str | None) -> str | None:
    """The optional withdrawal reason posted; BadInput (400) for a value not offered."""
    if value is None or value == "":
        return None
    if value not in REASONS:
        raise BadInput(
            f"The reason for withdrawing must be one of {', '.join(REASONS)} (or none), "
            f"not {value!r}."
        )
    return value


def with_reason(changed: dict[str, Any] | None, reason: str | None) -> dict[str, Any] | None:
    """A withdrawal (or refusal) change carrying the person's reason, when they gave one."""
    if changed is None or reason is None or changed.get("state") not in ("withdrawn", "refused"):
        return changed
    return {**changed, "extra": {**changed.get("extra", {}), "withdrawal_reason": reason}}
