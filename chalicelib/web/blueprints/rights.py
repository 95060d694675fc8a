"""The data-subject rights: ask for a link, read the report, export JSON, the signed
receipt, the ISO/IEC TS 27560 consent records (JSON-LD), erasure after one explicit
confirmation.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from chalice import Blueprint

from chalicelib.core.errors import InvalidEmail, NoChoice
from chalicelib.core.logs import log
from chalicelib.core.services import get_catalogue, get_ledger, get_settings
from chalicelib.web import forms, guards, http

if TYPE_CHECKING:
    from chalicelib.consent import links
    from chalicelib.web.render import Page

# Cold start: the routes are declared at import time, and each handler imports what
# it uses (the rights, the receipts, the pages...) on its first call.

bp = Blueprint(__name__)
html_page = guards.html_page(bp)


@bp.route("/rights", methods=["GET", "HEAD"])
@html_page
def rights_form() -> Page:
    """The public page where a person asks for a link to their data."""
    from chalicelib.web import views

    return views.rights_request_page(get_catalogue(), http.locale(bp.current_request))


@bp.route("/rights", methods=["POST"], content_types=http.FORM_TYPES)
@html_page
def rights_ask() -> Page:
    """Mail a rights link if we hold data about the address; the same answer in any case."""
    from chalicelib.rights import access
    from chalicelib.web import antiforgery, background, views

    started = time.monotonic()
    request = bp.current_request
    fields = forms.parse_form(request.raw_body, request.headers.get("content-type"))
    locale = http.locale(bp.current_request, fields.get("lang"))
    antiforgery.check_origin(request.headers)
    email = (fields.get("email") or "").strip()
    try:
        outcome = access.request_access(
            get_ledger(),
            get_settings(),
            get_catalogue(),
            email,
            locale,
            http.request_context(bp.current_request),
        )
    except InvalidEmail as exc:
        return views.rights_request_page(
            get_catalogue(),
            locale,
            error=views.signup_error(exc, locale),
            email=email[:320],
            status=400,
        )
    background.deliver(outcome.mail_id)
    http.pad(started)
    return views.rights_request_page(get_catalogue(), locale, done=True)


def _rights_link(token: str) -> tuple[links.Link, dict[str, Any]]:
    from chalicelib.consent import rules

    return rules.open_link(get_ledger(), get_settings(), "rights", token)


@bp.route("/r/{token}", methods=["GET", "HEAD"])
@html_page
def rights_report(token: str) -> Page:
    """What we hold about the person and why: readable, printable, with its downloads."""
    from chalicelib.rights import access
    from chalicelib.web import views

    settings, catalogue = get_settings(), get_catalogue()
    link, record = _rights_link(token)
    locale = http.locale(bp.current_request)
    data = access.export(get_ledger(), settings, catalogue, link.subject, locale)
    base = f"/r/{views.quote_token(token)}"
    return views.rights_report_page(
        settings,
        catalogue,
        locale,
        data,
        {
            "export": f"{base}/export.json",
            "pdf": f"{base}/report.pdf",
            "erase": f"{base}/erase",
            "receipt": f"{base}/receipt.json" if data["purposes"] else None,
            "records": f"{base}/records.jsonld",
            "preferences": access.preferences_href(get_ledger(), settings, link, record),
        },
    )


@bp.route("/r/{token}/export.json", methods=["GET"])
@html_page
def rights_export(token: str) -> Page:
    """The same as a JSON file (schemas/subject-export.v1.json)."""
    from chalicelib.rights import access
    from chalicelib.web.render import Page

    link, _ = _rights_link(token)
    data = access.export(get_ledger(), get_settings(), get_catalogue(), link.subject)
    log("rights_exported", subject=link.subject, link_id=link.link_id)
    return Page(
        json.dumps(data, ensure_ascii=False, indent=2),
        200,
        http.attachment("my-data.json", "application/json; charset=utf-8"),
    )


@bp.route("/r/{token}/report.pdf", methods=["GET"])
@html_page
def rights_report_pdf(token: str) -> Page:
    """The report as a PDF, in the page's language (``?lang=``, else the browser's)."""
    from chalicelib.rights import access
    from chalicelib.web import report_pdf
    from chalicelib.web.render import Page

    settings, catalogue = get_settings(), get_catalogue()
    link, _ = _rights_link(token)
    locale = http.locale(bp.current_request)
    data = access.export(get_ledger(), settings, catalogue, link.subject, locale)
    body = report_pdf.render(settings, catalogue, locale, data)
    log("rights_exported", subject=link.subject, link_id=link.link_id, format="pdf")
    # 7-bit ASCII (core/pdf.py): it travels through API Gateway as text, byte for byte.
    return Page(body.decode("ascii"), 200, report_pdf.download_headers(f"my-data-{locale}.pdf"))


@bp.route("/r/{token}/receipt.json", methods=["GET"])
@html_page
def rights_receipt(token: str) -> Page:
    """A Kantara consent receipt of the person's current consents, signed (JWS)."""
    from chalicelib.proof import receipts
    from chalicelib.web.render import Page

    link, _ = _rights_link(token)
    settings = get_settings()
    receipt = receipts.for_subject(
        get_ledger(), get_catalogue(), link.subject, http.locale(bp.current_request)
    )
    return Page(
        json.dumps(receipts.document(settings, receipt), ensure_ascii=False, indent=2),
        200,
        http.attachment("consent-receipt.json", "application/json; charset=utf-8"),
    )


