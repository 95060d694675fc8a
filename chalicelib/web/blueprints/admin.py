"""Operators: the dashboard (session cookie from a sign-in link) and the admin API
(bearer token from `optinproof admin token`); every call is logged.
"""

from __future__ import annotations

import io
import re
from urllib.parse import urlencode

from chalice import Blueprint, Response

from chalicelib.campaigns import define, jobs, report, runner
from chalicelib.consent.subjects import subject_of_address
from chalicelib.core.errors import (
    BadInput,
    ConfigError,
)
from chalicelib.core.logs import log
from chalicelib.core.services import (
    get_catalogue,
    get_ledger,
)
from chalicelib.core.settings import get_settings
from chalicelib.proof import evidence
from chalicelib.rights import erasure
from chalicelib.store import keys
from chalicelib.web import admin_auth, background, dashboard, guards, http, views
from chalicelib.web.render import Page, security_headers

bp = Blueprint(__name__)
admin_api = guards.admin_api(bp)
admin_page = guards.admin_page(bp)


@bp.route("/admin/login", methods=["GET"])
def admin_login() -> Response:
    """Open a link from `cli admin link`: a session cookie, then the dashboard."""
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
def admin_logout(operator: admin_auth.Operator, locale: str, fields: dict[str, str]) -> Page:
    page = views.admin_denied_page(get_catalogue(), locale, 401, signed_out=True)
    return Page(page.body, 200, {**page.headers, "Set-Cookie": admin_auth.cleared_cookie()})


@bp.route("/admin/dashboard", methods=["GET"])
@admin_page
def admin_dashboard(operator: admin_auth.Operator, locale: str) -> Page:
    """Counts per purpose, decisions over time, campaign funnels, forms, syncs, erasures."""
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
def admin_sync_retry(operator: admin_auth.Operator, locale: str, fields: dict[str, str]) -> Page:
    """The dashboard's "retry now": push one decision to Act! at once."""
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
def admin_lookup(operator: admin_auth.Operator, locale: str) -> Page:
    """One person by exact address: their evidence pack (nothing listed, nothing guessed)."""
    email = http.query(bp.current_request).get("email", "")
    subject = subject_of_address(get_settings(), email)
    ledger = get_ledger()
    if not ledger.get(*keys.chain(subject)) and ledger.current(subject) == (None, {}):
        raise BadInput("Nothing is held about this address.")
    data = evidence.pack(ledger, get_settings(), get_catalogue(), subject)
    log("admin_lookup", operator=operator.name, subject=subject)
    return Page(evidence.html(data, locale), 200, security_headers())


@bp.route("/admin/campaigns", methods=["GET"])
@admin_api
def admin_campaigns(operator: admin_auth.Operator) -> Response:
    """Every campaign with its run state."""
    return http.json_answer(bp.current_request, {"campaigns": jobs.listing(get_ledger())})


@bp.route("/admin/campaigns", methods=["POST"], content_types=["application/json"])
@admin_api
def admin_campaign_start(operator: admin_auth.Operator) -> Response:
    """Define a campaign and schedule it: the campaign sweep works through it."""
    from chalicelib.campaigns import service

    campaign, run = service.start(
        get_ledger(),
        get_settings(),
        get_catalogue(),
        service.Spec.from_json(http.admin_body(bp.current_request)),
        f"admin:{operator.name}",
    )
    return http.json_answer(bp.current_request, {"campaign": campaign.public(), "run": run}, 202)


@bp.route("/admin/campaigns/{campaign_id}", methods=["GET"])
@admin_api
def admin_campaign(operator: admin_auth.Operator, campaign_id: str) -> Response:
    """A campaign, its run state and its report per purpose."""
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
def admin_campaign_run(operator: admin_auth.Operator, campaign_id: str) -> Response:
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
def admin_campaign_pause(operator: admin_auth.Operator, campaign_id: str) -> Response:
    """Stop the sweep from working on the campaign (resume with /run)."""
    from chalicelib.campaigns import service

    return http.json_answer(
        bp.current_request,
        {"run": service.pause(get_ledger(), campaign_id, f"admin:{operator.name}")},
    )


@bp.route("/admin/campaigns/{campaign_id}/links.csv", methods=["GET"])
@admin_api
def admin_campaign_csv(operator: admin_auth.Operator, campaign_id: str) -> Response:
    """Contact id, address, first name, link: every delivered contact, or ``?only=no-answer``."""
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
def admin_evidence(operator: admin_auth.Operator) -> Response:
    """One person's evidence pack: ``?email=`` (or ``?subject=``), ``&format=html`` to read."""
    params = http.query(bp.current_request)
    settings, ledger = get_settings(), get_ledger()
    subject = params.get("subject") or subject_of_address(settings, params.get("email") or "")
    if params.get("format", "json") not in ("json", "html"):
        raise BadInput("format is json or html.")
    if not ledger.get(*keys.chain(subject)) and ledger.current(subject) == (None, {}):
        return http.json_answer(
            bp.current_request,
            {"error": "not_found", "message": "Nothing is held about this person."},
            404,
        )
    data = evidence.pack(ledger, settings, get_catalogue(), subject)
    log("admin_evidence", operator=operator.name, subject=subject)
    if params.get("format") == "html":
        return Response(
            evidence.html(data, data["subject"].get("locale") or "en"),
            headers={**security_headers(), "Content-Disposition": "inline"},
        )
    return http.json_answer(bp.current_request, data)


@bp.route("/admin/erasures", methods=["POST"], content_types=["application/json"])
@admin_api
def admin_erase(operator: admin_auth.Operator) -> Response:
    """Erase one person (``{"email": ...}`` or ``{"subject": ...}``), as `cli erase` does."""
    body, settings, ledger = http.admin_body(bp.current_request), get_settings(), get_ledger()
    subject = body.get("subject") or subject_of_address(settings, str(body.get("email") or ""))
    act_mode = body.get("act") or settings.erasure_act
    if act_mode not in erasure.ACT_MODES:
        raise BadInput(f"act is one of {', '.join(erasure.ACT_MODES)}.")
    if not ledger.get(*keys.chain(subject)) and ledger.current(subject) == (None, {}):
        return http.json_answer(
            bp.current_request,
            {"error": "not_found", "message": "Nothing is held about this person."},
            404,
        )
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
