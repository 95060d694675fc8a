"""Who is affected: everyone, the holders of purpose states, or a list of addresses;
and who among them can still be reached (erased or unknown people cannot).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chalicelib.consent.catalogue import Catalogue
from chalicelib.consent.subjects import normalise_email, subject_key
from chalicelib.core.errors import BadInput, InvalidEmail
from chalicelib.core.logs import log
from chalicelib.core.settings import Settings
from chalicelib.rights.breach.notice import NOTIFIED, STATES, progress_items
from chalicelib.store import keys
from chalicelib.store.keys import subject_pk
from chalicelib.store.ledger import Ledger


@dataclass(frozen=True)
class Selection:
    """Who is affected: everyone, or listed addresses; optionally only the holders of a
    purpose state, and only people whose record was created or changed since a moment."""

    purpose: str | None = None
    states: tuple[str, ...] = ("accepted",)
    #: Lines of an address file (one address a line; blank lines and ``#`` comments skipped).
    addresses: tuple[str, ...] | None = None
    #: Table form (:func:`parse_moment`): profile ``created_at`` or ``updated_at`` at or after.
    since: str | None = None


@dataclass
class Selected:
    """The subjects selected, and what an address file held that we cannot use."""

    subjects: list[str]
    #: Listed addresses we hold nothing about: counted, never stored.
    unknown: int = 0
    #: Line numbers of listed lines that are no e-mail address.
    invalid_lines: list[int] = field(default_factory=list)


def read_addresses(path: Path) -> tuple[str, ...]:
    """The lines of an address file, with errors naming the file."""
    try:
        return tuple(path.read_text(encoding="utf-8-sig").splitlines())
    except OSError as exc:
        raise BadInput(f"cannot read the address file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{path}: not UTF-8 (byte {exc.start}): save it as UTF-8, one address a line."
        ) from exc


def _check_selection(catalogue: Catalogue, selection: Selection) -> None:
    if selection.purpose is not None and selection.purpose not in catalogue.purposes:
        raise BadInput(
            f"Purpose {selection.purpose!r} is not in the catalogue "
            f"({', '.join(catalogue.purposes)})."
        )
    wrong = [s for s in selection.states if s not in STATES]
    if not selection.states or wrong:
        raise BadInput(
            f"Purpose states are {', '.join(STATES)}"
            + (f"; not {', '.join(wrong)}" if wrong else "")
            + "."
        )


def _known(ledger: Ledger, subject: str) -> bool:
    """Whether we hold anything about the subject (a profile, a chain, or a tombstone)."""
    pk = subject_pk(subject)
    return any(ledger.get(pk, sk) for sk in (keys.PROFILE, keys.CHAIN, keys.TOMBSTONE))


def _listed(ledger: Ledger, settings: Settings, lines: Iterable[str]) -> Selected:
    found = Selected([])
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            subject = subject_key(settings.subject_pepper, normalise_email(line))
        except InvalidEmail:
            found.invalid_lines.append(number)
            continue
        if subject in seen:
            continue
        seen.add(subject)
        if _known(ledger, subject):
            found.subjects.append(subject)
        else:
            found.unknown += 1
    return found


def _matches(ledger: Ledger, subject: str, selection: Selection) -> bool:
    profile, states = ledger.current(subject)
    if (
        selection.purpose
        and (states.get(selection.purpose) or {}).get("state") not in selection.states
    ):
        return False
    if selection.since:
        profile = profile or {}
        changed = max(profile.get("created_at") or "", profile.get("updated_at") or "")
        return changed >= selection.since
    return True


def select(
    ledger: Ledger, settings: Settings, catalogue: Catalogue, selection: Selection
) -> Selected:
    """The subjects a notice concerns (reachable or not: :func:`notify` counts who is not)."""
    _check_selection(catalogue, selection)
    if selection.addresses is not None:
        found = _listed(ledger, settings, selection.addresses)
    else:
        found = Selected(list(ledger.subjects()))
    if selection.purpose or selection.since:
        found.subjects = [s for s in found.subjects if _matches(ledger, s, selection)]
    log(
        "breach_selection",
        subjects=len(found.subjects),
        unknown=found.unknown,
        invalid=len(found.invalid_lines),
        purpose=selection.purpose,
        states=list(selection.states) if selection.purpose else None,
        since=selection.since,
    )
    return found


def reachability(ledger: Ledger, subject: str) -> tuple[str, dict[str, Any] | None]:
    """``("", profile)`` when the person can be mailed, else why not and ``None``:
    ``erased`` (a tombstone), ``no_address`` (no address on record), ``undeliverable``
    (a permanent bounce)."""
    profile, _ = ledger.current(subject)
    if not profile or not profile.get("email"):
        erased = ledger.get(*keys.tombstone(subject)) is not None
        return ("erased" if erased else "no_address"), None
    if profile.get("undeliverable"):
        return "undeliverable", None
    return "", profile


def survey(ledger: Ledger, breach_id: str, subjects: Sequence[str]) -> dict[str, int]:
    """What a run would do, without sending or writing anything (a dry run)."""
    done = {item["subject"]: item for item in progress_items(ledger, breach_id)}
    counts = {"total": len(subjects), "reachable": 0, "notified_before": 0}
    for subject in subjects:
        if (done.get(subject) or {}).get("status") == NOTIFIED:
            counts["notified_before"] += 1
            continue
        reason, _ = reachability(ledger, subject)
        key = reason or "reachable"
        counts[key] = counts.get(key, 0) + 1
    return counts
