"""The evidence grade of an imported row: how much of a consent it can prove.

- **A**: a double opt-in with its times (the opt-in and the confirmation), an IP
  address and the wording the person was shown: what a regulator asks for.
- **B**: a dated opt-in, but no confirmation step, or no IP, or no wording: the
  person said yes at a known moment, to words we cannot show.
- **C**: a flag only ("opted in: yes"), no date: the weakest claim.

Pure and total: every row gets exactly one grade, from what the row holds and
nothing else, so the same file always grades the same way.
"""

from __future__ import annotations

from chalicelib.consent.imports.rows import Row

GRADES = ("A", "B", "C")


def grade(row: Row) -> str:
    """The row's grade (see the module docstring)."""
    if (
        row.double_opt_in
        and row.opted_in_at
        and row.confirmed_at
        and row.ip
        and (row.wording or "").strip()
    ):
        return "A"
    if row.source_at:
        return "B"
    return "C"


def better(first: str | None, second: str | None) -> bool:
    """Whether grade ``first`` is stronger than ``second`` (None: no grade at all)."""
    rank = {g: i for i, g in enumerate(GRADES)}
    return rank.get(first or "", 9) < rank.get(second or "", 9)
