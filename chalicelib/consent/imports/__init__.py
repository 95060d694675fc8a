"""Grading and importing the consent evidence a company already has.

``sources`` parses each tool's export into normalised rows, ``grade`` says how much a
row proves (A, B, C), ``writer`` commits each row as an ``imported`` event through the
ledger, idempotently, and ``act_api`` reads the rows straight from the Act! Web API.
``import_text`` is what the CLI and the admin API call for a CSV.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any

from chalicelib.consent.imports.rows import Reject, read_csv
from chalicelib.consent.imports.writer import Importer, Summary
from chalicelib.core.errors import BadInput

REJECT_COLUMNS = ("line", "reason")


def import_text(
    importer: Importer,
    text: str,
    reject: Callable[[Reject], None],
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Import a whole CSV text; a file that is not a CSV with a header is BadInput
    (nothing written), a bad row is a reject (the others are imported)."""
    return importer.run(checked_rows(text), reject, progress)


def checked_rows(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows of a CSV text; BadInput at once when it has no header, and when the
    CSV itself breaks further on (rows before it were imported, and a re-run of the
    fixed file imports nothing twice)."""
    rows = read_csv(text)
    try:
        first = next(rows, None)
    except (ValueError, csv.Error) as exc:
        raise BadInput(f"This file cannot be read as CSV: {exc}.") from exc
    if first is None:
        return
    yield first
    try:
        yield from rows
    except csv.Error as exc:
        raise BadInput(f"This file cannot be read as CSV further on: {exc}.") from exc


class RejectsFile:
    """The rejects as CSV: line, reason, then the row's own columns as they were."""

    def __init__(self, out: io.TextIOBase | None) -> None:
        self.out = out
        self.rejects: list[Reject] = []
        self._writer: csv.writer | None = None  # type: ignore[valid-type]

    def __call__(self, reject: Reject) -> None:
        self.rejects.append(reject)
        if self.out is None:
            return
        if self._writer is None:
            self._writer = csv.writer(self.out)
            self._writer.writerow(REJECT_COLUMNS + ("columns",))
        self._writer.writerow(
            (reject.line, reject.reason, "; ".join(f"{k}={v}" for k, v in reject.columns.items()))
        )
