"""OptinProof routes: parse the request, call chalicelib, return the page.

Read this file to learn the product's surface; the rules live in chalicelib/.
"""
from __future__ import annotations

import functools
import hmac
import io
import json
import re
import os
import time
from typing import Any, Callable
from urllib.parse import urlencode

from chalice import Chalice, Rate, Response

from chalicelib.act import reconcile
from chalicelib.web import admin_auth
from chalicelib.web import antiforgery
from chalicelib.campaigns import jobs
from chalicelib.campaigns import define
from chalicelib.consent import rules
from chalicelib.web import dashboard
from chalicelib.rights import erasure
from chalicelib.proof import evidence
from chalicelib.web import forms
from chalicelib.consent import links
from chalicelib.mail import outbox
from chalicelib.proof import receipts
from chalicelib.rights import access
from chalicelib.mail import bounces
from chalicelib.consent import requests
from chalicelib.mail import sns
from chalicelib.consent import stats
from chalicelib.act import sync
from chalicelib.web import views
from chalicelib.web import webhooks_out
from chalicelib.core.errors import (
    BadInput, ConfigError, FormExpired, InvalidEmail, NoChoice, OptinProofError,
    OutcomeUnknown, StoreUnavailable, UnknownForm,
)
from chalicelib.core.i18n import negotiate, translations
from chalicelib.core.logs import log
from chalicelib.web.render import Page, error_status, security_headers
from chalicelib.consent.catalogue import Form
from chalicelib.core.services import (
    get_act_client, get_catalogue, get_ledger, get_postman, get_pusher, get_reconciler,
    get_signups, get_sns_verifier,
)
from chalicelib.core.settings import get_settings
from chalicelib.consent.subjects import subject_of_address
from chalicelib.store import keys
from chalicelib.store import stream

app = Chalice(app_name="optinproof")

FORM_TYPES = [forms.FORM_TYPE, "multipart/form-data", "application/json", "text/plain"]


def _request_context() -> rules.RequestContext:
    request = app.current_request
    identity = (request.context or {}).get("identity") or {}
    return rules.RequestContext(
        ip=identity.get("sourceIp"),
        user_agent=(request.headers.get("user-agent") or "")[:512] or None,
        accept_language=(request.headers.get("accept-language") or "")[:256] or None,
    )


def _locale(explicit: str | None = None) -> str:
    request = app.current_request
    catalogue = get_catalogue()
    wanted = explicit or (request.query_params or {}).get("lang")
    return negotiate(wanted, request.headers.get("accept-language"), catalogue.locales,
                     catalogue.default_locale)


def _respond(page: Page) -> Response:
    body = "" if app.current_request.method == "HEAD" else page.body
    return Response(body=body, status_code=page.status, headers=page.headers)


def html_page(view: Callable[..., Page]) -> Callable[..., Response]:
    """Render any domain error of ``view`` as its page (status from one table)."""
    @functools.wraps(view)
    def wrapper(**params: Any) -> Response:
        token = params.get("token", "")
        try:
            return _respond(view(**params))
        except OptinProofError as exc:
            log("request_refused", route=app.current_request.path, error=type(exc).__name__)
            quoted = views.quote_token(token)
            renew = f"{quoted}/renew" if app.current_request.path.startswith("/c/") \
                and rules.renewable(get_ledger(), exc) else None
            try:
                return _respond(views.error_page(exc, get_catalogue(), _locale(), quoted,
                                                 get_settings(), renew))
            except OptinProofError:  # the catalogue itself is broken: still no bare 500
                return _respond(views.bare_error_page(503))
        except Exception as exc:  # noqa: BLE001 - a person must get a page, never a stack trace
            log("request_failed", level="error", route=app.current_request.path,
                error=type(exc).__name__, detail=str(exc)[:300])
            return _respond(views.bare_error_page(500))
    return wrapper


@app.route("/c/{token}", methods=["GET", "HEAD"])
@html_page
def confirm_show(token: str) -> Page:
    """The confirmation page. Renders only: GET and HEAD never change anything."""
    settings, ledger = get_settings(), get_ledger()
    link, record = rules.open_link(ledger, settings, "confirm", token, get_catalogue())
    if app.current_request.method == "GET":
        rules.note_opened(ledger, record)
    return views.confirm_page(settings, get_catalogue(), _locale(), views.quote_token(token),
                              link.link_id, rules.states(ledger, link))


