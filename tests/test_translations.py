"""The French pages are complete: every message in the code and templates is translated,
the compiled catalogue the app loads (messages.mo) matches its source (messages.po),
and no translation loses or invents a placeholder.

Messages are extracted exactly as `make translations` does (babel.cfg, plus the N_
keyword) so a new or changed string in chalicelib/ or templates/ fails here until it
is translated.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "locales" / "fr" / "LC_MESSAGES" / "messages.po"
MO = ROOT / "locales" / "fr" / "LC_MESSAGES" / "messages.mo"
HOW_TO_FIX = (
    "Run `make translations` (extracts the messages into locales/messages.pot, updates "
    "locales/fr/LC_MESSAGES/messages.po and compiles messages.mo), translate every empty "
    "or fuzzy entry of messages.po (and remove the `#, fuzzy` flag once checked), then run "
    "`make translations` again to compile, and commit both messages.po and messages.mo."
)

#: A printf-style conversion, as `%` formatting reads it (Jinja2's newstyle gettext and
#: Python's `%` operator): optional mapping key, flags, width, precision, type.
CONVERSION = re.compile(r"%(?:\((?P<key>[^)]*)\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?"
                        r"(?P<type>[diouxXeEfFgGcrsa%])")


@pytest.fixture(scope="module")
def po() -> Catalog:
    with PO.open("rb") as source:
        return read_po(source, locale="fr")


@pytest.fixture(scope="module")
def mo() -> Catalog:
    with MO.open("rb") as source:
        return read_mo(source)


@pytest.fixture(scope="module")
def extracted() -> dict[tuple[Any, str | None], list[str]]:
    """Every translatable message of chalicelib/ and templates/, with where it occurs."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config, "babel.cfg")
    assert method_map == [("chalicelib/**.py", "python"), ("templates/**.html", "jinja2"),
                          ("templates/**.txt", "jinja2")], \
        "babel.cfg changed: check that this test still extracts what `make translations` does"
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    found: dict[tuple[Any, str | None], list[str]] = {}
    for filename, lineno, message, _, context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=keywords,
            directory_filter=lambda path: not Path(path).name.startswith((".", "_"))
            and Path(path).name != "node_modules"):
        found.setdefault((message, context), []).append(f"{filename}:{lineno}")
    assert len(found) > 20, f"suspiciously few messages extracted: {sorted(found)}"
    return found


def _as_tuple(value: Any) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _translated(catalog: Catalog) -> dict[tuple[Any, str | None], tuple[str, ...]]:
    """id -> translation for every message that has one (fuzzy ones are not compiled)."""
    return {(_as_tuple(message.id), message.context): _as_tuple(message.string)
            for message in catalog
            if message.id and not message.fuzzy and all(_as_tuple(message.string))}


def _short(message_id: Any) -> str:
    text = " | ".join(_as_tuple(message_id))
    return text if len(text) <= 90 else text[:87] + "..."


def test_compiled_catalogue_matches_its_source(po: Catalog, mo: Catalog):
    source, compiled = _translated(po), _translated(mo)
    assert source, f"{PO} holds no translation at all"
    stale = [f"  {_short(key[0])!r}: .po {source.get(key)!r} / .mo {compiled.get(key)!r}"
             for key in sorted(source.keys() | compiled.keys(), key=repr)
             if source.get(key) != compiled.get(key)]
    assert not stale, (
        f"{MO.relative_to(ROOT)} is out of date with {PO.relative_to(ROOT)} "
        f"({len(stale)} differences):\n" + "\n".join(stale) + f"\n{HOW_TO_FIX}")


def test_every_message_has_a_french_translation(po: Catalog, extracted):
    missing = []
    for (message_id, context), places in sorted(extracted.items(), key=repr):
        entry = po.get(message_id, context=context)
        if entry is None:
            why = "not in messages.po"
        elif entry.fuzzy:
            why = "fuzzy"
        elif not all(_as_tuple(entry.string)):
            why = "untranslated"
        else:
            continue
        missing.append(f"  [{why}] {_short(message_id)!r} ({', '.join(places[:2])})")
    assert not missing, (
        f"{len(missing)} of {len(extracted)} messages have no French translation in "
        f"{PO.relative_to(ROOT)}:\n" + "\n".join(missing) + f"\n{HOW_TO_FIX}")


def _conversions(text: str) -> tuple[Counter[str], list[str], bool]:
    """Named keys, positional types, and whether a `%` is not a valid conversion."""
    named: Counter[str] = Counter()
    positional: list[str] = []
    for match in CONVERSION.finditer(text):
        if match["type"] == "%":
            continue
        if match["key"] is not None:
            named[match["key"]] += 1
        else:
            positional.append(match["type"])
    stray = text.count("%") != sum(match.group().count("%") for match in CONVERSION.finditer(text))
    return named, positional, stray


def _pairs(message_id: Any, string: Any) -> Iterable[tuple[str, str]]:
    ids, strings = _as_tuple(message_id), _as_tuple(string)
    for index, translation in enumerate(strings):
        yield ids[min(index, len(ids) - 1)], translation


def test_placeholders_are_the_same_in_every_translation(po: Catalog, extracted):
    # Jinja2's newstyle gettext %-formats every template message, even one without
    # variables; Python code formats the messages Babel flags python-format.
    in_templates = {key for key, places in extracted.items()
                    if any(place.startswith("templates/") for place in places)}
    problems = []
    for message in po:
        if not message.id or not all(_as_tuple(message.string)):
            continue
        formatted = message.python_format or (message.id, message.context) in in_templates
        for source, translation in _pairs(message.id, message.string):
            want_named, want_positional, _ = _conversions(source)
            got_named, got_positional, stray = _conversions(translation)
            if set(got_named) != set(want_named):
                problems.append(f"  {_short(source)!r}: placeholders {sorted(want_named)} "
                                f"became {sorted(got_named)} in {translation!r}")
            elif got_positional != want_positional:
                problems.append(f"  {_short(source)!r}: conversions {want_positional} "
                                f"became {got_positional} in {translation!r}")
            elif formatted and stray:
                problems.append(f"  {_short(source)!r}: a lone '%' in {translation!r} breaks "
                                "%-formatting (write '%%')")
    assert not problems, (
        "translations whose placeholders differ from the English text (the page would "
        "crash or show the wrong value):\n" + "\n".join(problems)
        + "\nFix the msgstr in " + str(PO.relative_to(ROOT)) + ", then run `make translations`.")
