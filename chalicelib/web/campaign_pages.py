"""The dashboard's campaign pages: a list, the form to start one, one campaign's
progress and report (the form's reading is in :mod:`.campaign_form`, the mail preview
in :mod:`.mail_preview`).

The pages only read and render; every change (start, pause, resume, remind) goes
through :mod:`chalicelib.campaigns.service`, the functions the admin API and the CLI
call. What Act! knows (its groups, its contact fields, how many contacts a filter
matches) is read from Act! when the form is shown; Act! down is said on the form.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from chalicelib.campaigns import define, filters, jobs, report, service
from chalicelib.consent import stats
from chalicelib.consent.catalogue import Catalogue
from chalicelib.core.i18n import translations
from chalicelib.core.settings import Settings
from chalicelib.core.templates import TEMPLATE_DIR
from chalicelib.store import keys
from chalicelib.store.ledger import Ledger
from chalicelib.web import antiforgery, campaign_form
from chalicelib.web.render import Page, render

LANGUAGE_NAMES = {"en": "English", "fr": "Français"}


def N_(message: str) -> str:
    """Mark a string for translation where it is defined; translated where shown."""
    return message


STATE_LABELS = {
    jobs.RUNNING: N_("running"),
    jobs.PAUSED: N_("paused"),
    jobs.FINISHED: N_("finished"),
    jobs.ATTENTION: N_("needs attention"),
}
DELIVERY_LABELS = {
    "mail": N_("We send the mail"),
    "act-field": N_("A link written into an Act! field, for an Act! e-marketing mailing"),
    "csv": N_("A CSV file of links, for another mailer"),
}
AUDIENCE_LABELS = {
    "all": N_("Every contact in Act!"),
    "group": N_("The Act! group %(value)s"),
    "filter": N_("The Act! contacts matching %(value)s"),
}
ACTION_LABELS = {
    "started": N_("started"),
    "paused": N_("paused"),
    "resumed": N_("resumed"),
    "reminded": N_("reminder round"),
}
NOTICES = {
    "started": N_("The campaign is started: it is worked through in the background."),
    "paused": N_("The campaign is paused."),
    "resumed": N_("The campaign is running again."),
    "reminded": N_("A reminder round is started for those who did not answer."),
}
#: Refusals of the campaign service that the pages show translated.
REASONS = (
    N_("Nobody is left to remind: every contact answered, bounced or was reminded already."),
)
#: The report's columns, as the chart draws them (colour, label).
REPORT_COLUMNS = (
    ("accepted", "#1b6e3a", N_("Accepted")),
    ("refused", "#a12d2d", N_("Refused")),
    ("withdrawn", "#8a5a00", N_("Withdrawn")),
    ("no_answer", "#5c5c66", N_("No answer")),
    ("bounced", "#1b1b1f", N_("Bounced")),
)
#: Where the campaign page's script is served; the page's CSP allows exactly it.
SCRIPT_PATH = "/admin/dashboard/static/campaign-progress.js"
SCRIPT = "'self'"


def translator(locale: str) -> Any:
    """``_(message, **values)``: translated, then filled in (as the templates do)."""
    gettext = translations(locale).gettext

    def translate(message: str, **values: Any) -> str:
        text = gettext(message)
        return text % values if values else text

    return translate


def page_context(catalogue: Catalogue, locale: str) -> dict[str, Any]:
    return {
        "controller": catalogue.controller,
        "language_links": [
            {"locale": code, "href": f"?lang={code}", "label": LANGUAGE_NAMES[code]}
            for code in catalogue.locales
        ],
    }


def url_for(path: str, locale: str, **params: str) -> str:
    return f"{path}?{urlencode({**params, 'lang': locale})}"


def see_other(path: str, locale: str, **params: str) -> Page:
    """The answer to a form: go to the page that shows the result (POST/redirect/GET)."""
    return Page("", 303, {"Location": url_for(path, locale, **params), "Cache-Control": "no-store"})


def new_campaign_page(
    settings: Settings,
    catalogue: Catalogue,
    locale: str,
    operator: Any,
    act: campaign_form.ActChoices,
    choice: campaign_form.Choice | None = None,
    error: str | None = None,
    matching: tuple[int, str | None] | None = None,
    status: int = 200,
) -> Page:
    """The form: audience, purposes, language, delivery; counted and previewed before start."""
    _ = translator(locale)
    choice = choice or campaign_form.Choice(locale=catalogue.default_locale)
    if not choice.purposes and error is None and matching is None:
        choice.purposes = list(catalogue.purposes)
    if not choice.link_field and act.link_fields:
        choice.link_field = act.link_fields[0]
    if not choice.locale_field and act.language_fields:  # ACT_ASK_LOCALE_FIELD, if Act! has it
        wanted = settings.act.ask_locale_field if settings.act else None
        choice.locale_field = wanted if wanted in act.language_fields else act.language_fields[0]
    previews = _preview_links(catalogue, locale, choice.purposes or list(catalogue.purposes))
    return render(
        "admin_campaign_new.html",
        locale,
        status=status,
        page_title=_("New campaign"),
        operator=operator.name,
        form_token=antiforgery.issue(settings, f"admin:{operator.token_id}"),
        choice=choice,
        act=act,
        act_error=_(act.error) if act.error else None,
        error=_(error) if error else None,
        matching=matching,
        operators=[(op, _(label), kinds) for op, (label, kinds) in filters.OPERATORS.items()],
        filter_fields=[(f.path, _(f.label) if not f.custom else f.label) for f in act.fields],
        purposes=[(p, catalogue.get(p).text(locale).title) for p in catalogue.purposes],
        locales=[(code, LANGUAGE_NAMES[code]) for code in catalogue.locales],
        deliveries=[(d, _(DELIVERY_LABELS[d])) for d in ("act-field", "mail", "csv")],
        mail_ready=settings.mail.transport != "none",
        previews=previews,
        urls=nav_urls(locale),
        **page_context(catalogue, locale),
    )


def nav_urls(locale: str) -> dict[str, str]:
    return {
        "dashboard": url_for("/admin/dashboard", locale),
        "campaigns": url_for("/admin/dashboard/campaigns", locale),
        "new": url_for("/admin/dashboard/new-campaign", locale),
    }


def _preview_links(catalogue: Catalogue, locale: str, purposes: list[str]) -> list[dict[str, str]]:
    _ = translator(locale)
    return [
        {
            "href": url_for(
                "/admin/dashboard/campaign-preview",
                locale,
                mail_locale=code,
                purposes=",".join(purposes),
            ),
            "label": _("Preview the mail in %(language)s", language=LANGUAGE_NAMES[code]),
            "lang": code,
        }
        for code in catalogue.locales
    ]


# -- the list and one campaign ---------------------------------------------------------------


def _progress(ledger: Ledger, entry: dict[str, Any]) -> dict[str, int]:
    """Contacts handled in the current round, of the round's audience (0 of 0 before
    the sweep has read it)."""
    round_no = int(entry.get("round", 1))
    handled = sum(
        1
        for item in define.contact_items(ledger, entry["campaign_id"])
        if int(item.get("round", 1)) == round_no
        and item.get("status") in (define.DONE, define.SKIPPED, define.FAILED)
    )
    total = int(entry.get("audience_total", 0)) if entry.get("audience_round") == round_no else 0
    last = entry.get("last_pass") or {}
    if entry.get("state") != jobs.RUNNING and last.get("total") is not None:
        total = max(total, int(last.get("total", 0)))
        handled = max(handled, int(last.get("processed", 0)))
    return {"handled": min(handled, total) if total else handled, "total": total}


def list_page(
    settings: Settings,
    catalogue: Catalogue,
    ledger: Ledger,
    locale: str,
    operator: Any,
) -> Page:
    """Every campaign with its state and progress, newest request first."""
    _ = translator(locale)
    rows = []
    for entry in sorted(
        jobs.listing(ledger), key=lambda e: e.get("requested_at") or "", reverse=True
    ):
        rows.append(
            {
                "id": entry["campaign_id"],
                "href": url_for(f"/admin/dashboard/campaigns/{entry['campaign_id']}", locale),
                "state": _(STATE_LABELS.get(entry.get("state", ""), entry.get("state", "?"))),
                "round": entry.get("round", 1),
                "delivery": entry.get("delivery"),
                "requested_at": entry.get("requested_at"),
                "requested_by": entry.get("requested_by"),
                **_progress(ledger, entry),
            }
        )
    return render(
        "admin_campaigns.html",
        locale,
        page_title=_("Campaigns"),
        operator=operator.name,
        rows=rows,
        urls=nav_urls(locale),
        **page_context(catalogue, locale),
    )


def refresh_seconds(audience: int) -> int:
    """How often a running campaign's page reads itself again: the report reads every
    contact's state, so a big audience is re-read less often."""
    return 5 if audience <= 2000 else 30


