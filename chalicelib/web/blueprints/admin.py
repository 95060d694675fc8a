"""Operators: the dashboard (session cookie from a sign-in link) and the admin API
(bearer token from `optinproof admin token`); every call is logged.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from chalice import Blueprint, Response

from chalicelib.core.errors import BadInput, ConfigError, NothingHeld
from chalicelib.core.logs import log
from chalicelib.core.services import get_act_client, get_catalogue, get_ledger, get_settings
from chalicelib.web import guards, http

if TYPE_CHECKING:
    from chalicelib.store.ledger import Ledger
    from chalicelib.web.admin_auth import Operator
    from chalicelib.web.render import Page

# Cold start: the routes are declared at import time, and each handler imports what
# it uses (campaigns, evidence, the dashboard...) on its first call.

bp = Blueprint(__name__)
admin_api = guards.admin_api(bp)
admin_page = guards.admin_page(bp)


@bp.route("/admin/login", methods=["GET"])
def admin_login() -> Response:
    """Open a link from `cli admin link`: a session cookie, then the dashboard."""
    from chalicelib.web import admin_auth, views

    token = http.query(bp.current_request).get("token", "")
    try:
        operator = admin_auth.verify(get_settings(), token)
    except admin_auth.AdminDenied as exc:
        log("admin_refused", level="warning", route="/admin/login", reason=str(exc)[:200])
        return http.respond(
            bp.current_request,
            views.admin_denied_page(get_catalogue(), http.locale(bp.current_request), exc.status),
        )
    log("admin_login", operator=operator.name)
    return Response(
        "",
        status_code=303,
        headers={
            "Location": "/admin/dashboard",
            "Set-Cookie": admin_auth.session_cookie(token, operator),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


@bp.route("/admin/logout", methods=["POST"], content_types=http.FORM_TYPES)
@admin_page
def admin_logout(operator: Operator, locale: str, fields: dict[str, str]) -> Page:
    from chalicelib.web import admin_auth, views
    from chalicelib.web.render import Page

    page = views.admin_denied_page(get_catalogue(), locale, 401, signed_out=True)
    return Page(page.body, 200, {**page.headers, "Set-Cookie": admin_auth.cleared_cookie()})


@bp.route("/admin/dashboard", methods=["GET"])
@admin_page
def admin_dashboard(operator: Operator, locale: str) -> Page:
    """Counts per purpose, decisions over time, campaign funnels, forms, syncs, erasures."""
    from chalicelib.web import dashboard, views
    from chalicelib.web.render import Page

    params = http.query(bp.current_request)
    ledger, catalogue = get_ledger(), get_catalogue()
    chosen = dashboard.filters(params, catalogue, ledger)
    data = dashboard.data(ledger, catalogue, chosen, locale)
    table = params.get("table")
    if params.get("format") == "csv":
        if table not in dashboard.TABLES:
            raise BadInput(f"table is one of {', '.join(dashboard.TABLES)}.")
        return Page(
            dashboard.csv_table(data[table]),
            200,
            {
                "Content-Type": "text/csv; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Content-Disposition": f'attachment; filename="{table}.csv"',
            },
        )
    return views.dashboard_page(
        get_settings(), catalogue, locale, data, chosen, operator, params.get("notice")
    )


@bp.route("/admin/syncs/retry", methods=["POST"], content_types=http.FORM_TYPES)
@admin_page
def admin_sync_retry(operator: Operator, locale: str, fields: dict[str, str]) -> Page:
    """The dashboard's "retry now": push one decision to Act! at once."""
    from chalicelib.store import keys
    from chalicelib.web import background
    from chalicelib.web.render import Page

    subject, _, purpose = (fields.get("key") or "").partition("|")
    if not re.fullmatch(r"[0-9a-f]{64}", subject) or purpose not in get_catalogue().purposes:
        raise BadInput("This sync is not one we know.")
    pusher = background.pusher_or_none()
    if pusher is None:
        raise ConfigError("Act! is not configured: nothing can be retried.")
    outcome, error = pusher.push(*keys.purpose(subject, purpose), force=True)
    log("admin_sync_retry", operator=operator.name, purpose=purpose, outcome=outcome)
    notice = f"{purpose}: {outcome}" + (f" ({error[:120]})" if error else "")
    return Page(
        "",
        303,
        {
            "Location": f"/admin/dashboard?{urlencode({'notice': notice})}",
            "Cache-Control": "no-store",
        },
    )


@bp.route("/admin/lookup", methods=["GET"])
@admin_page
def admin_lookup(operator: Operator, locale: str) -> Page:
    """One person by exact address: their evidence pack (nothing listed, nothing guessed)."""
    from chalicelib.consent.subjects import subject_of_address
    from chalicelib.proof import evidence
    from chalicelib.web.render import Page, security_headers

    email = http.query(bp.current_request).get("email", "")
    subject = subject_of_address(get_settings(), email)
    ledger = get_ledger()
    if not ledger.holds(subject):
        raise BadInput("Nothing is held about this address.")
    data = evidence.pack(ledger, get_settings(), get_catalogue(), subject)
    log("admin_lookup", operator=operator.name, subject=subject)
    return Page(evidence.html(data, locale), 200, security_headers())


