"""Signup forms in the catalogue (the ``[[forms]]`` tables of chalicelib/purposes.py).

A form decides which purposes a website may ask for and which websites may embed it
or post to it, so a typo must not silently widen it (a wildcard origin, an unknown
key ignored) or break it at the first signup. Every refusal must name the file, the
line of the offending ``[[forms]]`` header and the field, like purpose errors do.
"""
from __future__ import annotations

import re

import pytest

from chalicelib.core.errors import CatalogueError
from chalicelib.consent.catalogue import Catalogue, Form, load_catalogue, parse_catalogue
from chalicelib.core.settings import PACKAGE_ROOT

HEAD = """\
# a comment, so line numbers are not trivially small
locales = ["en", "fr"]
default_locale = "en"

[controller]
name = "Example SAS"
address = "1 rue Test, Lyon"
contact_email = "privacy@example.eu"
privacy_policy_url = "https://example.eu/privacy"
"""


def purpose(pid: str) -> str:
    return (f'\n[[purposes]]\nid = "{pid}"\ntitle.en = "T {pid}"\ntitle.fr = "T {pid} fr"\n'
            f'text.en = "We mail you {pid}."\ntext.fr = "Nous vous écrivons {pid}."\n'
            f'[purposes.act]\nstatus_field = "Consent {pid}"\n')


PURPOSES = purpose("news") + purpose("offers")


def form(fid: str = "site", *lines: str, purposes: str | None = '["news"]') -> str:
    """One [[forms]] table; ``lines`` are added verbatim, ``purposes=None`` leaves it out."""
    body = ["", "# the next form", "[[forms]]", f'id = "{fid}"']
    if purposes is not None:
        body.append(f"purposes = {purposes}")
    return "\n".join([*body, *lines]) + "\n"


def parse(raw: str) -> Catalogue:
    return parse_catalogue(raw, "catalogue.toml")


def forms_line(raw: str, occurrence: int) -> int:
    """1-based line number of the ``occurrence``-th (0-based) ``[[forms]]`` header."""
    numbers = [n for n, line in enumerate(raw.splitlines(), start=1) if line == "[[forms]]"]
    return numbers[occurrence]


def refusal(raw: str) -> str:
    with pytest.raises(CatalogueError) as caught:
        parse(raw)
    return str(caught.value)


def assert_points_at(raw: str, message: str, index: int, *fragments: str) -> None:
    """The message names the file, the line of forms[index]'s header, the index and the field."""
    assert message.startswith(f"catalogue.toml line {forms_line(raw, index)} (forms[{index}]): "), message
    for fragment in fragments:
        assert fragment in message, message


# --- what parses ----------------------------------------------------------------------


def test_shipped_catalogue_has_the_website_form() -> None:
    """The deployed catalogue offers the form the embed snippets of docs/marketing.*.md refer to
    (tests/test_docs.py checks those snippets against `forms snippet`)."""
    catalogue = load_catalogue(PACKAGE_ROOT / "catalogue.toml")
    website = catalogue.forms["website"]
    assert set(website.purposes) <= set(catalogue.purposes)
    assert website.purposes == ("newsletter", "promotions", "events")
    assert website.allowed_origins and all(o.startswith("https://") for o in website.allowed_origins)
    assert set(website.heading) <= set(catalogue.locales)
    assert website.locale is None or website.locale in catalogue.locales


def test_minimal_form_gets_safe_defaults() -> None:
    """Only id and purposes are required; the defaults keep bots out but plain HTML in."""
    catalogue = parse(HEAD + PURPOSES + form("site"))
    made = catalogue.forms["site"]
    assert made == Form(id="site", purposes=("news",))
    assert made.min_fill_seconds == 3
    assert made.allow_plain_html is True
    assert made.ask_name is False
    assert made.allowed_origins == ()
    assert made.locale is None and made.heading == {}
    assert made.redirect_after_submit is None and made.redirect_after_confirm is None


