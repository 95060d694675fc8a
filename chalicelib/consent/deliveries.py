"""What a decision owes its webhook subscribers: the delivery items of its transaction.

Each decision event writes, with itself, one delivery item per subscriber
(``HOOKOUT#<event id>`` / ``TO#<n>``), so no decision is recorded without its
deliveries. This is the consent side (what is owed, built from the sealed event);
sending, signing and retrying are ``web.webhooks_out``'s.
"""

from __future__ import annotations

import json
import time
from typing import Any

from chalicelib.store import keys

QUEUE = keys.HOOKOUT_SHARD
DECISIONS = ("accepted", "refused", "withdrawn")
#: Delivery items (and their logs) are kept this long, then DynamoDB's TTL drops them.
KEEP_SECONDS = 90 * 86400


def payload(event: dict[str, Any]) -> dict[str, Any]:
    """What subscribers receive about a decision: no address, IP or user agent."""
    return {
        "type": f"consent.{event['kind']}",
        "event_id": event["event_id"],
        "subject": event["subject"],
        "purpose": event.get("purpose"),
        "state": event["kind"],
        "previous_state": event.get("previous_state"),
        "at": event["at"],
        "channel": event.get("channel"),
        "purpose_version": event.get("purpose_version"),
        "text_sha256": event.get("text_sha256"),
        "proof_hash": event.get("hash"),
        # Soft opt-in or legitimate interest: a ``withdrawn`` with ``objection`` true is
        # the person objecting (consent/basis.py); both are honoured the same way.
        "legal_basis": event.get("legal_basis") or "consent",
        "objection": bool(event.get("objection")),
    }


def delivery_items(event: dict[str, Any], subscribers: tuple[str, ...]) -> list[dict[str, Any]]:
    """The delivery items a decision writes with itself (one per subscriber)."""
    if event.get("kind") not in DECISIONS or not subscribers:
        return []
    body = json.dumps(payload(event), sort_keys=True, separators=(",", ":"))
    return [
        {
            **keys.item(keys.hookout(event["event_id"], index)),
            "url": url,
            "body": body,
            "status": "pending",
            "attempts": 0,
            "created_at": event["at"],
            "sync_shard": QUEUE,
            "sync_due": event["at"],
            "expires_at": int(time.time()) + KEEP_SECONDS,
        }
        for index, url in enumerate(subscribers)
    ]