@app.route("/c/{token}", methods=["POST"], content_types=FORM_TYPES)
@html_page
def confirm_decide(token: str) -> Page:
    """Record the decisions of a submitted confirmation page."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    link, record = rules.open_link(ledger, settings, "confirm", token, catalogue)
    return _record_choices(link, record, views.quote_token(token), "decisions_recorded",
                           record.get("channel"),
                           continue_url=views.continue_url(catalogue, record.get("channel")))


def _record_choices(link: links.Link, record: dict[str, Any], path: str, event: str,
                    receipt_channel: str | None, continue_url: str | None = None,
                    title: str = views.CONFIRM_TITLE) -> Page:
    """A submitted confirmation or preferences page: checked, recorded, answered."""
    request = app.current_request
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    fields = forms.parse_form(request.raw_body, request.headers.get("content-type"))
    locale = _locale(fields.get("lang"))
    antiforgery.check_origin(request.headers)
    choices = {k.removeprefix("decision."): v for k, v in fields.items() if k.startswith("decision.")}
    shown = {k.removeprefix("text."): v for k, v in fields.items() if k.startswith("text.")}
    try:
        antiforgery.check(settings, link.link_id, fields.get(antiforgery.FIELD))
        result = rules.decide(ledger, catalogue, link, record, choices, locale, shown,
                                _request_context(), settings.webhook_subscribers)
    except tuple(views.FORM_ERRORS) as exc:
        return views.confirm_page(settings, catalogue, locale, path, link.link_id,
                                  rules.states(ledger, link), status=error_status(exc),
                                  error=views.form_error(exc, locale), title=title)
    changed = any(item.changed for item in result)
    log(event, subject=link.subject, link_id=link.link_id,
        changed=[item.purpose for item in result if item.changed])
    _receipt_after(link.subject, locale, receipt_channel, changed)
    return views.confirm_page(settings, catalogue, locale, path, link.link_id, result,
                              unchanged=not changed, continue_url=continue_url, title=title)


@app.route("/c/{token}/renew", methods=["POST"], content_types=FORM_TYPES)
@html_page
def confirm_renew(token: str) -> Page:
    """"Send me a new link" from an expired or superseded link's page."""
    started = time.monotonic()
    request = app.current_request
    settings = get_settings()
    fields = forms.parse_form(request.raw_body, request.headers.get("content-type"))
    antiforgery.check_origin(request.headers)
    link = links.verify_signature(settings, "confirm", token)
    antiforgery.check(settings, link.link_id, fields.get(antiforgery.FIELD))
    locale = _locale(fields.get("lang"))
    outcome = get_signups().renew(token, locale, _request_context())
    _deliver(outcome.mail_id)
    _pad(started)
    return views.signup_done_page(get_catalogue(), locale, title=views.RENEWED_TITLE,
                                  renewal=True)


# -- withdrawal: one click, from the mail or from the page ------------------------------

@app.route("/u/{token}", methods=["GET", "HEAD"])
@html_page
def withdraw_show(token: str) -> Page:
    """The withdraw page: one button. GET never withdraws (mail scanners open links)."""
    ledger = get_ledger()
    link, _ = rules.open_link(ledger, get_settings(), "withdraw", token)
    return views.withdraw_page(get_catalogue(), _locale(), views.quote_token(token),
                               rules.states(ledger, link))


@app.route("/u/{token}", methods=["POST"], content_types=FORM_TYPES)
@html_page
def withdraw_post(token: str) -> Page:
    """Withdraw at once: our button, or a mail client's RFC 8058 one-click POST.

    No form token: the signed link is the credential, and a mail client's POST
    carries nothing else (``List-Unsubscribe=One-Click``).
    """
    request = app.current_request
    body = request.raw_body or b""
    if len(body) > forms.MAX_FORM_BYTES:
        raise forms.PayloadTooLarge("This request is too large.")
    ledger, catalogue = get_ledger(), get_catalogue()
    link, record = rules.open_link(ledger, get_settings(), "withdraw", token)
    content_type = request.headers.get("content-type")
    one_click = forms.is_one_click(body, content_type)
    fields = {} if one_click else forms.parse_form(body, content_type)
    locale = _locale(fields.get("lang"))
    result = rules.withdraw(ledger, catalogue, link, record, locale, _request_context(),
                              "one_click" if one_click else "page",
                              get_settings().webhook_subscribers)
    log("withdrawn", subject=link.subject, link_id=link.link_id, one_click=one_click,
        changed=[item.purpose for item in result if item.changed])
    _receipt_after(link.subject, locale, record.get("channel"),
                   any(item.changed for item in result))
    return views.withdraw_page(catalogue, locale, views.quote_token(token), result, done=True)


# -- preferences and the data-subject rights ---------------------------------------------

@app.route("/p/{token}", methods=["GET", "HEAD"])
@html_page
def preferences_show(token: str) -> Page:
    """Every purpose with its current state and date; change any of them."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    link, _ = rules.open_link(ledger, settings, "preferences", token)
    link = access.offered(link, catalogue)
    return views.confirm_page(settings, catalogue, _locale(), f"/p/{views.quote_token(token)}",
                              link.link_id, rules.states(ledger, link),
                              title=views.PREFERENCES_TITLE)


@app.route("/p/{token}", methods=["POST"], content_types=FORM_TYPES)
@html_page
def preferences_save(token: str) -> Page:
    """Record each changed choice of the preferences page (each change is an event)."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    link, record = rules.open_link(ledger, settings, "preferences", token)
    return _record_choices(access.offered(link, catalogue), record,
                           f"/p/{views.quote_token(token)}", "preferences_recorded",
                           "preferences", title=views.PREFERENCES_TITLE)


@app.route("/rights", methods=["GET", "HEAD"])
@html_page
def rights_form() -> Page:
    """The public page where a person asks for a link to their data."""
    return views.rights_request_page(get_catalogue(), _locale())


@app.route("/rights", methods=["POST"], content_types=FORM_TYPES)
@html_page
def rights_ask() -> Page:
    """Mail a rights link if we hold data about the address; the same answer in any case."""
    started = time.monotonic()
    request = app.current_request
    fields = forms.parse_form(request.raw_body, request.headers.get("content-type"))
    locale = _locale(fields.get("lang"))
    antiforgery.check_origin(request.headers)
    email = (fields.get("email") or "").strip()
    try:
        outcome = access.request_access(get_ledger(), get_settings(), get_catalogue(), email,
                                        locale, _request_context())
    except InvalidEmail as exc:
        return views.rights_request_page(get_catalogue(), locale, error=views.signup_error(
            exc, locale), email=email[:320], status=400)
    _deliver(outcome.mail_id)
    _pad(started)
    return views.rights_request_page(get_catalogue(), locale, done=True)


def _rights_link(token: str) -> tuple[links.Link, dict[str, Any]]:
    return rules.open_link(get_ledger(), get_settings(), "rights", token)


