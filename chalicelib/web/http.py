"""HTTP policy every blueprint shares: request context, language, CORS, JSON answers.

Kept out of the routes so a route reads as "parse, call chalicelib, answer", and so the
rules that must not differ between areas (which headers a JSON answer carries, how a
form's website is allowed, how long a neutral answer takes) are written once. Helpers
take the Chalice request explicitly: the blueprints share one app, and a function that
is handed its request can be tested without one.

Cold start: every blueprint imports this module with its routes, so it imports at
module level only what the route declarations need (the content types); the rest
is imported by the function that uses it.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from chalice import Response
from chalice.app import Request

from chalicelib.core.errors import UnknownForm
from chalicelib.core.services import get_catalogue, get_settings
from chalicelib.web import forms

if TYPE_CHECKING:
    from chalicelib.consent import rules
    from chalicelib.consent.catalogue import Form
    from chalicelib.web.render import Page

FORM_TYPES = [forms.FORM_TYPE, "multipart/form-data", "application/json", "text/plain"]
SIGNUP_TYPES = [*FORM_TYPES]


def request_context(request: Request) -> rules.RequestContext:
    from chalicelib.consent import rules

    identity = (request.context or {}).get("identity") or {}
    return rules.RequestContext(
        ip=identity.get("sourceIp"),
        user_agent=(request.headers.get("user-agent") or "")[:512] or None,
        accept_language=(request.headers.get("accept-language") or "")[:256] or None,
    )


def locale(request: Request, explicit: str | None = None) -> str:
    """The page's language: the form's or link's choice, ``?lang=``, then Accept-Language."""
    from chalicelib.core.i18n import negotiate

    catalogue = get_catalogue()
    wanted = explicit or query(request).get("lang")
    return negotiate(
        wanted, request.headers.get("accept-language"), catalogue.locales, catalogue.default_locale
    )


#: Chalice's type for response headers (a header may repeat).
Headers = dict[str, str | list[str]]


def query(request: Request) -> dict[str, str]:
    """The query string's parameters (the last value of a repeated one)."""
    params: Any = request.query_params or {}
    return {name: params[name] for name in params}


def wants_json(request: Request) -> bool:
    """A client that asks for JSON before HTML (a script, not a browser)."""
    accept = (request.headers.get("accept") or "").lower()
    ranked = [part.split(";")[0].strip() for part in accept.split(",")]
    html = ranked.index("text/html") if "text/html" in ranked else len(ranked)
    wanted = ranked.index("application/json") if "application/json" in ranked else len(ranked)
    return wanted < html


def respond(request: Request, page: Page) -> Response:
    body = "" if request.method == "HEAD" else page.body
    headers: Headers = {**page.headers}
    return Response(body=body, status_code=page.status, headers=headers)


def find_form(form_id: str) -> Form:
    form = get_catalogue().forms.get(form_id)
    if form is None:
        raise UnknownForm(f"There is no signup form {form_id!r}.")
    return form


def cors(request: Request, form: Form | None) -> dict[str, str]:
    """CORS headers for a request from one of the form's websites (none for others)."""
    origin = (request.headers.get("origin") or "").rstrip("/").lower()
    headers = {"Vary": "Origin"}
    if form is not None and form.allows(origin):
        headers.update(
            {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Max-Age": "600",
            }
        )
    return headers


def attachment(filename: str, content_type: str, **more: str) -> dict[str, str]:
    """Headers of a file a person saves (their data, receipt, records, a PDF): never
    cached, never sniffed, never named to another site by a Referer."""
    return {
        "Content-Type": content_type,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Content-Disposition": f'attachment; filename="{filename}"',
        **more,
    }


def json_answer(
    request: Request,
    data: dict[str, Any],
    status: int = 200,
    form: Form | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    merged: Headers = {
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        **cors(request, form),
        **(headers or {}),
    }
    return Response(json.dumps(data, ensure_ascii=False), status_code=status, headers=merged)


def json_error(request: Request, exc: Exception, form: Form | None) -> Response:
    """A domain error as JSON, from the one error table (:mod:`chalicelib.web.errors`)."""
    from chalicelib.web import errors

    body, status = errors.public_json(exc)
    return json_answer(request, body, status, form)


def admin_body(request: Request) -> dict[str, Any]:
    if not request.raw_body:
        return {}
    return forms.parse_json(request.raw_body, request.headers.get("content-type"))


def pad(started: float) -> None:
    """Make a neutral answer take the same time whatever happened behind it."""
    remaining = get_settings().signup_min_response - (time.monotonic() - started)
    if remaining > 0:
        time.sleep(remaining)
