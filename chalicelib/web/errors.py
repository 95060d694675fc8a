"""One table: each domain exception's HTTP status, and the JSON a client gets for it.

Handlers raise; they do not pick statuses. Pages take their status from
:func:`status` (``views.error_page`` renders the wording per exception), JSON answers
their status and body from :func:`public_json` (people and scripts on public routes:
our own failures are named, never explained) or :func:`operator_json` (the admin API:
operators get the reason, even for configuration errors).
"""

from __future__ import annotations

from typing import Any

from chalicelib.core import errors as domain

#: Most specific first: the first row an exception is an instance of decides.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (domain.PayloadTooLarge, 413),
    (domain.UnsupportedType, 415),
    (domain.CrossSite, 403),
    (domain.LinkExpired, 410),
    (domain.LinkPurposeRetired, 410),
    (domain.LinkRevoked, 410),
    (domain.LinkSuperseded, 410),
    (domain.LinkWithdrawn, 410),
    (domain.UnknownForm, 404),
    (domain.UnknownCampaign, 404),
    (domain.NothingHeld, 404),
    (domain.LinkError, 400),
    (domain.FormExpired, 400),
    (domain.TextChanged, 409),
    (domain.InvalidEmail, 400),
    (domain.BadInput, 400),
    (domain.StoreUnavailable, 503),
    (domain.ConfigError, 500),
)

#: Where a JSON client is told another status than a page would show: a form id that
#: does not exist is a mistake in the embedding script's request, not a missing page.
JSON_STATUS: tuple[tuple[type[Exception], int], ...] = ((domain.UnknownForm, 400),)

_OUR_SIDE = {
    "outcome_unknown": "We could not confirm that this was recorded. Sending it again is safe.",
    "store_unavailable": "The service is not available right now; nothing was recorded. "
    "Please try again later.",
    "internal": "The service is not available right now; nothing was recorded. "
    "Please try again later.",
}


def status(exc: Exception, table: tuple[tuple[type[Exception], int], ...] = STATUS) -> int:
    """HTTP status for an exception raised by the domain (500 for anything unknown)."""
    for kind, code in table:
        if isinstance(exc, kind):
            return code
    return 500


def json_status(exc: Exception) -> int:
    for kind, code in JSON_STATUS:
        if isinstance(exc, kind):
            return code
    return status(exc)


def code(exc: Exception) -> str:
    """``LinkExpired`` → ``link_expired``: stable, machine-readable, from the class name."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in type(exc).__name__).lstrip("_")


def public_json(exc: Exception) -> tuple[dict[str, Any], int]:
    """Body and status for a public JSON client; a 5xx never shows our internals."""
    answer = json_status(exc)
    if answer >= 500:
        name = (
            "outcome_unknown"
            if isinstance(exc, domain.OutcomeUnknown)
            else "store_unavailable"
            if isinstance(exc, domain.StoreUnavailable)
            else "internal"
        )
        return {"error": name, "message": _OUR_SIDE[name]}, answer
    return {"error": code(exc), "message": str(exc)}, answer


def operator_json(exc: Exception) -> tuple[dict[str, Any], int]:
    """Body and status for the admin API: the class and the reason, whatever the status."""
    return {"error": type(exc).__name__, "message": str(exc)}, status(exc)