@app.route("/r/{token}", methods=["GET", "HEAD"])
@html_page
def rights_report(token: str) -> Page:
    """What we hold about the person and why: readable, printable, with its downloads."""
    settings, catalogue = get_settings(), get_catalogue()
    link, record = _rights_link(token)
    locale = _locale()
    data = access.export(get_ledger(), settings, catalogue, link.subject, locale)
    base = f"/r/{views.quote_token(token)}"
    return views.rights_report_page(settings, catalogue, locale, data, {
        "export": f"{base}/export.json", "erase": f"{base}/erase",
        "receipt": f"{base}/receipt.json" if data["purposes"] else None,
        "preferences": access.preferences_href(get_ledger(), settings, link, record)})


@app.route("/r/{token}/export.json", methods=["GET"])
@html_page
def rights_export(token: str) -> Response:
    """The same as a JSON file (schemas/subject-export.v1.json)."""
    link, _ = _rights_link(token)
    data = access.export(get_ledger(), get_settings(), get_catalogue(), link.subject)
    log("rights_exported", subject=link.subject, link_id=link.link_id)
    return Page(json.dumps(data, ensure_ascii=False, indent=2), 200, {
        "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
        "Content-Disposition": 'attachment; filename="my-data.json"'})


@app.route("/r/{token}/receipt.json", methods=["GET"])
@html_page
def rights_receipt(token: str) -> Page:
    """A Kantara consent receipt of the person's current consents, signed (JWS)."""
    link, _ = _rights_link(token)
    settings = get_settings()
    receipt = receipts.for_subject(get_ledger(), get_catalogue(), link.subject, _locale())
    return Page(json.dumps(receipts.document(settings, receipt), ensure_ascii=False, indent=2),
                200, {"Content-Type": "application/json; charset=utf-8",
                      "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                      "Referrer-Policy": "no-referrer",
                      "Content-Disposition": 'attachment; filename="consent-receipt.json"'})


@app.route("/r/{token}/erase", methods=["GET", "HEAD"])
@html_page
def erase_show(token: str) -> Page:
    """Erasure asks for one explicit confirmation (GET never erases)."""
    link, _ = _rights_link(token)
    quoted = views.quote_token(token)
    return views.erase_page(get_settings(), get_catalogue(), _locale(), link.link_id,
                            f"/r/{quoted}/erase", f"/r/{quoted}", get_settings().erasure_act)


@app.route("/r/{token}/erase", methods=["POST"], content_types=FORM_TYPES)
@html_page
def erase_confirm(token: str) -> Page:
    """Erase everything that identifies the person; the rights link dies with it."""
    request = app.current_request
    settings, catalogue = get_settings(), get_catalogue()
    link, _ = _rights_link(token)
    fields = forms.parse_form(request.raw_body, request.headers.get("content-type"))
    locale, quoted = _locale(fields.get("lang")), views.quote_token(token)
    antiforgery.check_origin(request.headers)
    try:
        antiforgery.check(settings, link.link_id, fields.get(antiforgery.FIELD))
        if fields.get("confirm") != "yes":
            raise NoChoice(views.erase_unticked(locale))
    except tuple(views.FORM_ERRORS) as exc:
        return views.erase_page(settings, catalogue, locale, link.link_id, f"/r/{quoted}/erase",
                                f"/r/{quoted}", settings.erasure_act, status=400,
                                error=str(exc) if isinstance(exc, NoChoice)
                                else views.form_error(exc, locale))
    done = _erase(link.subject, "rights_page", settings.erasure_act)
    return views.erase_page(settings, catalogue, locale, link.link_id, "", "",
                            settings.erasure_act, done=True, erased_at=done.erased_at)


def _erase(subject: str, requested_by: str, act_mode: str) -> erasure.Erasure:
    """Erase with Act! in the loop: unsent decisions pushed first, then cleared there."""
    return erasure.erase_with_act(get_ledger(), get_catalogue(), get_settings(), subject,
                                  requested_by, act_mode, _act_client_or_none(),
                                  _pusher_or_none())


def _act_client_or_none() -> Any:
    try:
        return get_act_client() if get_settings().act else None
    except ConfigError:
        return None


# -- signup forms: iframe, plain HTML form, or a script posting JSON --------------------

SIGNUP_TYPES = [*FORM_TYPES]


def _form(form_id: str) -> Form:
    form = get_catalogue().forms.get(form_id)
    if form is None:
        raise UnknownForm(f"There is no signup form {form_id!r}.")
    return form


def _cors(form: Form | None) -> dict[str, str]:
    """CORS headers for a request from one of the form's websites (none for others)."""
    origin = (app.current_request.headers.get("origin") or "").rstrip("/").lower()
    headers = {"Vary": "Origin"}
    if form is not None and form.allows(origin):
        headers.update({"Access-Control-Allow-Origin": origin,
                        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                        "Access-Control-Allow-Headers": "Content-Type",
                        "Access-Control-Max-Age": "600"})
    return headers


def _json(data: dict[str, Any], status: int = 200, form: Form | None = None,
          headers: dict[str, str] | None = None) -> Response:
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store",
               "X-Content-Type-Options": "nosniff", **_cors(form), **(headers or {})}
    return Response(json.dumps(data, ensure_ascii=False), status_code=status, headers=headers)


def _json_error(exc: Exception, form: Form | None) -> Response:
    status = 400 if isinstance(exc, UnknownForm) else error_status(exc)
    if status >= 500:  # our side: say so, never our internals
        if isinstance(exc, OutcomeUnknown):
            return _json({"error": "outcome_unknown", "message": "We could not confirm that "
                          "this was recorded. Sending it again is safe."}, status, form)
        code = "store_unavailable" if isinstance(exc, StoreUnavailable) else "internal"
        return _json({"error": code, "message": "The service is not available right now; "
                      "nothing was recorded. Please try again later."}, status, form)
    code = "".join(f"_{c.lower()}" if c.isupper() else c for c in type(exc).__name__).lstrip("_")
    return _json({"error": code, "message": str(exc)}, status, form)


