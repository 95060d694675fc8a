"""What an operator does to a campaign, whichever door they came through.

The admin API, the dashboard's campaign pages and the CLI all start, pause, resume
and remind through these functions, so a campaign started from a browser is the
campaign the API would have started: the same checks (:func:`define.define`), the
same run entry (:func:`jobs.schedule`), the same record of who asked. Each action is
logged and written once as its own item (``CAMPAIGN#<id>`` / ``ACTION#<at>#<id>``),
beside the run state the sweep reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.act.client import ActClient
from chalicelib.campaigns import define, jobs
from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.clock import now_iso
from chalicelib.core.errors import BadInput
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

ACTIONS = ("started", "paused", "resumed", "reminded")


@dataclass(frozen=True)
class Spec:
    """What a campaign is asked to be, before :func:`define.define` checks it."""

    id: Any
    purposes: list[str]
    audience: str
    audience_value: str | None
    delivery: Any
    locale: Any = None
    link_field: Any = None
    #: The language rule: each contact's language from this Act! field, else ``locale``.
    locale_field: Any = None
    #: Ask only the contacts whose proof is weak or missing (``campaigns.proof``).
    proof: Any = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Spec:
        """The body of ``POST /admin/campaigns``."""
        audience, value = define.audience_of(body)
        return cls(
            body.get("id"),
            define.purposes_of(body),
            audience,
            value,
            body.get("delivery"),
            body.get("locale"),
            body.get("link_field"),
            body.get("locale_field"),
            body.get("proof"),
        )


def define_campaign(
    ledger: Ledger,
    settings: Settings,
    catalogue: Catalogue,
    spec: Spec,
    client: ActClient | None = None,
) -> define.Campaign:
    """Check and record the campaign (the same id with the same settings is kept);
    ``client``: Act!, to check the language rule's field exists."""
    return define.define(
        ledger,
        settings,
        catalogue,
        spec.id,
        list(spec.purposes),
        spec.audience,
        spec.audience_value,
        spec.delivery,
        spec.locale,
        spec.link_field,
        spec.locale_field,
        client,
        spec.proof,
    )


def start(
    ledger: Ledger,
    settings: Settings,
    catalogue: Catalogue,
    spec: Spec,
    requested_by: str,
    client: ActClient | None = None,
) -> tuple[define.Campaign, dict[str, Any]]:
    """Define the campaign and schedule its first run: the campaign sweep delivers."""
    campaign = define_campaign(ledger, settings, catalogue, spec, client)
    run = jobs.schedule(ledger, campaign, requested_by)
    record(ledger, campaign.id, "started", requested_by, round=run.get("round", 1))
    return campaign, run


def pause(ledger: Ledger, campaign_id: str, requested_by: str) -> dict[str, Any]:
    """Stop the sweep working on the campaign; a pass under way stops within seconds."""
    run = jobs.pause(ledger, campaign_id, requested_by)
    record(ledger, campaign_id, "paused", requested_by, round=run.get("round", 1))
    return run


def resume(ledger: Ledger, campaign_id: str, requested_by: str) -> dict[str, Any]:
    """Run the campaign again: what is left, or what failed; nobody is reached twice."""
    run = jobs.schedule(ledger, define.load(ledger, campaign_id), requested_by)
    record(ledger, campaign_id, "resumed", requested_by, round=run.get("round", 1))
    return run


def remind(ledger: Ledger, campaign_id: str, requested_by: str) -> dict[str, Any]:
    """A reminder round for the contacts who did not answer (BadInput if nobody is left)."""
    run = jobs.schedule(ledger, define.load(ledger, campaign_id), requested_by, remind=True)
    record(ledger, campaign_id, "reminded", requested_by, round=run.get("round", 1))
    return run


def run_again(
    ledger: Ledger, campaign_id: str, requested_by: str, remind_them: bool = False
) -> dict[str, Any]:
    """``POST /admin/campaigns/{id}/run``: resume, or a reminder round."""
    if remind_them:
        return remind(ledger, campaign_id, requested_by)
    return resume(ledger, campaign_id, requested_by)


def record(ledger: Ledger, campaign_id: str, action: str, by: str, **details: Any) -> None:
    """Write one operator action (never rewritten) and log it."""
    if action not in ACTIONS:
        raise BadInput(f"Unknown campaign action {action!r}.")
    at = now_iso()
    ledger.put(
        keys.item(
            keys.campaign_action(campaign_id, at, uuid.uuid4().hex[:12]),
            campaign_id=campaign_id,
            action=action,
            by=by,
            at=at,
            **details,
        ),
        only_new=True,
    )
    log("campaign_action", campaign=campaign_id, action=action, by=by, **details)


def actions(ledger: Ledger, campaign_id: str) -> Iterator[dict[str, Any]]:
    """Every recorded action on the campaign, newest first."""
    for item in ledger.query(
        keys.campaign_pk(campaign_id), keys.CAMPAIGN_ACTION_PREFIX, forward=False
    ):
        yield {k: v for k, v in item.items() if k not in ("pk", "sk")}
