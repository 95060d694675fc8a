"""Counters for the dashboard, kept exact by the same transaction as the events.

A dashboard that scanned the table would get slower with every person. Instead each
commit that seals events also adds to a few small counter items (DynamoDB ``ADD`` in
the same ``TransactWriteItems``), so the counts can never disagree with the proof and
a page reads a handful of items whatever the table's size:

- ``STATS#PURPOSES``: per purpose (``<purpose>.<state>`` attributes), people per current
  state (accepted, refused, withdrawn) and ``pending`` (asked, never decided) and
  ``expired`` (asked, never decided, forgotten when their confirmation link expired),
  and ``consent_expired`` (consent given, then run out: ``consent/validity.py``);
- ``STATS#CONSENTEXPIRY#<yyyy-mm>``: acceptances expiring per day (``consent/validity.py``);
- ``STATS#DAYS#<yyyy-mm>`` / ``<yyyy-mm-dd>#…``: decisions per day, purpose and kind;
- ``STATS#CAMPAIGN#<id>``: links delivered, pages opened, people who answered and who
  confirmed (accepted a first purpose), decisions per kind, syncs to Act!;
- ``STATS#GRADES``: per purpose (``<purpose>.<grade>``), people whose acceptance
  rests on imported evidence, per evidence grade (``consent.imports``);
- ``STATS#FORM#<id>``: signups, people who answered and who confirmed through the
  form's links;
- ``STATS#REASONS``: withdrawals per purpose and the optional reason given
  (``<purpose>.<reason>``, see ``consent/basis.py``).

Each counter is split over a few shards (a random one per write) so concurrent
transactions rarely touch the same item; a reader sums the shards. The module only
computes deltas; the ledger writes them.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from chalicelib.consent import validity
from chalicelib.store import keys

if TYPE_CHECKING:
    from chalicelib.store.ledger import Ledger

SHARDS = 8
STATES = ("accepted", "refused", "withdrawn")
#: Profile fields the counters rely on (lists that only grow until an erasure).
REMEMBERED = ("asked", "answered_in", "accepted_in")
Delta = dict[tuple[str, str], dict[str, int]]


def _shard(seed: int | None = None) -> str:
    return f"S{(random.randrange(SHARDS) if seed is None else seed) % SHARDS}"


def deltas(
    states: dict[str, dict[str, Any]],
    profile: dict[str, Any] | None,
    sealed: Iterable[dict[str, Any]],
    seed: int | None = None,
) -> tuple[Delta, dict[str, list[Any]]]:
    """The counter changes of one commit, and what the person's profile must remember.

    ``states`` and ``profile`` are the snapshot the commit was built on (before). At
    most a handful of counter items per commit, whatever the number of purposes, so a
    decision never nears DynamoDB's 100 items per transaction. The profile remembers
    the purposes a person was asked about (pending is counted once) and the campaigns
    and forms they answered or accepted through (a funnel counts people, per funnel).
    """
    sealed = list(sealed)
    out: Delta = defaultdict(lambda: defaultdict(int))
    known = {name: set((profile or {}).get(name) or []) for name in REMEMBERED}
    new: dict[str, list[str]] = {name: [] for name in REMEMBERED}
    decided = {p for p, s in states.items() if s.get("state")}
    shard = _shard(seed)
    signup_forms: set[str] = set()

    def once(name: str, value: str) -> bool:
        """True the first time this person meets ``value`` (a purpose asked, a scope)."""
        if value in known[name] or value in new[name]:
            return False
        new[name].append(value)
        return True

    def purpose(purpose_id: str, name: str, delta: int = 1) -> None:
        out[(keys.STATS_PURPOSES, shard)][f"{purpose_id}.{name}"] += delta

    for event in sealed:
        kind, purpose_id = event.get("kind"), event.get("purpose")
        scope = keys.stats_scope(event.get("channel"))
        asked_now = (
            [purpose_id]
            if kind == "requested" and purpose_id
            else (
                list(event.get("purposes") or ())
                if kind == "link_issued" and event.get("link_kind") == "confirm"
                else []
            )
        )
        for asked in asked_now:
            if asked not in decided and once("asked", asked):
                purpose(asked, "pending")
        if kind == "requested" and event.get("form_id"):
            signup_forms.add(event["form_id"])
        elif kind in STATES and purpose_id:
            _ungrade(out, states, purpose_id, shard)
            before = event.get("previous_state")
            if before in STATES:
                purpose(purpose_id, before, -1)
            elif before == validity.EXPIRED:  # consent ran out, then given again
                purpose(purpose_id, validity.EXPIRED_NOW, -1)
            elif purpose_id in known["asked"] or purpose_id in new["asked"]:
                purpose(purpose_id, "pending", -1)
            purpose(purpose_id, kind)
            decided.add(purpose_id)
            if event.get("withdrawal_reason"):
                out[(keys.STATS_REASONS, shard)][f"{purpose_id}.{event['withdrawal_reason']}"] += 1
            out[(keys.stats_days(event["at"][:7]), f"{event['at'][:10]}#{shard}")][
                f"{purpose_id}.{kind}"
            ] += 1
            if scope:
                out[(keys.stats(scope), shard)][kind] += 1
                if once("answered_in", scope):
                    out[(keys.stats(scope), shard)]["answered"] += 1
                if kind == "accepted" and once("accepted_in", scope):
                    out[(keys.stats(scope), shard)]["confirmed"] += 1
        elif kind == validity.EXPIRED and purpose_id:  # consent ran out (the sweep)
            _ungrade(out, states, purpose_id, shard)
            purpose(purpose_id, event.get("previous_state") or "accepted", -1)
            purpose(purpose_id, validity.EXPIRED_NOW)
        elif kind in ("link_written", "link_exported") and scope:
            out[(keys.stats(scope), shard)]["sent"] += 1
        elif (
            kind == "mail_sent"
            and scope
            and scope.startswith(keys.CAMPAIGN_PREFIX)
            and event.get("mail_kind") == "confirm"
        ):
            out[(keys.stats(scope), shard)]["sent"] += 1
        elif kind == "imported" and purpose_id and event.get("applied"):
            before = event.get("previous_state")
            if before in STATES:
                purpose(purpose_id, before, -1)
            elif purpose_id in known["asked"] or purpose_id in new["asked"]:
                purpose(purpose_id, "pending", -1)
            purpose(purpose_id, event["state"])
            decided.add(purpose_id)
            _imported_grades(out, event, shard)
        elif kind == "erased":
            for p in states:
                _ungrade(out, states, p, shard)
            for p, state in states.items():
                if state.get("state") in STATES:
                    purpose(p, state["state"], -1)
                elif state.get("state") == validity.EXPIRED:
                    purpose(p, validity.EXPIRED_NOW, -1)
            for p in (known["asked"] | set(new["asked"])) - decided:
                purpose(p, "pending", -1)
            out[(keys.STATS_ERASURES, shard)]["erased"] += 1
            known = {name: set() for name in REMEMBERED}
            new = {name: [] for name in REMEMBERED}
            decided = set()
    for form_id in signup_forms:
        out[(keys.stats_form(form_id), shard)]["signups"] += 1
    for counter, fields in validity.counter_deltas(states, sealed, shard).items():
        for name, delta in fields.items():
            out[counter][name] += delta
    counters = {key: dict(values) for key, values in out.items() if any(values.values())}
    return counters, {name: values for name, values in new.items() if values}


def _ungrade(out: Any, states: dict[str, dict[str, Any]], purpose_id: str, shard: str) -> None:
    """A state resting on an imported acceptance ends (a decision, an erasure)."""
    state = states.get(purpose_id) or {}
    if state.get("source") == "imported" and state.get("state") == "accepted":
        out[(keys.STATS_GRADES, shard)][f"{purpose_id}.{state.get('grade')}"] -= 1


def _imported_grades(out: Any, event: dict[str, Any], shard: str) -> None:
    """An imported row became the state: the grade it replaces, the grade it brings
    (people per purpose whose acceptance rests on imported evidence, per grade)."""
    if event.get("previous_grade"):
        out[(keys.STATS_GRADES, shard)][f"{event['purpose']}.{event['previous_grade']}"] -= 1
    if event.get("state") == "accepted":
        out[(keys.STATS_GRADES, shard)][f"{event['purpose']}.{event['grade']}"] += 1


def grades(ledger: Ledger) -> dict[str, dict[str, int]]:
    """``{purpose: {grade: n}}`` of imported acceptances in force (counters, no scan)."""
    return per_purpose(ledger.query(keys.STATS_GRADES, "S"))


def expired(profile_image: dict[str, Any]) -> Delta:
    """A never-decided person's profile removed by TTL: their asks expired."""
    fields: dict[str, int] = {}
    for purpose in profile_image.get("asked") or ():
        fields[f"{purpose}.pending"] = -1
        fields[f"{purpose}.expired"] = 1
    return {(keys.STATS_PURPOSES, _shard()): fields} if fields else {}


