"""Verifying what the table holds about a subject, beyond the hash chain itself.

``proof.verify_chain`` proves the events are intact and in order. A regulator (and
the Act! sync) also relies on what is derived from them, so the audit checks that:
- a chain head exists whenever events do, and agrees with the last event;
- every purpose state is the result of that purpose's last event (a hand-edited state
  would otherwise be pushed to Act! and shown to the person);
- every wording an event cites is stored, and still hashes to its version, and so is
  every mail template version a ``mail_sent`` event cites.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from chalicelib.consent.catalogue import canonical_text
from chalicelib.mail.compose import Template
from chalicelib.proof import chain
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

#: The events that set a purpose's state (a ``requested`` event names a purpose too,
#: but only asks).
DECISIONS = ("accepted", "refused", "withdrawn", "expired")


def _state_problem(events: list[dict[str, Any]], states: dict[str, dict[str, Any]]) -> str:
    last: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("kind") == "erased":  # erasure ends every state; a new one starts afresh
            last.clear()
        elif event.get("purpose") and event.get("kind") in DECISIONS:
            last[event["purpose"]] = event
        elif event.get("purpose") and event.get("kind") == "imported" and event.get("applied"):
            # an imported row that became the state: the state it set is its ``state``
            last[event["purpose"]] = {**event, "kind": event.get("state")}
    for purpose, state in states.items():
        found = last.get(purpose)
        if found is None:
            return f"purpose state {purpose!r} has no event behind it"
        if (state.get("event_id"), state.get("event_seq"), state.get("state")) != (
            found.get("event_id"),
            found.get("seq"),
            found.get("kind"),
        ):
            return (
                f"purpose state {purpose!r} says {state.get('state')!r} (event "
                f"{state.get('event_seq')}) but its last event {found.get('seq')} says "
                f"{found.get('kind')!r}"
            )
    missing = sorted(set(last) - set(states))
    if missing:
        return f"purpose state {missing[0]!r} is missing although events record it"
    return ""


def _stored_problem(
    ledger: Ledger,
    events: list[dict[str, Any]],
    field: str,
    kind: str,
    rehash: Callable[[dict[str, Any]], str],
    what: str,
) -> str:
    """Every content-addressed item the events cite (``<kind>#<sha>``) exists and still
    hashes to its address."""
    for sha in sorted({e[field] for e in events if e.get(field)}):
        stored = ledger.get(*keys.content(kind, sha))
        if stored is None:
            return f"the {what} {sha[:12]}… cited by an event is not stored"
        actual = rehash(stored)
        if actual != sha:
            return f"the stored {what} {sha[:12]}… was altered (it now hashes to {actual[:12]}…)"
    return ""


def _wording_sha(stored: dict[str, Any]) -> str:
    return hashlib.sha256(
        canonical_text(stored.get("title", ""), stored.get("text", "")).encode("utf-8")
    ).hexdigest()


def _template_sha(stored: dict[str, Any]) -> str:
    return Template(
        stored.get("mail_kind", ""),
        stored.get("locale", ""),
        stored.get("subject", ""),
        stored.get("text", ""),
        stored.get("html", ""),
    ).sha256


def verify_subject(ledger: Ledger, subject: str) -> chain.ChainReport:
    """The chain, its head, the purpose states and the cited wordings of one subject."""
    events = list(ledger.events(subject))
    head = ledger.get(*keys.chain(subject))
    if events and head is None:
        return chain.ChainReport(subject, 0, False, len(events), "chain head is missing")
    try:
        report = chain.verify_chain(
            subject, events, (head or {}).get("head_hash"), (head or {}).get("seq")
        )
    except (ValueError, TypeError) as exc:
        return chain.ChainReport(subject, 0, False, None, f"an event cannot be read: {exc}")
    if not report.ok:
        return report
    problem = (
        _state_problem(events, ledger.snapshot(subject).states)
        or _stored_problem(ledger, events, "text_sha256", keys.TEXT, _wording_sha, "wording")
        or _stored_problem(ledger, events, "opt_out_sha256", keys.TEXT, _wording_sha, "opt-out")
        or _stored_problem(
            ledger, events, "template_version", keys.MAIL_TEMPLATE, _template_sha, "mail template"
        )
    )
    if problem:
        return chain.ChainReport(subject, report.events, False, None, problem)
    return report
