"""What each page says: domain results and errors turned into :class:`Page` objects.

The web layer (app.py) parses a request, calls the domain, and hands the outcome to
one function here; every error the domain raises is rendered by :func:`error_page`,
so the wording and the status of each failure live in one place.

Size: one function per page; keeping every page's wording beside the error
page's keeps each status and message in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from chalicelib.consent import submissions
from chalicelib.consent.catalogue import Catalogue, Form
from chalicelib.consent.rules import PurposeState
from chalicelib.core import errors
from chalicelib.core.errors import BadName, NoPurpose
from chalicelib.core.i18n import translations
from chalicelib.core.settings import Settings
from chalicelib.rights import access
from chalicelib.web import antiforgery, forms
from chalicelib.web.render import Page, error_status, render, security_headers

LANGUAGE_NAMES = {"en": "English", "fr": "Français"}


def N_(message: str) -> str:
    """Mark a string for translation where it is defined; translated where shown."""
    return message


CONFIRM_TITLE = N_("Your consent choices")

STATE_LABELS = {
    "accepted": N_("Accepted"),
    "refused": N_("Refused"),
    "withdrawn": N_("Withdrawn"),
    "expired": N_("Expired"),
}

#: Each legal basis in words (``consent/basis.py``).
BASIS_LABELS = {
    "consent": N_("Consent"),
    "soft_opt_in": N_("Existing customer (soft opt-in)"),
    "legitimate_interest": N_("Legitimate interest (work address)"),
}
#: A purpose on another basis than consent: the states as the person sees them.
OBJECTION_LABELS = {
    "accepted": N_("Not objected"),
    "withdrawn": N_("Objected"),
}
#: The optional reasons a withdrawal may give, in one click.
REASON_LABELS = {
    "too_many": N_("Too many e-mails"),
    "not_relevant": N_("Not relevant to me"),
    "never_signed_up": N_("I never signed up"),
    "other": N_("Another reason"),
}

LINK_ERRORS: dict[str, tuple[str, str, str]] = {
    "truncated": (
        N_("This link is incomplete"),
        N_("Part of the link is missing, often because the mail program split it over two lines."),
        N_("Try copying the whole link from the e-mail into the address bar."),
    ),
    "tampered": (
        N_("This link is not valid"),
        N_(
            "This link was changed after we sent it, or it was signed with a security key we "
            "no longer use."
        ),
        "",
    ),
    "wrong_kind": (
        N_("This link is meant for another page"),
        N_("This link exists, but it is not a consent confirmation link."),
        N_("Use the link from the e-mail that asked you to confirm your choices."),
    ),
    "expired": (
        N_("This link has expired"),
        N_("For your protection, confirmation links only work for a limited time."),
        "",
    ),
    "retired": (
        N_("This question is no longer asked"),
        N_(
            "This link asks about a purpose we no longer offer, so there is nothing to decide "
            "here any more."
        ),
        "",
    ),
    "revoked": (
        N_("This link is no longer valid"),
        N_(
            "We no longer hold a record of this link: it was withdrawn or the data it "
            "referred to was erased."
        ),
        "",
    ),
    "superseded": (
        N_("A newer link was sent to you"),
        N_("We sent you a newer e-mail with a new link, which replaces this one."),
        N_("Please use the link in the most recent e-mail from us."),
    ),
    "withdrawn": (
        N_("This link was withdrawn"),
        N_(
            "This link was meant for an e-mail address that has since changed in our "
            "contact records, so we withdrew it: nobody can decide through it any more."
        ),
        N_(
            "If it was meant for you, ask for a new link: we send it to the address we hold "
            "for you."
        ),
    ),
}

#: Link errors after which the person may ask for a fresh link by e-mail.
RENEWABLE = ("expired", "superseded", "withdrawn")

PAGE_ERRORS: dict[type[Exception], tuple[str, str]] = {
    errors.FormTokenMissing: (
        N_("We could not read your answer"),
        N_(
            "This form was not sent from our page, so nothing was recorded. Open the link from "
            "your e-mail again and make your choices there."
        ),
    ),
    errors.FormTokenInvalid: (
        N_("We could not read your answer"),
        N_(
            "This form's security field is not valid for this link, so nothing was recorded. "
            "Open the link from your e-mail again and make your choices there."
        ),
    ),
    errors.CrossSite: (
        N_("We could not read your answer"),
        N_(
            "This form was sent from another website, so nothing was recorded. Open the link "
            "from your e-mail and make your choices on our page."
        ),
    ),
    forms.PayloadTooLarge: (
        N_("We could not read your answer"),
        N_("The form sent was too large, so nothing was recorded."),
    ),
    forms.UnsupportedType: (
        N_("We could not read your answer"),
        N_("The form was not sent the way our page sends it, so nothing was recorded."),
    ),
    errors.OutcomeUnknown: (
        N_("We could not confirm that your choice was saved"),
        N_(
            "The connection to our records broke while saving. Open your link again in a "
            "minute: the page shows what is recorded, and you can choose again if needed."
        ),
    ),
    errors.StoreUnavailable: (
        N_("Please try again in a moment"),
        N_(
            "We could not record or read your choices just now. Nothing was changed; please "
            "try again in a minute."
        ),
    ),
    errors.TextChanged: (N_("The wording has changed"), ""),
    errors.FormExpired: (N_("Please make your choice again"), ""),
    errors.UnknownForm: (
        N_("This form does not exist"),
        N_(
            "There is no signup form at this address. If a website sent you here, please "
            "tell its owner."
        ),
    ),
    errors.BadInput: (N_("We could not read your answer"), ""),
}


FORM_ERRORS: dict[type[Exception], str] = {
    errors.NoChoice: N_("Choose Accept or Refuse for at least one purpose, then save."),
    errors.FormExpired: N_(
        "This page was open for a long time; please make your choices again and save."
    ),
    errors.TextChanged: N_(
        "The wording of a purpose has changed since this page was shown. "
        "Please read it again and make your choice."
    ),
}


def form_error(exc: Exception, locale: str) -> str:
    """The message shown above the form when a submission cannot be recorded."""
    for kind, message in FORM_ERRORS.items():
        if isinstance(exc, kind):
            return _gettext(locale)(message)
    return str(exc)


def _gettext(locale: str) -> Callable[[str], str]:
    return translations(locale).gettext


def language_links(catalogue: Catalogue) -> list[dict[str, str]]:
    """A link per catalogue language to the same page (query-only relative URL)."""
    return [
        {"locale": code, "href": f"?lang={code}", "label": LANGUAGE_NAMES[code]}
        for code in catalogue.locales
    ]


def _common(catalogue: Catalogue, locale: str) -> dict[str, Any]:
    _ = _gettext(locale)
    return {
        "controller": catalogue.controller,
        "language_links": language_links(catalogue),
        "state_labels": {key: _(label) for key, label in STATE_LABELS.items()},
        "objection_labels": {key: _(label) for key, label in OBJECTION_LABELS.items()},
        "basis_labels": {key: _(label) for key, label in BASIS_LABELS.items()},
        "reason_labels": {key: _(label) for key, label in REASON_LABELS.items()},
    }


def confirm_page(
    settings: Settings,
    catalogue: Catalogue,
    locale: str,
    path: str,
    link_id: str,
    purpose_states: list[PurposeState],
    status: int = 200,
    error: str | None = None,
    unchanged: bool = False,
    continue_url: str | None = None,
    title: str = CONFIRM_TITLE,
    select_any_link: bool = False,
) -> Page:
    """The confirmation page: each purpose, its text, its state, Accept / Refuse.

    A choice recorded through this link shows as the selected button (the page
    re-opened); one recorded through another link only as text, so a new request (a
    re-permission campaign) is never answered by a choice made for the person. The
    preferences page (``select_any_link``) shows every recorded choice selected.
    """
    _ = _gettext(locale)
    purposes, recorded = [], []
    for item in purpose_states:
        text = catalogue.get(item.purpose).text(locale)
        selected = select_any_link or item.link_id == link_id
        view = {
            "id": item.purpose,
            "title": text.title,
            "text": text.text,
            "sha256": text.sha256,
            "state": item.state,
            "decided_at": item.decided_at,
            "selected": RECORDED_CHOICE.get(item.state or "") if selected else None,
        }
        view.update(basis_view(catalogue, item, locale, selected))
        purposes.append(view)
        if item.changed:
            recorded.append(view)
    return render(
        "confirm.html",
        locale,
        status=status,
        page_title=_(title),
        action=path,
        form_token=antiforgery.issue(settings, link_id),
        purposes=purposes,
        recorded=recorded,
        recorded_at=recorded[0]["decided_at"] if recorded else None,
        unchanged=unchanged and not recorded,
        error=error,
        continue_url=continue_url if recorded else None,
        reason_offered=select_any_link,
        **_common(catalogue, locale),
    )


#: A recorded state as the button that shows it (a withdrawal is no button's choice).
RECORDED_CHOICE = {"accepted": "accept", "refused": "refuse"}
#: The same for a purpose on another basis than consent: keep or object.
RECORDED_OBJECTION = {"accepted": "keep", "withdrawn": "object"}


def basis_view(
    catalogue: Catalogue, item: PurposeState, locale: str, selected: bool
) -> dict[str, Any]:
    """What a page adds for a purpose's legal basis: its label and, for a purpose not
    on consent, the opt-out wording, the keep / object choice and the state in those
    words (never "Accepted", which would pass it off as consent)."""
    _ = _gettext(locale)
    purpose = catalogue.get(item.purpose)
    label = _(STATE_LABELS[item.state]) if item.state in STATE_LABELS else None
    view: dict[str, Any] = {
        "legal_basis": purpose.legal_basis,
        "consent": purpose.legal_basis == "consent",
        "state_label": label,
    }
    if purpose.legal_basis != "consent":
        view["opt_out"] = purpose.opt_out[locale].text
        view["selected"] = RECORDED_OBJECTION.get(item.state or "") if selected else None
        if item.state in OBJECTION_LABELS:
            view["state_label"] = _(OBJECTION_LABELS[item.state])
    return view


def continue_url(catalogue: Catalogue, channel: str | None) -> str | None:
    """Where a person who signed up through a form may go after deciding, if it says."""
    if not channel or not channel.startswith("form:"):
        return None
    form = catalogue.forms.get(channel.removeprefix("form:"))
    return form.redirect_after_confirm if form else None


def link_error_page(
    exc: errors.LinkError,
    catalogue: Catalogue,
    locale: str,
    path: str,
    settings: Settings | None = None,
    renew_path: str | None = None,
    frame_ancestors: str = "'none'",
) -> Page:
    """Why a link cannot be used, and how to get a new one. Nothing was written.

    An expired or superseded link is still authentic, so its page offers to mail a
    new link (``renew_path``); any other failure names the controller's address.
    """
    _ = _gettext(locale)
    title, explanation, advice = LINK_ERRORS.get(exc.reason, LINK_ERRORS["tampered"])
    renew = (
        renew_path
        if (renew_path and settings and exc.link_id and exc.reason in RENEWABLE)
        else None
    )
    return render(
        "link_error.html",
        locale,
        status=error_status(exc),
        page_title=_(title),
        frame_ancestors=frame_ancestors,
        explanation=_(explanation),
        advice=_(advice) if advice else "",
        reason=exc.reason,
        renew_action=renew,
        form_token=antiforgery.issue(settings, exc.link_id)
        if renew and settings and exc.link_id
        else None,
        **_common(catalogue, locale),
    )


def error_page(
    exc: Exception,
    catalogue: Catalogue,
    locale: str,
    path: str,
    settings: Settings | None = None,
    renew_path: str | None = None,
    frame_ancestors: str = "'none'",
) -> Page:
    """Any other failure, as a page with a status and a reason a person can act on.

    ``frame_ancestors``: inside a signup form's iframe the reason must show, not a
    blocked frame.
    """
    if isinstance(exc, errors.LinkError):
        return link_error_page(exc, catalogue, locale, path, settings, renew_path, frame_ancestors)
    _ = _gettext(locale)
    title, explanation = N_("Something went wrong"), ""
    for kind, (kind_title, kind_explanation) in PAGE_ERRORS.items():
        if isinstance(exc, kind):
            title, explanation = kind_title, kind_explanation
            break
    text = _(explanation) if explanation else _(str(exc))
    return render(
        "error.html",
        locale,
        status=error_status(exc),
        page_title=_(title),
        frame_ancestors=frame_ancestors,
        outcome_unknown=isinstance(exc, errors.OutcomeUnknown),
        explanation=text,
        back_href=path if error_status(exc) < 500 else None,
        **_common(catalogue, locale),
    )


NOT_FOUND = (
    N_("This page does not exist"),
    N_(
        "There is nothing at this address. If you followed a link from one of our e-mails, "
        "copy the whole link into the address bar; otherwise, write to the address below."
    ),
)


def not_found_page(catalogue: Catalogue, locale: str) -> Page:
    """A path no route knows: the branded 404, with the headers every page carries."""
    _ = _gettext(locale)
    title, explanation = NOT_FOUND
    return render(
        "error.html",
        locale,
        status=404,
        page_title=_(title),
        explanation=_(explanation),
        nothing_to_change=True,
        **_common(catalogue, locale),
    )


def quote_token(token: str) -> str:
    """A token as it appears in a URL path (tokens are URL-safe; this is belt and braces)."""
    return quote(token, safe="-_.")


BARE_MESSAGES = {
    500: "Something went wrong on our side. Nothing was changed; please try again later. / "
    "Une erreur s'est produite de notre côté. Rien n'a été modifié ; veuillez réessayer plus tard.",
    503: "The service is not available right now. Nothing was changed; please try again later. / "
    "Le service est indisponible pour le moment. Rien n'a été modifié ; veuillez réessayer plus tard.",
}


def bare_error_page(status: int) -> Page:
    """A page for when even the catalogue or templates fail: no template, both languages."""
    message = BARE_MESSAGES.get(status, BARE_MESSAGES[500])
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Error</title>'
        f"</head><body><main><h1>{status}</h1><p>{message}</p></main></body></html>"
    )
    return Page(body, status, security_headers())


# -- signup forms ----------------------------------------------------------------------

#: The JSON answer to every signup (same words as the page: no enumeration).
SIGNUP_ANSWER = N_(
    "Check your inbox: if this address can receive our mail, a message is on "
    "its way. Nothing counts as agreed until you confirm."
)

RENEWED_TITLE = N_("A new link is on its way")

SIGNUP_ERRORS: dict[type[Exception], str] = {
    errors.InvalidEmail: N_("Please enter a valid e-mail address, such as name@example.com."),
    errors.FormExpired: N_("This form was open for a long time; please send it again."),
}


def signup_error(exc: Exception, locale: str) -> str:
    """The message shown above the signup form; the domain's own words otherwise."""
    _ = _gettext(locale)
    for kind, message in SIGNUP_ERRORS.items():
        if isinstance(exc, kind):
            return _(message)
    if isinstance(exc, NoPurpose):
        return _(N_("Tick at least one of the choices, then send the form."))
    if isinstance(exc, BadName):
        return _(N_("Please enter just your first name (letters only)."))
    return str(exc)