def synced(channel: str | None) -> Delta:
    """A decision of a campaign reached Act!."""
    scope = keys.stats_scope(channel)
    return {(keys.stats(scope), _shard()): {"synced": 1}} if scope else {}


def opened(channel: str | None) -> Delta:
    """A campaign or form link's page opened for the first time."""
    scope = keys.stats_scope(channel)
    return {(keys.stats(scope), _shard()): {"opened": 1}} if scope else {}


def per_purpose(items: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """``{purpose: {state: n}}`` from the shards of ``STATS#PURPOSES`` (or a day's)."""
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in items:
        for name, value in item.items():
            if "." in name:
                purpose_id, _, state = name.partition(".")
                sums[purpose_id][state] += int(value or 0)
    return {key: dict(values) for key, values in sums.items()}


def total(items: Iterable[dict[str, Any]], names: Iterable[str]) -> dict[str, int]:
    """Sum the shards of one counter."""
    names = tuple(names)
    sums = dict.fromkeys(names, 0)
    for item in items:
        for name in names:
            sums[name] += int(item.get(name, 0) or 0)
    return sums


def awaiting_answer(ledger: Ledger) -> dict[str, int]:
    """``{purpose: n}`` of people asked who have not answered yet (from the counters,
    no scan): nothing of theirs goes to Act! until they decide, which operators
    reading ``sync status`` must not mistake for a sync that is stuck."""
    counts = per_purpose(ledger.query(keys.STATS_PURPOSES, "S"))
    return {p: row["pending"] for p, row in sorted(counts.items()) if row.get("pending", 0) > 0}
