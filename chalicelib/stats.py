"""Counters for the dashboard, kept exact by the same transaction as the events.

A dashboard that scanned the table would get slower with every person. Instead each
commit that seals events also adds to a few small counter items (DynamoDB ``ADD`` in
the same ``TransactWriteItems``), so the counts can never disagree with the proof and
a page reads a handful of items whatever the table's size:

- ``STATS#PURPOSE#<id>``: people per current state (accepted, refused, withdrawn) and
  ``pending`` (asked, never decided) and ``expired`` (asked, never decided, forgotten
  when their confirmation link expired);
- ``STATS#DAY#<purpose>`` / ``<yyyy-mm-dd>#…``: decisions per day and kind;
- ``STATS#CAMPAIGN#<id>``: links delivered, pages opened, people who answered and who
  confirmed (accepted a first purpose), decisions per kind, syncs to Act!;
- ``STATS#FORM#<id>``: signups, people who answered and who confirmed through the
  form's links.

Each counter is split over a few shards (a random one per write) so concurrent
transactions rarely touch the same item; a reader sums the shards. The module only
computes deltas; the ledger writes them.
"""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Iterable

SHARDS = 8
STATES = ("accepted", "refused", "withdrawn")
Delta = dict[tuple[str, str], dict[str, int]]


def _shard() -> str:
    return f"S{random.randrange(SHARDS)}"


def _channel_scope(channel: str | None) -> str | None:
    """``campaign:x`` → ``CAMPAIGN#x``; ``form:x`` → ``FORM#x``; others are not tracked."""
    if not channel or ":" not in channel:
        return None
    kind, _, name = channel.partition(":")
    return {"campaign": f"CAMPAIGN#{name}", "form": f"FORM#{name}"}.get(kind)


def deltas(states: dict[str, dict[str, Any]], profile: dict[str, Any] | None,
           sealed: Iterable[dict[str, Any]]) -> tuple[Delta, list[str]]:
    """The counter changes of one commit, and the purposes newly asked of this person.

    ``states`` and ``profile`` are the snapshot the commit was built on (before).
    """
    out: Delta = defaultdict(lambda: defaultdict(int))
    asked = set((profile or {}).get("asked") or [])
    decided = {p for p, s in states.items() if s.get("state")}
    had_answered = bool(decided)
    had_accepted = any(s.get("state") == "accepted" for s in states.values())
    answered_in: set[str] = set()
    accepted_in: set[str] = set()
    newly_asked: list[str] = []
    signup_forms: set[str] = set()
    shard = _shard()

    def add(pk: str, name: str, delta: int = 1, sk: str = shard) -> None:
        out[(pk, sk)][name] += delta

    for event in sealed:
        kind, purpose, channel = event.get("kind"), event.get("purpose"), event.get("channel")
        scope = _channel_scope(channel)
        if kind == "requested" and purpose:
            signup_forms.add(event.get("form_id") or "")
            _ask(purpose, asked, decided, newly_asked, add)
        elif kind == "link_issued" and event.get("link_kind") == "confirm":
            for p in event.get("purposes") or ():
                _ask(p, asked, decided, newly_asked, add)
        elif kind in STATES and purpose:
            before = event.get("previous_state")
            if before in STATES:
                add(f"STATS#PURPOSE#{purpose}", before, -1)
            elif purpose in asked or purpose in newly_asked:
                add(f"STATS#PURPOSE#{purpose}", "pending", -1)
            add(f"STATS#PURPOSE#{purpose}", kind)
            decided.add(purpose)
            add(f"STATS#DAY#{purpose}", kind, sk=f"{event['at'][:10]}#{shard}")
            if scope:
                add(f"STATS#{scope}", kind)
                answered_in.add(scope)
                if kind == "accepted":
                    accepted_in.add(scope)
        elif kind in ("link_written", "link_exported") and scope:
            add(f"STATS#{scope}", "sent")
        elif kind == "mail_sent" and scope and scope.startswith("CAMPAIGN#") \
                and event.get("mail_kind") == "confirm":
            add(f"STATS#{scope}", "sent")
        elif kind == "erased":
            for p, state in states.items():
                if state.get("state") in STATES:
                    add(f"STATS#PURPOSE#{p}", state["state"], -1)
            for p in asked - decided:
                add(f"STATS#PURPOSE#{p}", "pending", -1)
            add("STATS#ERASURES", "erased")
            asked, decided = set(), set()
    for form_id in signup_forms:
        if form_id:
            add(f"STATS#FORM#{form_id}", "signups")
    # People, not decisions: a person's first answer, and their first acceptance.
    for scope in answered_in if not had_answered else ():
        add(f"STATS#{scope}", "answered")
    for scope in accepted_in if not had_accepted else ():
        add(f"STATS#{scope}", "confirmed")
    return {key: dict(values) for key, values in out.items() if any(values.values())}, \
        newly_asked


def _ask(purpose: str, asked: set[str], decided: set[str], newly: list[str], add: Any) -> None:
    if purpose in asked or purpose in decided or purpose in newly:
        return
    newly.append(purpose)
    add(f"STATS#PURPOSE#{purpose}", "pending")


def expired(profile_image: dict[str, Any]) -> Delta:
    """A never-decided person's profile removed by TTL: their asks expired."""
    out: Delta = defaultdict(lambda: defaultdict(int))
    shard = _shard()
    for purpose in profile_image.get("asked") or ():
        out[(f"STATS#PURPOSE#{purpose}", shard)]["pending"] -= 1
        out[(f"STATS#PURPOSE#{purpose}", shard)]["expired"] += 1
    return {key: dict(values) for key, values in out.items()}


def synced(channel: str | None) -> Delta:
    """A decision of a campaign reached Act!."""
    scope = _channel_scope(channel)
    return {(f"STATS#{scope}", _shard()): {"synced": 1}} if scope else {}


def opened(channel: str | None) -> Delta:
    """A campaign or form link's page opened for the first time."""
    scope = _channel_scope(channel)
    return {(f"STATS#{scope}", _shard()): {"opened": 1}} if scope else {}


def total(items: Iterable[dict[str, Any]], names: Iterable[str]) -> dict[str, int]:
    """Sum the shards of one counter."""
    names = tuple(names)
    sums = dict.fromkeys(names, 0)
    for item in items:
        for name in names:
            sums[name] += int(item.get(name, 0) or 0)
    return sums
