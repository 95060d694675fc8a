"""The access report as a PDF: what the report page shows, to keep or to print.

Built from the same ``access.export`` data and the same translated labels as the
HTML report (``views.rights_report_page``), section for section, so the two never say
different things. In ``web`` because those labels (what each event and sync status is
called for a person) belong to the views; the layout is ``core/pdf.py``.
"""

from __future__ import annotations

from typing import Any

from chalice import Response

from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.clock import parse_iso
from chalicelib.core.errors import BadInput
from chalicelib.core.i18n import format_moment, translations
from chalicelib.core.pdf import Document
from chalicelib.core.settings import Settings
from chalicelib.rights import access
from chalicelib.web import http
from chalicelib.web.views import (
    BASIS_LABELS,
    EVENT_LABELS,
    OBJECTION_LABELS,
    STATE_LABELS,
    SYNC_LABELS,
)


def render(settings: Settings, catalogue: Catalogue, locale: str, data: dict[str, Any]) -> bytes:
    """The report of ``data`` (``access.export``) in ``locale``, as PDF bytes."""
    _ = translations(locale).gettext
    controller = catalogue.controller
    title = _("The data we hold about you")
    doc = Document(
        title,
        locale,
        author=controller.name,
        footer=f"{controller.name} — {title}",
        created=parse_iso(data["generated_at"]),
    )
    doc.heading(title, 0)
    doc.paragraph(
        _(
            "This page shows everything %(controller)s holds about you, and why. "
            "It was produced on %(moment)s."
        )
        % {"controller": controller.name, "moment": format_moment(data["generated_at"], locale)}
    )
    doc.paragraph(
        _("Controller: %(name)s, %(address)s (%(email)s).")
        % {
            "name": controller.name,
            "address": controller.address,
            "email": controller.contact_email,
        },
        small=True,
    )
    _about(doc, data["subject"], locale)
    _consents(doc, data["purposes"], locale)
    _texts(doc, data["texts"], locale)
    _history(doc, data["events"], data["chain"], locale)
    doc.heading(_("How long we keep it"))
    doc.bullets(list(access.retention(settings, _).values()))
    return doc.output()


def _about(doc: Document, subject: dict[str, Any], locale: str) -> None:
    _ = translations(locale).gettext
    doc.heading(_("About you"))
    doc.fields(
        [
            (_("E-mail address"), subject.get("email") or _("none")),
            (_("Name"), subject.get("name") or _("none")),
            (_("Language"), subject.get("locale") or _("none")),
            (_("First recorded"), format_moment(subject.get("created_at"), locale)),
            (_("Act! contact"), ", ".join(subject.get("act_contact_ids") or []) or _("none")),
        ]
    )


def _consents(doc: Document, purposes: list[dict[str, Any]], locale: str) -> None:
    _ = translations(locale).gettext
    doc.heading(_("Your consent, per purpose"))
    if not purposes:
        doc.paragraph(_("You have not decided anything yet."))
        return
    doc.table(
        [_("Purpose"), _("Your choice"), _("Since"), _("Copied to Act!")],
        [
            (
                item["title"],
                _choice(item, locale),
                format_moment(item.get("decided_at"), locale),
                _label(SYNC_LABELS, item["act_sync"].get("status"), locale),
            )
            for item in purposes
        ],
        (38, 18, 26, 18),
    )


def _texts(doc: Document, texts: list[dict[str, Any]], locale: str) -> None:
    _ = translations(locale).gettext
    doc.heading(_("The texts you were shown"))
    if not texts:
        doc.paragraph(_("none"))
    for text in texts:
        doc.heading(
            f"{text.get('title')} ({text.get('locale')}, {_('version')} "
            f"{text.get('purpose_version')})",
            2,
        )
        for paragraph in _paragraphs(text.get("text")):
            doc.paragraph(paragraph)
        doc.paragraph(f"SHA-256 {text['sha256']}", small=True)


def _history(
    doc: Document, events: list[dict[str, Any]], chain: dict[str, Any], locale: str
) -> None:
    _ = translations(locale).gettext
    doc.heading(_("Everything that happened"))
    doc.table(
        ["#", _("When"), _("What"), _("Purpose"), _("Through"), _("From")],
        [
            (
                event.get("seq"),
                format_moment(event.get("at"), locale),
                _label(EVENT_LABELS, event.get("kind"), locale),
                event.get("purpose") or ", ".join(event.get("purposes") or []),
                event.get("channel") or "",
                event.get("ip") or "",
            )
            for event in events
        ],
        (6, 24, 24, 18, 16, 14),
        small=True,
    )
    if chain.get("verified"):
        line = _(
            "Integrity: all %(num)d records verify (each is sealed with a hash of the one before)."
        ) % {"num": chain.get("events", 0)}
    else:
        line = _("Integrity: a problem was found in these records; please contact us.")
    doc.paragraph(line)


def _choice(item: dict[str, Any], locale: str) -> str:
    """The state in the report page's words: a purpose on another basis than consent
    says "Not objected" / "Objected" and names its basis, never "Accepted"."""
    basis = item.get("legal_basis") or "consent"
    if basis == "consent":
        return _label(STATE_LABELS, item.get("state"), locale)
    state = item.get("state")
    labels = OBJECTION_LABELS if state in OBJECTION_LABELS else STATE_LABELS
    return f"{_label(labels, state, locale)} ({_label(BASIS_LABELS, basis, locale)})"


def _label(labels: dict[str, str], key: str | None, locale: str) -> str:
    if key in labels:
        return translations(locale).gettext(labels[key])
    return key or ""


def _paragraphs(text: str | None) -> list[str]:
    """The same split as the templates' ``paragraphs`` filter."""
    return [p.strip() for p in (text or "").split("\n\n") if p.strip()]


def download_headers(filename: str) -> dict[str, str]:
    """A PDF download with the report's privacy headers (no cache, no referrer)."""
    return http.attachment(
        filename, "application/pdf", **{"Content-Security-Policy": "default-src 'none'; sandbox"}
    )


def pdf_locale(catalogue: Catalogue, lang: str | None, fallback: str | None = None) -> str:
    """``?lang=`` if the catalogue has it (else BadInput: a clear 400), then the
    person's language, then the catalogue's default."""
    if lang and lang not in catalogue.locales:
        raise BadInput(f"lang is one of {', '.join(catalogue.locales)}.")
    if lang:
        return lang
    return fallback if fallback in catalogue.locales else catalogue.default_locale


def download(body: bytes, filename: str) -> Response:
    """A PDF as an admin API answer: 7-bit ASCII (``core/pdf.py``), so it travels as text."""
    headers: dict[str, str | list[str]] = {**download_headers(filename)}
    return Response(body.decode("ascii"), headers=headers)