def _chart(rows: list[dict[str, Any]], width: int = 640, bar: int = 28) -> dict[str, Any]:
    """Stacked horizontal bars per purpose (accepted … bounced), to scale with the most sent."""
    peak = max([r["sent"] for r in rows] + [1])
    bars, y = [], 0
    for row in rows:
        x = 0.0
        for name, colour, _label in REPORT_COLUMNS:
            w = round(width * row[name] / peak, 2)
            if w:
                bars.append({"x": x, "y": y, "w": w, "h": bar, "fill": colour, "name": name})
            x += w
        y += bar + 12
    return {"width": width, "height": max(y, bar), "bars": bars, "peak": peak}


def campaign_page(
    settings: Settings,
    catalogue: Catalogue,
    ledger: Ledger,
    locale: str,
    operator: Any,
    campaign_id: str,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Page:
    """One campaign: state, a progress bar (refreshing while it runs), the report per
    purpose with its chart, the people funnel, buttons, downloads, who did what."""
    _ = translator(locale)
    campaign = define.load(ledger, campaign_id)
    entry = jobs.public_entry(ledger, campaign_id) or {
        "campaign_id": campaign_id,
        "state": jobs.FINISHED,
        "round": define.current_round(ledger, campaign),
    }
    result = report.report(ledger, campaign)
    rows = []
    for purpose, counts in result.purposes.items():
        rows.append(
            {"purpose": purpose, "title": catalogue.get(purpose).text(locale).title, **counts}
        )
    funnel = stats.total(
        ledger.query(keys.stats_campaign(campaign_id), "S"),
        ("sent", "opened", "answered", "confirmed"),
    )
    state = entry.get("state", jobs.FINISHED)
    progress = _progress(ledger, entry)
    audience_text = _(AUDIENCE_LABELS[campaign.audience], value=campaign.audience_value or "")
    here = f"/admin/dashboard/campaigns/{campaign_id}"
    page = render(
        "admin_campaign.html",
        locale,
        status=status,
        page_title=_("Campaign %(id)s", id=campaign_id),
        operator=operator.name,
        form_token=antiforgery.issue(settings, f"admin:{operator.token_id}"),
        campaign=campaign,
        entry=entry,
        state=state,
        state_label=_(STATE_LABELS.get(state, state)),
        running=state == jobs.RUNNING,
        refresh_seconds=refresh_seconds(progress["total"]),
        progress=progress,
        audience_text=audience_text,
        delivery_text=_(DELIVERY_LABELS[campaign.delivery]),
        purpose_titles=[catalogue.get(p).text(locale).title for p in campaign.purposes],
        language=_(
            "Each contact's own, from the Act! field %(field)s; else %(language)s",
            field=campaign.locale_field,
            language=LANGUAGE_NAMES.get(campaign.locale, campaign.locale),
        )
        if campaign.locale_field
        else LANGUAGE_NAMES.get(campaign.locale, campaign.locale),
        rows=rows,
        columns=[(name, colour, _(label)) for name, colour, label in REPORT_COLUMNS],
        chart=_chart(rows),
        funnel=funnel,
        skipped=result.skipped,
        failed=result.failed,
        undelivered=result.undelivered,
        no_answer=len(result.no_answer),
        actions=[
            {**a, "label": _(ACTION_LABELS.get(a.get("action", ""), a.get("action", "")))}
            for a in service.actions(ledger, campaign_id)
        ],
        notice=_(NOTICES[notice]) if notice in NOTICES else None,
        error=_(error) if error else None,
        post={name: url_for(f"{here}/{name}", locale) for name in ("pause", "resume", "remind")},
        refresh_url=url_for(here, locale),
        csv_all=f"/admin/campaigns/{campaign_id}/links.csv",
        csv_no_answer=f"/admin/campaigns/{campaign_id}/links.csv?only=no-answer",
        previews=_preview_links(catalogue, locale, list(campaign.purposes)),
        urls=nav_urls(locale),
        **page_context(catalogue, locale),
    )
    if state == jobs.RUNNING:  # the progress script, from our origin only
        page.headers["Content-Security-Policy"] = page.headers["Content-Security-Policy"].replace(
            "default-src 'none';", f"default-src 'none'; script-src {SCRIPT}; connect-src 'self';"
        )
    return page


def progress_script() -> Page:
    """The campaign page's script (a static file of ours; it only reads the page again)."""
    body = (TEMPLATE_DIR / "static" / "campaign-progress.js").read_text("utf-8")
    return Page(
        body,
        200,
        {
            "Content-Type": "text/javascript; charset=utf-8",
            "Cache-Control": "public, max-age=300",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