def purpose_views(
    catalogue: Catalogue, purposes: tuple[str, ...], locale: str
) -> list[dict[str, str]]:
    """Each purpose as a form shows it: id, title, full text, and its text version; a
    purpose not on consent also its basis and the opt-out offered at collection."""
    views = []
    for purpose in purposes:
        text = catalogue.get(purpose).text(locale)
        view = {"id": purpose, "title": text.title, "text": text.text, "sha256": text.sha256}
        if catalogue.get(purpose).opt_out:
            view["legal_basis"] = catalogue.get(purpose).legal_basis
            view["opt_out"] = catalogue.get(purpose).opt_out[locale].text
        views.append(view)
    return views


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def frame_ancestors(form: Form | None) -> str:
    """Who may frame a form's pages: its websites; nobody for every other page."""
    return " ".join(form.allowed_origins) if form and form.allowed_origins else "'none'"


def signup_page(
    catalogue: Catalogue,
    form: Form,
    locale: str,
    action: str,
    started: str,
    embed: str = "iframe",
    values: dict[str, Any] | None = None,
    error: str | None = None,
    status: int = 200,
    field_errors: dict[str, str] | None = None,
) -> Page:
    """The embeddable form: framable only by the form's own websites.

    ``field_errors``: each field to correct with its message, shown next to the field
    and listed (as links to the fields) at the top."""
    _ = _gettext(locale)
    ancestors = frame_ancestors(form)
    form_action = "'self'" + (
        f" {_origin_of(form.redirect_after_submit)}" if form.redirect_after_submit else ""
    )
    page = render(
        "signup.html",
        locale,
        status=status,
        frame_ancestors=ancestors,
        form_action=form_action,
        page_title=form.heading.get(locale) or _("Stay in touch"),
        form=form,
        action=action,
        started=started,
        embed=embed,
        honeypot=submissions.HONEYPOT,
        error=error,
        field_errors=field_errors or {},
        field_anchors={
            "email": "email",
            "name": "name",
            "purposes": f"purpose-{form.purposes[0]}" if form.purposes else "email",
        },
        purposes=purpose_views(catalogue, form.purposes, locale),
        values={"email": "", "name": "", "purposes": (), **(values or {})},
        **_common(catalogue, locale),
    )
    return page


