"""What Amazon SES tells us about our mails: bounces and complaints, as proof events.

SES publishes them to an SNS topic, and SNS POSTs them to ``/hooks/ses/<secret>``
(signature checked in :mod:`chalicelib.mail.sns`). Both SES formats are read: identity
notifications (``notificationType``) and configuration-set event publishing
(``eventType``).

- A bounce is recorded on the person's chain (``bounced``, with its type and the SES
  message it answers, hence the campaign). A permanent bounce marks the address
  undeliverable: we send it nothing more until someone types it into a form again.
- A complaint ("this is spam") is the person saying no: ``complained`` is recorded and
  every purpose is withdrawn, synced to Act! like any withdrawal.
- SNS may deliver a message twice: the person's profile remembers the last SNS
  message ids it applied, checked inside the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalicelib.consent import rules
from chalicelib.consent.catalogue import Catalogue
from chalicelib.consent.subjects import normalise_email, subject_key
from chalicelib.core.clock import now_iso
from chalicelib.core.errors import BadInput, InvalidEmail
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.proof.chain import new_event_id
from chalicelib.store import keys
from chalicelib.store.ledger import Draft, Ledger, Plan, Snapshot

_REMEMBERED = 20  # SNS message ids kept per person against redelivery


@dataclass(frozen=True)
class Notice:
    """One SES notification, reduced to what the proof needs (no raw addresses kept)."""

    kind: str  # bounce | complaint | other
    recipients: tuple[str, ...]
    ses_message_id: str | None
    detail: dict[str, Any]


def parse(message: str) -> Notice:
    """The SNS ``Message`` of an SES notification; BadInput if it is not one."""
    try:
        data = json.loads(message)
    except (TypeError, ValueError) as exc:
        raise BadInput("The SNS message is not an SES notification (not JSON).") from exc
    if not isinstance(data, dict):
        raise BadInput("The SNS message is not an SES notification (not an object).")
    kind = str(data.get("notificationType") or data.get("eventType") or "").lower()
    mail: dict[str, Any] = data["mail"] if isinstance(data.get("mail"), dict) else {}
    ses_id = mail.get("messageId") if isinstance(mail.get("messageId"), str) else None
    if kind == "bounce":
        bounce = _object(data, "bounce")
        return Notice(
            "bounce",
            _addresses(bounce, "bouncedRecipients"),
            ses_id,
            {
                "bounce_type": str(bounce.get("bounceType") or "Undetermined"),
                "bounce_subtype": str(bounce.get("bounceSubType") or ""),
                "feedback_id": str(bounce.get("feedbackId") or ""),
            },
        )
    if kind == "complaint":
        complaint = _object(data, "complaint")
        return Notice(
            "complaint",
            _addresses(complaint, "complainedRecipients"),
            ses_id,
            {
                "feedback_type": str(complaint.get("complaintFeedbackType") or ""),
                "feedback_id": str(complaint.get("feedbackId") or ""),
            },
        )
    if not kind:
        raise BadInput("The SNS message is not an SES notification (no notificationType).")
    return Notice(kind, (), ses_id, {})


def _object(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    if not isinstance(value, dict):
        raise BadInput(f"The SES {name} notification has no {name!r} object.")
    return value


def _addresses(body: dict[str, Any], name: str) -> tuple[str, ...]:
    recipients = body.get(name)
    if not isinstance(recipients, list) or not recipients:
        raise BadInput(f"The SES notification lists no {name}.")
    found = [r.get("emailAddress") for r in recipients if isinstance(r, dict)]
    addresses = tuple(a for a in found if isinstance(a, str) and a)
    if not found or len(addresses) != len(found):
        raise BadInput(f"The SES notification has a recipient without emailAddress in {name}.")
    return addresses


@dataclass(frozen=True)
class Outcome:
    recorded: int
    unknown: int
    duplicate: int


def apply(
    ledger: Ledger, settings: Settings, catalogue: Catalogue, notice: Notice, sns_message_id: str
) -> Outcome:
    """Record ``notice`` on each recipient's chain; unknown addresses change nothing."""
    recorded = unknown = duplicate = 0
    for address in notice.recipients:
        subject = _subject(settings, address)
        if subject is None:
            unknown += 1
            continue
        result = _apply_one(ledger, settings, catalogue, notice, sns_message_id, subject)
        recorded += result == "recorded"
        unknown += result == "unknown"
        duplicate += result == "duplicate"
    log("ses_notice", kind=notice.kind, recorded=recorded, unknown=unknown, duplicate=duplicate)
    return Outcome(recorded, unknown, duplicate)