def _signup_locale(form: Form, explicit: str | None = None) -> str:
    query = (app.current_request.query_params or {}).get("lang")
    return _locale(explicit or query or form.locale)


def _pad(started: float) -> None:
    """Make a neutral answer take the same time whatever happened behind it."""
    remaining = get_settings().signup_min_response - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)


def _receipt_after(subject: str, locale: str, channel: str | None, changed: bool) -> None:
    """With RECEIPT_MAIL, a consent receipt follows each change (the decision stands alone
    if queuing it fails: the receipt can always be downloaded from the rights page)."""
    settings = get_settings()
    if not changed or not settings.receipt_mail or settings.mail.transport == "none":
        return
    try:
        _deliver(outbox.queue_receipt(get_ledger(), settings, subject, locale, channel))
    except OptinProofError as exc:
        log("receipt_not_queued", level="warning", subject=subject, error=type(exc).__name__)


def _deliver(mail_id: str | None) -> None:
    """With MAIL_DELIVERY=inline, send a queued mail now (else the stream sends it)."""
    if not mail_id or get_settings().mail.delivery != "inline":
        return
    try:
        get_postman().deliver(mail_id)
    except OptinProofError as exc:  # the outbox keeps it; the sweep tries again
        log("mail_deferred", level="warning", mail_id=mail_id, error=type(exc).__name__,
            detail=str(exc)[:300])


@app.route("/signup/{form_id}", methods=["GET", "HEAD"])
@html_page
def signup_form(form_id: str) -> Page:
    """The embeddable form (iframe). Framable only by the form's allowed origins."""
    form = _form(form_id)
    started = requests.start_token(get_settings(), form.id, app.current_request.headers.get("referer"))
    return views.signup_page(get_catalogue(), form, _signup_locale(form), form.id, started)


@app.route("/signup/{form_id}/form.json", methods=["GET"])
def signup_form_json(form_id: str) -> Response:
    """What a script needs to build the form: purposes, texts, a start token (CORS)."""
    try:
        form = _form(form_id)
        locale = _signup_locale(form)
        catalogue = get_catalogue()
        return _json({
            "form": form.id, "locale": locale, "ask_name": form.ask_name,
            "controller": {"name": catalogue.controller.name,
                           "privacy_policy_url": catalogue.controller.privacy_policy_url},
            "purposes": views.purpose_views(catalogue, form.purposes, locale),
            "started": requests.start_token(get_settings(), form.id,
                                          app.current_request.headers.get("referer")),
            "honeypot": requests.HONEYPOT,
        }, form=form)
    except OptinProofError as exc:
        return _json_error(exc, None)


@app.route("/signup/{form_id}", methods=["OPTIONS"])
def signup_preflight(form_id: str) -> Response:
    """CORS preflight: allowed only for the form's own websites."""
    form = get_catalogue().forms.get(form_id)
    headers = _cors(form)
    status = 204 if "Access-Control-Allow-Origin" in headers else 403
    return Response("", status_code=status, headers=headers)


@app.route("/signup/{form_id}", methods=["POST"], content_types=SIGNUP_TYPES)
def signup_submit(form_id: str) -> Response:
    """Record a signup and send the confirmation mail; one neutral answer for all."""
    started = time.monotonic()
    request = app.current_request
    as_json = forms.media_type(request.headers.get("content-type")) == forms.JSON_TYPE
    form = None  # type: Form | None  (no annotations on locals: Chalice's analyzer trips)
    fields = {}  # type: dict[str, str]
    try:
        form = _form(form_id)
        requests.check_origin(form, request.headers)
        referer = request.headers.get("referer") or request.headers.get("origin")
        if as_json:
            submission = requests.from_json(forms.parse_json(request.raw_body,
                                          request.headers.get("content-type")), referer)
        else:
            fields = forms.parse_form(request.raw_body, request.headers.get("content-type"))
            submission = requests.from_form(fields, referer)
        locale = _signup_locale(form, submission.locale)
        outcome = get_signups().submit(form, submission, locale, _request_context())
    except OptinProofError as exc:
        log("signup_refused", form=form_id, error=type(exc).__name__)
        return _signup_error(exc, form, fields, as_json)
    except Exception as exc:  # noqa: BLE001 - an answer, never a stack trace
        log("request_failed", level="error", route=request.path, error=type(exc).__name__,
            detail=str(exc)[:300])
        if as_json:
            return _json({"error": "internal", "message": "Something went wrong on our side; "
                          "nothing was recorded. Please try again later."}, 500, form)
        return _respond(views.bare_error_page(500))
    _deliver(outcome.mail_id)
    _pad(started)
    return _signup_answer(form, locale, as_json, fields.get("embed"))


def _signup_answer(form: Form, locale: str, as_json: bool, embed: str | None) -> Response:
    """The same answer whatever happened: new, pending, known, throttled or a bot."""
    if as_json:
        message = translations(locale).gettext(views.SIGNUP_ANSWER)
        return _json({"status": "ok", "message": message}, 200, form)
    if form.redirect_after_submit and embed != "iframe":
        return Response("", status_code=303, headers={
            "Location": form.redirect_after_submit, "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer"})
    back = f"{form.id}?lang={locale}" if embed == "iframe" else None
    return _respond(views.signup_done_page(get_catalogue(), locale, back, form=form))


