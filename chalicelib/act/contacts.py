"""What we remember about Act! contacts: whose each one was, and which edits were ours.

``ACTCONTACT#<contact id>`` / ``SEEN`` holds the person (subject key) the contact was
last seen with, the contact's ``edited`` then, and ``ours_edited_at``: the ``edited``
instant our own last write produced. Reconciliation compares an address change with
the first; polling skips contacts whose only new edit is the last (OptinProof's own
write coming back), instead of re-reading each one.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from chalicelib.act import dates
from chalicelib.core.clock import now_iso
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

SEEN = keys.SEEN
#: Index partition (pending-sync GSI) of contacts waiting to be reconciled.
HINT_SHARD = keys.HINT_SHARD


def contact_pk(contact_id: str) -> str:
    return keys.act_contact(contact_id)[0]


def seen(ledger: Ledger, contact_id: str) -> dict[str, Any]:
    return ledger.get(contact_pk(contact_id), SEEN) or {}


def seen_item(
    contact: dict[str, Any], subject: str | None, tz: ZoneInfo, ours: bool = False
) -> dict[str, Any]:
    """The SEEN item for a contact as just read (or, with ``ours``, as our write left it)."""
    edited_at = dates.from_act_iso(contact.get("edited"), tz)
    item = {
        "pk": contact_pk(contact["id"]),
        "sk": SEEN,
        "contact_id": contact["id"],
        "subject": subject,
        "edited": contact.get("edited"),
        "edited_at": edited_at,
        "at": now_iso(),
    }
    if ours and edited_at:
        item["ours_edited_at"] = edited_at
    return item


def note_write(ledger: Ledger, contact: dict[str, Any], tz: ZoneInfo) -> None:
    """After a PATCH: the ``edited`` Act! answered is ours (a poll will see it come back)."""
    edited_at = dates.from_act_iso(contact.get("edited"), tz)
    if contact.get("id") and edited_at:
        ledger.set_fields(
            contact_pk(contact["id"]),
            SEEN,
            {"contact_id": contact["id"], "ours_edited_at": edited_at},
        )


def is_own_edit(item: dict[str, Any], edited_at: str | None) -> bool:
    """Whether a contact's current edit is the one our last write produced."""
    return bool(edited_at) and item.get("ours_edited_at") == edited_at


def queue_hint(ledger: Ledger, contact_id: str, edited: Any = None, created: bool = False) -> None:
    """A contact changed in Act!: one hint per contact (a repeat overwrites it), reconciled
    later by re-reading the contact. ``created`` sticks until the hint is processed."""
    at = now_iso()
    existing = ledger.get(*keys.act_hint(contact_id)) or {}
    ledger.put(
        {
            **keys.item(keys.act_hint(contact_id)),
            "contact_id": contact_id,
            "created": created or bool(existing.get("created")),
            "edited": str(edited or ""),
            "received_at": at,
            "sync_shard": HINT_SHARD,
            "sync_due": at,
        }
    )