def _subject(settings: Settings, address: str) -> str | None:
    # SES may write "Name <a@b>"; the key is the bare address.
    bare = address.rsplit("<", 1)[-1].rstrip(">").strip()
    try:
        return subject_key(settings.subject_pepper, normalise_email(bare))
    except InvalidEmail:
        return None


def _campaign_of(ledger: Ledger, subject: str, ses_message_id: str | None) -> str | None:
    """The channel of the mail SES answers about (``campaign:<id>``, ``form:<id>``…)."""
    if not ses_message_id:
        return None
    for event in ledger.query(keys.subject_pk(subject), keys.EVENT_PREFIX, forward=False):
        if event.get("kind") == "mail_sent" and event.get("provider_message_id") == ses_message_id:
            return event.get("channel")
    return None


def _apply_one(
    ledger: Ledger,
    settings: Settings,
    catalogue: Catalogue,
    notice: Notice,
    sns_message_id: str,
    subject: str,
) -> str:
    if notice.kind not in ("bounce", "complaint"):
        return "unknown"
    channel = _campaign_of(ledger, subject, notice.ses_message_id)
    note = {
        "kind": "bounced" if notice.kind == "bounce" else "complained",
        "sns_message_id": sns_message_id,
        "ses_message_id": notice.ses_message_id,
        "mail_channel": channel,
        **{k: v for k, v in notice.detail.items() if v},
    }
    outcome = {"value": "recorded"}
    asked = rules.asked_purposes(ledger, subject) if notice.kind == "complaint" else set()

    def build(snap: Snapshot) -> Plan:
        profile = snap.profile or {}
        if snap.profile is None and not snap.states:
            outcome["value"] = "unknown"
            return Plan()
        seen = list(profile.get("ses_seen") or [])
        # SES's feedback id names the bounce or complaint itself: the same notice
        # published through two topics (two SNS ids) is still one notice.
        ids = [sns_message_id] + (
            [f"fb:{notice.detail['feedback_id']}"] if notice.detail.get("feedback_id") else []
        )
        if any(key in seen for key in ids):
            outcome["value"] = "duplicate"
            return Plan()
        at = now_iso()
        remember: dict[str, Any] = {"ses_seen": [*seen, *ids][-_REMEMBERED:], "updated_at": at}
        if notice.kind == "bounce":
            plan = Plan(
                events=[Draft({"event_id": new_event_id(), "at": at, "channel": "ses", **note})]
            )
            if note.get("bounce_type") == "Permanent":
                remember["undeliverable"] = {"at": at, "reason": "permanent bounce"}
        else:
            remember["complained_at"] = at  # campaigns never ask this person again
            plan = rules.plan_withdraw_all(
                snap,
                catalogue,
                rules.Origin("ses", note=note),
                "complaint",
                asked,
                settings.webhook_subscribers,
            )
        plan.profile = {**(plan.profile or {}), **remember}
        plan.puts.extend(_campaign_marks(ledger, subject, channel, note["kind"], at))
        return plan

    ledger.commit(subject, build)
    return outcome["value"]


def _campaign_marks(
    ledger: Ledger, subject: str, channel: str | None, kind: str, at: str
) -> list[dict[str, Any]]:
    """Mark the campaign's contact as bounced, so the campaign report counts it."""
    if not channel or not channel.startswith("campaign:"):
        return []
    campaign_id = channel.removeprefix("campaign:")
    owner = ledger.get(*keys.campaign_subject(campaign_id, subject))
    item = (
        ledger.get(*keys.campaign_contact(campaign_id, owner["contact_id"]))
        if owner and owner.get("contact_id")
        else None
    )
    return [{**item, f"{kind}_at": at}] if item else []
