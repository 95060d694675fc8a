"""The pages a link opens: confirm, withdraw, preferences; and the health check.

GET and HEAD only render (mail scanners open links); every change is a POST that
checks its form token and origin, except the RFC 8058 one-click withdrawal.
"""

from __future__ import annotations

import json
import time
from typing import Any

from chalice import Blueprint, Response

from chalicelib.consent import links, rules
from chalicelib.core.errors import (
    OptinProofError,
)
from chalicelib.core.logs import log
from chalicelib.core.services import (
    get_catalogue,
    get_ledger,
    get_signups,
)
from chalicelib.core.settings import get_settings
from chalicelib.rights import access
from chalicelib.web import antiforgery, background, forms, guards, http, views
from chalicelib.web import errors as web_errors
from chalicelib.web.render import Page

bp = Blueprint(__name__)
html_page = guards.html_page(bp)


@bp.route("/c/{token}", methods=["GET", "HEAD"])
@html_page
def confirm_show(token: str) -> Page:
    """The confirmation page. Renders only: GET and HEAD never change anything."""
    settings, ledger = get_settings(), get_ledger()
    link, record = rules.open_link(ledger, settings, "confirm", token, get_catalogue())
    if bp.current_request.method == "GET":
        rules.note_opened(ledger, record)
    return views.confirm_page(
        settings,
        get_catalogue(),
        http.locale(bp.current_request),
        views.quote_token(token),
        link.link_id,
        rules.states(ledger, link),
    )


@bp.route("/c/{token}", methods=["POST"], content_types=http.FORM_TYPES)
@html_page
def confirm_decide(token: str) -> Page:
    """Record the decisions of a submitted confirmation page."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    link, record = rules.open_link(ledger, settings, "confirm", token, catalogue)
    return _record_choices(
        link,
        record,
        views.quote_token(token),
        "decisions_recorded",
        record.get("channel"),
        continue_url=views.continue_url(catalogue, record.get("channel")),
    )


def _record_choices(
    link: links.Link,
    record: dict[str, Any],
    path: str,
    event: str,
    receipt_channel: str | None,
    continue_url: str | None = None,
    title: str = views.CONFIRM_TITLE,
) -> Page:
    """A submitted confirmation or preferences page: checked, recorded, answered."""
    request = bp.current_request
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    fields = forms.parse_form(request.raw_body, request.headers.get("content-type"))
    locale = http.locale(bp.current_request, fields.get("lang"))
    antiforgery.check_origin(request.headers)
    choices = {
        k.removeprefix("decision."): v for k, v in fields.items() if k.startswith("decision.")
    }
    shown = {k.removeprefix("text."): v for k, v in fields.items() if k.startswith("text.")}
    try:
        antiforgery.check(settings, link.link_id, fields.get(antiforgery.FIELD))
        result = rules.decide(
            ledger,
            catalogue,
            link,
            record,
            choices,
            locale,
            shown,
            http.request_context(bp.current_request),
            settings.webhook_subscribers,
        )
    except tuple(views.FORM_ERRORS) as exc:
        return views.confirm_page(
            settings,
            catalogue,
            locale,
            path,
            link.link_id,
            rules.states(ledger, link),
            status=web_errors.status(exc),
            error=views.form_error(exc, locale),
            title=title,
        )
    changed = any(item.changed for item in result)
    log(
        event,
        subject=link.subject,
        link_id=link.link_id,
        changed=[item.purpose for item in result if item.changed],
    )
    background.receipt_after(link.subject, locale, receipt_channel, changed)
    return views.confirm_page(
        settings,
        catalogue,
        locale,
        path,
        link.link_id,
        result,
        unchanged=not changed,
        continue_url=continue_url,
        title=title,
    )


@bp.route("/c/{token}/renew", methods=["POST"], content_types=http.FORM_TYPES)
@html_page
def confirm_renew(token: str) -> Page:
    """ "Send me a new link" from an expired or superseded link's page."""
    started = time.monotonic()
    request = bp.current_request
    settings = get_settings()
    fields = forms.parse_form(request.raw_body, request.headers.get("content-type"))
    antiforgery.check_origin(request.headers)
    link = links.verify_signature(settings, "confirm", token)
    antiforgery.check(settings, link.link_id, fields.get(antiforgery.FIELD))
    locale = http.locale(bp.current_request, fields.get("lang"))
    outcome = get_signups().renew(token, locale, http.request_context(bp.current_request))
    background.deliver(outcome.mail_id)
    http.pad(started)
    return views.signup_done_page(get_catalogue(), locale, title=views.RENEWED_TITLE, renewal=True)


