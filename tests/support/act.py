"""Reading the Act! simulator (fields, contacts) and pushing everything due to it."""
from __future__ import annotations

from typing import Any

from chalicelib.act import sync


def field_key(sim: Any, display_name: str) -> str:
    with sim.lock:
        column = next(f for f in sim.fields if f.get("displayName") == display_name
                      or f.get("name") == display_name)
    return column["columnName"].lower()


def contact_by_email(sim: Any, email: str) -> dict[str, Any]:
    with sim.lock:
        return next(c for c in sim.contacts.values()
                    if (c.get("emailAddress") or "").lower() == email.lower())


def drain_all(pusher: Any, rounds: int = 30) -> sync.DrainReport:
    total = sync.DrainReport()
    for _ in range(rounds):
        report = sync.drain(pusher, sync.all_keys(pusher.ledger), force=True)
        for name in ("synced", "failed", "held", "skipped"):
            setattr(total, name, getattr(total, name) + getattr(report, name))
        total.errors += report.errors
        if not sync.all_keys(pusher.ledger):
            break
    return total
