"""One row of imported consent evidence, normalised whatever tool it came from.

Each source's export names things its own way (Mailchimp's ``CONFIRM_TIME``, Brevo's
``DOUBLE_OPT-IN``, an Act! field the company chose); its parser turns a CSV row into a
:class:`Row` or a :class:`Reject` saying why not, and nothing after the parsers knows
which tool spoke. The original columns travel with the row, unchanged, because they
are the evidence: what we derived from them can always be checked against them.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from chalicelib.core.clock import iso

#: Largest CSV field we read (an Act! memo can be long; a row is never megabytes).
_FIELD_LIMIT = 64 * 1024
_YES = {"1", "y", "yes", "true", "oui", "o", "x", "vrai", "accepted", "subscribed", "opt-in"}
_NO = {"0", "2", "n", "no", "false", "non", "faux", "refused", "unsubscribed", "opt-out"}
_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y",
)


@dataclass(frozen=True)
class Row:
    """What one source row says about one person and one purpose."""

    line: int
    email: str
    #: ``accepted`` or ``refused``: what the person chose, as the source recorded it.
    decision: str
    opted_in_at: str | None = None
    optin_ip: str | None = None
    confirmed_at: str | None = None
    confirm_ip: str | None = None
    #: When the source recorded a refusal (an unsubscribe, a blocklist entry).
    refused_at: str | None = None
    #: The source says this was a double opt-in (a confirmation step), dated or not.
    double_opt_in: bool = False
    #: The wording the person was shown, when the source (or the operator) knows it.
    wording: str | None = None
    #: The purpose a generic row names itself (else the import's ``--purpose``).
    purpose: str | None = None
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def source_at(self) -> str | None:
        """When the source says the decision happened (its latest dated step)."""
        return self.refused_at or self.confirmed_at or self.opted_in_at

    @property
    def ip(self) -> str | None:
        return self.confirm_ip or self.optin_ip


@dataclass(frozen=True)
class Reject:
    """A row we cannot import, and the reason, for the rejects file."""

    line: int
    reason: str
    columns: dict[str, str] = field(default_factory=dict)


class Columns:
    """A CSV row read by header names compared without case, spaces or punctuation
    (``Email Address``, ``EMAIL ADDRESS`` and ``email_address`` are one column)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = {k: v or "" for k, v in raw.items() if isinstance(k, str)}
        self._by = {_fold(k): v.strip() for k, v in self.raw.items()}

    def get(self, *names: str) -> str:
        """The first non-blank value among ``names``, or ``""``."""
        for name in names:
            value = self._by.get(_fold(name), "")
            if value:
                return value
        return ""

    def has(self, *names: str) -> bool:
        return any(_fold(name) in self._by for name in names)


def _fold(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.casefold())


def read_csv(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, row)`` for each data row; the delimiter (``,``, ``;`` or tab) is sniffed
    from the header line, since Brevo and French spreadsheets use ``;``.

    ``line`` is the physical line number in the file (the header is line 1), so an
    operator can find a reject in any editor, even with multi-line fields.
    """
    csv.field_size_limit(_FIELD_LIMIT)
    text = text.removeprefix("\ufeff")
    header = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=header.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    if not reader.fieldnames or not any((name or "").strip() for name in reader.fieldnames):
        raise ValueError("the file has no header line")
    for row in reader:
        inner = sum(v.count("\n") for v in row.values() if isinstance(v, str))
        line = reader.line_num - inner  # the record's first line (blank ones skipped)
        if any((v or "").strip() if isinstance(v, str) else v for v in row.values()):
            yield line, row


TOO_MANY = "more values than the header has columns"


def problem(raw: dict[str, Any]) -> str:
    """What is wrong with a row's shape before any parser reads it ("" if nothing)."""
    return TOO_MANY if raw.get(None) else ""  # type: ignore[call-overload]


def flag(value: str) -> bool | None:
    """A yes/no cell as the exporting tools write it; None when blank or unreadable."""
    folded = value.strip().casefold()
    if folded in _YES:
        return True
    if folded in _NO:
        return False
    return None


def instant(value: str, zone: ZoneInfo | None = None) -> str | None:
    """A date or date-time cell as our UTC instant; None when blank.

    An offset or ``Z`` is honoured; a time without one is read in ``zone`` (the
    source's clock: Act!'s server time) or as UTC, which is how Mailchimp and Brevo
    export. ValueError for anything else: a date nobody can read is never guessed.
    """
    text = value.strip()
    if not text:
        return None
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except ValueError:
        for form in _DATE_FORMATS:
            try:
                moment = datetime.strptime(text, form)
                break
            except ValueError:
                continue
    if moment is None:
        raise ValueError(f"unreadable date {text!r} (write 2024-03-01 09:30:00 or 01/03/2024)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone or UTC)
    return iso(moment.astimezone(UTC))