def signup_done_page(
    catalogue: Catalogue,
    locale: str,
    back_href: str | None = None,
    title: str = N_("Thank you"),
    renewal: bool = False,
    form: Form | None = None,
) -> Page:
    """The one answer every signup (or new-link request) gets, whatever happened behind it."""
    return render(
        "signup_done.html",
        locale,
        page_title=_gettext(locale)(title),
        frame_ancestors=frame_ancestors(form),
        back_href=back_href,
        renewal=renewal,
        **_common(catalogue, locale),
    )


def withdraw_page(
    catalogue: Catalogue,
    locale: str,
    path: str,
    purpose_states: list[PurposeState],
    done: bool = False,
) -> Page:
    """One button that withdraws everything the link names; after it, what was recorded."""
    _ = _gettext(locale)
    purposes = [
        {
            "id": item.purpose,
            "title": catalogue.get(item.purpose).text(locale).title,
            "state": item.state,
            "decided_at": item.decided_at,
            **basis_view(catalogue, item, locale, False),
        }
        for item in purpose_states
        if item.purpose in catalogue.purposes
    ]
    recorded = [item for item in purpose_states if item.changed]
    return render(
        "withdraw.html",
        locale,
        page_title=_("Withdraw your consent"),
        action=path,
        purposes=purposes,
        recorded=recorded,
        recorded_at=recorded[0].decided_at if recorded else None,
        unchanged=done and not recorded,
        **_common(catalogue, locale),
    )