def _signup_error(exc: OptinProofError, form: Form | None, fields: dict[str, str],
                  as_json: bool) -> Response:
    if as_json:
        return _json_error(exc, form)
    catalogue = get_catalogue()
    if form is not None and isinstance(exc, (BadInput, InvalidEmail)) \
            and not isinstance(exc, (forms.PayloadTooLarge, forms.UnsupportedType)) \
            and error_status(exc) == 400:
        locale = _signup_locale(form, fields.get("lang"))
        values = {"email": fields.get("email", ""), "name": fields.get("name", ""),
                  "purposes": tuple(k.removeprefix("purpose.") for k in fields
                                    if k.startswith("purpose."))}
        # Keep the form's original start time, unless that is what expired.
        started = fields.get(requests.TOKEN_FIELD)
        if not started or isinstance(exc, FormExpired):
            started = requests.start_token(get_settings(), form.id, None)
        return _respond(views.signup_page(catalogue, form, locale, form.id, started,
                                          fields.get("embed") or "html", values,
                                          views.signup_error(exc, locale), 400))
    locale = _locale(fields.get("lang"))
    page = views.error_page(exc, catalogue, locale, "",
                            frame_ancestors=views.frame_ancestors(form))
    status = 400 if isinstance(exc, UnknownForm) else page.status
    return _respond(Page(page.body, status, page.headers))


# -- changes made in Act!: webhook deliveries are hints, reconciled later ----------------

@app.route("/hooks/act/{secret}/{trigger}", methods=["POST"],
           content_types=["application/json", "text/plain", forms.FORM_TYPE])
def act_webhook(secret: str, trigger: str) -> Response:
    """An Act! webhook delivery: checked, queued as hints, answered at once."""
    act = get_settings().act
    path_secret = (act.webhook_path_secret or "") if act else ""
    if not act or not act.webhook_token or not path_secret \
            or not hmac.compare_digest(secret.encode(), path_secret.encode()):
        return _json({"error": "not_found", "message": "Nothing here."}, 404)
    if not reconcile.authorised(app.current_request.headers.get("authorization"), act.webhook_token):
        log("act_webhook_refused", level="warning", reason="token")
        return _json({"error": "unauthorised", "message": "Wrong or missing token."}, 401)
    try:
        records = reconcile.parse_delivery(app.current_request.raw_body)
        queued = reconcile.queue_hints(get_ledger(), records, trigger)
    except OptinProofError as exc:
        return _json_error(exc, None)
    log("act_webhook", trigger=trigger, records=queued)
    return _json({"queued": queued})


def _reconciler_or_none() -> Any:
    try:
        return get_reconciler()
    except ConfigError as exc:
        log("act_hooks_not_configured", level="warning", detail=str(exc)[:300])
        return None


def _reconcile(contact_ids: list[str]) -> int:
    if not contact_ids or get_settings().act is None:
        return 0
    reconciler = _reconciler_or_none()
    if reconciler is None:
        return 0
    done = 0
    for contact_id in contact_ids:
        try:
            reconciler.process(contact_id)
            done += 1
        except OptinProofError as exc:  # the hint stays; the sweep tries again
            log("act_change_deferred", level="warning", contact_id=contact_id,
                error=type(exc).__name__, detail=str(exc)[:300])
    return done


# -- SES bounces and complaints, through SNS ----------------------------------------------

@app.route("/hooks/ses/{secret}", methods=["POST"],
           content_types=["text/plain", "application/json"])
def ses_notification(secret: str) -> Response:
    """An SNS message about our mails: signature, topic and freshness checked first."""
    settings = get_settings()
    if not settings.ses_topics or not hmac.compare_digest(
            secret.encode(), (settings.ses_path_secret or "").encode()):
        return _json({"error": "not_found", "message": "Nothing here."}, 404)
    try:
        message = sns.parse(app.current_request.raw_body or b"")
    except sns.SnsRejected as exc:
        return _json({"error": "bad_request", "message": str(exc)}, 400)
    try:
        get_sns_verifier().verify(message)
        return _json(_sns_message(message))
    except sns.SnsUnavailable as exc:  # a certificate we could not fetch: SNS retries
        log("sns_deferred", level="warning", reason=str(exc)[:300])
        return _json({"error": "unavailable", "message": str(exc)}, 503)
    except sns.SnsRejected as exc:
        log("sns_refused", level="warning", reason=str(exc)[:300])
        return _json({"error": "forbidden", "message": str(exc)}, 403)
    except OptinProofError as exc:  # a verified message that is no SES notice: 400
        return _json_error(exc, None)


def _sns_message(message: dict[str, Any]) -> dict[str, Any]:
    if message["Type"] == "SubscriptionConfirmation":
        sns.confirm_subscription(message, get_sns_verifier().fetch)
        log("sns_subscribed", topic=message["TopicArn"])
        return {"subscribed": message["TopicArn"]}
    if message["Type"] == "UnsubscribeConfirmation":
        log("sns_unsubscribed", level="warning", topic=message["TopicArn"])
        return {"unsubscribed": message["TopicArn"]}
    notice = bounces.parse(message["Message"])
    outcome = bounces.apply(get_ledger(), get_settings(), get_catalogue(), notice,
                                message["MessageId"])
    return {"kind": notice.kind, "recorded": outcome.recorded, "unknown": outcome.unknown,
            "duplicate": outcome.duplicate}


# -- the admin API: operators with a token from `cli admin token` ----------------------

def admin_api(view: Callable[..., Response]) -> Callable[..., Response]:
    """Only a valid, unexpired operator token gets through; every call is logged."""
    @functools.wraps(view)
    def wrapper(**params: Any) -> Response:
        request = app.current_request
        try:  # a browser session cookie only reads (GET); changes need the bearer token
            operator = admin_auth.authenticate(get_settings(), dict(request.headers),
                                          allow_cookie=request.method == "GET")
        except admin_auth.AdminDenied as exc:
            log("admin_refused", level="warning", route=request.path, reason=str(exc)[:200])
            challenge = {"WWW-Authenticate": 'Bearer realm="optinproof-admin"'} \
                if exc.status == 401 else {}
            return _json({"error": "unauthorised" if exc.status == 401 else "forbidden",
                          "message": str(exc)}, exc.status, headers=challenge)
        except OptinProofError as exc:
            return _json_error(exc, None)
        if operator.use == "browser" and request.method != "GET":
            log("admin_refused", level="warning", route=request.path, reason="browser token")
            return _json({"error": "forbidden", "message": "A sign-in link's session only "
                          "reads the admin API; changes need a token from `cli admin token`."},
                         403)
        log("admin_call", operator=operator.name, method=request.method, route=request.path)
        try:
            return view(operator, **params)
        except OptinProofError as exc:  # operators get the reason, even for configuration
            return _json({"error": type(exc).__name__, "message": str(exc)}, error_status(exc))
    return wrapper


