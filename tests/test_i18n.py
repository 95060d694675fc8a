"""Languages (chalicelib/i18n.py): which language a person gets, and dates in words.

A consent page must be read in the person's language: the explicit ``?lang`` choice
first, then the browser, then the catalogue default.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.core.i18n import format_moment, negotiate, parse_accept_language, translations

AVAILABLE = ("en", "fr")
MOMENT = "2026-11-29T14:03:12.000Z"


# --- Accept-Language ----------------------------------------------------------------


@pytest.mark.parametrize("header, expected", [
    ("fr-CA,fr;q=0.9,en;q=0.8", ["fr-ca", "fr", "en"]),
    ("en;q=0.5, fr;q=0.9, de", ["de", "fr", "en"]),
    ("de;q=0.3,en;q=0.3,fr;q=0.3", ["de", "en", "fr"]),           # ties keep header order
    ("EN-gb", ["en-gb"]),
    ("fr ; q=0.7 , en ; q = 0.8", ["en", "fr"]),
])
def test_parse_accept_language_orders_by_quality(header: str, expected: list[str]) -> None:
    assert parse_accept_language(header) == expected


@pytest.mark.parametrize("header, expected", [
    ("fr;q=0,en", ["en"]),                     # q=0 means "not acceptable"
    ("fr;q=0.000, en;q=0.1", ["en"]),
    ("*", []),
    ("*;q=0.5,fr;q=0.4", ["fr"]),
    ("de,*", ["de"]),
])
def test_parse_accept_language_ignores_q0_and_star(header: str, expected: list[str]) -> None:
    assert parse_accept_language(header) == expected


@pytest.mark.parametrize("header, expected", [
    (None, []),
    ("", []),
    (",,,", []),
    (";q=0.9,fr", ["fr"]),                     # a parameter without a tag
    ("fr;q=abc,en", ["en"]),                   # unreadable quality: skipped
    ("x" * 40 + ",fr", ["fr"]),                # absurdly long tag
    ("en;foo=bar", ["en"]),                    # unknown parameter ignored
    ("fr;q=", []),                              # empty quality: skipped
])
def test_parse_accept_language_skips_malformed_parts(header: str | None,
                                                     expected: list[str]) -> None:
    assert parse_accept_language(header) == expected


def test_parse_accept_language_bounds_its_work() -> None:
    """A huge header is cut, not parsed in full (cheap for every request)."""
    header = "fr;q=0.1," + "en;q=0.5," * 10_000
    result = parse_accept_language(header)
    assert result[-1] == "fr"
    assert len(result) <= 512 // len("en;q=0.5,") + 1


# --- negotiation --------------------------------------------------------------------


def test_explicit_lang_wins_over_browser() -> None:
    assert negotiate("fr", "en-US,en;q=0.9", AVAILABLE, "en") == "fr"
    assert negotiate("FR", "en", AVAILABLE, "en") == "fr"


def test_unavailable_explicit_lang_falls_back_to_browser() -> None:
    assert negotiate("de", "fr-FR,en;q=0.5", AVAILABLE, "en") == "fr"


def test_browser_region_matches_base_language() -> None:
    """fr-CA is served French: we have no regional variants."""
    assert negotiate(None, "fr-CA", AVAILABLE, "en") == "fr"
    assert negotiate(None, "de-DE,fr-CA;q=0.8,en;q=0.5", AVAILABLE, "en") == "fr"


def test_browser_preference_order_is_respected() -> None:
    assert negotiate(None, "fr;q=0.4,en;q=0.9", AVAILABLE, "fr") == "en"


@pytest.mark.parametrize("requested, header", [
    (None, None), ("", ""), ("de", "de-DE,es;q=0.5"), (None, "fr;q=0"), (None, "*"),
])
def test_default_when_nothing_matches(requested: str | None, header: str | None) -> None:
    assert negotiate(requested, header, AVAILABLE, "fr") == "fr"
    assert negotiate(requested, header, AVAILABLE, "en") == "en"


# --- dates and translations ---------------------------------------------------------


def test_format_moment_french() -> None:
    """The way French readers write it: 24 h, and "UTC" (not CLDR's "TU")."""
    assert format_moment(MOMENT, "fr") == "29 nov. 2026, 14:03 UTC"
    assert format_moment("2026-12-07T09:05:00.000Z", "fr") == "7 déc. 2026, 09:05 UTC"


def test_format_moment_english() -> None:
    text = format_moment(MOMENT, "en")
    assert text.startswith("Nov 29, 2026, 2:03") and text.endswith("PM UTC")


def test_format_moment_accepts_datetime_and_none() -> None:
    moment = datetime(2026, 11, 29, 14, 3, 12, tzinfo=timezone.utc)
    assert format_moment(moment, "en") == format_moment(MOMENT, "en")
    assert format_moment(None, "fr") == ""


def test_format_moment_rejects_non_iso_text() -> None:
    """Timestamps come from clock.iso; anything else is a bug worth seeing."""
    with pytest.raises(ValueError):
        format_moment("29/11/2026", "en")


def test_french_translation() -> None:
    assert translations("fr").gettext("Accept") == "Accepter"


def test_english_uses_source_strings() -> None:
    assert translations("en").gettext("Accept") == "Accept"
