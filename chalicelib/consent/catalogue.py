"""The purpose catalogue: the data file marketing edits, and the text versions.

A purpose's wording is evidence: a decision is only worth what the person read. So
each (purpose, locale) text gets a version, the SHA-256 of its canonical form, and
every event stores the version it was decided on. A catalogue that could show a
person an empty or missing text is refused at load, naming the line and field.

Size: the catalogue's whole schema and its validation (with the line to fix in
each error) belong to one reader of one file.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from chalicelib.consent.periods import (
    DEFAULT_RENEWAL_DAYS,
    DEFAULT_VALIDITY_DAYS,
    parse_period,
    parse_renewal,
)
from chalicelib.core.errors import CatalogueError

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
    #: ``consent``, ``soft_opt_in`` or ``legitimate_interest`` (``consent/basis.py``).
    legal_basis: str = "consent"
    #: The opt-out wording per locale, for a purpose on another basis than consent.
    opt_out: dict[str, PurposeText] = field(default_factory=dict)
    #: Version of the opt-out wordings (like ``version`` for the texts), or None.
    opt_out_version: str | None = None
    #: How long an acceptance holds after the person's last active contact about this
    #: purpose (days); None: it never expires. See ``consent/validity.py``.
    validity_days: int | None = DEFAULT_VALIDITY_DAYS
    #: Days before the expiry on which a renewal mail goes out, largest first.
    renewal_days: tuple[int, ...] = DEFAULT_RENEWAL_DAYS

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
class Form:
    """An embeddable signup form: which purposes it offers and where it may live.

    ``allowed_origins`` are the websites that may frame it (``frame-ancestors``),
    post to it from their own pages, and call it from a script (CORS).
    """

    id: str
    purposes: tuple[str, ...]
    allowed_origins: tuple[str, ...] = ()
    locale: str | None = None
    ask_name: bool = False
    redirect_after_submit: str | None = None
    redirect_after_confirm: str | None = None
    min_fill_seconds: int = 3
    allow_plain_html: bool = True
    heading: dict[str, str] = field(default_factory=dict)

    def allows(self, origin: str | None) -> bool:
        """Whether ``origin`` (an Origin header value) is one of this form's websites."""
        return bool(origin) and (origin or "").rstrip("/").lower() in self.allowed_origins


@dataclass(frozen=True)
class Retention:
    """What happens to a person nobody heard from for ``days`` (``[retention]``).

    ``days`` None: nothing (the default). ``action`` ``erase``: the profile is erased
    as ``optinproof erase`` does (Act! as ``ERASURE_ACT`` says); ``archive``: the
    personal data leaves our table the same way but the Act! contact is left as it is.
    The proof events stay in both cases, as with every erasure.
    """

    days: int | None = None
    action: str = "erase"


RETENTION_ACTIONS = ("erase", "archive")


@dataclass(frozen=True)
class Catalogue:
    """The loaded, validated catalogue."""

    controller: Controller
    locales: tuple[str, ...]
    default_locale: str
    purposes: dict[str, Purpose]
    source: str
    forms: dict[str, Form] = field(default_factory=dict)
    retention: Retention = field(default_factory=Retention)

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
    """Finds the line of the n-th ``[[purposes]]`` (or ``[[forms]]``) table, for errors."""

    def __init__(self, source: str, raw: str, table: str = "purposes") -> None:
        self.source = source
        self.raw = raw
        self.table = table
        self.lines = [
            number
            for number, line in enumerate(raw.splitlines(), start=1)
            if re.match(rf"\s*\[\[\s*{table}\s*\]\]", line)
        ]

    def of(self, table: str) -> _Locator:
        """The same file, locating another array of tables."""
        return _Locator(self.source, self.raw, table)

    def where(self, index: int | None, field: str) -> str:
        if index is None:
            return f"{self.source}: {field}"
        line = f" line {self.lines[index]}" if index < len(self.lines) else ""
        return f"{self.source}{line} ({self.table}[{index}]): {field}"


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
            raise CatalogueError(
                locate.where(
                    None,
                    f"locales: {locale!r} has no page translation (supported: "
                    f"{', '.join(SUPPORTED_LOCALES)})",
                )
            )
    default = data.get("default_locale", locales[0])
    if not isinstance(default, str) or default not in locales:
        raise CatalogueError(locate.where(None, f"default_locale {default!r} is not in locales"))
    return tuple(locales), default


_PURPOSE_KEYS = {
    "id",
    "title",
    "text",
    "email_marketing",
    "act",
    "legal_basis",
    "opt_out",
    "validity",
    "renewal",
}
_TOP_KEYS = {"locales", "default_locale", "controller", "purposes", "forms", "retention"}
_FORM_KEYS = {
    "id",
    "purposes",
    "allowed_origins",
    "locale",
    "ask_name",
    "redirect_after_submit",
    "redirect_after_confirm",
    "min_fill_seconds",
    "allow_plain_html",
    "heading",
}
_ORIGIN_PATTERN = re.compile(r"https?://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?")


