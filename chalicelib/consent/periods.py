"""Periods marketing writes in the catalogue: how long consent holds, when to remind.

A validity (``validity = "3y"``) and a retention (``[retention] after = "3y"``) are
durations counted from the person's last *active contact*; they are kept as whole
days so that every expiry is a calendar day the scheduled sweep can find in its
index. ``"none"`` means no end. The renewal schedule (``renewal = [60, 30, 7]``)
lists the days before the expiry on which a renewal mail goes out.

Units: ``d`` days, ``w`` weeks, ``m`` months, ``y`` years. A year is 365 days and a
month a twelfth of it, rounded (``"36m"`` = ``"3y"`` = ``"1095d"``): the CNIL's "three
years" for prospects, counted in days the same way whichever unit was written.
"""

from __future__ import annotations

import re
from typing import Any

#: CNIL's guidance for prospects: three years from the last contact.
DEFAULT_VALIDITY_DAYS = 3 * 365
DEFAULT_RENEWAL_DAYS = (60, 30, 7)
#: Longer than anyone could mean (and than a date can safely be pushed forward).
MAX_DAYS = 100 * 365
_PERIOD = re.compile(r"\s*([1-9][0-9]{0,5})\s*([dwmy])\s*")
_UNIT_DAYS = {"d": 1.0, "w": 7.0, "m": 365 / 12, "y": 365.0}


def parse_period(value: Any) -> int | None:
    """Days of a period written as ``"3y"``, ``"36m"``, ``"1095d"``, ``"8w"``; ``None``
    for ``"none"``. ValueError saying what is accepted for anything else."""
    if isinstance(value, str) and value.strip().lower() == "none":
        return None
    match = _PERIOD.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"{value!r} is not a period: write a number and a unit (d, w, m or y), "
            'e.g. "3y", "36m", "1095d", or "none"'
        )
    days = round(int(match.group(1)) * _UNIT_DAYS[match.group(2)])
    if days > MAX_DAYS:
        raise ValueError(f"{value!r} is longer than {MAX_DAYS // 365} years")
    return days


def parse_renewal(value: Any, validity_days: int | None) -> tuple[int, ...]:
    """The renewal schedule: distinct whole days before the expiry, each shorter than
    the validity, largest first. ValueError saying what is wrong."""
    if not isinstance(value, list) or not all(
        isinstance(day, int) and not isinstance(day, bool) for day in value
    ):
        raise ValueError("must be a list of whole numbers of days, e.g. [60, 30, 7]")
    if validity_days is None and value:
        raise ValueError('needs a validity: with validity = "none" nothing expires')
    if len(set(value)) != len(value):
        raise ValueError("lists a day twice")
    for day in value:
        if day < 1 or (validity_days is not None and day >= validity_days):
            raise ValueError(
                f"{day} must be at least 1 and less than the validity ({validity_days} days)"
            )
    return tuple(sorted(value, reverse=True))
