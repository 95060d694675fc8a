"""The purpose catalogue: the data file marketing edits, and the text versions.

A purpose's wording is evidence: a decision is only worth what the person read. So
each (purpose, locale) text gets a version, the SHA-256 of its canonical form, and
every event stores the version it was decided on. A catalogue that could show a
person an empty or missing text is refused at load, naming the line and field.
"""
from __future__ import annotations

import hashlib
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from chalicelib.errors import CatalogueError

SUPPORTED_LOCALES = ("en", "fr")
_ID_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,39}")


@dataclass(frozen=True)
class PurposeText:
    """What a person reads for one purpose in one locale, and its version."""

    locale: str
    title: str
    text: str
    sha256: str


@dataclass(frozen=True)
class Purpose:
    """One purpose: one decision, asked and recorded on its own."""

    id: str
    texts: dict[str, PurposeText]
    email_marketing: bool
    act: dict[str, Any]
    version: str

    def text(self, locale: str) -> PurposeText:
        """The text in ``locale``; every catalogue locale exists (checked at load)."""
        return self.texts[locale]


@dataclass(frozen=True)
class Controller:
    """Who is responsible for the processing, shown on every page."""

    name: str
    address: str
    contact_email: str
    privacy_policy_url: str


@dataclass(frozen=True)
class Catalogue:
    """The loaded, validated catalogue."""

    controller: Controller
    locales: tuple[str, ...]
    default_locale: str
    purposes: dict[str, Purpose]
    source: str

    def get(self, purpose_id: str) -> Purpose:
        """The purpose, or ``KeyError`` for an id not in the catalogue."""
        return self.purposes[purpose_id]


def canonical_text(title: str, text: str) -> str:
    """The exact string a text version hashes.

    NFC so that visually equal texts hash equal, ``\\n`` line ends, no trailing blanks:
    reformatting the TOML file does not create a new version, changing a word does.
    """
    def clean(value: str) -> str:
        value = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n")
        return "\n".join(line.rstrip() for line in value.strip().split("\n"))

    return f"{clean(title)}\n\n{clean(text)}"


def text_sha256(title: str, text: str) -> str:
    """SHA-256 (hex) of :func:`canonical_text`: the text version."""
    return hashlib.sha256(canonical_text(title, text).encode("utf-8")).hexdigest()


class _Locator:
    """Finds the line of the n-th ``[[purposes]]`` table, for error messages."""

    def __init__(self, source: str, raw: str) -> None:
        self.source = source
        self.lines = [
            number for number, line in enumerate(raw.splitlines(), start=1)
            if re.match(r"\s*\[\[\s*purposes\s*\]\]", line)
        ]

    def where(self, index: int | None, field: str) -> str:
        if index is None:
            return f"{self.source}: {field}"
        line = f" line {self.lines[index]}" if index < len(self.lines) else ""
        return f"{self.source}{line} (purposes[{index}]): {field}"


