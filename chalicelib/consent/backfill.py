"""Validity for acceptances recorded before purposes had one.

An acceptance recorded by an earlier version carries no ``valid_until``, so nothing
would ever make it expire. This gives each such acceptance the validity its purpose
has now, counted from the decision (the last active contact we can prove), in one
transaction per person: a ``validity_set`` event on the chain (the expiry it implies,
and which acceptance it is about), the state's ``valid_until``, its validity index
item and expiry counter, exactly as a decision made today writes them. An expiry
already past is due at the next validity sweep, which records it as an ``expired``
event. Operator work, run once after upgrading: it scans the table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from chalicelib.consent import validity
from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.clock import now_iso
from chalicelib.proof.chain import new_event_id
from chalicelib.store import keys
from chalicelib.store.ledger import Draft, Ledger, Plan, Snapshot

KIND = validity.VALIDITY_SET


@dataclass
class BackfillReport:
    """What a backfill found and did (a dry run counts what it would do)."""

    people: int = 0
    stamped: int = 0
    already_due: int = 0
    no_validity: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def waiting(ledger: Ledger) -> dict[str, list[str]]:
    """Accepted purposes without ``valid_until``, per subject (one scan)."""
    found: dict[str, list[str]] = defaultdict(list)
    condition = (
        "begins_with(sk, :purpose) AND #state = :accepted AND attribute_not_exists(valid_until)"
    )
    values = {":purpose": keys.PURPOSE_PREFIX, ":accepted": "accepted"}
    for item in ledger.scan_where(condition, values, names={"#state": "state"}):
        found[item["subject"]].append(item["purpose"])
    return found


def run(
    ledger: Ledger,
    catalogue: Catalogue,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    found: dict[str, list[str]] | None = None,
) -> BackfillReport:
    """Stamp every waiting acceptance (``found``: what :func:`waiting` already read);
    repeating it finds nothing left to do."""
    report = BackfillReport()
    today = now_iso()[:10]
    for subject, purposes in (waiting(ledger) if found is None else found).items():
        report.people += 1
        for purpose_id in purposes:
            purpose = catalogue.purposes.get(purpose_id)
            if purpose is None or purpose.validity_days is None:
                report.no_validity += 1
        if dry_run:
            _count(ledger, subject, catalogue, purposes, report, today)
        else:
            build: Callable[[Snapshot], Plan] = partial(
                _plan, catalogue=catalogue, purposes=purposes
            )
            _, sealed = ledger.commit(subject, build)
            report.stamped += len(sealed)
            report.already_due += sum(
                1 for e in sealed if validity.day_of(e["valid_until"]) <= today
            )
        if progress:
            progress(1)
    return report


def _count(
    ledger: Ledger,
    subject: str,
    catalogue: Catalogue,
    purposes: list[str],
    report: BackfillReport,
    today: str,
) -> None:
    _, states = ledger.current(subject)
    for purpose_id in purposes:
        purpose, state = catalogue.purposes.get(purpose_id), states.get(purpose_id, {})
        if purpose is None or state.get("state") != "accepted" or state.get("valid_until"):
            continue
        until = validity.valid_until(purpose, state.get("decided_at") or now_iso())
        if until is not None:
            report.stamped += 1
            report.already_due += 1 if validity.day_of(until) <= today else 0


def _plan(snap: Snapshot, catalogue: Catalogue, purposes: list[str]) -> Plan:
    """One ``validity_set`` event and the stamped state per waiting purpose."""
    plan, at = Plan(), now_iso()
    for purpose_id in purposes:
        purpose, state = catalogue.purposes.get(purpose_id), snap.states.get(purpose_id, {})
        if purpose is None or purpose.validity_days is None:
            continue
        if state.get("state") != "accepted" or state.get("valid_until"):
            continue  # decided again (and stamped) since the scan
        event: dict[str, Any] = {
            "event_id": new_event_id(),
            "kind": KIND,
            "at": at,
            "purpose": purpose_id,
            "channel": validity.CHANNEL,
            "accepted_event_id": state.get("event_id"),
            "counted_from": state.get("decided_at"),
        }
        item = {**state, **keys.item(keys.purpose(snap.subject, purpose_id))}
        validity.stamp(plan, snap.subject, purpose, state, event, item, state.get("decided_at"))
        plan.events.append(Draft(event))
        plan.puts.append(item)
    return plan