def test_catalogue_without_forms_has_none() -> None:
    assert parse(HEAD + PURPOSES).forms == {}


def test_full_form_parses() -> None:
    """Every documented key, with origins normalised (case, trailing slash, duplicates)."""
    raw = HEAD + PURPOSES + form(
        "site",
        'allowed_origins = ["https://Shop.Example/", "https://shop.example", "http://localhost:8000"]',
        'locale = "fr"', "ask_name = true", "min_fill_seconds = 0", "allow_plain_html = false",
        'redirect_after_submit = "https://shop.example/thanks"',
        'redirect_after_confirm = "http://shop.example/welcome"',
        'heading.en = "  Hear from us "', 'heading.fr = "Restons en contact"',
        purposes='["offers", "news"]')
    made = parse(raw).forms["site"]
    assert made.purposes == ("offers", "news")
    assert made.allowed_origins == ("https://shop.example", "http://localhost:8000")
    assert (made.locale, made.ask_name, made.min_fill_seconds, made.allow_plain_html) == \
        ("fr", True, 0, False)
    assert made.redirect_after_submit == "https://shop.example/thanks"
    assert made.redirect_after_confirm == "http://shop.example/welcome"
    assert made.heading == {"en": "Hear from us", "fr": "Restons en contact"}


@pytest.mark.parametrize("fill", [0, 600])
def test_min_fill_seconds_bounds_are_inclusive(fill: int) -> None:
    raw = HEAD + PURPOSES + form("site", f"min_fill_seconds = {fill}")
    assert parse(raw).forms["site"].min_fill_seconds == fill


# --- Form.allows ----------------------------------------------------------------------


ORIGINS_FORM = Form(id="site", purposes=("news",),
                    allowed_origins=("https://shop.example", "http://localhost:8000"))


@pytest.mark.parametrize("origin, allowed", [
    ("https://shop.example", True),
    ("HTTPS://SHOP.EXAMPLE", True),
    ("https://Shop.Example/", True),
    ("http://localhost:8000", True),
    ("http://shop.example", False),          # another scheme is another origin
    ("https://shop.example:8443", False),    # another port too
    ("https://evil.example", False),
    ("https://shop.example.evil.example", False),
    ("https://evil.example/https://shop.example", False),
    ("null", False),                         # sandboxed iframes and file:// pages
    ("", False),
    (None, False),
])
def test_form_allows_only_its_origins(origin: str | None, allowed: bool) -> None:
    """CORS, frame-ancestors and cross-site posts all hinge on this one comparison."""
    assert ORIGINS_FORM.allows(origin) is allowed


def test_form_without_origins_allows_nobody() -> None:
    assert Form(id="x", purposes=("news",)).allows("https://shop.example") is False


def test_parsed_origins_are_matched_like_header_values() -> None:
    """A catalogue written with capitals and a slash still matches the browser's Origin."""
    raw = HEAD + PURPOSES + form("site", 'allowed_origins = ["HTTPS://Shop.Example/"]')
    assert parse(raw).forms["site"].allows("https://shop.example")


# --- refusals -------------------------------------------------------------------------


def test_unknown_key_is_refused() -> None:
    """A misspelt key (e.g. ``ask_nmae``) must not be silently ignored."""
    raw = HEAD + PURPOSES + form("ok") + form("site", "ask_nmae = true")
    assert_points_at(raw, refusal(raw), 1, "unknown key(s) ask_nmae", "allowed:")


@pytest.mark.parametrize("bad_id", ["Site", "1site", "my site", "", "s" * 41, "café", "-x"])
def test_bad_form_id_is_refused(bad_id: str) -> None:
    """Form ids end up in URLs (/signup/<id>): only safe, lower-case ids."""
    raw = HEAD + PURPOSES + form(bad_id)
    assert_points_at(raw, refusal(raw), 0, f"id {bad_id!r}", "lower-case")


