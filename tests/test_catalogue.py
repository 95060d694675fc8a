"""The purpose catalogue (chalicelib/purposes.py): validation messages and text versions.

A purpose's wording is evidence, so a catalogue that could show an empty or missing
text must be refused with a message marketing can act on (file, line, field), and a
text version must change with the words and only with the words.
"""
from __future__ import annotations

import hashlib
import re
import textwrap
import unicodedata

import pytest

from chalicelib.core.errors import CatalogueError, ConfigError
from chalicelib.consent.catalogue import (
    Catalogue, canonical_text, load_catalogue, parse_catalogue, text_sha256,
)
from chalicelib.core.settings import PACKAGE_ROOT

CONTROLLER = """\
locales = ["en", "fr"]
default_locale = "en"

[controller]
name = "Example SAS"
address = "1 rue Test, Lyon"
contact_email = "privacy@example.eu"
privacy_policy_url = "https://example.eu/privacy"
"""


def purpose(pid: str, *, title_en: str = "News", title_fr: str = "Nouvelles",
            text_en: str | None = "We mail you news.", text_fr: str | None = "Nous vous écrivons.",
            ) -> str:
    """One [[purposes]] table; a text of None is left out of the TOML."""
    lines = ["", "[[purposes]]", f'id = "{pid}"', f'title.en = "{title_en}"',
             f'title.fr = "{title_fr}"']
    if text_en is not None:
        lines.append(f'text.en = """{text_en}"""')
    if text_fr is not None:
        lines.append(f'text.fr = """{text_fr}"""')
    return "\n".join(lines) + "\n"


def parse(raw: str) -> Catalogue:
    return parse_catalogue(raw, "catalogue.toml")


def line_of(raw: str, occurrence: int) -> int:
    """1-based line number of the ``occurrence``-th (0-based) ``[[purposes]]`` header."""
    numbers = [n for n, line in enumerate(raw.splitlines(), start=1) if line == "[[purposes]]"]
    return numbers[occurrence]


def error_of(raw: str) -> str:
    with pytest.raises(CatalogueError) as caught:
        parse(raw)
    return str(caught.value)


# --- the shipped file ---------------------------------------------------------------


def test_shipped_catalogue_loads() -> None:
    """The catalogue we deploy must pass its own validation."""
    catalogue = load_catalogue(PACKAGE_ROOT / "catalogue.toml")
    assert catalogue.locales == ("en", "fr")
    assert catalogue.default_locale == "en"
    assert list(catalogue.purposes) == ["newsletter", "promotions", "events"]
    assert catalogue.controller.privacy_policy_url.startswith("https://")
    assert catalogue.get("newsletter").email_marketing is True
    assert catalogue.get("events").email_marketing is False
    assert catalogue.get("newsletter").act["status_field"] == "Consent Newsletter"
    for item in catalogue.purposes.values():
        assert len(item.version) == 16
        for locale in catalogue.locales:
            shown = item.text(locale)
            assert shown.title and shown.text
            assert len(shown.sha256) == 64


def test_missing_file_is_a_catalogue_error(tmp_path) -> None:
    """A wrong CONSENT_CATALOGUE path gets a clear error naming the path."""
    missing = tmp_path / "nope.toml"
    with pytest.raises(CatalogueError, match="nope.toml"):
        load_catalogue(missing)


def test_catalogue_error_is_a_config_error() -> None:
    """The CLI and the app treat catalogue problems as configuration problems."""
    assert issubclass(CatalogueError, ConfigError)


# --- validation messages ------------------------------------------------------------


def test_minimal_catalogue_parses() -> None:
    """The fixture text itself is valid, so each failure below is due to its one change."""
    catalogue = parse(CONTROLLER + purpose("news") + purpose("offers"))
    assert list(catalogue.purposes) == ["news", "offers"]
    assert catalogue.source == "catalogue.toml"
    assert catalogue.get("news").text("fr").text == "Nous vous écrivons."


def test_missing_locale_text_names_file_line_and_field() -> None:
    """text.fr absent in the 2nd purpose: the message points right at it."""
    raw = CONTROLLER + purpose("news") + purpose("offers", text_fr=None)
    message = error_of(raw)
    assert "catalogue.toml" in message
    assert f"line {line_of(raw, 1)}" in message
    assert "purposes[1]" in message
    assert "text.fr" in message
    assert "missing" in message


def test_missing_title_names_the_field() -> None:
    raw = CONTROLLER + purpose("news").replace('title.en = "News"\n', "")
    message = error_of(raw)
    assert f"line {line_of(raw, 0)}" in message and "title.en is missing" in message