def _purpose(table: Any, index: int, locales: tuple[str, ...], locate: _Locator) -> Purpose:
    if not isinstance(table, dict):
        raise CatalogueError(locate.where(index, "must be a table"))
    unknown = sorted(set(table) - _PURPOSE_KEYS)
    if unknown:
        raise CatalogueError(
            locate.where(
                index,
                f"unknown key(s) {', '.join(unknown)} "
                f"(allowed: {', '.join(sorted(_PURPOSE_KEYS))})",
            )
        )
    marketing = table.get("email_marketing", False)
    if not isinstance(marketing, bool):
        raise CatalogueError(locate.where(index, "email_marketing must be true or false"))
    purpose_id = table.get("id")
    if not isinstance(purpose_id, str) or not _ID_PATTERN.fullmatch(purpose_id):
        raise CatalogueError(
            locate.where(
                index,
                f"id {purpose_id!r} must be lower-case letters, digits, '-' or '_' "
                "(at most 40, starting with a letter)",
            )
        )
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
    legal_basis, opt_out, opt_out_version = _basis(table, index, locales, locate, texts)
    validity_days, renewal_days = _validity(table, index, locate)
    return Purpose(
        id=purpose_id,
        texts=texts,
        email_marketing=marketing,
        act=act,
        version=version,
        legal_basis=legal_basis,
        opt_out=opt_out,
        opt_out_version=opt_out_version,
        validity_days=validity_days,
        renewal_days=renewal_days,
    )


LEGAL_BASES = ("consent", "soft_opt_in", "legitimate_interest")


def _basis(
    table: dict[str, Any],
    index: int,
    locales: tuple[str, ...],
    locate: _Locator,
    texts: dict[str, PurposeText],
) -> tuple[str, dict[str, PurposeText], str | None]:
    """A purpose's legal basis and its opt-out wording, versioned like its texts.

    A purpose on another basis than consent is lawful only if the person can object
    at collection and in every mail: without an opt-out wording in every locale it
    is refused. A consent purpose has no opt-out wording (withdrawal is its own).
    """
    basis = table.get("legal_basis", "consent")
    if basis not in LEGAL_BASES:
        raise CatalogueError(
            locate.where(index, f"legal_basis {basis!r} must be one of {', '.join(LEGAL_BASES)}")
        )
    wording = table.get("opt_out")
    if basis == "consent":
        if wording is not None:
            raise CatalogueError(
                locate.where(index, "opt_out is only for a legal_basis other than consent")
            )
        return basis, {}, None
    if not isinstance(wording, dict):
        raise CatalogueError(
            locate.where(
                index, f"legal_basis {basis} needs opt_out, a table of locale = opt-out text"
            )
        )
    opt_out: dict[str, PurposeText] = {}
    for locale in locales:
        value = wording.get(locale)
        if not isinstance(value, str) or not value.strip():
            raise CatalogueError(locate.where(index, f"opt_out.{locale} is missing or empty"))
        title = texts[locale].title
        opt_out[locale] = PurposeText(locale, title, value.strip(), text_sha256(title, value))
    version = hashlib.sha256(
        "".join(opt_out[locale].sha256 for locale in sorted(opt_out)).encode()
    ).hexdigest()[:16]
    return basis, opt_out, version


def _validity(
    table: dict[str, Any], index: int, locate: _Locator
) -> tuple[int | None, tuple[int, ...]]:
    """A purpose's ``validity`` (default 3 years) and ``renewal`` schedule (default
    60, 30 and 7 days before; none when the validity is ``"none"``)."""
    try:
        days = parse_period(table.get("validity", f"{DEFAULT_VALIDITY_DAYS}d"))
    except ValueError as exc:
        raise CatalogueError(locate.where(index, f"validity: {exc}")) from exc
    default = list(DEFAULT_RENEWAL_DAYS) if days is not None else []
    if days is not None:
        default = [d for d in default if d < days]
    try:
        return days, parse_renewal(table.get("renewal", default), days)
    except ValueError as exc:
        raise CatalogueError(locate.where(index, f"renewal {exc}")) from exc


def _retention(data: dict[str, Any], locate: _Locator) -> Retention:
    """The ``[retention]`` table: ``after`` a period without contact, ``action``."""
    table = data.get("retention", {})
    if not isinstance(table, dict) or set(table) - {"after", "action"}:
        raise CatalogueError(
            locate.where(None, "retention must be a table with after and action only")
        )
    try:
        days = parse_period(table.get("after", "none"))
    except ValueError as exc:
        raise CatalogueError(locate.where(None, f"retention.after: {exc}")) from exc
    action = table.get("action", "erase")
    if action not in RETENTION_ACTIONS:
        raise CatalogueError(
            locate.where(None, f"retention.action must be one of {', '.join(RETENTION_ACTIONS)}")
        )
    return Retention(days, action)


def _optional_url(table: dict[str, Any], key: str, where: Callable[[str], str]) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise CatalogueError(where(f"{key} must be an http(s) URL"))
    return value


