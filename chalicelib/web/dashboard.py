"""What the consent dashboard shows, read from counters, never from a table scan.

Every figure comes from the ``STATS#...`` counter items the commits maintain
(:mod:`chalicelib.consent.stats`), the campaign list, the pending-sync index and the monthly
erasure log: a page costs a few queries whatever the number of people. Each table
can also be exported as CSV (the same rows).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from chalicelib.act import sync
from chalicelib.campaigns import jobs
from chalicelib.consent import stats
from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.clock import utcnow
from chalicelib.core.errors import BadInput
from chalicelib.store import keys
from chalicelib.store.keys import SYNC_HOLD
from chalicelib.store.ledger import Ledger
from chalicelib.web.dashboard_lifecycle import expiries, grades, reasons

TABLES = (
    "purposes",
    "timeline",
    "campaigns",
    "forms",
    "syncs",
    "erasures",
    "reasons",
    "expiries",
    "grades",
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_DAYS = 731


@dataclass(frozen=True)
class Filters:
    purpose: str | None
    campaign: str | None
    form: str | None
    since: date
    until: date
    by: str  # day | week

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for links that keep them)."""
        values = {
            "purpose": self.purpose,
            "campaign": self.campaign,
            "form": self.form,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "by": self.by,
        }
        return {k: v for k, v in values.items() if v}


def _day(text: str | None, name: str, default: date) -> date:
    if not text:
        return default
    if not _DATE.fullmatch(text):
        raise BadInput(f"{name} must be a date like 2026-11-29.")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise BadInput(f"{name} {text!r} is not a real date.") from exc


def filters(params: dict[str, str], catalogue: Catalogue, ledger: Ledger) -> Filters:
    """Read and check the page's filters; BadInput names the one that is wrong."""
    today = utcnow().date()
    until = _day(params.get("until"), "until", today)
    since = _day(params.get("since"), "since", until - timedelta(days=29))
    if since > until:
        raise BadInput("since must not be after until.")
    if (until - since).days > _MAX_DAYS:
        raise BadInput(f"Choose at most {_MAX_DAYS} days.")
    purpose = params.get("purpose") or None
    if purpose and purpose not in catalogue.purposes:
        raise BadInput(f"Unknown purpose {purpose!r}.")
    form = params.get("form") or None
    if form and form not in catalogue.forms:
        raise BadInput(f"Unknown form {form!r}.")
    campaign = params.get("campaign") or None
    if (
        campaign
        and jobs.index_entry(ledger, campaign) is None
        and ledger.get(*keys.campaign(campaign)) is None
    ):
        raise BadInput(f"Unknown campaign {campaign!r}.")
    by = params.get("by") or "day"
    if by not in ("day", "week"):
        raise BadInput("by is day or week.")
    return Filters(purpose, campaign, form, since, until, by)


def _counter(ledger: Ledger, pk: str, names: tuple[str, ...]) -> dict[str, int]:
    return stats.total(ledger.query(pk, "S"), names)


def purposes(ledger: Ledger, catalogue: Catalogue, f: Filters, locale: str) -> list[dict[str, Any]]:
    names = ("accepted", "refused", "withdrawn", "pending", "expired")
    counts = stats.per_purpose(ledger.query(keys.STATS_PURPOSES, "S"))
    rows = []
    for purpose_id, purpose in catalogue.purposes.items():
        if f.purpose and purpose_id != f.purpose:
            continue
        row = counts.get(purpose_id, {})
        rows.append(
            {
                "purpose": purpose_id,
                "title": purpose.text(locale).title,
                **{name: row.get(name, 0) for name in names},
                "legal_basis": purpose.legal_basis,
            }
        )
    return rows


