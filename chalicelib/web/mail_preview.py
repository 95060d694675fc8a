"""A campaign's confirmation mail as the recipient will see it, on the dashboard.

The mail is composed by :func:`compose.compose`, the function that composes every mail
sent, for a sample person and a sample link, so the preview is the mail, not a copy.
"""

from __future__ import annotations

from typing import Any

from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.errors import BadInput
from chalicelib.core.settings import Settings
from chalicelib.mail import compose
from chalicelib.web.campaign_pages import (
    LANGUAGE_NAMES,
    N_,
    nav_urls,
    page_context,
    translator,
    url_for,
)
from chalicelib.web.render import Page, render, security_headers

#: The person shown in a mail preview; the link in it is a sample, not a live link.
SAMPLE_NAME = "Camille"
SAMPLE_TOKEN = "sample-link-for-preview"


# -------------------------------------------------------


def preview_mail(
    settings: Settings, catalogue: Catalogue, mail_locale: str, purposes: list[str]
) -> compose.Composed:
    """The confirmation mail a campaign sends, for a sample person and a sample link."""
    if mail_locale not in catalogue.locales:
        raise BadInput(N_("Choose the language of the mail and the page."))
    if not purposes or any(p not in catalogue.purposes for p in purposes):
        raise BadInput(N_("Tick at least one purpose to ask about."))
    base = (settings.public_base_url or "https://consent.example").rstrip("/")
    return compose.compose(
        settings,
        catalogue,
        "confirm",
        mail_locale,
        "camille@example.com",
        tuple(purposes),
        {"confirm_url": f"{base}/c/{SAMPLE_TOKEN}", "withdraw_url": f"{base}/u/{SAMPLE_TOKEN}"},
        name=SAMPLE_NAME,
    )


def _part(composed: compose.Composed, subtype: str) -> str:
    part = composed.message.get_body(preferencelist=(subtype,))
    return str(part.get_content()) if part is not None else ""


def preview_page(
    catalogue: Catalogue,
    locale: str,
    operator: Any,
    mail_locale: str,
    purposes: list[str],
    composed: compose.Composed,
) -> Page:
    """Our page around the mail: its headers and its text part, and the way to its HTML."""
    _ = translator(locale)
    message = composed.message
    return render(
        "admin_mail_preview.html",
        locale,
        page_title=_("The mail in %(language)s", language=LANGUAGE_NAMES[mail_locale]),
        operator=operator.name,
        mail_locale=mail_locale,
        headers=[
            (_("Sender"), str(message["From"])),
            (_("Reply to"), str(message["Reply-To"])),
            (_("Subject"), str(message["Subject"])),
            (_("One-click withdrawal"), str(message["List-Unsubscribe"] or "")),
        ],
        text=_part(composed, "plain"),
        html_href=url_for(
            "/admin/dashboard/campaign-preview",
            locale,
            mail_locale=mail_locale,
            purposes=",".join(purposes),
            part="html",
        ),
        template_version=composed.template.sha256,
        urls=nav_urls(locale),
        **page_context(catalogue, locale),
    )


def preview_html(composed: compose.Composed) -> Page:
    """The HTML part exactly as sent. Mail HTML styles itself inline, so this answer
    allows inline styles, and only that: no script, no request anywhere (sandboxed)."""
    headers = security_headers()
    headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; sandbox"
    )
    return Page(_part(composed, "html"), 200, headers)
