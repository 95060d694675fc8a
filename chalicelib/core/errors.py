"""Exceptions of the domain.

Each class names one thing that went wrong and carries a message a person can act
on. The web layer (``chalicelib.web.render.error_status``) maps each class to an HTTP
status and a page in one place; the CLI prints the message and exits non-zero.
"""
from __future__ import annotations


class OptinProofError(Exception):
    """Base class: every error the product raises on purpose."""


class ConfigError(OptinProofError):
    """A setting or the purpose catalogue is missing or wrong; the operator must fix it."""


class CatalogueError(ConfigError):
    """The purpose catalogue file is invalid; the message names the line and field."""


class InvalidEmail(OptinProofError):
    """An e-mail address that cannot receive mail (syntax)."""


class LinkError(OptinProofError):
    """A link that cannot be used. ``reason`` picks the page wording."""

    reason = "invalid"

    def __init__(self, message: str, link_id: str | None = None) -> None:
        super().__init__(message)
        self.link_id = link_id


class LinkTruncated(LinkError):
    """The token is shorter than any token we mint: usually a link cut by a mail client."""

    reason = "truncated"


class LinkTampered(LinkError):
    """The signature does not match: altered, or signed with a key that was retired."""

    reason = "tampered"


class LinkWrongKind(LinkError):
    """A valid link of another kind (e.g. a withdraw link used on the confirm page)."""

    reason = "wrong_kind"


class LinkExpired(LinkError):
    """A valid link past its kind's lifetime."""

    reason = "expired"


class LinkRevoked(LinkError):
    """Signed by us, but no issuance is on record any more (revoked or erased subject)."""

    reason = "revoked"


class LinkWithdrawn(LinkError):
    """We took the link back: it sat in an Act! field of a contact whose address changed,
    where someone else could have opened it."""

    reason = "withdrawn"


class LinkPurposeRetired(LinkError):
    """The link asks about a purpose the catalogue no longer offers."""

    reason = "retired"


class BadInput(OptinProofError):
    """A request body or parameter we cannot accept; nothing was changed."""


class FormTokenMissing(BadInput):
    """A decision POST without our anti-forgery field."""


class FormTokenInvalid(BadInput):
    """An anti-forgery field that is forged, damaged, or belongs to another link."""


class CrossSite(BadInput):
    """A state-changing POST that did not come from one of our own pages."""


class NoChoice(BadInput):
    """A decision form submitted without any Accept or Refuse chosen."""


class FormExpired(BadInput):
    """The page's anti-forgery field is too old; the person must submit the page again."""


class TextChanged(OptinProofError):
    """A purpose's wording changed between showing the page and submitting it."""


class StoreUnavailable(OptinProofError):
    """DynamoDB failed or is unreachable; nothing was written."""


class OutcomeUnknown(StoreUnavailable):
    """A write reached DynamoDB but its answer was lost: it may have been saved."""


class Contention(StoreUnavailable):
    """Too many concurrent writers on one subject; nothing was written, try again."""


class RequiredItemMissing(OptinProofError):
    """A write was refused because an item it depends on (e.g. a link record) is gone."""


class LinkSuperseded(LinkError):
    """A newer link for the same purposes was sent to the same person."""

    reason = "superseded"

    def __init__(self, message: str, link_id: str | None = None,
                 superseded_at: str | None = None) -> None:
        super().__init__(message, link_id)
        self.superseded_at = superseded_at


class UnknownCampaign(BadInput):
    """A campaign id nobody recorded."""


class UnknownForm(BadInput):
    """A signup for a form id the catalogue does not define."""


class MailError(OptinProofError):
    """A mail could not be handed to the transport. ``permanent``: retrying cannot help."""

    permanent = False


class MailTemporaryFailure(MailError):
    """The transport is down, busy or throttling us: try again later."""


class MailPermanentFailure(MailError):
    """The transport refused this mail for good (bad recipient, sender not verified)."""

    permanent = True