def test_form_id_must_be_a_string() -> None:
    raw = HEAD + PURPOSES + form("x").replace('id = "x"', "id = 7")
    assert_points_at(raw, refusal(raw), 0, "id 7")


def test_duplicate_form_id_is_refused() -> None:
    """Two forms with one id: the second would silently replace the first."""
    raw = HEAD + PURPOSES + form("site") + form("other") + form("site", purposes='["offers"]')
    assert_points_at(raw, refusal(raw), 2, "id 'site'", "another form")


def test_unknown_purpose_is_refused() -> None:
    raw = HEAD + PURPOSES + form("site", purposes='["news", "newsletter"]')
    assert_points_at(raw, refusal(raw), 0, "purposes", "unknown purpose(s) newsletter",
                     "known: news, offers")


def test_purpose_listed_twice_is_refused() -> None:
    raw = HEAD + PURPOSES + form("site", purposes='["news", "offers", "news"]')
    assert_points_at(raw, refusal(raw), 0, "purposes lists a purpose twice")


@pytest.mark.parametrize("purposes", ["[]", '"news"', "[1, 2]", "{ a = 1 }", None],
                         ids=["empty", "string", "numbers", "table", "missing"])
def test_purposes_must_be_a_non_empty_list_of_ids(purposes: str | None) -> None:
    """A form asking for nothing, or for something unreadable, is a mistake."""
    raw = HEAD + PURPOSES + form("site", purposes=purposes)
    assert_points_at(raw, refusal(raw), 0, "purposes must be a non-empty list of purpose ids")


@pytest.mark.parametrize("origin", [
    "https://shop.example/path", "https://*.shop.example", "*", "shop.example",
    "//shop.example", "ftp://shop.example", "https://shop.example?x=1",
    "https://user@shop.example", "https://shop.example:port",
], ids=["path", "wildcard", "star", "no-scheme", "scheme-relative", "ftp", "query", "userinfo",
        "bad-port"])
def test_bad_origin_is_refused(origin: str) -> None:
    """Only ``scheme://host[:port]``: a path or wildcard would not do what its writer thinks."""
    raw = HEAD + PURPOSES + form("site", f'allowed_origins = ["https://ok.example", "{origin}"]')
    assert_points_at(raw, refusal(raw), 0, f"allowed_origins: {origin!r} is not an origin",
                     "no path, no wildcard")


@pytest.mark.parametrize("value", ['"https://shop.example"', "[1]", "true"])
def test_allowed_origins_must_be_a_list_of_strings(value: str) -> None:
    raw = HEAD + PURPOSES + form("site", f"allowed_origins = {value}")
    assert_points_at(raw, refusal(raw), 0, "allowed_origins must be a list of strings")


@pytest.mark.parametrize("locale", ["de", "EN", "en-GB", ""])
def test_locale_must_be_a_catalogue_locale(locale: str) -> None:
    """A form fixed to a language the catalogue has no texts for cannot be shown."""
    raw = HEAD + PURPOSES + form("site", f'locale = "{locale}"')
    assert_points_at(raw, refusal(raw), 0, f"locale {locale!r} is not in locales (en, fr)")


@pytest.mark.parametrize("value", ["-1", "601", "3.5", '"3"', "true", "false"],
                         ids=["negative", "too-big", "float", "string", "true", "false"])
def test_min_fill_seconds_must_be_a_whole_number_in_range(value: str) -> None:
    """A bool is an int in Python: ``true`` must not sneak in as 1 second."""
    raw = HEAD + PURPOSES + form("site", f"min_fill_seconds = {value}")
    assert_points_at(raw, refusal(raw), 0, "min_fill_seconds must be a whole number from 0 to 600")


@pytest.mark.parametrize("key", ["redirect_after_submit", "redirect_after_confirm"])
@pytest.mark.parametrize("url", ["ftp://shop.example/thanks", "/thanks", "shop.example/thanks",
                                 "javascript:alert(1)", "data:text/html,hi", ""])