@bp.route("/admin/campaigns", methods=["GET"])
@admin_api
def admin_campaigns(operator: Operator) -> Response:
    """Every campaign with its run state."""
    from chalicelib.campaigns import jobs

    return http.json_answer(bp.current_request, {"campaigns": jobs.listing(get_ledger())})


@bp.route("/admin/campaigns", methods=["POST"], content_types=["application/json"])
@admin_api
def admin_campaign_start(operator: Operator) -> Response:
    """Define a campaign and schedule it: the campaign sweep works through it."""
    from chalicelib.campaigns import service

    settings = get_settings()
    campaign, run = service.start(
        get_ledger(),
        settings,
        get_catalogue(),
        service.Spec.from_json(http.admin_body(bp.current_request)),
        f"admin:{operator.name}",
        get_act_client(settings) if settings.act else None,
    )
    return http.json_answer(bp.current_request, {"campaign": campaign.public(), "run": run}, 202)


@bp.route("/admin/campaigns/{campaign_id}", methods=["GET"])
@admin_api
def admin_campaign(operator: Operator, campaign_id: str) -> Response:
    """A campaign, its run state and its report per purpose."""
    from chalicelib.campaigns import define, jobs, report

    ledger = get_ledger()
    campaign = define.load(ledger, campaign_id)
    return http.json_answer(
        bp.current_request,
        {
            "campaign": campaign.public(),
            "run": jobs.public_entry(ledger, campaign_id),
            "report": report.report(ledger, campaign).as_dict(),
        },
    )


@bp.route(
    "/admin/campaigns/{campaign_id}/run", methods=["POST"], content_types=["application/json"]
)
@admin_api
def admin_campaign_run(operator: Operator, campaign_id: str) -> Response:
    """Run again (finish what failed), or ``{"remind": true}`` for a reminder round."""
    from chalicelib.campaigns import service

    remind = http.admin_body(bp.current_request).get("remind", False)
    if not isinstance(remind, bool):
        raise BadInput("'remind' must be true or false.")
    run = service.run_again(get_ledger(), campaign_id, f"admin:{operator.name}", remind)
    return http.json_answer(bp.current_request, {"run": run}, 202)


@bp.route(
    "/admin/campaigns/{campaign_id}/pause", methods=["POST"], content_types=["application/json"]
)
@admin_api
def admin_campaign_pause(operator: Operator, campaign_id: str) -> Response:
    """Stop the sweep from working on the campaign (resume with /run)."""
    from chalicelib.campaigns import service

    return http.json_answer(
        bp.current_request,
        {"run": service.pause(get_ledger(), campaign_id, f"admin:{operator.name}")},
    )


