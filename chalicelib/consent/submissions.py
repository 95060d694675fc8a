"""The signup form's protocol: what a post holds, and the checks it must pass.

A submission is read from a form-encoded or JSON post (``from_form``, ``from_json``),
its purposes checked against the form, its origin against the form's websites, and its
signed start token (honeypot, minimum fill time) read for signs of a bot. These live
beside the signup rule, not in the web layer, because the rule itself (``Signups``)
decides what a bot gets, and the domain never imports the web.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from itsdangerous import BadData, SignatureExpired

from chalicelib.consent import links
from chalicelib.consent.catalogue import Form
from chalicelib.consent.subjects import mail_address
from chalicelib.core.clock import utcnow
from chalicelib.core.errors import (
    BadInput,
    BadName,
    CrossSite,
    FormExpired,
    NoPurpose,
    OptinProofError,
)
from chalicelib.core.settings import Settings
from chalicelib.core.tokens import Codec

#: The honeypot: hidden from people (CSS, aria-hidden, no tab stop), filled by bots.
HONEYPOT = "fax_number"
TOKEN_FIELD = "started"
MAX_NAME = 60
#: A first name: letters (any script), with inner spaces, hyphens, apostrophes or dots.
#: No digits, no "://", no line breaks: a stranger must not be able to write a message
#: of their own into a mail we send to someone else.
#: (A dot only ends an initial — "J. R." — so "evil.example" is no name.) At most
#: four words.
_NAME = re.compile(r"[^\W\d_]+(?:(?:[ '’-]|\. )[^\W\d_]+){0,3}\.?")
MAX_PAGE_URL = 300


@dataclass(frozen=True)
class Submission:
    """A signup as posted, before any check."""

    email: str
    purposes: tuple[str, ...]
    name: str | None = None
    texts: Mapping[str, str] = field(default_factory=dict)
    locale: str | None = None
    honeypot: str = ""
    token: str | None = None
    page_url: str | None = None


# -- reading a submission --------------------------------------------------------------


def _text(value: Any, name: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadInput(f"The field {name!r} must be text.")
    if len(value) > limit:
        raise BadInput(f"The field {name!r} is too long (at most {limit} characters).")
    return value.strip()


def _name(value: Any) -> str | None:
    name = " ".join(_text(value, "name", 500).split())
    if not name:
        return None
    if len(name) > MAX_NAME or not _NAME.fullmatch(name):
        raise BadName("Please enter just your first name (letters only).")
    return name


def from_form(fields: Mapping[str, str], page_url: str | None) -> Submission:
    """A form-encoded post: ``email``, ``name``, ``purpose.<id>`` checkboxes, ``text.<id>``."""
    return Submission(
        email=_text(fields.get("email"), "email", 320),
        name=_name(fields.get("name")),
        purposes=tuple(
            k.removeprefix("purpose.") for k, v in fields.items() if k.startswith("purpose.") and v
        ),
        texts={k.removeprefix("text."): v for k, v in fields.items() if k.startswith("text.")},
        locale=fields.get("lang") or None,
        honeypot=fields.get(HONEYPOT, ""),
        token=fields.get(TOKEN_FIELD) or None,
        page_url=page_url,
    )


def from_json(data: Mapping[str, Any], page_url: str | None) -> Submission:
    """A JSON post: ``{"email", "name", "purposes": [...], "texts": {id: sha}, ...}``."""
    purposes = data.get("purposes", [])
    if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
        raise BadInput("purposes must be a list of purpose ids.")
    texts = data.get("texts", {})
    if not isinstance(texts, dict) or not all(isinstance(v, str) for v in texts.values()):
        raise BadInput("texts must map purpose ids to text versions.")
    return Submission(
        email=_text(data.get("email"), "email", 320),
        name=_name(data.get("name")),
        purposes=tuple(purposes),
        texts=texts,
        locale=_text(data.get("locale"), "locale", 10) or None,
        honeypot=_text(data.get(HONEYPOT), HONEYPOT, 500),
        token=_text(data.get(TOKEN_FIELD), TOKEN_FIELD, 2000) or None,
        page_url=_text(data.get("page_url"), "page_url", 2000) or page_url,
    )


def clean_page_url(value: str | None) -> str | None:
    """The form page's address without query or fragment (they may hold personal data)."""
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))[:MAX_PAGE_URL]


