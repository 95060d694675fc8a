"""Proof events: their canonical form, their hashes, and the per-subject chain.

Each event commits to its predecessor (``prev_hash``), so removing, inserting or
editing an event breaks every later hash: anyone holding the events can verify the
chain with this module alone.

Erasure must remove IP, user agent and Accept-Language (together they single a
person out) without breaking the chain. So those fields
are not hashed directly: the event hashes ``personal_hash``, the SHA-256 of the
personal fields plus a random per-event salt (the salt stops anyone guessing an IP
from its hash). Erasure deletes the personal fields and the salt, keeps
``personal_hash``, and the chain still verifies.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

SCHEMA_VERSION = 1
GENESIS_HASH = "0" * 64
#: Fields that identify a person and are erased; committed to via ``personal_hash``.
PERSONAL_FIELDS = ("ip", "user_agent", "accept_language")
_NOT_HASHED = frozenset((*PERSONAL_FIELDS, "personal_salt", "hash"))
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_event_id() -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, Crockford base32, sortable."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _plain(value: Any) -> Any:
    """DynamoDB hands numbers back as Decimal; the canonical form knows only ints."""
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise ValueError(f"non-integer number {value} in an event")
        return int(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float):
        raise ValueError("floats are not allowed in events (not canonical)")
    return value


def canonical(data: dict[str, Any]) -> bytes:
    """Sorted-key, compact, UTF-8 JSON of the non-null fields: one byte string per event."""
    cleaned = {key: value for key, value in _plain(data).items() if value is not None}
    return json.dumps(cleaned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def personal_hash(personal: dict[str, Any], salt: str) -> str:
    """Commitment to the erasable fields of an event."""
    body = {name: personal.get(name) for name in PERSONAL_FIELDS}
    body["salt"] = salt
    return hashlib.sha256(canonical(body)).hexdigest()


def event_hash(event: dict[str, Any]) -> str:
    """SHA-256 of the event's canonical form, without its own hash and personal fields."""
    return hashlib.sha256(
        canonical({k: v for k, v in event.items() if k not in _NOT_HASHED})
    ).hexdigest()


def seal(body: dict[str, Any], personal: dict[str, Any], prev_hash: str) -> dict[str, Any]:
    """Complete an event: personal commitment, link to the previous event, own hash."""
    event = {key: value for key, value in body.items() if value is not None}
    event["v"] = SCHEMA_VERSION
    event["prev_hash"] = prev_hash
    present = {k: v for k, v in personal.items() if k in PERSONAL_FIELDS and v}
    if present:
        salt = secrets.token_hex(16)
        event.update(present)
        event["personal_salt"] = salt
        event["personal_hash"] = personal_hash(present, salt)
    event["hash"] = event_hash(event)
    return event


@dataclass(frozen=True)
class ChainReport:
    """The verdict on one subject's chain; ``broken_seq`` is the first bad event."""

    subject: str
    events: int
    ok: bool
    broken_seq: int | None = None
    reason: str = ""


def verify_chain(
    subject: str,
    events: Iterable[dict[str, Any]],
    head_hash: str | None = None,
    head_seq: int | None = None,
) -> ChainReport:
    """Walk events in sequence order; report the first one that does not verify.

    ``head_hash``/``head_seq`` (the subject's recorded chain head) also catch a
    removed tail, which the events alone cannot show.
    """
    previous, count, expected_seq = GENESIS_HASH, 0, 1
    for raw in events:
        event = _plain(raw)
        seq = event.get("seq")
        problem = _check_event(event, subject, previous, expected_seq)
        if problem:
            return ChainReport(
                subject, count, False, seq if isinstance(seq, int) else expected_seq, problem
            )
        previous, count, expected_seq = event["hash"], count + 1, expected_seq + 1
    if head_seq is not None and head_seq != count:
        return ChainReport(
            subject, count, False, count + 1, f"chain head says {head_seq} events, found {count}"
        )
    if head_hash is not None and head_hash != previous:
        return ChainReport(
            subject, count, False, count, "chain head hash differs from the last event's hash"
        )
    return ChainReport(subject, count, True)


def _check_event(event: dict[str, Any], subject: str, previous: str, seq: int) -> str:
    if event.get("subject") != subject:
        return "event belongs to another subject"
    if event.get("seq") != seq:
        return f"sequence gap: expected event {seq}, found {event.get('seq')}"
    if event.get("prev_hash") != previous:
        return "prev_hash does not match the previous event's hash"
    if event_hash(event) != event.get("hash"):
        return "event content does not match its hash (altered)"
    salt = event.get("personal_salt")
    present = {k: event.get(k) for k in PERSONAL_FIELDS if event.get(k)}
    if salt is not None:
        if personal_hash(present, salt) != event.get("personal_hash"):
            return "IP or user agent do not match their recorded commitment (altered)"
    elif present:
        return "IP or user agent present without their commitment (altered)"
    return ""