def timeline(ledger: Ledger, catalogue: Catalogue, f: Filters) -> list[dict[str, Any]]:
    """Decisions per day (or ISO week) in the date range, all purposes or one."""
    buckets: dict[str, dict[str, int]] = {}
    day = f.since
    while day <= f.until:
        buckets.setdefault(_bucket(day, f.by), dict.fromkeys(stats.STATES, 0))
        day += timedelta(days=1)
    month = f.since.replace(day=1)
    while month <= f.until:  # one query per month of the range
        for item in ledger.query_between(
            keys.stats_days(month.isoformat()[:7]), f.since.isoformat(), f.until.isoformat() + "#~"
        ):
            bucket = _bucket(date.fromisoformat(item["sk"][:10]), f.by)
            for purpose_id, kinds in stats.per_purpose([item]).items():
                if purpose_id in catalogue.purposes and (not f.purpose or purpose_id == f.purpose):
                    for state in stats.STATES:
                        buckets[bucket][state] += kinds.get(state, 0)
        month = (month + timedelta(days=32)).replace(day=1)
    return [{"period": key, **values} for key, values in sorted(buckets.items())]


def _bucket(day: date, by: str) -> str:
    if by == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def campaigns(ledger: Ledger, f: Filters) -> list[dict[str, Any]]:
    """Per campaign: sent → opened the page → answered (people; of whom accepted
    something, or refused everything) → decisions synced to Act!."""
    names = ("sent", "opened", "answered", "confirmed", "synced")
    rows = []
    for entry in jobs.listing(ledger):
        if f.campaign and entry["campaign_id"] != f.campaign:
            continue
        counts = _counter(ledger, keys.stats_campaign(entry["campaign_id"]), names)
        rows.append(
            {
                "campaign": entry["campaign_id"],
                "state": entry.get("state"),
                "sent": counts["sent"],
                "opened": counts["opened"],
                "decided": counts["answered"],
                "accepted": counts["confirmed"],
                "refused": max(0, counts["answered"] - counts["confirmed"]),
                "synced": counts["synced"],
                "answer_rate": _rate(counts["answered"], counts["sent"]),
            }
        )
    return rows


def forms(ledger: Ledger, catalogue: Catalogue, f: Filters) -> list[dict[str, Any]]:
    """Per form: signups, and how many confirmed (accepted) through the mailed link."""
    rows = []
    for form_id in catalogue.forms:
        if f.form and form_id != f.form:
            continue
        counts = _counter(ledger, keys.stats_form(form_id), ("signups", "answered", "confirmed"))
        rows.append(
            {
                "form": form_id,
                "signups": counts["signups"],
                "confirmed": counts["confirmed"],
                "refused": max(0, counts["answered"] - counts["confirmed"]),
                "confirmation_rate": _rate(counts["confirmed"], counts["signups"]),
            }
        )
    return rows


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "—"


def syncs(ledger: Ledger, f: Filters, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
    """Decisions not (yet) in Act!: the oldest ``limit`` from the pending-sync index
    (keys only), read in one batch, and how many wait in all; no personal data."""
    waiting = [
        key
        for key in ledger.sync_keys(sync.SWEEP_SHARDS + [SYNC_HOLD])
        if not f.purpose or key[1] == keys.purpose_sk(f.purpose)
    ]
    rows = []
    for state in ledger.get_many(waiting[:limit]):
        rows.append(
            {
                "subject": state["subject"][:12],
                "key": f"{state['subject']}|{state['purpose']}",
                "purpose": state["purpose"],
                "state": state["state"],
                "decided_at": state["decided_at"],
                "sync_status": state.get("sync_status"),
                "attempts": state.get("sync_attempts", 0),
                "error": state.get("sync_error", ""),
            }
        )
    return rows, len(waiting)


def erasures(ledger: Ledger, f: Filters, limit: int = 50) -> list[dict[str, Any]]:
    """Recent erasures: when, asked through which way, what happened in Act!; nobody named."""
    rows: list[dict[str, Any]] = []
    month = f.until.replace(day=1)
    for _ in range(13):
        for item in ledger.query_between(
            keys.erasures_month(month.isoformat()[:7]),
            f.since.isoformat(),
            f.until.isoformat() + "~",
        ):
            rows.append(
                {
                    "erased_at": item["erased_at"],
                    "requested_by": item.get("requested_by"),
                    "act_mode": item.get("act_mode"),
                }
            )
        if len(rows) >= limit or month <= f.since.replace(day=1):
            break
        month = (month - timedelta(days=1)).replace(day=1)
    return sorted(rows, key=lambda r: r["erased_at"], reverse=True)[:limit]


def data(ledger: Ledger, catalogue: Catalogue, f: Filters, locale: str) -> dict[str, Any]:
    waiting, total = syncs(ledger, f)
    per_purpose = purposes(ledger, catalogue, f, locale)
    accepted = {row["purpose"]: row["accepted"] for row in per_purpose}
    return {
        "purposes": per_purpose,
        "grades": grades(ledger, catalogue, f, locale, accepted),
        "timeline": timeline(ledger, catalogue, f),
        "campaigns": campaigns(ledger, f),
        "forms": forms(ledger, catalogue, f),
        "syncs": waiting,
        "erasures": erasures(ledger, f),
        "syncs_waiting": total,
        "reasons": reasons(ledger, catalogue, f, locale),
        "expiries": expiries(ledger, catalogue, f, locale),
    }


def csv_table(rows: list[dict[str, Any]]) -> str:
    """One table as CSV; cells a spreadsheet would run as a formula are prefixed with '."""
    out = io.StringIO()
    if not rows:
        return ""
    writer = csv.DictWriter(
        out, fieldnames=[k for k in rows[0] if k != "key"], extrasaction="ignore"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: (f"'{v}" if isinstance(v, str) and v[:1] in "=+-@\t\r" else v)
                for k, v in row.items()
                if k != "key"
            }
        )
    return out.getvalue()


