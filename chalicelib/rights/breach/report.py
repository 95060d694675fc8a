"""What was done: per notice, how many were told, failed or could not be reached."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.clock import parse_iso
from chalicelib.rights.breach.notice import NOTIFIED, UNREACHABLE, load_recorded, progress_items
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger


@dataclass
class Report:
    """Who was told, who could not be, and when: what the controller shows a regulator."""

    breach_id: str
    created_at: str
    operator: str
    aware_at: str | None
    locales: list[str]
    notified: int = 0
    unreachable: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    permanent: int = 0
    first_at: str | None = None
    last_at: str | None = None

    @property
    def hours_after_awareness(self) -> float | None:
        """From learning of the breach to the last person notified."""
        if not (self.aware_at and self.last_at):
            return None
        return round((parse_iso(self.last_at) - parse_iso(self.aware_at)).total_seconds() / 3600, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "breach": self.breach_id,
            "notice_recorded_at": self.created_at,
            "operator": self.operator,
            "aware_at": self.aware_at,
            "locales": self.locales,
            "notified": self.notified,
            "unreachable": dict(self.unreachable),
            "failed": self.failed,
            "permanent": self.permanent,
            "first_notified_at": self.first_at,
            "last_notified_at": self.last_at,
            "hours_after_awareness": self.hours_after_awareness,
        }


def report(ledger: Ledger, breach_id: str) -> Report:
    """Counts by outcome and the first and last notification times (one query)."""
    recorded = load_recorded(ledger, breach_id)
    result = Report(
        breach_id, recorded.created_at, recorded.operator, recorded.aware_at, sorted(recorded.texts)
    )
    for item in progress_items(ledger, breach_id):
        status = item.get("status")
        if status == NOTIFIED:
            result.notified += 1
            result.first_at = min(filter(None, (result.first_at, item["at"])))
            result.last_at = max(filter(None, (result.last_at, item["at"])))
        elif status == UNREACHABLE:
            reason = item.get("reason") or "?"
            result.unreachable[reason] = result.unreachable.get(reason, 0) + 1
        elif item.get("permanent"):
            result.permanent += 1
        else:
            result.failed += 1
    return result


def breaches(ledger: Ledger) -> list[dict[str, Any]]:
    """Every recorded notice (id, when, by whom, languages): a scan, for operators."""
    rows = [
        {
            "breach": item["breach_id"],
            "recorded_at": item.get("created_at"),
            "operator": item.get("operator"),
            "aware_at": item.get("aware_at"),
            "locales": sorted(item.get("texts") or {}),
        }
        for item in ledger.scan_items(keys.BREACH_PREFIX, keys.NOTICE)
    ]
    return sorted(rows, key=lambda row: row.get("recorded_at") or "")