# -- data-subject rights -------------------------------------------------------------------

PREFERENCES_TITLE = N_("Your preferences")


def rights_request_page(
    catalogue: Catalogue,
    locale: str,
    done: bool = False,
    error: str | None = None,
    email: str | None = None,
    status: int = 200,
) -> Page:
    """The public page where a person asks for a link to their data (same answer for all)."""
    return render(
        "rights_request.html",
        locale,
        status=status,
        page_title=_gettext(locale)("Your data"),
        action="rights",  # relative: also right under an API Gateway stage path (/api/rights)
        done=done,
        error=error,
        email=email,
        **_common(catalogue, locale),
    )


EVENT_LABELS = {
    "requested": N_("asked through a form"),
    "link_issued": N_("link sent"),
    "mail_sent": N_("e-mail sent"),
    "mail_failed": N_("e-mail failed"),
    "accepted": N_("accepted"),
    "refused": N_("refused"),
    "withdrawn": N_("withdrawn"),
    "link_written": N_("link put in our customer records"),
    "link_exported": N_("link exported for a mailing"),
    "access_requested": N_("access to your data asked"),
    "bounced": N_("e-mail bounced"),
    "complained": N_("e-mail reported as spam"),
    "act_address_changed": N_("address changed in our customer records"),
    "act_contact_deleted": N_("removed from our customer records"),
    "act_ask": N_("asked from our customer records"),
    "link_withdrawn": N_("link taken back"),
    "breach_notified": N_("informed of a data breach"),
    "erased": N_("data erased"),
    "expired": N_("consent expired (no contact for too long)"),
    "imported": N_("earlier proof imported from another tool (not a confirmation made here)"),
    "validity_set": N_("expiry date given to an earlier consent"),
}
SYNC_LABELS = {
    "synced": N_("yes"),
    "pending": N_("on its way"),
    "failed": N_("not yet (we are on it)"),
    "no_contact": N_("no entry there"),
    "contact_deleted": N_("no entry there"),
}


