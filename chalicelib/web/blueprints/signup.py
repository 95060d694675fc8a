"""Signup forms: the iframe page, the JSON description for scripts, CORS preflight, and
the submission, which always gets the same neutral answer (new, known, throttled, bot).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.core.errors import (
    BadInput,
    FormExpired,
    InvalidEmail,
    OptinProofError,
    UnknownForm,
)
from chalicelib.core.logs import log
from chalicelib.core.services import get_catalogue, get_settings, get_signups
from chalicelib.web import forms, guards, http

if TYPE_CHECKING:
    from chalicelib.consent.catalogue import Form
    from chalicelib.web.render import Page

# Cold start: the routes are declared at import time, and each handler imports what
# it uses (the submission rules, the pages...) on its first call.

bp = Blueprint(__name__)
html_page = guards.html_page(bp)


@bp.route("/signup/{form_id}", methods=["GET", "HEAD"])
@html_page
def signup_form(form_id: str) -> Page:
    """The embeddable form (iframe). Framable only by the form's allowed origins."""
    from chalicelib.consent import submissions
    from chalicelib.web import views

    form = http.find_form(form_id)
    started = submissions.start_token(
        get_settings(), form.id, bp.current_request.headers.get("referer")
    )
    return views.signup_page(get_catalogue(), form, _signup_locale(form), form.id, started)


@bp.route("/signup/{form_id}/form.json", methods=["GET"])
def signup_form_json(form_id: str) -> Response:
    """What a script needs to build the form: purposes, texts, a start token (CORS)."""
    from chalicelib.consent import submissions
    from chalicelib.web import views

    try:
        form = http.find_form(form_id)
        locale = _signup_locale(form)
        catalogue = get_catalogue()
        return http.json_answer(
            bp.current_request,
            {
                "form": form.id,
                "locale": locale,
                "ask_name": form.ask_name,
                "controller": {
                    "name": catalogue.controller.name,
                    "privacy_policy_url": catalogue.controller.privacy_policy_url,
                },
                "purposes": views.purpose_views(catalogue, form.purposes, locale),
                "started": submissions.start_token(
                    get_settings(), form.id, bp.current_request.headers.get("referer")
                ),
                "honeypot": submissions.HONEYPOT,
            },
            form=form,
        )
    except OptinProofError as exc:
        return http.json_error(bp.current_request, exc, None)


@bp.route("/signup/{form_id}", methods=["OPTIONS"])
def signup_preflight(form_id: str) -> Response:
    """CORS preflight: allowed only for the form's own websites."""
    form = get_catalogue().forms.get(form_id)
    headers: http.Headers = {**http.cors(bp.current_request, form)}
    status = 204 if "Access-Control-Allow-Origin" in headers else 403
    return Response("", status_code=status, headers=headers)


@bp.route("/signup/{form_id}", methods=["POST"], content_types=http.SIGNUP_TYPES)
def signup_submit(form_id: str) -> Response:
    """Record a signup and send the confirmation mail; one neutral answer for all."""
    from chalicelib.consent import submissions
    from chalicelib.web import background, views

    started = time.monotonic()
    request = bp.current_request
    as_json = forms.media_type(request.headers.get("content-type")) == forms.JSON_TYPE
    # Type comments, not annotations, on these locals: Chalice's policy analyzer trips on them.
    form = None  # type: Form | None
    fields = {}  # type: dict[str, str]
    try:
        form = http.find_form(form_id)
        submissions.check_origin(form, request.headers)
        referer = request.headers.get("referer") or request.headers.get("origin")
        if as_json:
            submission = submissions.from_json(
                forms.parse_json(request.raw_body, request.headers.get("content-type")), referer
            )
        else:
            fields = forms.parse_form(request.raw_body, request.headers.get("content-type"))
            submission = submissions.from_form(fields, referer)
        locale = _signup_locale(form, submission.locale)
        outcome = get_signups().submit(
            form, submission, locale, http.request_context(bp.current_request)
        )
    except OptinProofError as exc:
        log("signup_refused", form=form_id, error=type(exc).__name__)
        return _signup_error(exc, form, fields, as_json)
    except Exception as exc:  # noqa: BLE001 - an answer, never a stack trace
        log(
            "request_failed",
            level="error",
            route=request.path,
            error=type(exc).__name__,
            detail=str(exc)[:300],
        )
        if as_json:
            return http.json_answer(
                bp.current_request,
                {
                    "error": "internal",
                    "message": "Something went wrong on our side; "
                    "nothing was recorded. Please try again later.",
                },
                500,
                form,
            )
        return http.respond(bp.current_request, views.bare_error_page(500))
    background.deliver(outcome.mail_id)
    http.pad(started)
    return _signup_answer(form, locale, as_json, fields.get("embed"))


def _signup_locale(form: Form, explicit: str | None = None) -> str:
    query = http.query(bp.current_request).get("lang")
    return http.locale(bp.current_request, explicit or query or form.locale)


def _signup_answer(form: Form, locale: str, as_json: bool, embed: str | None) -> Response:
    """The same answer whatever happened: new, pending, known, throttled or a bot."""
    from chalicelib.core.i18n import translations
    from chalicelib.web import views

    if as_json:
        message = translations(locale).gettext(views.SIGNUP_ANSWER)
        return http.json_answer(bp.current_request, {"status": "ok", "message": message}, 200, form)
    if form.redirect_after_submit and embed != "iframe":
        return Response(
            "",
            status_code=303,
            headers={
                "Location": form.redirect_after_submit,
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
            },
        )
    back = f"{form.id}?lang={locale}" if embed == "iframe" else None
    return http.respond(
        bp.current_request, views.signup_done_page(get_catalogue(), locale, back, form=form)
    )


def _signup_error(
    exc: OptinProofError, form: Form | None, fields: dict[str, str], as_json: bool
) -> Response:
    from chalicelib.consent import submissions
    from chalicelib.web import errors as web_errors
    from chalicelib.web import views
    from chalicelib.web.render import Page

    if as_json:
        return http.json_error(bp.current_request, exc, form)
    catalogue = get_catalogue()
    if (
        form is not None
        and isinstance(exc, (BadInput, InvalidEmail))
        and not isinstance(exc, (forms.PayloadTooLarge, forms.UnsupportedType))
        and web_errors.status(exc) == 400
    ):
        locale = _signup_locale(form, fields.get("lang"))
        values = {
            "email": fields.get("email", ""),
            "name": fields.get("name", ""),
            "purposes": tuple(
                k.removeprefix("purpose.") for k in fields if k.startswith("purpose.")
            ),
        }
        # Every field to correct, not only the first the rule stopped at.
        problems = submissions.field_problems(form, fields)
        field_errors = {name: views.signup_error(e, locale) for name, e in problems.items()}
        # Keep the form's original start time, unless that is what expired.
        started = fields.get(submissions.TOKEN_FIELD)
        if not started or isinstance(exc, FormExpired):
            started = submissions.start_token(get_settings(), form.id, None)
        return http.respond(
            bp.current_request,
            views.signup_page(
                catalogue,
                form,
                locale,
                form.id,
                started,
                fields.get("embed") or "html",
                values,
                None if field_errors else views.signup_error(exc, locale),
                400,
                field_errors,
            ),
        )
    locale = http.locale(bp.current_request, fields.get("lang"))
    page = views.error_page(exc, catalogue, locale, "", frame_ancestors=views.frame_ancestors(form))
    status = 400 if isinstance(exc, UnknownForm) else page.status
    return http.respond(bp.current_request, Page(page.body, status, page.headers))
