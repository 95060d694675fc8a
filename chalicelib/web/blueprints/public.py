"""The pages a link opens: confirm, withdraw, preferences; and the health check.

GET and HEAD only render (mail scanners open links); every change is a POST that
checks its form token and origin, except the RFC 8058 one-click withdrawal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.core.errors import OptinProofError
from chalicelib.core.logs import log
from chalicelib.core.services import get_catalogue, get_ledger, get_settings, get_signups
from chalicelib.web import forms, guards, http

if TYPE_CHECKING:
    from chalicelib.consent import links
    from chalicelib.store.ledger import Ledger
    from chalicelib.web.render import Page

# Cold start: the routes are declared at import time, and each handler imports what
# it uses (the consent rules, the pages...) on its first call.

bp = Blueprint(__name__)
html_page = guards.html_page(bp)


@bp.route("/c/{token}", methods=["GET", "HEAD"])
@html_page
def confirm_show(token: str) -> Page:
    """The confirmation page. Renders only: GET and HEAD never change anything.

    The one write: the first GET of a campaign or form link is counted as opened."""
    from chalicelib.consent import rules
    from chalicelib.web import views

    settings, ledger = get_settings(), get_ledger()
    page = rules.open_page(ledger, settings, "confirm", token, get_catalogue())
    if bp.current_request.method == "GET":
        rules.note_opened(ledger, page.record)
    return views.confirm_page(
        settings,
        get_catalogue(),
        http.locale(bp.current_request),
        views.quote_token(token),
        page.link.link_id,
        page.states,
    )


@bp.route("/c/{token}", methods=["POST"], content_types=http.FORM_TYPES)
@html_page
def confirm_decide(token: str) -> Page:
    """Record the decisions of a submitted confirmation page.

    Two DynamoDB round trips: the decision's one read (which also checks the link's
    record) and its transaction."""
    from chalicelib.consent import rules
    from chalicelib.web import views

    link = rules.verify_link(get_settings(), "confirm", token, get_catalogue())
    return _record_choices(link, views.quote_token(token), "decisions_recorded", None)


def _link_first[T](ledger: Ledger, link: links.Link, check: Callable[[], T]) -> T:
    """Run one check of a posted page; when it fails, a link refused for its own reason
    (revoked, superseded, withdrawn) says that instead. The decision reads the link's
    record itself, so this costs a read on the error path only."""
    from chalicelib.consent import rules

    try:
        return check()
    except OptinProofError:
        rules.read_page(ledger, link)
        raise


def _record_choices(
    link: links.Link,
    path: str,
    event: str,
    receipt_channel: str | None,
    title: str | None = None,
) -> Page:
    """A submitted confirmation or preferences page: checked, recorded, answered.

    ``receipt_channel``: the receipt's channel, or None for the link's own (a
    confirmation page, which also offers the channel's "continue" link); ``title``:
    the page's, the confirmation page's when None."""
    from chalicelib.consent import basis, rules
    from chalicelib.web import antiforgery, background, views
    from chalicelib.web import errors as web_errors

    request = bp.current_request
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    fields = _link_first(
        ledger,
        link,
        lambda: forms.parse_form(request.raw_body, request.headers.get("content-type")),
    )
    locale = http.locale(bp.current_request, fields.get("lang"))
    _link_first(ledger, link, lambda: antiforgery.check_origin(request.headers))
    # A re-opened page shows each recorded choice selected ("recorded.<id>"): sent back as
    # it was shown, it is no new decision, so it is not recorded again.
    choices = {
        k.removeprefix("decision."): v
        for k, v in fields.items()
        if k.startswith("decision.") and fields.get("recorded." + k.removeprefix("decision.")) != v
    }
    shown = {k.removeprefix("text."): v for k, v in fields.items() if k.startswith("text.")}
    show = partial(
        views.confirm_page,
        settings,
        catalogue,
        locale,
        path,
        link.link_id,
        title=title or views.CONFIRM_TITLE,
        select_any_link=receipt_channel == "preferences",
    )
    try:
        _link_first(
            ledger,
            link,
            lambda: antiforgery.check(settings, link.link_id, fields.get(antiforgery.FIELD)),
        )
        if not choices and any(k.startswith("recorded.") for k in fields):
            log(event, subject=link.subject, link_id=link.link_id, changed=[])
            return show(rules.read_page(ledger, link).states, unchanged=True)
        reason = basis.parse_reason(fields.get("reason"))
        decided = rules.decide(
            ledger,
            catalogue,
            link,
            None,
            choices,
            locale,
            shown,
            http.request_context(bp.current_request),
            settings.webhook_subscribers,
            reason,
        )
    except tuple(views.FORM_ERRORS) as exc:
        return show(
            rules.read_page(ledger, link).states,  # a link refused meanwhile says so
            status=web_errors.status(exc),
            error=views.form_error(exc, locale),
        )
    result, channel = decided.states, decided.record.get("channel")
    changed = any(item.changed for item in result)
    log(
        event,
        subject=link.subject,
        link_id=link.link_id,
        changed=[item.purpose for item in result if item.changed],
    )
    background.receipt_after(link.subject, locale, receipt_channel or channel, changed)
    return show(
        result,
        unchanged=not changed,
        continue_url=None if receipt_channel else views.continue_url(catalogue, channel),
    )


@bp.route("/c/{token}/renew", methods=["POST"], content_types=http.FORM_TYPES)
@html_page
def confirm_renew(token: str) -> Page:
    """ "Send me a new link" from an expired or superseded link's page."""
    from chalicelib.consent import links
    from chalicelib.web import antiforgery, background, views

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
    from chalicelib.consent import rules
    from chalicelib.web import views

    page = rules.open_page(get_ledger(), get_settings(), "withdraw", token)
    return views.withdraw_page(
        get_catalogue(), http.locale(bp.current_request), views.quote_token(token), page.states
    )


@bp.route("/u/{token}", methods=["POST"], content_types=http.FORM_TYPES)
@html_page
def withdraw_post(token: str) -> Page:
    """Withdraw at once: our button, or a mail client's RFC 8058 one-click POST.

    No form token: the signed link is the credential, and a mail client's POST
    carries nothing else (``List-Unsubscribe=One-Click``).
    """
    from chalicelib.consent import basis, rules
    from chalicelib.web import background, views

    request = bp.current_request
    body = request.raw_body or b""
    if len(body) > forms.MAX_FORM_BYTES:
        raise forms.PayloadTooLarge("This request is too large.")
    ledger, catalogue = get_ledger(), get_catalogue()
    link = rules.verify_link(get_settings(), "withdraw", token)
    content_type = request.headers.get("content-type")
    one_click = forms.is_one_click(body, content_type)
    fields = {} if one_click else forms.parse_form(body, content_type)
    locale = http.locale(bp.current_request, fields.get("lang"))
    reason = basis.parse_reason(fields.get("reason"))
    decided = rules.withdraw(
        ledger,
        catalogue,
        link,
        None,
        locale,
        http.request_context(bp.current_request),
        "one_click" if one_click else "page",
        get_settings().webhook_subscribers,
        reason,
    )
    result = decided.states
    log(
        "withdrawn",
        subject=link.subject,
        link_id=link.link_id,
        one_click=one_click,
        changed=[item.purpose for item in result if item.changed],
    )
    background.receipt_after(
        link.subject, locale, decided.record.get("channel"), any(item.changed for item in result)
    )
    return views.withdraw_page(catalogue, locale, views.quote_token(token), result, done=True)


@bp.route("/p/{token}", methods=["GET", "HEAD"])
@html_page
def preferences_show(token: str) -> Page:
    """Every purpose with its current state and date; change any of them."""
    from chalicelib.consent import rules
    from chalicelib.rights import access
    from chalicelib.web import views

    settings, catalogue = get_settings(), get_catalogue()
    page = rules.open_page(
        get_ledger(), settings, "preferences", token, widen=lambda ln: access.offered(ln, catalogue)
    )
    return views.confirm_page(
        settings,
        catalogue,
        http.locale(bp.current_request),
        f"/p/{views.quote_token(token)}",
        page.link.link_id,
        page.states,
        title=views.PREFERENCES_TITLE,
        select_any_link=True,
    )


@bp.route("/p/{token}", methods=["POST"], content_types=http.FORM_TYPES)
@html_page
def preferences_save(token: str) -> Page:
    """Record each changed choice of the preferences page (each change is an event)."""
    from chalicelib.consent import rules
    from chalicelib.rights import access
    from chalicelib.web import views

    link = rules.verify_link(get_settings(), "preferences", token)
    return _record_choices(
        access.offered(link, get_catalogue()),
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