def _admin_body() -> dict[str, Any]:
    request = app.current_request
    if not request.raw_body:
        return {}
    return forms.parse_json(request.raw_body, request.headers.get("content-type"))


def admin_page(view: Callable[..., Page]) -> Callable[..., Response]:
    """A dashboard page: the session cookie (or a bearer token); a form POST also needs
    its form token and to come from our own page. Refusals are pages, not JSON."""
    @functools.wraps(view)
    def wrapper(**params: Any) -> Response:
        request, settings = app.current_request, get_settings()
        locale = _locale()
        try:
            operator = admin_auth.authenticate(settings, dict(request.headers), True)
        except admin_auth.AdminDenied as exc:
            log("admin_refused", level="warning", route=request.path, reason=str(exc)[:200])
            return _respond(views.admin_denied_page(get_catalogue(), locale, exc.status))
        log("admin_call", operator=operator.name, method=request.method, route=request.path)
        try:
            if request.method == "POST":
                fields = forms.parse_form(request.raw_body, request.headers.get("content-type"))
                antiforgery.check_origin(request.headers)
                antiforgery.check(settings, f"admin:{operator.token_id}",
                                  fields.get(antiforgery.FIELD))
                params["fields"] = fields
            return _respond(view(operator, locale, **params))
        except OptinProofError as exc:
            return _respond(views.error_page(exc, get_catalogue(), locale, "", settings, None))
    return wrapper


