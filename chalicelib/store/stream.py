"""The table's DynamoDB stream: each record decoded once, then routed by item kind.

A batch of stream records reaches one Lambda (``on_table_change``). Every record is
read here into a :class:`Change` (keys, old and new item as plain Python, whether the
TTL removed it), and :func:`route` sorts the batch into the work each capability
does with it: decisions to push to Act!, mails to send for the first time, Act!
contacts to reconcile, outbound webhooks to deliver, profiles that expired. The
handlers never parse DynamoDB's low-level format themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.store import keys
from chalicelib.store.ledger import from_item

#: Who DynamoDB names as the remover of an item its TTL expired.
_TTL_PRINCIPAL = "dynamodb.amazonaws.com"


@dataclass(frozen=True)
class Change:
    """One stream record: the item's key, its images (plain Python), how it changed."""

    event_name: str  # INSERT | MODIFY | REMOVE
    pk: str
    sk: str
    new: dict[str, Any] | None
    old: dict[str, Any] | None
    by_ttl: bool = False


def decode(record: Any) -> Change:
    """A Chalice ``DynamoDBRecord`` (or the raw record dict of a Lambda event)."""
    raw = getattr(record, "_event_dict", None) or (record if isinstance(record, dict) else {})
    data = raw.get("dynamodb") or {}
    new_image = (
        getattr(record, "new_image", None) if not isinstance(record, dict) else data.get("NewImage")
    )
    old_image = (
        getattr(record, "old_image", None) if not isinstance(record, dict) else data.get("OldImage")
    )
    name = getattr(record, "event_name", None) or raw.get("eventName") or ""
    new = from_item(new_image) if new_image else None
    old = from_item(old_image) if old_image else None
    image = new or old or from_item(data.get("Keys") or {})
    by_ttl = (raw.get("userIdentity") or {}).get("principalId") == _TTL_PRINCIPAL
    return Change(name, str(image.get("pk", "")), str(image.get("sk", "")), new, old, by_ttl)


@dataclass
class Routed:
    """A batch, sorted by the work it asks for (each list in order, without repeats)."""

    syncs: list[tuple[str, str]] = field(default_factory=list)
    mails: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    hookouts: list[tuple[str, str]] = field(default_factory=list)
    expired_profiles: list[dict[str, Any]] = field(default_factory=list)
    #: Chain heads that moved, as ``(subject, seq, head_hash)``: to anchor in trusted time.
    heads: list[tuple[str, int, str]] = field(default_factory=list)

    def add(self, bucket: list[Any], value: Any) -> None:
        if value not in bucket:
            bucket.append(value)


def route(changes: Iterable[Change]) -> Routed:
    """What each change asks for: only new images count, but for expired profiles."""
    routed = Routed()
    for change in changes:
        new = change.new or {}
        if change.sk.startswith(keys.PURPOSE_PREFIX) and new.get("sync_status") == "pending":
            routed.add(routed.syncs, (change.pk, change.sk))
        elif (
            change.sk == keys.MAIL
            and new.get("status") == "queued"
            and new.get("attempts") == 0
            and new.get("mail_id")
        ):
            routed.add(routed.mails, new["mail_id"])
        elif change.sk == keys.HINT and new.get("contact_id"):
            routed.add(routed.hints, new["contact_id"])
        elif (
            change.pk.startswith(keys.HOOKOUT_PREFIX)
            and new.get("status") == "pending"
            and new.get("attempts") == 0
        ):
            routed.add(routed.hookouts, (change.pk, change.sk))
        elif (
            change.event_name == "REMOVE"
            and change.by_ttl
            and change.sk == keys.PROFILE
            and change.old is not None
        ):
            routed.expired_profiles.append(change.old)
        elif change.sk == keys.CHAIN and new.get("head_hash"):
            if new["head_hash"] != (change.old or {}).get("head_hash"):
                subject = keys.subject_of(change.pk)
                routed.add(routed.heads, (subject, int(new.get("seq", 0)), new["head_hash"]))
    return routed


def route_records(records: Iterable[Any]) -> Routed:
    return route(decode(record) for record in records)
