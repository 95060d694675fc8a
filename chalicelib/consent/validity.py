"""How long a consent holds: its expiry, the index that finds it, the counters.

Consent to e-mail prospects does not hold forever: the CNIL's guidance is three years
from the person's last *active contact*. Here the active contact is a decision the
person made through one of our links (accepting, refusing, withdrawing; re-accepting
from a renewal mail included) — never a mail opened, never a page merely shown (mail
scanners open links too). A signup counts once it is confirmed, since that is a
decision: an unconfirmed signup may come from anyone who types the address, and a
stranger must not be able to prolong someone's consent (no downgrade, no upgrade by
strangers either). A new acceptance of a purpose resets its expiry.

Each acceptance records the expiry it implies (``valid_until`` on the event and on
the purpose state), from the purpose's ``validity`` in the catalogue. The same
transaction writes the purpose into a *validity index*: one item in the partition of
the day its next thing is due (``VALIDITY#<day>``; a renewal mail on one of the
catalogue's ``renewal`` days before the expiry, or the expiry itself), so the daily
sweep (``consent/renewal.py``) reads a few day partitions and never scans the table.
A decision that replaces an accepted state removes the item it had written; an item
left behind by anything else (a renewal step moved it on, an erasure) names the
decision it was written for, and the sweep drops it when the state moved on.

The dashboard's "expiring soon / expired" figures come from day counters
(``STATS#CONSENTEXPIRY#<month>``, ``<purpose>.due``), moved in the same transaction:
+1 on the day an acceptance will expire, -1 when that acceptance is replaced before.
An expiry that happened stays counted on its day (the past). The number of people
whose consent is expired right now is ``<purpose>.consent_expired`` in
``STATS#PURPOSES``, named apart from the older ``expired`` there (asked, never
answered).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.core.clock import iso, parse_iso
from chalicelib.store import keys

if TYPE_CHECKING:
    from chalicelib.consent.catalogue import Catalogue, Purpose
    from chalicelib.store.ledger import Ledger, Plan

#: The state a purpose takes when its validity runs out, and the event recording it.
EXPIRED = "expired"
#: ``STATS#PURPOSES`` counter of people whose consent to a purpose is expired now.
EXPIRED_NOW = "consent_expired"
#: Day counter attribute: acceptances that expire (expired) that day.
DUE = "due"
#: The channel of what the sweep records (the ``expired`` events, renewal links).
CHANNEL = "validity"
#: The event that gives an acceptance recorded before validities its expiry
#: (``consent/backfill.py``).
VALIDITY_SET = "validity_set"
RENEWAL_CHANNEL = "renewal"


def day_of(moment: str) -> str:
    """``yyyy-mm-dd`` of an ISO instant (UTC)."""
    return moment[:10]


def valid_until(purpose: Purpose, at: str) -> str | None:
    """The expiry an acceptance made at ``at`` implies; None when it never expires."""
    if purpose.validity_days is None:
        return None
    return iso(parse_iso(at) + timedelta(days=purpose.validity_days))


@dataclass(frozen=True)
class Due:
    """The next thing due for an accepted purpose: a renewal mail ``step`` days before
    the expiry, or (``step`` 0) the expiry itself, on ``day``."""

    day: str
    step: int

    @property
    def action(self) -> str:
        return "renew" if self.step else "expire"


def next_due(until: str, renewal_days: Iterable[int], after: str) -> Due:
    """The first renewal day (largest first) not before ``after`` (a day), else the
    expiry: a schedule whose first days already passed starts at the next one."""
    expiry = date.fromisoformat(day_of(until))
    for step in sorted(renewal_days, reverse=True):
        day = (expiry - timedelta(days=step)).isoformat()
        if day >= after:
            return Due(day, step)
    return Due(expiry.isoformat(), 0)


def index_item(subject: str, purpose: str, event_id: str, until: str, due: Due) -> dict[str, Any]:
    """The validity index item of one accepted purpose."""
    return {
        **keys.item(keys.validity_due(due.day, subject, purpose)),
        "subject": subject,
        "purpose": purpose,
        "event_id": event_id,
        "valid_until": until,
        "step": due.step,
        "action": due.action,
    }


def stamp(
    plan: Plan,
    subject: str,
    purpose: Purpose,
    current: dict[str, Any],
    event: dict[str, Any],
    state: dict[str, Any],
    since: str | None = None,
) -> None:
    """Add to a decision's plan what validity needs: the expiry on the event and the
    state (an acceptance), its index item, and the removal of the item the replaced
    acceptance had (when it lives elsewhere: one transaction names an item once).

    ``since``: the last active contact the validity counts from, when it is not the
    event itself (an imported opt-in counts from its own date). An expiry already past
    is due today, so the next sweep records it instead of a day it has left behind."""
    old = (
        keys.validity_due(current["validity_due"], subject, purpose.id)
        if current.get("validity_due")
        else None
    )
    new = None
    until = valid_until(purpose, since or event["at"]) if state["state"] == "accepted" else None
    if until is not None:
        today = day_of(event["at"])
        due = next_due(until, purpose.renewal_days, today)
        if due.day < today:
            due = Due(today, 0)
        event["valid_until"] = state["valid_until"] = until
        state["validity_due"] = due.day
        # the acceptance the item is about (the sweep checks it is still the state's)
        item = index_item(subject, purpose.id, state["event_id"], until, due)
        new = (item["pk"], item["sk"])
        plan.puts.append(item)
    if old is not None and old != new:
        plan.deletes.append(old)


# -- counters ------------------------------------------------------------------------


def counter_deltas(
    states: dict[str, dict[str, Any]], sealed: Iterable[dict[str, Any]], shard: str
) -> dict[tuple[str, str], dict[str, int]]:
    """The expiry day counters one commit moves (see the module docstring)."""
    out: dict[tuple[str, str], dict[str, int]] = {}

    def add(until: str, purpose: str, delta: int) -> None:
        day = day_of(until)
        fields = out.setdefault((keys.stats_expiries(day[:7]), f"{day}#{shard}"), {})
        fields[f"{purpose}.{DUE}"] = fields.get(f"{purpose}.{DUE}", 0) + delta

    for event in sealed:
        kind, purpose = event.get("kind"), event.get("purpose")
        if kind == "imported":  # an imported row that became the state moves like a decision
            before = states.get(purpose or "", {})
            if event.get("applied") and before.get("state") == "accepted":
                if before.get("valid_until"):
                    add(before["valid_until"], purpose or "", -1)
            if event.get("applied") and event.get("state") == "accepted":
                if event.get("valid_until"):
                    add(event["valid_until"], purpose or "", 1)
            continue
        if kind == VALIDITY_SET and event.get("valid_until"):  # an old acceptance, stamped
            add(event["valid_until"], purpose or "", 1)
            continue
        if kind == "erased":
            for name, state in states.items():
                if state.get("state") == "accepted" and state.get("valid_until"):
                    add(state["valid_until"], name, -1)
            continue
        if not purpose or kind not in ("accepted", "refused", "withdrawn", EXPIRED):
            continue
        before = states.get(purpose, {})
        if kind != EXPIRED and before.get("state") == "accepted" and before.get("valid_until"):
            add(before["valid_until"], purpose, -1)
        if kind == "accepted" and event.get("valid_until"):
            add(event["valid_until"], purpose, 1)
    return {key: fields for key, fields in out.items() if any(fields.values())}


@dataclass(frozen=True)
class Outlook:
    """Per purpose: acceptances expiring in the next 30 and 90 days, expired in the
    last 30 and 90 days, and people whose consent is expired now."""

    ahead_30: int = 0
    ahead_90: int = 0
    past_30: int = 0
    past_90: int = 0
    expired_now: int = 0


def _months(low: date, high: date) -> list[str]:
    months, cursor = [], low.replace(day=1)
    while cursor <= high:
        months.append(cursor.isoformat()[:7])
        cursor = (cursor + timedelta(days=32)).replace(day=1)
    return months


def outlook(ledger: Ledger, catalogue: Catalogue, today: date) -> dict[str, Outlook]:
    """The dashboard's expiry figures, from counters only: at most seven small month
    partitions (90 days either side), whatever the number of people."""
    from chalicelib.consent import stats

    low, high = today - timedelta(days=90), today + timedelta(days=90)
    per_day: dict[str, dict[str, int]] = {}
    for month in _months(low, high):
        for item in ledger.query_between(
            keys.stats_expiries(month), f"{low.isoformat()}#", f"{high.isoformat()}#~"
        ):
            day = item["sk"][:10]
            for name, value in item.items():
                if name.endswith(f".{DUE}"):
                    purpose = name[: -len(DUE) - 1]
                    row = per_day.setdefault(purpose, {})
                    row[day] = row.get(day, 0) + int(value or 0)
    now = stats.per_purpose(ledger.query(keys.STATS_PURPOSES, "S"))
    result = {}
    for purpose in catalogue.purposes:
        days = per_day.get(purpose, {})

        def within(first: date, last: date, days: dict[str, int] = days) -> int:
            return sum(n for d, n in days.items() if first.isoformat() <= d <= last.isoformat())

        result[purpose] = Outlook(
            ahead_30=within(today, today + timedelta(days=30)),
            ahead_90=within(today, high),
            past_30=within(today - timedelta(days=30), today - timedelta(days=1)),
            past_90=within(low, today - timedelta(days=1)),
            expired_now=max(0, now.get(purpose, {}).get(EXPIRED_NOW, 0)),
        )
    return result


def today_utc(moment: datetime) -> date:
    """The UTC calendar day of an aware instant."""
    return date.fromisoformat(iso(moment)[:10])


# -- retention: the person nobody heard from ------------------------------------------


def note_contact(plan: Plan, snap: Any, catalogue: Catalogue, at: str) -> None:
    """Remember an active contact on the profile (``last_contact_at``) and, with a
    ``[retention]`` period, move the person's retention item to the day it ends."""
    profile = plan.profile if plan.profile is not None else {}
    profile["last_contact_at"] = at
    plan.profile = profile
    days = catalogue.retention.days
    old_day = (snap.profile or {}).get("retention_due")
    new_key = None
    if days is not None:
        day = day_of(iso(parse_iso(at) + timedelta(days=days)))
        profile["retention_due"] = day
        new_key = keys.validity_due(day, snap.subject, keys.RETENTION_SK)
        plan.puts.append(
            {
                **keys.item(new_key),
                "subject": snap.subject,
                "action": "retention",
                "last_contact_at": at,
            }
        )
    old_key = keys.validity_due(old_day, snap.subject, keys.RETENTION_SK) if old_day else None
    if old_key is not None and old_key != new_key:
        plan.deletes.append(old_key)