def _string(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{where}.{key} must be a non-empty string")
    return value.strip()


def _controller(data: dict[str, Any], locate: _Locator) -> Controller:
    table = data.get("controller")
    if not isinstance(table, dict):
        raise CatalogueError(locate.where(None, "a [controller] table is required"))
    where = locate.where(None, "controller")
    policy = _string(table, "privacy_policy_url", where)
    if not policy.startswith(("https://", "http://")):
        raise CatalogueError(f"{where}.privacy_policy_url must be an http(s) URL")
    return Controller(
        name=_string(table, "name", where),
        address=_string(table, "address", where),
        contact_email=_string(table, "contact_email", where),
        privacy_policy_url=policy,
    )


def _locales(data: dict[str, Any], locate: _Locator) -> tuple[tuple[str, ...], str]:
    locales = data.get("locales", list(SUPPORTED_LOCALES))
    if not isinstance(locales, list) or not locales:
        raise CatalogueError(locate.where(None, "locales must be a non-empty list"))
    if len(set(locales)) != len(locales):
        raise CatalogueError(locate.where(None, "locales lists a language twice"))
    for locale in locales:
        if locale not in SUPPORTED_LOCALES:
            raise CatalogueError(locate.where(
                None, f"locales: {locale!r} has no page translation (supported: "
                f"{', '.join(SUPPORTED_LOCALES)})"))
    default = data.get("default_locale", locales[0])
    if default not in locales:
        raise CatalogueError(locate.where(None, f"default_locale {default!r} is not in locales"))
    return tuple(locales), default


_PURPOSE_KEYS = {"id", "title", "text", "email_marketing", "act"}
_TOP_KEYS = {"locales", "default_locale", "controller", "purposes"}


def _purpose(table: Any, index: int, locales: tuple[str, ...], locate: _Locator) -> Purpose:
    if not isinstance(table, dict):
        raise CatalogueError(locate.where(index, "must be a table"))
    unknown = sorted(set(table) - _PURPOSE_KEYS)
    if unknown:
        raise CatalogueError(locate.where(index, f"unknown key(s) {', '.join(unknown)} "
                                          f"(allowed: {', '.join(sorted(_PURPOSE_KEYS))})"))
    marketing = table.get("email_marketing", False)
    if not isinstance(marketing, bool):
        raise CatalogueError(locate.where(index, "email_marketing must be true or false"))
    purpose_id = table.get("id")
    if not isinstance(purpose_id, str) or not _ID_PATTERN.fullmatch(purpose_id):
        raise CatalogueError(locate.where(
            index, f"id {purpose_id!r} must be lower-case letters, digits, '-' or '_' "
            "(at most 40, starting with a letter)"))
    texts: dict[str, PurposeText] = {}
    for part in ("title", "text"):
        if not isinstance(table.get(part), dict):
            raise CatalogueError(locate.where(index, f"{part} must be a table of locale = text"))
    for locale in locales:
        title = table["title"].get(locale)
        text = table["text"].get(locale)
        for part, value in (("title", title), ("text", text)):
            if value is None:
                raise CatalogueError(locate.where(index, f"{part}.{locale} is missing"))
            if not isinstance(value, str) or not value.strip():
                raise CatalogueError(locate.where(index, f"{part}.{locale} is empty"))
        texts[locale] = PurposeText(locale, title.strip(), text.strip(), text_sha256(title, text))
    version = hashlib.sha256(
        "".join(texts[locale].sha256 for locale in sorted(texts)).encode()
    ).hexdigest()[:16]
    act = table.get("act", {})
    if not isinstance(act, dict):
        raise CatalogueError(locate.where(index, "act must be a table"))
    return Purpose(
        id=purpose_id, texts=texts, email_marketing=marketing,
        act=act, version=version,
    )


def parse_catalogue(raw: str, source: str) -> Catalogue:
    """Parse and validate catalogue text; raises :class:`CatalogueError`."""
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{source}: not valid TOML: {exc}") from exc
    locate = _Locator(source, raw)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise CatalogueError(locate.where(None, f"unknown key(s) {', '.join(unknown)} "
                                          f"(allowed: {', '.join(sorted(_TOP_KEYS))})"))
    controller = _controller(data, locate)
    locales, default = _locales(data, locate)
    tables = data.get("purposes")
    if not isinstance(tables, list) or not tables:
        raise CatalogueError(locate.where(None, "at least one [[purposes]] table is required"))
    purposes: dict[str, Purpose] = {}
    first_index: dict[str, int] = {}
    for index, table in enumerate(tables):
        purpose = _purpose(table, index, locales, locate)
        if purpose.id in purposes:
            raise CatalogueError(locate.where(
                index, f"id {purpose.id!r} duplicates purposes[{first_index[purpose.id]}]"))
        purposes[purpose.id] = purpose
        first_index[purpose.id] = index
    return Catalogue(controller, locales, default, purposes, source)


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> Catalogue:
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"cannot read the purpose catalogue {path}: {exc.strerror}") from exc
    return parse_catalogue(raw, Path(path).name)


def load_catalogue(path: Path) -> Catalogue:
    """The catalogue at ``path``, re-read when the file changes (handy with chalice local)."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise CatalogueError(f"cannot read the purpose catalogue {path}: {exc.strerror}") from exc
    return _load(str(path), mtime)
