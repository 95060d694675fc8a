"""The one source of time: UTC, ISO 8601 with milliseconds.

Every timestamp in events, states and logs comes from here, so they sort as strings
and compare across modules.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Current time, timezone-aware UTC, truncated to milliseconds."""
    now = datetime.now(UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def iso(moment: datetime) -> str:
    """``2026-11-29T14:03:12.345Z``: fixed width, so string order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def now_iso() -> str:
    """``iso(utcnow())``."""
    return iso(utcnow())


def parse_iso(text: str) -> datetime:
    """Inverse of :func:`iso`; raises ``ValueError`` on anything else."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def parse_instant(text: str) -> datetime:
    """Any ISO 8601 date-time that names its zone (``Z`` or an offset), as UTC.

    ValueError for anything else, a date-time without a zone included: an instant
    nobody can place is never guessed.
    """
    value = text.strip()
    moment = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in ("z", "Z") else value)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} names no time zone")
    return moment.astimezone(UTC)
