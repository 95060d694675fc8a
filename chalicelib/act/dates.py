"""Act!'s clock: the server's local wall time, and the exact instants we keep.

Act! keeps date-times (custom DateTime fields, history ``startTime``/``endTime``,
``created``/``edited``) as the Act! server's local wall time, usually without a zone;
some installs add an offset when they answer. Everything we hold is a UTC instant
(``chalicelib.core.clock``), so each crossing converts, with the zone named by
``ACT_TIMEZONE`` (an IANA name such as ``Europe/Paris``, default ``UTC``):

- ``to_act``: an instant as the wall time Act! stores (``2026-03-29T03:30:00``);
- ``literal``: an instant as an OData date literal *with* its offset, so a query
  never depends on how Act! reads a bare date;
- ``from_act``: what Act! answered, back to an instant. A wall time the clocks show
  twice (the hour when summer time ends) is read as the earlier of the two: a
  watermark that errs early re-reads a little, never skips.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib.core.clock import iso, parse_iso
from chalicelib.core.errors import ConfigError

DEFAULT_ZONE = "UTC"


@lru_cache(maxsize=16)
def zone(name: str) -> ZoneInfo:
    """The zone called ``name``; ConfigError naming the setting when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"ACT_TIMEZONE={name!r} is not an IANA time zone name: write the Act! "
            "server's zone, e.g. Europe/Paris (see the tz database list)."
        ) from exc


def _instant(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return parse_iso(value)


def to_act(value: str | datetime, tz: ZoneInfo) -> str:
    """The wall time Act! stores for an instant: ``YYYY-MM-DDTHH:MM:SS``, no zone."""
    return _instant(value).astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")


def literal(value: str | datetime, tz: ZoneInfo) -> str:
    """An OData date-time literal for an instant, in Act!'s zone, with its offset."""
    local = _instant(value).astimezone(tz)
    offset = local.strftime("%z")
    return (
        local.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{local.microsecond // 1000:03d}"
        + f"{offset[:3]}:{offset[3:]}"
    )


def from_act(value: object, tz: ZoneInfo) -> datetime | None:
    """The instant of a date-time Act! answered (zone or not); None if it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    head, dot, tail = text.partition(".")
    if dot:  # .NET writes up to 7 fractional digits; Python reads 6
        digits = len(tail) - len(tail.lstrip("0123456789"))
        tail = tail[: min(digits, 6)] + tail[digits:]
        text = f"{head}.{tail}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz, fold=0)
    return parsed.astimezone(UTC)


def from_act_iso(value: object, tz: ZoneInfo) -> str | None:
    """:func:`from_act` in our own format (``2026-11-29T14:03:12.345Z``)."""
    moment = from_act(value, tz)
    return iso(moment) if moment else None


def same_wall_time(current: object, wanted: str, tz: ZoneInfo) -> bool:
    """Whether Act!'s answer for a date field shows the wall time we wrote (to the second)."""
    moment = from_act(current, tz)
    return moment is not None and to_act(moment, tz) == wanted


def describe(tz: ZoneInfo, at: datetime | None = None) -> str:
    """``Europe/Paris (UTC+01:00 now)``, for ``act check``."""
    local = (at or datetime.now(UTC)).astimezone(tz)
    offset = local.strftime("%z")
    return f"{tz.key} (UTC{offset[:3]}:{offset[3:]} now)"
