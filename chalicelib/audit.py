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
from typing import Any

from chalicelib import proof
from chalicelib.ledger import Ledger, subject_pk
from chalicelib.mail import Template
from chalicelib.purposes import canonical_text

#: The events that set a purpose's state (a ``requested`` event names a purpose too,
#: but only asks).
DECISIONS = ("accepted", "refused", "withdrawn")


def _state_problem(events: list[dict[str, Any]], states: dict[str, dict[str, Any]]) -> str:
    last: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("purpose") and event.get("kind") in DECISIONS:
            last[event["purpose"]] = event
    for purpose, state in states.items():
        event = last.get(purpose)
        if event is None:
            return f"purpose state {purpose!r} has no event behind it"
        if (state.get("event_id"), state.get("event_seq"), state.get("state")) != (
                event.get("event_id"), event.get("seq"), event.get("kind")):
            return (f"purpose state {purpose!r} says {state.get('state')!r} (event "
                    f"{state.get('event_seq')}) but its last event {event.get('seq')} says "
                    f"{event.get('kind')!r}")
    missing = sorted(set(last) - set(states))
    if missing:
        return f"purpose state {missing[0]!r} is missing although events record it"
    return ""


def _text_problem(ledger: Ledger, events: list[dict[str, Any]]) -> str:
    for sha in sorted({e["text_sha256"] for e in events if e.get("text_sha256")}):
        text = ledger.get(f"TEXT#{sha}", "TEXT")
        if text is None:
            return f"the wording {sha[:12]}… cited by an event is not stored"
        actual = hashlib.sha256(canonical_text(text.get("title", ""), text.get("text", ""))
                                .encode("utf-8")).hexdigest()
        if actual != sha:
            return f"the stored wording {sha[:12]}… was altered (it now hashes to {actual[:12]}…)"
    return ""


def _template_problem(ledger: Ledger, events: list[dict[str, Any]]) -> str:
    for sha in sorted({e["template_version"] for e in events if e.get("template_version")}):
        stored = ledger.get(f"MAILTPL#{sha}", "MAILTPL")
        if stored is None:
            return f"the mail template {sha[:12]}… cited by an event is not stored"
        actual = Template(stored.get("mail_kind", ""), stored.get("locale", ""),
                          stored.get("subject", ""), stored.get("text", ""),
                          stored.get("html", "")).sha256
        if actual != sha:
            return f"the stored mail template {sha[:12]}… was altered"
    return ""


def verify_subject(ledger: Ledger, subject: str) -> proof.ChainReport:
    """The chain, its head, the purpose states and the cited wordings of one subject."""
    pk = subject_pk(subject)
    events = list(ledger.events(subject))
    head = ledger.get(pk, "CHAIN")
    if events and head is None:
        return proof.ChainReport(subject, 0, False, len(events), "chain head is missing")
    try:
        report = proof.verify_chain(subject, events, (head or {}).get("head_hash"),
                                    (head or {}).get("seq"))
    except (ValueError, TypeError) as exc:
        return proof.ChainReport(subject, 0, False, None, f"an event cannot be read: {exc}")
    if not report.ok:
        return report
    problem = (_state_problem(events, ledger.snapshot(subject).states)
               or _text_problem(ledger, events) or _template_problem(ledger, events))
    if problem:
        return proof.ChainReport(subject, report.events, False, None, problem)
    return report