def test_redirect_must_be_http_url(key: str, url: str) -> None:
    """A redirect is followed by the person's browser: never a script or relative URL."""
    raw = HEAD + PURPOSES + form("site", f'{key} = "{url}"')
    assert_points_at(raw, refusal(raw), 0, f"{key} must be an http(s) URL")


@pytest.mark.parametrize("key", ["ask_name", "allow_plain_html"])
def test_flags_must_be_booleans(key: str) -> None:
    raw = HEAD + PURPOSES + form("site", f'{key} = "yes"')
    assert_points_at(raw, refusal(raw), 0, f"{key} must be true or false")


def test_heading_in_an_unlisted_language_is_refused() -> None:
    """A heading.de would never be shown: most likely a typo for a listed language."""
    raw = HEAD + PURPOSES + form("site", 'heading.en = "Hi"', 'heading.de = "Hallo"')
    assert_points_at(raw, refusal(raw), 0, "heading: de is not in locales")


@pytest.mark.parametrize("heading", ['heading = "Hi"', 'heading.en = "  "', "heading.en = 3"],
                         ids=["not-a-table", "blank", "not-text"])
def test_heading_must_be_a_table_of_text(heading: str) -> None:
    raw = HEAD + PURPOSES + form("site", heading)
    assert_points_at(raw, refusal(raw), 0, "heading must be a table of locale = non-empty text")


@pytest.mark.parametrize("raw", [
    HEAD.replace('default_locale = "en"\n', 'default_locale = "en"\nforms = "website"\n') + PURPOSES,
    HEAD.replace('default_locale = "en"\n', 'default_locale = "en"\nforms = 3\n') + PURPOSES,
    HEAD + PURPOSES + '\n[forms]\nid = "site"\npurposes = ["news"]\n',
], ids=["string", "number", "single-table"])
def test_forms_must_be_an_array_of_tables(raw: str) -> None:
    """``[forms]`` instead of ``[[forms]]`` is an easy slip; it must be named, not crash."""
    assert refusal(raw) == "catalogue.toml: forms must be [[forms]] tables"


def test_forms_entries_must_be_tables() -> None:
    """``forms = ["website"]`` (a list of strings) names the entry."""
    raw = HEAD.replace('default_locale = "en"\n', 'default_locale = "en"\nforms = ["website"]\n') \
        + PURPOSES
    message = refusal(raw)
    assert message.startswith("catalogue.toml") and "forms[0]" in message
    assert "must be a table" in message


# --- line numbers ---------------------------------------------------------------------


def test_line_number_is_the_offending_forms_header() -> None:
    """Purposes, sub-tables, comments and other forms before it do not shift the line."""
    raw = (HEAD + PURPOSES + form("first", 'heading.en = "One"', 'heading.fr = "Un"')
           + form("second", "min_fill_seconds = 0") + "[[ forms ]]   # spaced header\n"
           + 'id = "third"\npurposes = ["news"]\n'
           + form("fourth", 'locale = "de"'))
    message = refusal(raw)
    line = forms_line(raw, 2)  # the 4th form; the 3rd has the spaced header
    assert message.startswith(f"catalogue.toml line {line} (forms[3]): locale 'de'"), message


def test_error_in_a_field_far_below_the_header_names_the_header_line() -> None:
    """The reported line is the table's header, even when the bad field is lines below it."""
    raw = HEAD + PURPOSES + form("site", *[f"# note {n}" for n in range(10)],
                                 'redirect_after_submit = "nope"')
    message = refusal(raw)
    assert f"line {forms_line(raw, 0)} " in message
    bad_line = next(n for n, text in enumerate(raw.splitlines(), start=1) if "nope" in text)
    assert f"line {bad_line}" not in message


def test_source_is_the_file_name_given() -> None:
    """load_catalogue passes the file's name, so messages say which file to open."""
    raw = HEAD + PURPOSES + form("Bad")
    with pytest.raises(CatalogueError, match=re.escape("custom.toml line ")):
        parse_catalogue(raw, "custom.toml")