@bp.route("/u/{token}", methods=["GET", "HEAD"])
@html_page
def withdraw_show(token: str) -> Page:
    """The withdraw page: one button. GET never withdraws (mail scanners open links)."""
    ledger = get_ledger()
    link, _ = rules.open_link(ledger, get_settings(), "withdraw", token)
    return views.withdraw_page(
        get_catalogue(),
        http.locale(bp.current_request),
        views.quote_token(token),
        rules.states(ledger, link),
    )


@bp.route("/u/{token}", methods=["POST"], content_types=http.FORM_TYPES)
@html_page
def withdraw_post(token: str) -> Page:
    """Withdraw at once: our button, or a mail client's RFC 8058 one-click POST.

    No form token: the signed link is the credential, and a mail client's POST
    carries nothing else (``List-Unsubscribe=One-Click``).
    """
    request = bp.current_request
    body = request.raw_body or b""
    if len(body) > forms.MAX_FORM_BYTES:
        raise forms.PayloadTooLarge("This request is too large.")
    ledger, catalogue = get_ledger(), get_catalogue()
    link, record = rules.open_link(ledger, get_settings(), "withdraw", token)
    content_type = request.headers.get("content-type")
    one_click = forms.is_one_click(body, content_type)
    fields = {} if one_click else forms.parse_form(body, content_type)
    locale = http.locale(bp.current_request, fields.get("lang"))
    result = rules.withdraw(
        ledger,
        catalogue,
        link,
        record,
        locale,
        http.request_context(bp.current_request),
        "one_click" if one_click else "page",
        get_settings().webhook_subscribers,
    )
    log(
        "withdrawn",
        subject=link.subject,
        link_id=link.link_id,
        one_click=one_click,
        changed=[item.purpose for item in result if item.changed],
    )
    background.receipt_after(
        link.subject, locale, record.get("channel"), any(item.changed for item in result)
    )
    return views.withdraw_page(catalogue, locale, views.quote_token(token), result, done=True)


@bp.route("/p/{token}", methods=["GET", "HEAD"])
@html_page
def preferences_show(token: str) -> Page:
    """Every purpose with its current state and date; change any of them."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    link, _ = rules.open_link(ledger, settings, "preferences", token)
    link = access.offered(link, catalogue)
    return views.confirm_page(
        settings,
        catalogue,
        http.locale(bp.current_request),
        f"/p/{views.quote_token(token)}",
        link.link_id,
        rules.states(ledger, link),
        title=views.PREFERENCES_TITLE,
    )


@bp.route("/p/{token}", methods=["POST"], content_types=http.FORM_TYPES)
@html_page
def preferences_save(token: str) -> Page:
    """Record each changed choice of the preferences page (each change is an event)."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    link, record = rules.open_link(ledger, settings, "preferences", token)
    return _record_choices(
        access.offered(link, catalogue),
        record,
        f"/p/{views.quote_token(token)}",
        "preferences_recorded",
        "preferences",
        title=views.PREFERENCES_TITLE,
    )


@bp.route("/health", methods=["GET"])
def health() -> Response:
    """Configuration loads and the catalogue is valid (no personal data, no table read)."""
    try:
        get_settings()
        catalogue = get_catalogue()
    except OptinProofError as exc:
        log("health_failed", level="error", error=type(exc).__name__, detail=str(exc)[:300])
        return Response(
            json.dumps({"status": "error", "reason": "configuration invalid; see logs"}),
            status_code=500,
            headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
        )
    return Response(
        json.dumps({"status": "ok", "purposes": sorted(catalogue.purposes)}),
        headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
    )