@app.route("/admin/login", methods=["GET"])
def admin_login() -> Response:
    """Open a link from `cli admin link`: a session cookie, then the dashboard."""
    token = (app.current_request.query_params or {}).get("token", "")
    try:
        operator = admin_auth.verify(get_settings(), token)
    except admin_auth.AdminDenied as exc:
        log("admin_refused", level="warning", route="/admin/login", reason=str(exc)[:200])
        return _respond(views.admin_denied_page(get_catalogue(), _locale(), exc.status))
    log("admin_login", operator=operator.name)
    return Response("", status_code=303, headers={
        "Location": "/admin/dashboard", "Set-Cookie": admin_auth.session_cookie(token, operator),
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@app.route("/admin/logout", methods=["POST"], content_types=FORM_TYPES)
@admin_page
def admin_logout(operator: admin_auth.Operator, locale: str, fields: dict[str, str]) -> Page:
    page = views.admin_denied_page(get_catalogue(), locale, 401, signed_out=True)
    return Page(page.body, 200, {**page.headers, "Set-Cookie": admin_auth.cleared_cookie()})


@app.route("/admin/dashboard", methods=["GET"])
@admin_page
def admin_dashboard(operator: admin_auth.Operator, locale: str) -> Page:
    """Counts per purpose, decisions over time, campaign funnels, forms, syncs, erasures."""
    params = app.current_request.query_params or {}
    ledger, catalogue = get_ledger(), get_catalogue()
    chosen = dashboard.filters(params, catalogue, ledger)
    data = dashboard.data(ledger, catalogue, chosen, locale)
    table = params.get("table")
    if params.get("format") == "csv":
        if table not in dashboard.TABLES:
            raise BadInput(f"table is one of {', '.join(dashboard.TABLES)}.")
        return Page(dashboard.csv_table(data[table]), 200, {
            "Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'attachment; filename="{table}.csv"'})
    return views.dashboard_page(get_settings(), catalogue, locale, data, chosen, operator,
                                params.get("notice"))


@app.route("/admin/syncs/retry", methods=["POST"], content_types=FORM_TYPES)
@admin_page
def admin_sync_retry(operator: admin_auth.Operator, locale: str, fields: dict[str, str]) -> Page:
    """The dashboard's "retry now": push one decision to Act! at once."""
    subject, _, purpose = (fields.get("key") or "").partition("|")
    if not re.fullmatch(r"[0-9a-f]{64}", subject) or purpose not in get_catalogue().purposes:
        raise BadInput("This sync is not one we know.")
    pusher = _pusher_or_none()
    if pusher is None:
        raise ConfigError("Act! is not configured: nothing can be retried.")
    outcome, error = pusher.push(*keys.purpose(subject, purpose), force=True)
    log("admin_sync_retry", operator=operator.name, purpose=purpose, outcome=outcome)
    notice = f"{purpose}: {outcome}" + (f" ({error[:120]})" if error else "")
    return Page("", 303, {"Location": f"/admin/dashboard?{urlencode({'notice': notice})}",
                          "Cache-Control": "no-store"})


@app.route("/admin/lookup", methods=["GET"])
@admin_page
def admin_lookup(operator: admin_auth.Operator, locale: str) -> Page:
    """One person by exact address: their evidence pack (nothing listed, nothing guessed)."""
    email = (app.current_request.query_params or {}).get("email", "")
    subject = subject_of_address(get_settings(), email)
    ledger = get_ledger()
    if not ledger.get(*keys.chain(subject)) and ledger.current(subject) == (None, {}):
        raise BadInput("Nothing is held about this address.")
    data = evidence.pack(ledger, get_settings(), get_catalogue(), subject)
    log("admin_lookup", operator=operator.name, subject=subject)
    return Page(evidence.html(data, locale), 200, security_headers())


@app.route("/admin/campaigns", methods=["GET"])
@admin_api
def admin_campaigns(operator: admin_auth.Operator) -> Response:
    """Every campaign with its run state."""
    return _json({"campaigns": jobs.listing(get_ledger())})


@app.route("/admin/campaigns", methods=["POST"], content_types=["application/json"])
@admin_api
def admin_campaign_start(operator: admin_auth.Operator) -> Response:
    """Define a campaign and schedule it: the campaign sweep works through it."""
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    body = _admin_body()
    audience, value = define.audience_of(body)
    campaign = define.define(ledger, settings, catalogue, body.get("id"),
                                define.purposes_of(body), audience, value,
                                body.get("delivery"), body.get("locale"), body.get("link_field"))
    run = jobs.schedule(ledger, campaign, f"admin:{operator.name}")
    return _json({"campaign": campaign.public(), "run": run}, 202)


@app.route("/admin/campaigns/{campaign_id}", methods=["GET"])
@admin_api
def admin_campaign(operator: admin_auth.Operator, campaign_id: str) -> Response:
    """A campaign, its run state and its report per purpose."""
    ledger = get_ledger()
    campaign = define.load(ledger, campaign_id)
    return _json({"campaign": campaign.public(), "run": jobs.public_entry(
        ledger, campaign_id), "report": define.report(ledger, campaign).as_dict()})


@app.route("/admin/campaigns/{campaign_id}/run", methods=["POST"],
           content_types=["application/json"])
@admin_api
def admin_campaign_run(operator: admin_auth.Operator, campaign_id: str) -> Response:
    """Run again (finish what failed), or ``{"remind": true}`` for a reminder round."""
    ledger = get_ledger()
    remind = _admin_body().get("remind", False)
    if not isinstance(remind, bool):
        raise BadInput("'remind' must be true or false.")
    run = jobs.schedule(ledger, define.load(ledger, campaign_id),
                                 f"admin:{operator.name}", remind=remind)
    return _json({"run": run}, 202)


@app.route("/admin/campaigns/{campaign_id}/pause", methods=["POST"],
           content_types=["application/json"])
@admin_api
def admin_campaign_pause(operator: admin_auth.Operator, campaign_id: str) -> Response:
    """Stop the sweep from working on the campaign (resume with /run)."""
    return _json({"run": jobs.pause(get_ledger(), campaign_id,
                                             f"admin:{operator.name}")})


@app.route("/admin/campaigns/{campaign_id}/links.csv", methods=["GET"])
@admin_api
def admin_campaign_csv(operator: admin_auth.Operator, campaign_id: str) -> Response:
    """Contact id, address, first name, link: every delivered contact, or ``?only=no-answer``."""
    ledger = get_ledger()
    campaign = define.load(ledger, campaign_id)
    only = (app.current_request.query_params or {}).get("only")
    if only not in (None, "no-answer"):
        raise BadInput("'only' can be no-answer (or leave it out for every delivered contact).")
    out = io.StringIO()
    rows = define.export_csv(
        define.Runner(ledger, get_settings(), get_catalogue(), None, campaign), out,
        only=define.no_answer_filter(ledger, campaign) if only else None)
    log("admin_export", operator=operator.name, campaign=campaign_id, rows=rows, only=only)
    return Response(out.getvalue(), headers={
        "Content-Type": "text/csv; charset=utf-8", "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{campaign_id}-links.csv"',
        "X-Content-Type-Options": "nosniff"})


@app.route("/admin/evidence", methods=["GET"])
@admin_api
def admin_evidence(operator: admin_auth.Operator) -> Response:
    """One person's evidence pack: ``?email=`` (or ``?subject=``), ``&format=html`` to read."""
    params = app.current_request.query_params or {}
    settings, ledger = get_settings(), get_ledger()
    subject = params.get("subject") or subject_of_address(settings, params.get("email") or "")
    if params.get("format", "json") not in ("json", "html"):
        raise BadInput("format is json or html.")
    if not ledger.get(*keys.chain(subject)) and ledger.current(subject) == (None, {}):
        return _json({"error": "not_found", "message": "Nothing is held about this person."},
                     404)
    data = evidence.pack(ledger, settings, get_catalogue(), subject)
    log("admin_evidence", operator=operator.name, subject=subject)
    if params.get("format") == "html":
        return Response(evidence.html(data, data["subject"].get("locale") or "en"), headers={
            **security_headers(), "Content-Disposition": "inline"})
    return _json(data)


@app.route("/admin/erasures", methods=["POST"], content_types=["application/json"])
@admin_api
def admin_erase(operator: admin_auth.Operator) -> Response:
    """Erase one person (``{"email": ...}`` or ``{"subject": ...}``), as `cli erase` does."""
    body, settings, ledger = _admin_body(), get_settings(), get_ledger()
    subject = body.get("subject") or subject_of_address(settings, str(body.get("email") or ""))
    act_mode = body.get("act") or settings.erasure_act
    if act_mode not in erasure.ACT_MODES:
        raise BadInput(f"act is one of {', '.join(erasure.ACT_MODES)}.")
    if not ledger.get(*keys.chain(subject)) and ledger.current(subject) == (None, {}):
        return _json({"error": "not_found", "message": "Nothing is held about this person."},
                     404)
    done = _erase(subject, f"admin:{operator.name}", act_mode)
    return _json({"subject": subject, "erased_at": done.erased_at, "already": done.already,
                  "events_stripped": done.events_stripped, "links_revoked": done.links_revoked,
                  "act": done.act})


@app.route("/health", methods=["GET"])
def health() -> Response:
    """Configuration loads and the catalogue is valid (no personal data, no table read)."""
    try:
        get_settings()
        catalogue = get_catalogue()
    except OptinProofError as exc:
        log("health_failed", level="error", error=type(exc).__name__, detail=str(exc)[:300])
        return Response(json.dumps({"status": "error", "reason": "configuration invalid; see logs"}),
                        status_code=500, headers={"Content-Type": "application/json",
                                                  "Cache-Control": "no-store"})
    return Response(json.dumps({"status": "ok", "purposes": sorted(catalogue.purposes)}),
                    headers={"Content-Type": "application/json", "Cache-Control": "no-store"})


# -- Act! sync: the stream is the fast path, the sweep the safety net -------------------

# Chalice needs the stream ARN when it packages the app, so this one value is read at
# import time; `chalice deploy` takes it from the stage's environment variables.
CONSENT_STREAM_ARN = os.environ.get(
    "CONSENT_TABLE_STREAM_ARN",
    "arn:aws:dynamodb:eu-west-1:000000000000:table/optinproof/stream/unset")


def _pusher_or_none() -> Any:
    """The pusher, or None (logged) when Act! is not configured: decisions stay pending."""
    try:
        return get_pusher()
    except ConfigError as exc:
        log("sync_not_configured", level="warning", detail=str(exc)[:300])
        return None


@app.on_dynamodb_record(stream_arn=CONSENT_STREAM_ARN, batch_size=50, starting_position="LATEST")
def on_table_change(event: Any) -> dict[str, Any]:
    """The table's stream: send new mails, push new decisions to Act!. Never fails the batch.

    Mails leave here rather than inside the signup request, so a request's answer
    neither waits for the mail nor shows whether one was sent.
    """
    routed = stream.route_records(event)
    result = {"synced": 0, "failed": 0}
    _count_expiries(routed.expired_profiles)
    pusher = _pusher_or_none()
    if pusher is not None:  # decisions to Act! first: the most important work of the batch
        report = sync.drain(pusher, routed.syncs)
        log("sync_stream", synced=report.synced, failed=report.failed, held=report.held,
            skipped=report.skipped)
        result.update(synced=report.synced, failed=report.failed)
    result["mailed"] = _send_new_mails(routed.mails)
    reconciled = _reconcile(routed.hints)
    if reconciled:
        result["reconciled"] = reconciled
    delivered = _deliver_webhooks(routed.hookouts)
    if delivered:
        result["webhooks"] = delivered
    return result


def _count_expiries(profiles: list[dict[str, Any]]) -> None:
    """A never-decided person's profile removed by TTL: the dashboard's "expired"."""
    for old in profiles:
        try:
            get_ledger().add_counters(stats.expired(old))
        except OptinProofError as exc:  # a count, never a reason to fail the batch
            log("stats_not_counted", level="warning", error=type(exc).__name__)


def _deliver_webhooks(keys: list[tuple[str, str]]) -> int:
    """Each delivery on its own: one failing store call or subscriber stops no other."""
    if not keys:
        return 0
    dispatcher, delivered = webhooks_out.Dispatcher(get_ledger(), get_settings()), 0
    for key in keys:
        try:
            delivered += dispatcher.deliver(*key) == "delivered"
        except OptinProofError as exc:  # it stays pending; the sweep tries again
            log("webhook_deferred", level="warning", error=type(exc).__name__)
    return delivered


def _send_new_mails(mail_ids: list[str]) -> int:
    if not mail_ids or get_settings().mail.transport == "none":
        return 0
    results = [get_postman().deliver_safely(mail_id) for mail_id in mail_ids]
    return sum(1 for r in results if r.status == "sent")


@app.schedule(Rate(1, unit=Rate.MINUTES))
def mail_sweep(event: Any) -> dict[str, Any]:
    """Send mails whose first try failed, with backoff (the outbox's safety net)."""
    if get_settings().mail.transport == "none":
        return {"sent": 0}
    results = outbox.sweep(get_postman())
    counts = {status: sum(1 for r in results if r.status == status)
              for status in ("sent", "retry", "failed", "skipped")}
    if results:
        log("mail_sweep", **counts)
    return counts


@app.schedule(Rate(1, unit=Rate.MINUTES))
def webhooks_sweep(event: Any) -> dict[str, Any]:
    """Retry outbound webhook deliveries that failed, after their backoff."""
    return {"delivered": _deliver_webhooks(webhooks_out.due_keys(get_ledger()))}


@app.schedule(Rate(1, unit=Rate.MINUTES))
def campaign_sweep(event: Any) -> dict[str, Any]:
    """Work on campaigns started through the admin API, until the Lambda's time is up."""
    context = getattr(event, "context", None)
    remaining = context.get_remaining_time_in_millis() / 1000 if context else 60.0
    tools = jobs.Tools(get_settings(), get_catalogue(),
                                get_act_client() if get_settings().act else None, get_postman)
    results = jobs.work(get_ledger(), tools, max(5.0, remaining - 30))
    return {"campaigns": len(results)}


@app.schedule(Rate(1, unit=Rate.MINUTES))
def sync_sweep(event: Any) -> dict[str, Any]:
    """Push every sync that is due: missed stream records, and retries after backoff."""
    pusher = _pusher_or_none()
    if pusher is None:
        return {"synced": 0, "failed": 0}
    _reconcile(reconcile.Reconciler.pending_in(pusher.ledger))
    settings = get_settings()
    erasure.retry_act(pusher.ledger, get_catalogue(), pusher.client, settings.erasure_act,
                      settings.act.aem_opt_out if settings.act else True)
    report = sync.drain(pusher, sync.due_keys(pusher.ledger), limit=500)
    log("sync_sweep", synced=report.synced, failed=report.failed, held=report.held,
        skipped=report.skipped)
    return {"synced": report.synced, "failed": report.failed}