def chart(rows: list[dict[str, Any]], width: int = 960, height: int = 220) -> dict[str, Any]:
    """Stacked bars (accepted, refused, withdrawn) as SVG geometry for the template.

    The plot sits right of a y axis (``left`` wide: its ticks are counts) and above an
    x axis (``bottom`` high: the first, middle and last periods); ``width`` and
    ``height`` are the whole drawing's."""
    left, top, bottom, right = 48, 12, 28, 8
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([sum(r[s] for s in stats.STATES) for r in rows] + [1])
    step = max(1, -(-peak // 4))  # at most five round ticks, the top one at or above peak
    top_value = step * -(-peak // step)
    slot = plot_w / max(len(rows), 1)
    bars = []
    for index, row in enumerate(rows):
        y = float(top + plot_h)
        for state in stats.STATES:
            h = round(plot_h * row[state] / top_value, 2)
            y -= h
            if h:
                bars.append(
                    {
                        "x": round(left + index * slot + slot * 0.1, 2),
                        "y": round(y, 2),
                        "w": round(slot * 0.8, 2),
                        "h": h,
                        "state": state,
                        "period": row["period"],
                        "count": row[state],
                    }
                )
    picked = sorted({0, len(rows) // 2, len(rows) - 1}) if rows else []
    return {
        "width": width,
        "height": height,
        "left": left,
        "top": top,
        "right": width - right,
        "base": top + plot_h,
        "peak": peak,
        "bars": bars,
        "y_ticks": [
            {"value": value, "y": round(top + plot_h - plot_h * value / top_value, 2)}
            for value in range(0, top_value + 1, step)
        ],
        "x_ticks": [_x_tick(rows, i, left, slot) for i in picked],
        "totals": {state: sum(r[state] for r in rows) for state in stats.STATES},
        "first": rows[0]["period"] if rows else "",
        "last": rows[-1]["period"] if rows else "",
    }


def _x_tick(rows: list[dict[str, Any]], index: int, left: int, slot: float) -> dict[str, Any]:
    """A period under its bar; the outer ones aligned on their bar's outer edge, so
    neither is cut at the drawing's edge."""
    if len(rows) == 1 or 0 < index < len(rows) - 1:
        return {
            "label": rows[index]["period"],
            "x": round(left + (index + 0.5) * slot, 2),
            "anchor": "middle",
        }
    first = index == 0
    x = left + (index + (0.1 if first else 0.9)) * slot
    return {"label": rows[index]["period"], "x": round(x, 2), "anchor": "start" if first else "end"}
