"""Following a campaign: per purpose, who was reached, opened, answered, bounced."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.campaigns.define import DONE, FAILED, SKIPPED, Campaign, contact_items
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

ANSWERS = ("accepted", "refused", "withdrawn")


@dataclass
class Report:
    """Per purpose: sent, answers through this campaign, no answer, bounced; and the rest."""

    campaign: Campaign
    purposes: dict[str, dict[str, int]]
    skipped: dict[str, int]
    failed: int
    undelivered: int
    no_answer: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign.id,
            "purposes": self.purposes,
            "skipped": self.skipped,
            "failed": self.failed,
            "undelivered": self.undelivered,
            "no_answer_contacts": len(self.no_answer),
        }


def _bounced(ledger: Ledger, item: dict[str, Any]) -> bool:
    """SES said the mail bounced, or we gave up sending it."""
    if item.get("bounced_at"):
        return True
    mail = ledger.get(*keys.mail(item["mail_id"])) if item.get("mail_id") else None
    return bool(mail and mail.get("status") == "failed")


def no_answer_filter(ledger: Ledger, campaign: Campaign) -> Callable[[dict[str, Any]], bool]:
    """Keeps the contacts that did not answer (for a reminder sent by another mailer)."""
    wanted = {item["contact_id"] for item in report(ledger, campaign).no_answer}
    return lambda item: item["contact_id"] in wanted


def report(ledger: Ledger, campaign: Campaign) -> Report:
    """Count what every contact of the campaign did with its link (one read per person)."""
    counts = {
        p: {"sent": 0, **{a: 0 for a in ANSWERS}, "no_answer": 0, "bounced": 0}
        for p in campaign.purposes
    }
    skipped: dict[str, int] = {}
    failed = undelivered = 0
    no_answer = []
    for item in contact_items(ledger, campaign.id):
        status = item.get("status")
        if status == SKIPPED:
            skipped[item.get("reason", "?")] = skipped.get(item.get("reason", "?"), 0) + 1
            continue
        if status == FAILED:
            failed += 1
            continue
        if status != DONE:
            undelivered += 1
            continue
        if item.get("link_withdrawn_at"):  # the contact's address changed: taken back
            skipped["address_changed"] = skipped.get("address_changed", 0) + 1
            continue
        profile, states = ledger.current(item["subject"])
        bounced, answered = _bounced(ledger, item), bool((profile or {}).get("complained_at"))
        for purpose in campaign.purposes:
            counts[purpose]["sent"] += 1
            state = states.get(purpose) or {}
            # A no is a no whichever way it came (a complaint, a withdraw link): such a
            # person is never reminded.
            if state.get("state") in ANSWERS and (
                state.get("channel") == campaign.channel or state.get("state") != "accepted"
            ):
                counts[purpose][state["state"]] += 1
                answered = True
            elif bounced:
                counts[purpose]["bounced"] += 1
            else:
                counts[purpose]["no_answer"] += 1
        if not answered and not bounced:
            no_answer.append(item)
    return Report(campaign, counts, skipped, failed, undelivered, no_answer)
