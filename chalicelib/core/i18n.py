"""Languages: which one a person gets, the gettext catalogues, dates in words.

The page language is chosen by ``?lang=`` first (a person's explicit choice), then
the browser's ``Accept-Language``, then the catalogue default. Translations are
compiled gettext catalogues under ``locales/`` (sources: ``locales/*/messages.po``,
maintained with Babel; see docs/reference.md).
"""

from __future__ import annotations

import gettext
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from chalicelib.core.clock import parse_iso
from chalicelib.core.settings import PACKAGE_ROOT

LOCALE_DIR = PACKAGE_ROOT / "locales"
DOMAIN = "messages"


def parse_accept_language(header: str | None) -> list[str]:
    """Language tags by descending quality (RFC 9110 §12.5.4); malformed parts skipped."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "")[:512].split(",")):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()
        if not tag or tag == "*" or len(tag) > 35:
            continue
        quality = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


#: Words a language field may hold, beyond a locale code ("fr", "fr-FR").
LANGUAGE_WORDS = {
    "english": "en",
    "anglais": "en",
    "french": "fr",
    "français": "fr",
    "francais": "fr",
    "german": "de",
    "deutsch": "de",
    "allemand": "de",
    "spanish": "es",
    "español": "es",
    "espagnol": "es",
    "italian": "it",
    "italiano": "it",
    "italien": "it",
    "dutch": "nl",
    "nederlands": "nl",
    "néerlandais": "nl",
}


def locale_of(value: Any, locales: tuple[str, ...]) -> str | None:
    """A catalogue locale from an Act! language field's value ("fr", "fr-FR", "Français"),
    or None (empty, or a language the catalogue lacks): ``act ask`` and campaigns."""
    text = str(value or "").strip().casefold()
    if not text:
        return None
    code = LANGUAGE_WORDS.get(text) or re.split(r"[-_ ]", text)[0]
    return code if code in locales else None


def negotiate(
    requested: str | None, accept_language: str | None, available: tuple[str, ...], default: str
) -> str:
    """The locale to render: explicit choice, else best browser match, else default."""
    if requested and requested.lower() in available:
        return requested.lower()
    for tag in parse_accept_language(accept_language):
        base = tag.split("-")[0]
        if base in available:
            return base
    return default


@lru_cache(maxsize=8)
def translations(locale: str) -> gettext.NullTranslations:
    """Compiled catalogue for ``locale``; English source strings need none."""
    return gettext.translation(
        DOMAIN, localedir=str(LOCALE_DIR), languages=[locale], fallback=(locale == "en")
    )


def format_moment(value: str | datetime | None, locale: str) -> str:
    """``Dec 7, 2026, 2:03 PM UTC`` / ``7 déc. 2026, 14:03 UTC``: the locale's own date
    and clock (24 h in French), and "UTC" written out (CLDR's French says "TU", which
    few readers know). Minutes are enough for a person; the proof keeps milliseconds."""
    if value is None:
        return ""
    # Cold start: Babel and its locale data load with the first date shown, not at import.
    from babel.dates import format_date, format_time, get_datetime_format

    moment = (parse_iso(value) if isinstance(value, str) else value).astimezone(UTC)
    date = format_date(moment, format="medium", locale=locale)
    clock = format_time(moment, format="short", tzinfo=UTC, locale=locale)
    pattern = str(get_datetime_format("medium", locale=locale))  # "{1}, {0}": date, time
    return pattern.format(clock, date) + " UTC"