@bp.route("/admin/campaigns/{campaign_id}/links.csv", methods=["GET"])
@admin_api
def admin_campaign_csv(operator: Operator, campaign_id: str) -> Response:
    """Contact id, address, first name, link: every delivered contact, or ``?only=no-answer``."""
    from chalicelib.campaigns import define, report, runner

    ledger = get_ledger()
    campaign = define.load(ledger, campaign_id)
    only = http.query(bp.current_request).get("only")
    if only not in (None, "no-answer"):
        raise BadInput("'only' can be no-answer (or leave it out for every delivered contact).")
    out = io.StringIO()
    rows = runner.export_csv(
        runner.Runner(ledger, get_settings(), get_catalogue(), None, campaign),
        out,
        only=report.no_answer_filter(ledger, campaign) if only else None,
    )
    log("admin_export", operator=operator.name, campaign=campaign_id, rows=rows, only=only)
    return Response(
        out.getvalue(),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{campaign_id}-links.csv"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@bp.route("/admin/evidence", methods=["GET"])
@admin_api
def admin_evidence(operator: Operator) -> Response:
    """One person's evidence pack: ``?email=`` (or ``?subject=``), ``&format=html`` to read,
    ``&format=pdf`` (``&lang=fr|en``) for the dossier."""
    from chalicelib.consent.subjects import subject_of_address
    from chalicelib.proof import evidence
    from chalicelib.web.render import security_headers

    params = http.query(bp.current_request)
    settings, ledger = get_settings(), get_ledger()
    subject = params.get("subject") or subject_of_address(settings, params.get("email") or "")
    if params.get("format", "json") not in ("json", "html", "pdf"):
        raise BadInput("format is json, html or pdf.")
    _held(ledger, subject)
    if params.get("format") == "pdf":
        return _dossier_pdf(operator, subject, params.get("lang"))
    data = evidence.pack(ledger, settings, get_catalogue(), subject)
    log("admin_evidence", operator=operator.name, subject=subject)
    if params.get("format") == "html":
        return Response(
            evidence.html(data, data["subject"].get("locale") or "en"),
            headers={**security_headers(), "Content-Disposition": "inline"},
        )
    return http.json_answer(bp.current_request, data)


@bp.route("/admin/records", methods=["GET"])
@admin_api
def admin_records(operator: Operator) -> Response:
    """One person's ISO/IEC TS 27560 consent records (JSON-LD): ``?email=`` or ``?subject=``."""
    from chalicelib.consent.subjects import subject_of_address
    from chalicelib.proof import records27560

    params = http.query(bp.current_request)
    settings, ledger = get_settings(), get_ledger()
    subject = params.get("subject") or subject_of_address(settings, params.get("email") or "")
    _held(ledger, subject)
    document = records27560.for_subject(ledger, settings, get_catalogue(), subject)
    log("admin_records", operator=operator.name, subject=subject)
    return http.json_answer(
        bp.current_request, document, headers={"Content-Type": records27560.MEDIA_TYPE}
    )


@bp.route("/admin/erasures", methods=["POST"], content_types=["application/json"])
@admin_api
def admin_erase(operator: Operator) -> Response:
    """Erase one person (``{"email": ...}`` or ``{"subject": ...}``), as `cli erase` does."""
    from chalicelib.consent.subjects import subject_of_address
    from chalicelib.rights import erasure
    from chalicelib.web import background

    body, settings, ledger = http.admin_body(bp.current_request), get_settings(), get_ledger()
    subject = body.get("subject") or subject_of_address(settings, str(body.get("email") or ""))
    act_mode = body.get("act") or settings.erasure_act
    if act_mode not in erasure.ACT_MODES:
        raise BadInput(f"act is one of {', '.join(erasure.ACT_MODES)}.")
    _held(ledger, subject)
    done = background.erase(subject, f"admin:{operator.name}", act_mode)
    return http.json_answer(
        bp.current_request,
        {
            "subject": subject,
            "erased_at": done.erased_at,
            "already": done.already,
            "events_stripped": done.events_stripped,
            "links_revoked": done.links_revoked,
            "act": done.act,
        },
    )


@bp.route("/admin/imports", methods=["POST"], content_types=["text/csv", "text/plain"])
@admin_api
def admin_import(operator: Operator) -> Response:
    """Import a CSV of existing consent evidence as `optinproof import` does
    (``?source=mailchimp&purpose=newsletter``, see ``web/imports_api.py``)."""
    from chalicelib.web import imports_api

    return imports_api.answer(bp.current_request, operator)


# -- PDFs: the dossier, the access report, the register ------------------------------------


def _dossier_pdf(operator: Operator, subject: str, lang: str | None) -> Response:
    from chalicelib.proof import dossier
    from chalicelib.web import report_pdf

    ledger, settings, catalogue = get_ledger(), get_settings(), get_catalogue()
    profile, _ = ledger.current(subject)
    locale = report_pdf.pdf_locale(catalogue, lang, (profile or {}).get("locale"))
    body = dossier.dossier(ledger, settings, catalogue, subject, locale)
    log("admin_evidence", operator=operator.name, subject=subject, format="pdf")
    return report_pdf.download(body, f"evidence-{subject[:12]}-{locale}.pdf")


@bp.route("/admin/report.pdf", methods=["GET"])
@admin_api
def admin_report_pdf(operator: Operator) -> Response:
    """The access report a person downloads, as PDF: ``?email=`` (or ``?subject=``),
    ``&lang=``; for answering an access request made by post or by phone."""
    from chalicelib.consent.subjects import subject_of_address
    from chalicelib.rights import access
    from chalicelib.web import report_pdf

    params = http.query(bp.current_request)
    settings, ledger, catalogue = get_settings(), get_ledger(), get_catalogue()
    subject = params.get("subject") or subject_of_address(settings, params.get("email") or "")
    _held(ledger, subject)
    profile, _ = ledger.current(subject)
    locale = report_pdf.pdf_locale(catalogue, params.get("lang"), (profile or {}).get("locale"))
    data = access.export(ledger, settings, catalogue, subject, locale)
    log("admin_report", operator=operator.name, subject=subject, format="pdf")
    body = report_pdf.render(settings, catalogue, locale, data)
    return report_pdf.download(body, f"data-{locale}.pdf")


@bp.route("/admin/register.pdf", methods=["GET"])
@admin_api
def admin_register_pdf(operator: Operator) -> Response:
    """The register of purposes (``?lang=``), for the record of processing."""
    from chalicelib.consent import register
    from chalicelib.web import report_pdf

    catalogue = get_catalogue()
    locale = report_pdf.pdf_locale(catalogue, http.query(bp.current_request).get("lang"))
    log("admin_register", operator=operator.name, locale=locale)
    return report_pdf.download(register.render(catalogue, locale), f"register-{locale}.pdf")


def _held(ledger: Ledger, subject: str) -> None:
    """A 404 for the admin API when nothing at all is held about the person."""

    if not ledger.holds(subject):
        raise NothingHeld("Nothing is held about this person.")