def rights_report_page(
    settings: Settings,
    catalogue: Catalogue,
    locale: str,
    data: dict[str, Any],
    hrefs: dict[str, str | None],
) -> Page:
    """What we hold about the person and why, printable; the export's own content."""
    _ = _gettext(locale)
    retention = list(access.retention(settings, _).values())
    return render(
        "rights_report.html",
        locale,
        page_title=_("The data we hold about you"),
        event_labels={k: _(v) for k, v in EVENT_LABELS.items()},
        sync_labels={k: _(v) for k, v in SYNC_LABELS.items()},
        retention_lines=retention,
        generated_at=data["generated_at"],
        subject=data["subject"],
        purposes=data["purposes"],
        texts=data["texts"],
        events=data["events"],
        chain=data["chain"],
        export_href=hrefs["export"],
        pdf_href=hrefs.get("pdf"),
        receipt_href=hrefs.get("receipt"),
        records_href=hrefs.get("records"),
        preferences_href=hrefs.get("preferences"),
        erase_href=hrefs["erase"],
        **_common(catalogue, locale),
    )


ERASE_UNTICKED = N_("Tick the box to confirm that you want your data erased.")


def erase_unticked(locale: str) -> str:
    return _gettext(locale)(ERASE_UNTICKED)


ERASE_ACT_NOTES = {
    "clear": N_("Your consent choices will also be removed from our customer records."),
    "delete": N_("Your entry in our customer records will also be deleted."),
    "keep": "",
}