@pytest.mark.parametrize("blank", ["", "   ", "\n\n  \t\n"], ids=["empty", "spaces", "blank-lines"])
def test_empty_or_whitespace_text_is_refused(blank: str) -> None:
    """A person must never be asked to decide on nothing."""
    raw = CONTROLLER + purpose("news", text_en=blank)
    message = error_of(raw)
    assert "text.en is empty" in message
    assert f"line {line_of(raw, 0)}" in message


def test_whitespace_title_is_refused() -> None:
    message = error_of(CONTROLLER + purpose("news", title_fr="  "))
    assert "title.fr is empty" in message


def test_duplicate_id_names_both_indexes() -> None:
    """Two tables with one id: say which one repeats which."""
    raw = CONTROLLER + purpose("news") + purpose("offers") + purpose("news")
    message = error_of(raw)
    assert "purposes[2]" in message and "purposes[0]" in message
    assert "'news'" in message and "duplicates" in message
    assert f"line {line_of(raw, 2)}" in message


@pytest.mark.parametrize("bad_id", ["News", "1news", "news letter", "", "n" * 41, "café", "-x"])
def test_bad_id_is_refused(bad_id: str) -> None:
    message = error_of(CONTROLLER + purpose(bad_id))
    assert "purposes[0]" in message and "id" in message and "lower-case" in message


def test_id_must_be_a_string() -> None:
    raw = CONTROLLER + purpose("x").replace('id = "x"', "id = 7")
    assert "id 7" in error_of(raw)


def test_missing_controller_is_refused() -> None:
    raw = 'locales = ["en"]\n' + purpose("news", text_fr=None)
    message = error_of(raw)
    assert "catalogue.toml" in message and "[controller]" in message


@pytest.mark.parametrize("url", ["ftp://example.eu/privacy", "example.eu/privacy",
                                 "javascript:alert(1)"])
def test_privacy_policy_url_must_be_http(url: str) -> None:
    raw = CONTROLLER.replace("https://example.eu/privacy", url) + purpose("news")
    assert "privacy_policy_url must be an http(s) URL" in error_of(raw)


def test_controller_field_missing() -> None:
    raw = CONTROLLER.replace('contact_email = "privacy@example.eu"\n', "") + purpose("news")
    assert "controller.contact_email must be a non-empty string" in error_of(raw)


def test_unsupported_locale_is_refused() -> None:
    """A locale without page translations would show a half-English page."""
    raw = CONTROLLER.replace('["en", "fr"]', '["en", "de"]') + purpose("news")
    message = error_of(raw)
    assert "'de'" in message and "supported" in message


def test_default_locale_must_be_listed() -> None:
    raw = CONTROLLER.replace('default_locale = "en"', 'default_locale = "fr"').replace(
        '["en", "fr"]', '["en"]') + purpose("news")
    assert "default_locale 'fr' is not in locales" in error_of(raw)


def test_no_purposes_is_refused() -> None:
    assert "at least one [[purposes]]" in error_of(CONTROLLER)


@pytest.mark.parametrize("raw", [
    "locales = [\n",
    CONTROLLER + "[[purposes]]\nid = \"a\"\nid = \"b\"\n",
    CONTROLLER + "title.en = 'unterminated\n",
])
def test_invalid_toml_is_a_catalogue_error(raw: str) -> None:
    message = error_of(raw)
    assert message.startswith("catalogue.toml: not valid TOML")


def test_only_listed_locales_are_required() -> None:
    """With locales = ["en"], a purpose needs no French text."""
    raw = CONTROLLER.replace('["en", "fr"]', '["en"]') + purpose("news", text_fr=None)
    catalogue = parse(raw)
    assert catalogue.locales == ("en",)
    assert set(catalogue.get("news").texts) == {"en"}


# --- text versions ------------------------------------------------------------------


BODY = "We e-mail you our newsletter once a month.\n\nYou can withdraw at any time, café."


@pytest.mark.parametrize("reformatted", [
    BODY.replace(".\n", ".   \n") + "  ",                    # trailing spaces
    BODY.replace("\n", "\r\n"),                               # CRLF
    "\n\n" + BODY + "\n\n\n",                                 # blank lines around
    unicodedata.normalize("NFD", BODY),                       # decomposed é
    "  \r\n" + unicodedata.normalize("NFD", BODY).replace("\n", " \r\n") + "\r\n",  # all at once
], ids=["trailing-spaces", "crlf", "blank-lines", "nfd", "all"])
def test_reformatting_keeps_the_text_version(reformatted: str) -> None:
    """Editing the file's layout must not pretend the person read another text."""
    assert reformatted != BODY
    assert text_sha256("Newsletter", reformatted) == text_sha256("Newsletter", BODY)
    assert canonical_text("Newsletter ", reformatted) == canonical_text("Newsletter", BODY)