@bp.route("/r/{token}/records.jsonld", methods=["GET"])
@html_page
def rights_records(token: str) -> Page:
    """The person's consent records as ISO/IEC TS 27560 records (W3C DPV, JSON-LD)."""
    from chalicelib.proof import records27560
    from chalicelib.web.render import Page

    link, _ = _rights_link(token)
    document = records27560.for_subject(get_ledger(), get_settings(), get_catalogue(), link.subject)
    log("rights_records", subject=link.subject, link_id=link.link_id)
    return Page(
        json.dumps(document, ensure_ascii=False, indent=2),
        200,
        http.attachment("consent-records.jsonld", records27560.MEDIA_TYPE),
    )


@bp.route("/r/{token}/erase", methods=["GET", "HEAD"])
@html_page
def erase_show(token: str) -> Page:
    """Erasure asks for one explicit confirmation (GET never erases)."""
    from chalicelib.web import views

    link, _ = _rights_link(token)
    quoted = views.quote_token(token)
    return views.erase_page(
        get_settings(),
        get_catalogue(),
        http.locale(bp.current_request),
        link.link_id,
        f"/r/{quoted}/erase",
        f"/r/{quoted}",
        get_settings().erasure_act,
    )


@bp.route("/r/{token}/erase", methods=["POST"], content_types=http.FORM_TYPES)
@html_page
def erase_confirm(token: str) -> Page:
    """Erase everything that identifies the person; the rights link dies with it."""
    from chalicelib.web import antiforgery, background, views

    request = bp.current_request
    settings, catalogue = get_settings(), get_catalogue()
    link, _ = _rights_link(token)
    fields = forms.parse_form(request.raw_body, request.headers.get("content-type"))
    locale, quoted = http.locale(bp.current_request, fields.get("lang")), views.quote_token(token)
    antiforgery.check_origin(request.headers)
    try:
        antiforgery.check(settings, link.link_id, fields.get(antiforgery.FIELD))
        if fields.get("confirm") != "yes":
            raise NoChoice(views.erase_unticked(locale))
    except tuple(views.FORM_ERRORS) as exc:
        return views.erase_page(
            settings,
            catalogue,
            locale,
            link.link_id,
            f"/r/{quoted}/erase",
            f"/r/{quoted}",
            settings.erasure_act,
            status=400,
            error=str(exc) if isinstance(exc, NoChoice) else views.form_error(exc, locale),
        )
    done = background.erase(link.subject, "rights_page", settings.erasure_act)
    return views.erase_page(
        settings,
        catalogue,
        locale,
        link.link_id,
        "",
        "",
        settings.erasure_act,
        done=True,
        erased_at=done.erased_at,
    )
