"""The decorators routes wear: who may call them, and how their refusals are answered.

``html_page`` turns any domain error into its page; ``admin_api`` and ``admin_page``
let only signed-in operators through (a bearer token, or for reads and dashboard pages
the session cookie) and log every call. Each is made for a blueprint
(``html_page = guards.html_page(bp)``) because the request lives on the app the
blueprint is registered with.

Cold start: the decorators are applied when the routes are registered, at import
time, so what a refused or admitted call needs (the rules, the pages, the operator
checks) is imported by the wrapper on its first call, not here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalice import Blueprint, Response

from chalicelib.core.errors import OptinProofError
from chalicelib.core.logs import log
from chalicelib.core.services import get_catalogue, get_ledger, get_settings
from chalicelib.web import http

if TYPE_CHECKING:
    from chalicelib.web.render import Page

Decorator = Callable[[Callable[..., Any]], Callable[..., Response]]


def html_page(bp: Blueprint) -> Decorator:
    """Render any domain error of the view as its page (status from the error table)."""

    def decorate(view: Callable[..., Page]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(**params: Any) -> Response:
            from chalicelib.consent import rules
            from chalicelib.web import views

            request = bp.current_request
            token = params.get("token", "")
            try:
                return http.respond(request, view(**params))
            except OptinProofError as exc:
                log("request_refused", route=request.path, error=type(exc).__name__)
                quoted = views.quote_token(token)
                renew = (
                    f"{quoted}/renew"
                    if request.path.startswith("/c/") and rules.renewable(get_ledger(), exc)
                    else None
                )
                try:
                    return http.respond(
                        request,
                        views.error_page(
                            exc,
                            get_catalogue(),
                            http.locale(request),
                            quoted,
                            get_settings(),
                            renew,
                        ),
                    )
                except OptinProofError:  # the catalogue itself is broken: still no bare 500
                    return http.respond(request, views.bare_error_page(503))
            except Exception as exc:  # noqa: BLE001 - a person gets a page, never a trace
                log(
                    "request_failed",
                    level="error",
                    route=request.path,
                    error=type(exc).__name__,
                    detail=str(exc)[:300],
                )
                return http.respond(request, views.bare_error_page(500))

        return wrapper

    return decorate


def admin_api(bp: Blueprint) -> Decorator:
    """Only a valid, unexpired operator token gets through; every call is logged."""

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(**params: Any) -> Response:
            from chalicelib.web import admin_auth, errors

            request = bp.current_request
            try:  # a browser session cookie only reads (GET); changes need the bearer token
                operator = admin_auth.authenticate(
                    get_settings(), dict(request.headers), allow_cookie=request.method == "GET"
                )
            except admin_auth.AdminDenied as exc:
                log("admin_refused", level="warning", route=request.path, reason=str(exc)[:200])
                challenge = (
                    {"WWW-Authenticate": 'Bearer realm="optinproof-admin"'}
                    if exc.status == 401
                    else {}
                )
                return http.json_answer(
                    request,
                    {
                        "error": "unauthorised" if exc.status == 401 else "forbidden",
                        "message": str(exc),
                    },
                    exc.status,
                    headers=challenge,
                )
            except OptinProofError as exc:
                return http.json_error(request, exc, None)
            if operator.use == "browser" and request.method != "GET":
                log("admin_refused", level="warning", route=request.path, reason="browser token")
                return http.json_answer(
                    request,
                    {
                        "error": "forbidden",
                        "message": "A sign-in link's session only reads "
                        "the admin API; changes need a token from `cli admin token`.",
                    },
                    403,
                )
            log("admin_call", operator=operator.name, method=request.method, route=request.path)
            try:
                return view(operator, **params)
            except OptinProofError as exc:  # operators get the reason, even for configuration
                body, code = errors.operator_json(exc)
                return http.json_answer(request, body, code)

        return wrapper

    return decorate


def admin_page(bp: Blueprint) -> Decorator:
    """A dashboard page: the session cookie (or a bearer token); a form POST also needs
    its form token and to come from our own page. Refusals are pages, not JSON."""

    def decorate(view: Callable[..., Page]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(**params: Any) -> Response:
            from chalicelib.web import admin_auth, antiforgery, forms, views

            request, settings = bp.current_request, get_settings()
            locale = http.locale(request)
            try:
                operator = admin_auth.authenticate(settings, dict(request.headers), True)
            except admin_auth.AdminDenied as exc:
                log("admin_refused", level="warning", route=request.path, reason=str(exc)[:200])
                return http.respond(
                    request, views.admin_denied_page(get_catalogue(), locale, exc.status)
                )
            log("admin_call", operator=operator.name, method=request.method, route=request.path)
            try:
                if request.method == "POST":
                    fields = forms.parse_form(request.raw_body, request.headers.get("content-type"))
                    antiforgery.check_origin(request.headers)
                    antiforgery.check(
                        settings, f"admin:{operator.token_id}", fields.get(antiforgery.FIELD)
                    )
                    params["fields"] = fields
                return http.respond(request, view(operator, locale, **params))
            except OptinProofError as exc:
                return http.respond(
                    request, views.error_page(exc, get_catalogue(), locale, "", settings, None)
                )

        return wrapper

    return decorate