def erase_page(
    settings: Settings,
    catalogue: Catalogue,
    locale: str,
    link_id: str,
    action: str,
    back_href: str,
    act_mode: str,
    done: bool = False,
    erased_at: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Page:
    """Ask for erasure with one explicit confirmation; then say what was done."""
    _ = _gettext(locale)
    note = ERASE_ACT_NOTES.get(act_mode, "")
    return render(
        "erase.html",
        locale,
        status=status,
        page_title=_("Erase my data"),
        action=action,
        back_href=back_href,
        done=done,
        erased_at=erased_at,
        error=error,
        act_note=_(note) if note else "",
        form_token=None if done else antiforgery.issue(settings, link_id),
        **_common(catalogue, locale),
    )


# -- the operators' dashboard ----------------------------------------------------------------


def admin_denied_page(
    catalogue: Catalogue, locale: str, status: int, signed_out: bool = False
) -> Page:
    """No valid session: say how to get one, show nothing else."""
    _ = _gettext(locale)
    return render(
        "admin_denied.html",
        locale,
        status=status,
        page_title=_("Signed out") if signed_out else _("Sign-in needed"),
        signed_out=signed_out,
        disabled=status == 403,
        **_common(catalogue, locale),
    )


def dashboard_page(
    settings: Settings,
    catalogue: Catalogue,
    locale: str,
    data: dict[str, Any],
    chosen: Any,
    operator: Any,
    notice: str | None = None,
) -> Page:
    """The dashboard: every table with its CSV link, the chart with its table."""
    from urllib.parse import urlencode

    from chalicelib.web import dashboard

    _ = _gettext(locale)
    query = chosen.query()
    return render(
        "admin_dashboard.html",
        locale,
        page_title=_("Consent dashboard"),
        data=data,
        chosen=chosen,
        operator=operator.name,
        notice=notice,
        chart=dashboard.chart(data["timeline"]),
        csv_href={
            t: "?" + urlencode({**query, "format": "csv", "table": t}) for t in dashboard.TABLES
        },
        form_token=antiforgery.issue(settings, f"admin:{operator.token_id}"),
        campaigns=[c["campaign"] for c in data["campaigns"]],
        forms=list(catalogue.forms),
        purposes=[(p, catalogue.get(p).text(locale).title) for p in catalogue.purposes],
        **_common(catalogue, locale),
    )
