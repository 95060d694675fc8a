"""The anti-forgery field of our POST forms.

A decision must come from a person who saw our page, not from a page elsewhere that
posts to our URL. Each form carries a token signed for that link id and that page
render; a POST without it, or with one for another link, is refused. It expires
(``FORM_TOKEN_MAX_AGE``), after which the person simply sees the page again.
"""

from __future__ import annotations

from collections.abc import Mapping

from itsdangerous import BadData, SignatureExpired

from chalicelib.consent.links import CANONICAL, signer
from chalicelib.core.errors import CrossSite, FormExpired, FormTokenInvalid, FormTokenMissing
from chalicelib.core.settings import Settings
from chalicelib.core.tokens import Codec

FIELD = "form_token"


def _serializer(settings: Settings) -> Codec:
    return signer(settings, "optinproof.form")


def issue(settings: Settings, link_id: str) -> str:
    """A token for a form that acts on ``link_id``."""
    return _serializer(settings).dumps({"l": link_id})


def check(settings: Settings, link_id: str, token: str | None) -> None:
    """Raise FormTokenMissing / FormTokenInvalid / FormExpired unless ``token`` fits this link."""
    if not token:
        raise FormTokenMissing(
            "This form was not sent from our page (its security field is missing)."
        )
    if not CANONICAL.fullmatch(token):  # also refuses characters we never write
        raise FormTokenInvalid("This form's security field is not valid.")
    try:
        payload = _serializer(settings).loads(token, max_age=settings.form_token_max_age)
    except SignatureExpired as exc:
        raise FormExpired("This page was open too long; please make your choice again.") from exc
    except BadData as exc:
        raise FormTokenInvalid("This form's security field is not valid.") from exc
    if not isinstance(payload, dict) or payload.get("l") != link_id:
        raise FormTokenInvalid("This form's security field belongs to another link.")


def check_origin(headers: Mapping[str, str]) -> None:
    """Refuse a POST that the browser says came from another site.

    The signed form field is the real defence; this adds the browser's own word
    (``Sec-Fetch-Site``, ``Origin``) when it gives one. ``Origin: null`` must pass:
    our own pages send ``Referrer-Policy: no-referrer``, and with it browsers post
    with ``Origin: null`` (a browser test proves it).
    """
    if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise CrossSite("This form was sent from another website.")
    origin, host = headers.get("origin"), headers.get("host")
    if origin and origin != "null" and host and origin.split("://", 1)[-1] != host:
        raise CrossSite("This form was sent from another website.")