def check_purposes(form: Form, submission: Submission) -> tuple[str, ...]:
    """The ticked purposes, each one the form offers; NoPurpose when none is ticked."""
    unknown = [p for p in submission.purposes if p not in form.purposes]
    if unknown:
        raise BadInput(
            f"This form does not offer the purpose(s) {', '.join(unknown)}; it "
            f"offers {', '.join(form.purposes)}."
        )
    ticked = tuple(dict.fromkeys(submission.purposes))
    if not ticked:
        raise NoPurpose("Tick at least one of the choices.")
    return ticked


#: The fields of the signup page a person corrects, in the page's order.
FIELDS = ("email", "name", "purposes")


def field_problems(form: Form, fields: Mapping[str, str]) -> dict[str, OptinProofError]:
    """Every field of a posted signup page that must be corrected, each with its error.

    ``from_form`` and ``Signups.submit`` stop at the first problem (a script gets one
    reason); a person correcting the page should see them all at once."""
    problems: dict[str, OptinProofError] = {}
    checks = {
        "email": lambda: mail_address(_text(fields.get("email"), "email", 320)),
        "name": lambda: _name(fields.get("name")),
        "purposes": lambda: check_purposes(form, from_form({**fields, "name": ""}, None)),
    }
    for name in FIELDS:
        try:
            checks[name]()
        except OptinProofError as exc:
            problems[name] = exc
    return problems


def check_origin(form: Form, headers: Mapping[str, str]) -> None:
    """A browser post from a website that is not one of the form's is refused.

    Posts from our own iframe page are same-origin (or ``Origin: null`` under our
    no-referrer policy); posts without an Origin (non-browser clients) pass and meet
    the throttles like everyone else.
    """
    origin = (headers.get("origin") or "").rstrip("/").lower()
    host = (headers.get("host") or "").lower()
    site = headers.get("sec-fetch-site")
    if origin == "null":  # our own page (no-referrer), or a page hiding where it is
        if site in (None, "same-origin", "none"):
            return
    elif not origin or (host and origin.split("://", 1)[-1] == host):
        return
    elif site == "same-origin" or form.allows(origin):
        return
    raise CrossSite(
        f"This form may not be used from {origin}: add it to the form's "
        "allowed_origins in the catalogue."
    )


# -- the form's start token: proves we served the form, and when ------------------------


def _serializer(settings: Settings) -> Codec:
    return links.signer(settings, "optinproof.signup")


def start_token(settings: Settings, form_id: str, page_url: str | None) -> str:
    """Signed ``{form, page}`` with the time the form was served."""
    return _serializer(settings).dumps({"f": form_id, "u": clean_page_url(page_url)})


def _read_token(settings: Settings, form: Form, token: str) -> tuple[dict[str, Any] | None, float]:
    """``(payload, age in seconds)``; ``(None, 0)`` for a forged token or another form's."""
    serializer = _serializer(settings)
    try:
        payload, signed_at = serializer.loads(
            token, max_age=settings.form_token_max_age, return_timestamp=True
        )
    except SignatureExpired as exc:
        raise FormExpired("This form was open for a long time; please send it again.") from exc
    except BadData:
        return None, 0.0
    if not isinstance(payload, dict) or payload.get("f") != form.id:
        return None, 0.0
    return payload, (utcnow() - signed_at).total_seconds()


def bot_reason(settings: Settings, form: Form, submission: Submission) -> tuple[str, str | None]:
    """Why this looks like a bot (``""`` if it does not), and the page URL the token holds."""
    if submission.honeypot:
        return "honeypot", None
    if not submission.token:
        return ("" if form.allow_plain_html else "no_start_token"), None
    payload, age = _read_token(settings, form, submission.token)
    if payload is None:
        return "bad_start_token", None
    if age < form.min_fill_seconds:
        return "too_fast", None
    return "", payload.get("u")