def _flag(table: dict[str, Any], key: str, default: bool, where: Callable[[str], str]) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise CatalogueError(where(f"{key} must be true or false"))
    return value


def _origins(table: dict[str, Any], where: Callable[[str], str]) -> tuple[str, ...]:
    origins = table.get("allowed_origins", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise CatalogueError(where("allowed_origins must be a list of strings"))
    cleaned = []
    for origin in origins:
        value = origin.strip().rstrip("/").lower()
        if not _ORIGIN_PATTERN.fullmatch(value):
            raise CatalogueError(
                where(
                    f"allowed_origins: {origin!r} is not an origin; write scheme and host only, "
                    'e.g. "https://www.example.com" (no path, no wildcard)'
                )
            )
        cleaned.append(value)
    return tuple(dict.fromkeys(cleaned))


def _form_purposes(
    table: dict[str, Any], known: dict[str, Purpose], where: Callable[[str], str]
) -> tuple[str, ...]:
    purposes = table.get("purposes")
    if (
        not isinstance(purposes, list)
        or not purposes
        or not all(isinstance(p, str) for p in purposes)
    ):
        raise CatalogueError(where("purposes must be a non-empty list of purpose ids"))
    unknown = [p for p in purposes if p not in known]
    if unknown:
        raise CatalogueError(
            where(f"purposes: unknown purpose(s) {', '.join(unknown)} (known: {', '.join(known)})")
        )
    if len(set(purposes)) != len(purposes):
        raise CatalogueError(where("purposes lists a purpose twice"))
    return tuple(purposes)


def _form(
    table: Any, index: int, locales: tuple[str, ...], known: dict[str, Purpose], locate: _Locator
) -> Form:
    def where(message: str) -> str:
        return locate.where(index, message)

    if not isinstance(table, dict):
        raise CatalogueError(where("must be a table"))
    unknown = sorted(set(table) - _FORM_KEYS)
    if unknown:
        raise CatalogueError(
            where(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_FORM_KEYS))})")
        )
    form_id = table.get("id")
    if not isinstance(form_id, str) or not _ID_PATTERN.fullmatch(form_id):
        raise CatalogueError(
            where(
                f"id {form_id!r} must be lower-case letters, digits, '-' or '_' "
                "(at most 40, starting with a letter)"
            )
        )
    locale = table.get("locale")
    if locale is not None and locale not in locales:
        raise CatalogueError(where(f"locale {locale!r} is not in locales ({', '.join(locales)})"))
    fill = table.get("min_fill_seconds", 3)
    if not isinstance(fill, int) or isinstance(fill, bool) or not 0 <= fill <= 600:
        raise CatalogueError(where("min_fill_seconds must be a whole number from 0 to 600"))
    heading = table.get("heading", {})
    if not isinstance(heading, dict) or not all(
        isinstance(v, str) and v.strip() for v in heading.values()
    ):
        raise CatalogueError(where("heading must be a table of locale = non-empty text"))
    stray = sorted(set(heading) - set(locales))
    if stray:
        raise CatalogueError(where(f"heading: {', '.join(stray)} is not in locales"))
    return Form(
        id=form_id,
        purposes=_form_purposes(table, known, where),
        allowed_origins=_origins(table, where),
        locale=locale,
        ask_name=_flag(table, "ask_name", False, where),
        redirect_after_submit=_optional_url(table, "redirect_after_submit", where),
        redirect_after_confirm=_optional_url(table, "redirect_after_confirm", where),
        min_fill_seconds=fill,
        allow_plain_html=_flag(table, "allow_plain_html", True, where),
        heading={k: v.strip() for k, v in heading.items()},
    )


def _forms(
    data: dict[str, Any], locales: tuple[str, ...], purposes: dict[str, Purpose], locate: _Locator
) -> dict[str, Form]:
    tables = data.get("forms", [])
    if not isinstance(tables, list):
        raise CatalogueError(locate.where(None, "forms must be [[forms]] tables"))
    forms: dict[str, Form] = {}
    for index, table in enumerate(tables):
        form = _form(table, index, locales, purposes, locate)
        if form.id in forms:
            raise CatalogueError(locate.where(index, f"id {form.id!r} is used by another form"))
        forms[form.id] = form
    return forms


def parse_catalogue(raw: str, source: str) -> Catalogue:
    """Parse and validate catalogue text; raises :class:`CatalogueError`."""
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{source}: not valid TOML: {exc}") from exc
    locate = _Locator(source, raw)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise CatalogueError(
            locate.where(
                None,
                f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_TOP_KEYS))})",
            )
        )
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
            raise CatalogueError(
                locate.where(
                    index, f"id {purpose.id!r} duplicates purposes[{first_index[purpose.id]}]"
                )
            )
        purposes[purpose.id] = purpose
        first_index[purpose.id] = index
    forms = _forms(data, locales, purposes, locate.of("forms"))
    return Catalogue(
        controller, locales, default, purposes, source, forms, _retention(data, locate)
    )


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