def test_changing_a_word_changes_the_text_version() -> None:
    assert text_sha256("Newsletter", BODY.replace("month", "week")) != text_sha256("Newsletter", BODY)
    assert text_sha256("Weekly news", BODY) != text_sha256("Newsletter", BODY)


def test_sha256_is_sha256_of_the_canonical_text() -> None:
    """Anyone can recompute a version from the shown title and text with hashlib alone."""
    catalogue = parse(CONTROLLER + purpose("news", text_en=BODY))
    shown = catalogue.get("news").text("en")
    expected = hashlib.sha256(canonical_text(shown.title, shown.text).encode("utf-8")).hexdigest()
    assert shown.sha256 == expected
    assert canonical_text("T", "x") == "T\n\nx"


def test_catalogue_reformatting_keeps_versions() -> None:
    """The same catalogue, reformatted in the TOML, keeps every sha256 and version."""
    plain = parse(CONTROLLER + purpose("news", text_en=BODY))
    messy_body = "\n" + unicodedata.normalize("NFD", BODY).replace("\n", "   \n") + "\n\n"
    messy_raw = (CONTROLLER + purpose("news", text_en=messy_body)).replace("\n", "\r\n")
    messy = parse(messy_raw)
    assert messy.get("news").version == plain.get("news").version
    for locale in ("en", "fr"):
        assert messy.get("news").text(locale).sha256 == plain.get("news").text(locale).sha256


@pytest.mark.parametrize("field", ["text_en", "text_fr", "title_en", "title_fr"])
def test_changing_a_word_changes_sha_and_purpose_version(field: str) -> None:
    """Any locale's wording is part of the purpose version."""
    before = parse(CONTROLLER + purpose("news"))
    defaults = {"text_en": "We mail you news.", "text_fr": "Nous vous écrivons.",
                "title_en": "News", "title_fr": "Nouvelles"}
    changed = {field: defaults[field].replace(defaults[field].split()[0], "Changed")}
    after = parse(CONTROLLER + purpose("news", **changed))
    locale = field.rsplit("_", 1)[1]
    other = "fr" if locale == "en" else "en"
    assert after.get("news").version != before.get("news").version
    assert after.get("news").text(locale).sha256 != before.get("news").text(locale).sha256
    assert after.get("news").text(other).sha256 == before.get("news").text(other).sha256


def test_versions_differ_between_purposes_with_different_texts() -> None:
    catalogue = parse(CONTROLLER + purpose("news") + purpose("offers", text_en="Offers by mail."))
    assert catalogue.get("news").version != catalogue.get("offers").version


def test_line_numbers_with_inline_subtables() -> None:
    """[purposes.act] sub-tables between purposes do not shift the reported line."""
    raw = (CONTROLLER + purpose("news") + '[purposes.act]\nstatus_field = "S"\n'
           + textwrap.dedent(purpose("offers", text_en=None)))
    message = error_of(raw)
    assert f"line {line_of(raw, 1)}" in message and "text.en is missing" in message
    assert parse(CONTROLLER + purpose("news") + '[purposes.act]\nstatus_field = "S"\n') \
        .get("news").act == {"status_field": "S"}


@pytest.mark.parametrize("change, message", [
    (('email_marketing = true', 'email_marketing = "no"'), "email_marketing must be true or false"),
    (('email_marketing = true', 'emial_marketing = true'), "unknown key(s) emial_marketing"),
    (('locales = ["en", "fr"]', 'locales = ["en", "fr", "en"]'), "lists a language twice"),
    (('default_locale = "en"', 'default_locale = "en"\nbrand = "x"'), "unknown key(s) brand"),
])
def test_mistakes_marketing_makes_are_refused(change, message):
    """A typo must not silently change what a purpose means."""
    from pathlib import Path

    raw = (Path(__file__).resolve().parent.parent / "catalogue.toml").read_text()
    old, new = change
    assert old in raw
    with pytest.raises(CatalogueError, match=re.escape(message)):
        parse_catalogue(raw.replace(old, new, 1), "catalogue.toml")
