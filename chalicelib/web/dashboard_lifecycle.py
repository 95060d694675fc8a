"""The dashboard's tables about consent over time: why people withdraw, the proof the
acceptances rest on (double opt-in or imported grades) and the consent running out.

Kept apart from ``web/dashboard.py`` (the counts of today and the activity) so each
stays readable; every table here is read from counters written in the same
transaction as the events, never from a scan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.consent import stats
from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.clock import utcnow
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger

if TYPE_CHECKING:
    from chalicelib.web.dashboard import Filters


def reasons(ledger: Ledger, catalogue: Catalogue, f: Filters, locale: str) -> list[dict[str, Any]]:
    """Withdrawals per purpose and the reason people gave (one optional click), from
    the ``STATS#REASONS`` counters: the count of each offered reason, and ``given``."""
    from chalicelib.consent.basis import REASONS

    counts = stats.per_purpose(ledger.query(keys.STATS_REASONS, "S"))
    rows = []
    for purpose_id, purpose in catalogue.purposes.items():
        if f.purpose and purpose_id != f.purpose:
            continue
        row = counts.get(purpose_id, {})
        given = {reason: row.get(reason, 0) for reason in REASONS}
        rows.append(
            {
                "purpose": purpose_id,
                "title": purpose.text(locale).title,
                **given,
                "given": sum(given.values()),
            }
        )
    return rows


def grades(
    ledger: Ledger, catalogue: Catalogue, f: Filters, locale: str, accepted: dict[str, int]
) -> list[dict[str, Any]]:
    """Per purpose, the acceptances in force by their proof: recorded through OptinProof
    (double opt-in), or imported with evidence grade A, B or C (``consent.imports``);
    counters only, no scan. ``accepted``: the purposes table's accepted counts."""
    counts = stats.grades(ledger)
    rows = []
    for purpose_id, purpose in catalogue.purposes.items():
        if f.purpose and purpose_id != f.purpose:
            continue
        row = {g: counts.get(purpose_id, {}).get(g, 0) for g in ("A", "B", "C")}
        rows.append(
            {
                "purpose": purpose_id,
                "title": purpose.text(locale).title,
                "double_opt_in": max(0, accepted.get(purpose_id, 0) - sum(row.values())),
                "grade_a": row["A"],
                "grade_b": row["B"],
                "grade_c": row["C"],
            }
        )
    return rows


def expiries(ledger: Ledger, catalogue: Catalogue, f: Filters, locale: str) -> list[dict[str, Any]]:
    """Per purpose: acceptances expiring in the next 30 / 90 days, expired in the last
    30 / 90 days, and people whose consent is expired now; from the expiry day counters
    (``consent/validity.py``), so whatever the number of people, a few queries."""
    from chalicelib.consent import validity

    outlook = validity.outlook(ledger, catalogue, utcnow().date())
    rows = []
    for purpose_id, figures in outlook.items():
        if f.purpose and purpose_id != f.purpose:
            continue
        days = catalogue.get(purpose_id).validity_days
        rows.append(
            {
                "purpose": purpose_id,
                "title": catalogue.get(purpose_id).text(locale).title,
                "validity_days": days if days is not None else "",
                "next_30_days": figures.ahead_30,
                "next_90_days": figures.ahead_90,
                "last_30_days": figures.past_30,
                "last_90_days": figures.past_90,
                "expired_now": figures.expired_now,
            }
        )
    return rows
