"""What each page says: domain results and errors turned into :class:`Page` objects.

The web layer (app.py) parses a request, calls the domain, and hands the outcome to
one function here; every error the domain raises is rendered by :func:`error_page`,
so the wording and the status of each failure live in one place.
"""
from __future__ import annotations

from typing import Any, Callable
from urllib.parse import quote

from chalicelib import antiforgery, errors, formdata
from chalicelib.consent import PurposeState
from chalicelib.i18n import translations
from chalicelib.pages import Page, error_status, render, security_headers
from chalicelib.purposes import Catalogue
from chalicelib.settings import Settings

LANGUAGE_NAMES = {"en": "English", "fr": "Français"}


def N_(message: str) -> str:
    """Mark a string for translation where it is defined; translated where shown."""
    return message


STATE_LABELS = {
    "accepted": N_("Accepted"),
    "refused": N_("Refused"),
    "withdrawn": N_("Withdrawn"),
}

LINK_ERRORS: dict[str, tuple[str, str, str]] = {
    "truncated": (N_("This link is incomplete"), N_(
        "Part of the link is missing, often because the mail program split it over two "
        "lines."), N_("Try copying the whole link from the e-mail into the address bar.")),
    "tampered": (N_("This link is not valid"), N_(
        "This link was changed after we sent it, or it was signed with a security key we "
        "no longer use."), ""),
    "wrong_kind": (N_("This link is meant for another page"), N_(
        "This link exists, but it is not a consent confirmation link."), N_(
        "Use the link from the e-mail that asked you to confirm your choices.")),
    "expired": (N_("This link has expired"), N_(
        "For your protection, confirmation links only work for a limited time."), ""),
    "retired": (N_("This question is no longer asked"), N_(
        "This link asks about a purpose we no longer offer, so there is nothing to decide "
        "here any more."), ""),
    "revoked": (N_("This link is no longer valid"), N_(
        "We no longer hold a record of this link: it was withdrawn or the data it "
        "referred to was erased."), ""),
}

PAGE_ERRORS: dict[type[Exception], tuple[str, str]] = {
    errors.FormTokenMissing: (N_("We could not read your answer"), N_(
        "This form was not sent from our page, so nothing was recorded. Open the link from "
        "your e-mail again and make your choices there.")),
    errors.FormTokenInvalid: (N_("We could not read your answer"), N_(
        "This form's security field is not valid for this link, so nothing was recorded. "
        "Open the link from your e-mail again and make your choices there.")),
    errors.CrossSite: (N_("We could not read your answer"), N_(
        "This form was sent from another website, so nothing was recorded. Open the link "
        "from your e-mail and make your choices on our page.")),
    formdata.PayloadTooLarge: (N_("We could not read your answer"), N_(
        "The form sent was too large, so nothing was recorded.")),
    formdata.UnsupportedType: (N_("We could not read your answer"), N_(
        "The form was not sent the way our page sends it, so nothing was recorded.")),
    errors.StoreUnavailable: (N_("Please try again in a moment"), N_(
        "We could not record or read your choices just now. Nothing was changed; please "
        "try again in a minute.")),
    errors.TextChanged: (N_("The wording has changed"), ""),
    errors.FormExpired: (N_("Please make your choice again"), ""),
    errors.BadInput: (N_("We could not read your answer"), ""),
}


FORM_ERRORS: dict[type[Exception], str] = {
    errors.NoChoice: N_("Choose Accept or Refuse for at least one purpose, then save."),
    errors.FormExpired: N_("This page was open for a long time; please make your choices "
                           "again and save."),
    errors.TextChanged: N_("The wording of a purpose has changed since this page was shown. "
                           "Please read it again and make your choice."),
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
    return [{"locale": code, "href": f"?lang={code}", "label": LANGUAGE_NAMES[code]}
            for code in catalogue.locales]


def _common(catalogue: Catalogue, locale: str) -> dict[str, Any]:
    _ = _gettext(locale)
    return {"controller": catalogue.controller, "language_links": language_links(catalogue),
            "state_labels": {key: _(label) for key, label in STATE_LABELS.items()}}


def confirm_page(settings: Settings, catalogue: Catalogue, locale: str, path: str,
                 link_id: str, purpose_states: list[PurposeState], status: int = 200,
                 error: str | None = None, unchanged: bool = False) -> Page:
    """The confirmation page: each purpose, its text, its state, Accept / Refuse."""
    _ = _gettext(locale)
    purposes, recorded = [], []
    for item in purpose_states:
        text = catalogue.get(item.purpose).text(locale)
        view = {"id": item.purpose, "title": text.title, "text": text.text,
                "sha256": text.sha256, "state": item.state, "decided_at": item.decided_at}
        purposes.append(view)
        if item.changed:
            recorded.append(view)
    return render(
        "confirm.html", locale, status=status, page_title=_("Your consent choices"),
        action=path, form_token=antiforgery.issue(settings, link_id), purposes=purposes,
        recorded=recorded, recorded_at=recorded[0]["decided_at"] if recorded else None,
        unchanged=unchanged and not recorded, error=error,
        **_common(catalogue, locale),
    )


def link_error_page(exc: errors.LinkError, catalogue: Catalogue, locale: str, path: str) -> Page:
    """Why a link cannot be used, and how to get a new one. Nothing was written."""
    _ = _gettext(locale)
    title, explanation, advice = LINK_ERRORS.get(exc.reason, LINK_ERRORS["tampered"])
    return render("link_error.html", locale, status=error_status(exc), page_title=_(title),
                  explanation=_(explanation), advice=_(advice) if advice else "",
                  reason=exc.reason, **_common(catalogue, locale))


def error_page(exc: Exception, catalogue: Catalogue, locale: str, path: str) -> Page:
    """Any other failure, as a page with a status and a reason a person can act on."""
    if isinstance(exc, errors.LinkError):
        return link_error_page(exc, catalogue, locale, path)
    _ = _gettext(locale)
    title, explanation = N_("Something went wrong"), ""
    for kind, (kind_title, kind_explanation) in PAGE_ERRORS.items():
        if isinstance(exc, kind):
            title, explanation = kind_title, kind_explanation
            break
    text = _(explanation) if explanation else _(str(exc))
    return render("error.html", locale, status=error_status(exc), page_title=_(title),
                  explanation=text, back_href=path if error_status(exc) < 500 else None,
                  **_common(catalogue, locale))


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
    body = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error</title>"
            f"</head><body><main><h1>{status}</h1><p>{message}</p></main></body></html>")
    return Page(body, status, security_headers())
