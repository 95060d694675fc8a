"""The dashboard's campaign pages (``/admin/dashboard/...``): the operator's session
cookie; every form POST also carries its form token and comes from our own page.

Starting, pausing, resuming and reminding call :mod:`chalicelib.campaigns.service`,
as the admin API (``/admin/campaigns``) and the CLI do: one way to run a campaign.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint, Response

from chalicelib.core.errors import BadInput, OptinProofError, UnknownCampaign
from chalicelib.core.logs import log
from chalicelib.core.services import get_act_client, get_catalogue, get_ledger, get_settings
from chalicelib.web import guards, http

if TYPE_CHECKING:
    from chalicelib.act.client import ActClient
    from chalicelib.web import admin_auth
    from chalicelib.web.render import Page

# Cold start: the routes are declared at import time, and each handler imports what
# it uses (the campaign service, the pages, Act!'s choices) on its first call.

bp = Blueprint(__name__)
admin_page = guards.admin_page(bp)
#: campaign_pages.SCRIPT_PATH (tests/test_campaign_pages.py checks they agree), spelt
#: here so that declaring the route imports no page code.
SCRIPT_PATH = "/admin/dashboard/static/campaign-progress.js"


def _act_client() -> ActClient | None:
    settings = get_settings()
    return get_act_client(settings) if settings.act else None


def _by(operator: admin_auth.Operator) -> str:
    """Who asked, as the admin API writes it (the same operator, the same name)."""
    return f"admin:{operator.name}"


@bp.route(SCRIPT_PATH, methods=["GET"])
def campaign_progress_script() -> Response:
    """The campaign page's progress script: a static file, no session needed."""
    from chalicelib.web import campaign_pages

    return http.respond(bp.current_request, campaign_pages.progress_script())


@bp.route("/admin/dashboard/campaigns", methods=["GET"])
@admin_page
def campaigns_list(operator: admin_auth.Operator, locale: str) -> Page:
    """Every campaign, its state and progress."""
    from chalicelib.web import campaign_pages

    return campaign_pages.list_page(get_settings(), get_catalogue(), get_ledger(), locale, operator)


@bp.route("/admin/dashboard/new-campaign", methods=["GET"])
@admin_page
def campaign_new(operator: admin_auth.Operator, locale: str) -> Page:
    """The form, with Act!'s groups and fields read from Act!."""
    from chalicelib.web import campaign_form, campaign_pages

    act = campaign_form.act_choices(_act_client())
    return campaign_pages.new_campaign_page(get_settings(), get_catalogue(), locale, operator, act)


@bp.route("/admin/dashboard/new-campaign", methods=["POST"], content_types=http.FORM_TYPES)
@admin_page
def campaign_form_post(operator: admin_auth.Operator, locale: str, fields: dict[str, str]) -> Page:
    """``action=count``: the form again with how many contacts match; ``action=start``:
    start the campaign and go to its page. A refusal shows the form with the reason
    and changes nothing."""
    from chalicelib.campaigns import service
    from chalicelib.web import campaign_form, campaign_pages

    settings, catalogue, ledger = get_settings(), get_catalogue(), get_ledger()
    client = _act_client()
    act = campaign_form.act_choices(client)
    choice = campaign_form.Choice.of(fields, catalogue)
    action = fields.get("action")
    try:
        if action == "count":
            kind, value = campaign_form.audience(choice, act)
            matching = campaign_form.count(client, kind, value)
            log("campaign_audience_counted", operator=operator.name, audience=kind, n=matching)
            return campaign_pages.new_campaign_page(
                settings, catalogue, locale, operator, act, choice, matching=(matching, value)
            )
        if action != "start":
            raise BadInput(campaign_form.N_("This form was not sent by one of its buttons."))
        spec = campaign_form.spec_of(choice, catalogue, act)
        campaign, _run = service.start(ledger, settings, catalogue, spec, _by(operator), client)
    except OptinProofError as exc:
        log(
            "campaign_form_refused",
            level="warning",
            operator=operator.name,
            error=type(exc).__name__,
            detail=str(exc)[:300],
        )
        return campaign_pages.new_campaign_page(
            settings, catalogue, locale, operator, act, choice, error=str(exc), status=400
        )
    return campaign_pages.see_other(
        f"/admin/dashboard/campaigns/{campaign.id}", locale, notice="started"
    )


@bp.route("/admin/dashboard/campaign-preview", methods=["GET"])
@admin_page
def campaign_mail_preview(operator: admin_auth.Operator, locale: str) -> Page:
    """The confirmation mail for a sample person: ``?mail_locale=fr&purposes=a,b``;
    ``&part=html`` answers the HTML part alone, exactly as sent."""
    from chalicelib.web import mail_preview

    params = http.query(bp.current_request)
    settings, catalogue = get_settings(), get_catalogue()
    mail_locale = params.get("mail_locale", "")
    purposes = [p for p in params.get("purposes", "").split(",") if p]
    composed = mail_preview.preview_mail(settings, catalogue, mail_locale, purposes)
    if params.get("part") == "html":
        return mail_preview.preview_html(composed)
    return mail_preview.preview_page(catalogue, locale, operator, mail_locale, purposes, composed)


@bp.route("/admin/dashboard/campaigns/{campaign_id}", methods=["GET"])
@admin_page
def campaign_view(operator: admin_auth.Operator, locale: str, campaign_id: str) -> Page:
    """One campaign: progress, report, chart, buttons."""
    from chalicelib.web import campaign_pages

    notice = http.query(bp.current_request).get("notice")
    return campaign_pages.campaign_page(
        get_settings(), get_catalogue(), get_ledger(), locale, operator, campaign_id, notice
    )


@bp.route(
    "/admin/dashboard/campaigns/{campaign_id}/{action}",
    methods=["POST"],
    content_types=http.FORM_TYPES,
)
@admin_page
def campaign_act(
    operator: admin_auth.Operator,
    locale: str,
    campaign_id: str,
    action: str,
    fields: dict[str, str],
) -> Page:
    """Pause, resume, or remind those who did not answer; then the campaign's page."""
    from chalicelib.campaigns import service
    from chalicelib.web import campaign_pages

    ledger = get_ledger()
    do = {
        "pause": (service.pause, "paused"),
        "resume": (service.resume, "resumed"),
        "remind": (service.remind, "reminded"),
    }.get(action)
    if do is None:
        raise BadInput("Unknown campaign action.")
    call, done = do
    try:
        call(ledger, campaign_id, _by(operator))
    except BadInput as exc:
        if isinstance(exc, UnknownCampaign):
            raise
        return campaign_pages.campaign_page(
            get_settings(),
            get_catalogue(),
            ledger,
            locale,
            operator,
            campaign_id,
            error=str(exc),
            status=400,
        )
    return campaign_pages.see_other(
        f"/admin/dashboard/campaigns/{campaign_id}", locale, notice=done
    )
