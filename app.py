"""OptinProof routes: parse the request, call chalicelib, return the page.

Read this file to learn the product's surface; the rules live in chalicelib/.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Any, Callable

from chalice import Chalice, Rate, Response

from chalicelib import antiforgery, consent, formdata, sync, views
from chalicelib.errors import ConfigError, OptinProofError
from chalicelib.i18n import negotiate
from chalicelib.logs import log
from chalicelib.pages import Page, error_status
from chalicelib.resources import get_catalogue, get_ledger, get_pusher
from chalicelib.settings import get_settings

app = Chalice(app_name="optinproof")

FORM_TYPES = [formdata.FORM_TYPE, "multipart/form-data", "application/json", "text/plain"]


def _request_context() -> consent.RequestContext:
    request = app.current_request
    identity = (request.context or {}).get("identity") or {}
    return consent.RequestContext(
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
            try:
                return _respond(views.error_page(exc, get_catalogue(), _locale(),
                                                 views.quote_token(token)))
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
    link, _ = consent.open_link(ledger, settings, "confirm", token, get_catalogue())
    return views.confirm_page(settings, get_catalogue(), _locale(), views.quote_token(token),
                              link.link_id, consent.states(ledger, link))


@app.route("/c/{token}", methods=["POST"], content_types=FORM_TYPES)
@html_page
def confirm_decide(token: str) -> Page:
    """Record the decisions of a submitted confirmation page."""
    request = app.current_request
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    link, record = consent.open_link(ledger, settings, "confirm", token, catalogue)
    fields = formdata.parse_form(request.raw_body, request.headers.get("content-type"))
    locale = _locale(fields.get("lang"))
    path = views.quote_token(token)
    antiforgery.check_origin(request.headers)
    choices = {k.removeprefix("decision."): v for k, v in fields.items() if k.startswith("decision.")}
    shown = {k.removeprefix("text."): v for k, v in fields.items() if k.startswith("text.")}
    try:
        antiforgery.check(settings, link.link_id, fields.get(antiforgery.FIELD))
        result = consent.decide(ledger, catalogue, link, record, choices, locale, shown,
                                _request_context())
    except tuple(views.FORM_ERRORS) as exc:
        return views.confirm_page(settings, catalogue, locale, path, link.link_id,
                                  consent.states(ledger, link), status=error_status(exc),
                                  error=views.form_error(exc, locale))
    log("decisions_recorded", subject=link.subject, link_id=link.link_id,
        changed=[item.purpose for item in result if item.changed])
    return views.confirm_page(settings, catalogue, locale, path, link.link_id, result,
                              unchanged=not any(item.changed for item in result))


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
def sync_on_stream(event: Any) -> dict[str, Any]:
    """Push each decision the table just marked pending; never fails the batch."""
    pusher = _pusher_or_none()
    if pusher is None:
        return {"synced": 0, "failed": 0}
    report = sync.drain(pusher, sync.stream_keys(record.new_image for record in event))
    log("sync_stream", synced=report.synced, failed=report.failed, held=report.held,
        skipped=report.skipped)
    return {"synced": report.synced, "failed": report.failed}


@app.schedule(Rate(1, unit=Rate.MINUTES))
def sync_sweep(event: Any) -> dict[str, Any]:
    """Push every sync that is due: missed stream records, and retries after backoff."""
    pusher = _pusher_or_none()
    if pusher is None:
        return {"synced": 0, "failed": 0}
    report = sync.drain(pusher, sync.due_keys(pusher.ledger), limit=500)
    log("sync_sweep", synced=report.synced, failed=report.failed, held=report.held,
        skipped=report.skipped)
    return {"synced": report.synced, "failed": report.failed}
